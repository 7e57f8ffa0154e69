//! The lab's error type.

use std::path::PathBuf;
use std::time::Duration;

use crate::topology::TopologyError;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The topology file is wrong.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Something the lab needs is missing from this machine.
    #[error("{0}")]
    Prerequisite(String),
    /// A lab with that prefix already exists.
    #[error(
        "lab {prefix:?} already exists ({what}); take it down first: frr-lab down --prefix {prefix}"
    )]
    Exists {
        /// The lab's prefix.
        prefix: String,
        /// What is in the way.
        what: String,
    },
    /// No lab with that prefix is up.
    #[error("no lab {0:?} is up (see frr-lab status)")]
    NotFound(String),
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A condition was not reached in time.
    #[error("timed out after {:.1} s waiting for {what}{}", .after.as_secs_f64(), .last.as_ref().map(|l| format!(" (last seen: {l})")).unwrap_or_default())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
        /// The last observation, to explain what was missing.
        last: Option<String>,
    },
    /// A daemon did not start or misbehaved.
    #[error("node {node}: {daemon}: {message} (log: {})", .log.display())]
    Daemon {
        /// The node.
        node: String,
        /// The daemon.
        daemon: String,
        /// What went wrong.
        message: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Output of a tool could not be understood.
    #[error("cannot parse output of {what}: {message}")]
    Output {
        /// The command.
        what: String,
        /// The parse error.
        message: String,
    },
    /// Teardown left something behind.
    #[error("teardown of lab {prefix:?} was incomplete: {}", .problems.join("; "))]
    Teardown {
        /// The lab's prefix.
        prefix: String,
        /// Each thing that could not be removed.
        problems: Vec<String>,
    },
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let context = context.into();
        move |source| LabError::Io { context, source }
    }
}
