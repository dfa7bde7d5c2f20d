//! sockbench: how much does a Unix domain socket save over loopback TCP?
//!
//! Data moves one way, and the modules are listed in that order:
//! `config (cli, plan) → transport set-up (sys, transport) → placement
//! (affinity) → timed loop (workload) → samples (clock, samples) →
//! statistics (stats) → results (report)`. A module depends only on modules
//! before it: `stats` knows no sockets, transports know no CSV.
//!
//! `unsafe` lives only in [`sys`]; `cleanup` removes what the program
//! created (socket files, staging directories, forked servers) on every exit
//! path, including Ctrl-C.
#![deny(unsafe_code)]

pub mod error;

pub mod cli;
pub mod plan;

pub mod cleanup;
pub mod sys;
pub mod transport;

pub mod affinity;
pub mod workload;

pub mod clock;
pub mod samples;

pub mod stats;

pub mod report;

pub use error::{Error, Result};
