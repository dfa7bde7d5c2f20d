//! sockbench: how much does a Unix domain socket save over loopback TCP?
//!
//! Data moves one way: `cli` (argv → raw arguments) → `plan` (a validated
//! run) → `transport` (connected ends, set up once) → `workload` (pinned
//! pairs and the timed loops) → `samples`/`stats` (histograms, confidence
//! intervals) → `report` (tables, JSON, CSV, result directories).
//!
//! The modules are listed below in dependency order: each uses only
//! modules listed before it (`stats` knows no sockets, transports know no
//! CSV, the vocabulary in `spec` knows nothing else). `unsafe` lives only
//! in [`sys`]; `cleanup` removes what the program created (its private
//! directories, forked servers, a journal of host sysctls) on every exit
//! path, and a reaper child does so when the program is killed;
//! `host_sysctl` is the policy of host-wide sysctls before a run. rustfmt
//! sorts `mod` lines within a block, so a module that uses another stands
//! in a later block; `tests/layers.rs` holds the order to the code.
#![deny(unsafe_code)]

pub mod error;
pub mod spec;

pub mod clock;
pub mod samples;
pub mod stats;
pub mod sys;

pub mod affinity;
pub mod cleanup;
pub mod transport;

pub mod cli;
pub mod plan;

pub mod host_sysctl;

pub mod workload;

pub mod report;

pub use error::{Error, Result};
