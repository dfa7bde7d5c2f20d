//! Stage: every stage. The crate's error type: says what, where and why, in
//! the form `<op> <target> (<transport>, <size> B): <reason>`.

use std::io;
use std::path::PathBuf;

/// Everything that can end a run early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: names the flag, the value and what is allowed. Exit status 2.
    #[error("{flag} {value}: {reason}")]
    Config {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// A one-time set-up call failed.
    #[error("{op} {target} ({transport}, {size} B): {source}")]
    Setup {
        op: &'static str,
        target: String,
        transport: &'static str,
        size: usize,
        source: io::Error,
    },
    /// A data-path call failed during a run.
    #[error("{side} {call} ({transport}, {size} B): {cause}")]
    Run {
        side: &'static str,
        call: &'static str,
        transport: &'static str,
        size: usize,
        cause: String,
    },
    /// A measurement thread could not be pinned where asked.
    #[error("pin {role} to CPU {cpu}: {reason}")]
    Pin {
        role: &'static str,
        cpu: usize,
        reason: String,
    },
    /// Building `--netns`'s namespaces and links failed (privilege, tools).
    #[error("--netns {mode}: {step}: {reason}")]
    Netns {
        mode: &'static str,
        step: String,
        reason: String,
    },
    /// Reading or writing a file (results, fingerprint).
    #[error("{op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The run was interrupted (SIGINT/SIGTERM).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Build a `Config` error.
    pub fn config(flag: &'static str, value: impl ToString, reason: impl ToString) -> Self {
        Error::Config {
            flag,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Process exit status for this error: 2 for bad input, 130 for an
    /// interruption, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } => 2,
            Error::Interrupted => 130,
            _ => 1,
        }
    }
}

/// Result alias for the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
