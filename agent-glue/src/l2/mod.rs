//! L2 announcements in the daemon: CiliumL2AnnouncementPolicies evaluated for this node
//! ([`policy`], pure), handed to `l2announce::Runner` (elections, ARP/NDP responders,
//! gratuitous announcements) by the agent loop ([`agent`]), and the policies' status
//! conditions written by the operator role ([`conditions`]).
//!
//! ```text
//!  Snapshot ─┬─ policy::evaluate(snapshot, node, interfaces) ─► Runner::set_desired ─► leases, ARP/NDP
//!  links ────┘                                                  Runner::state / counters ─► API, metrics
//!  Snapshot (leader) ─ conditions::desired ─► StatusSink (bad-service-selector, ...)
//! ```
//!
//! [`start`] opens the lease store ([`LeaseStore`]: lease files for `lbspeaker run`,
//! Kubernetes Leases for `lbspeaker agent`), starts the runner and spawns the loop; nothing
//! else differs between the two.

pub mod agent;
pub mod conditions;
pub mod policy;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use l2announce::{AnnounceConfig, FileBackend, LeaseBackend, Runner, RunnerConfig, Timers};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use agent::{L2Handle, L2View};

use crate::source::Snapshot;

/// Where leases are kept.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LeaseStore {
    /// Lease files in a directory shared by the processes of one machine
    /// (`l2announce::FileBackend`; `lbspeaker run` uses `DIR/.lbspeaker/leases`).
    Directory {
        /// The directory.
        path: PathBuf,
        /// Whether candidates may take the lease of a holder whose process is known gone at
        /// once (the file backend's `.alive` locks) rather than when it expires.
        liveness: bool,
    },
    /// `coordination.k8s.io/v1` Leases in lbspeaker's namespace (`lbspeaker agent`), one
    /// watcher for all of them.
    Kubernetes(crate::kube::lease::KubeLeaseBackend),
}

/// The L2 agent's tuning, apart from who it is and where its leases live: what the flags
/// of `lbspeaker run` and `lbspeaker agent` share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Settings {
    /// Lease duration, renew deadline, retry period.
    pub timers: Timers,
    /// Gratuitous ARP / unsolicited NA rounds after a takeover or a link flap.
    pub announce: AnnounceConfig,
    /// How long an interface may be down before this node gives its leases up.
    pub link_down_grace: Duration,
}

impl Default for L2Settings {
    /// Cilium's timers, five announcements a second apart, one second of link grace.
    fn default() -> Self {
        let d = RunnerConfig::new(String::new());
        L2Settings {
            timers: d.timers,
            announce: d.announce,
            link_down_grace: d.link_down_grace,
        }
    }
}

/// How the L2 agent runs.
#[derive(Debug, Clone)]
pub struct L2Options {
    /// This node's name: its labels meet the node selectors, and it is the lease holder
    /// identity.
    pub node: String,
    /// Lease duration, renew deadline, retry period (Cilium's 15 s / 5 s / 2 s by default).
    pub timers: Timers,
    /// Gratuitous ARP / unsolicited NA rounds after a takeover or a link flap.
    pub announce: AnnounceConfig,
    /// How long an interface may be down before this node gives its leases up.
    pub link_down_grace: Duration,
    /// The leases.
    pub leases: LeaseStore,
}

impl L2Options {
    /// Cilium's timers, five announcements a second apart, one second of link grace.
    pub fn new(node: impl Into<String>, leases: LeaseStore) -> L2Options {
        let node = node.into();
        let defaults = RunnerConfig::new(node.clone());
        L2Options {
            node,
            timers: defaults.timers,
            announce: defaults.announce,
            link_down_grace: defaults.link_down_grace,
            leases,
        }
    }

    /// `settings` for `node` with `leases`.
    pub fn with_settings(
        node: impl Into<String>,
        settings: L2Settings,
        leases: LeaseStore,
    ) -> L2Options {
        L2Options {
            node: node.into(),
            timers: settings.timers,
            announce: settings.announce,
            link_down_grace: settings.link_down_grace,
            leases,
        }
    }

    fn runner_config(&self) -> RunnerConfig {
        let mut c = RunnerConfig::new(self.node.clone());
        c.timers = self.timers;
        c.announce = self.announce;
        c.link_down_grace = self.link_down_grace;
        c
    }
}

/// How long shutdown waits for leases to be released.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

async fn spawn_with<B: LeaseBackend>(
    backend: B,
    opts: &L2Options,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stop: watch::Receiver<bool>,
    operator_problems: watch::Receiver<Vec<String>>,
) -> Result<(L2Handle, JoinHandle<()>), String> {
    let runner = Runner::start(opts.runner_config(), backend)
        .await
        .map_err(|e| format!("L2 announcements cannot start: {e}"))?;
    let runner = Arc::new(runner);
    let weak: Weak<Runner<B>> = Arc::downgrade(&runner);
    let weak: Weak<dyn agent::RunnerView> = weak;
    let (view_tx, view_rx) = watch::channel(L2View::default());
    let task = tokio::spawn(agent::run(
        runner,
        snapshots,
        opts.node.clone(),
        view_tx,
        stop,
        SHUTDOWN_TIMEOUT,
    ));
    Ok((
        L2Handle {
            runner: Some(weak),
            view: view_rx,
            failed: None,
            operator_problems,
        },
        task,
    ))
}

/// Opens the lease store, starts the runner and spawns the agent loop on `snapshots` until
/// `stop`. A store or runner that cannot start is an error (the daemon reports it and runs
/// on without L2 announcements).
pub async fn start(
    opts: &L2Options,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stop: watch::Receiver<bool>,
    operator_problems: watch::Receiver<Vec<String>>,
) -> Result<(L2Handle, JoinHandle<()>), String> {
    match &opts.leases {
        LeaseStore::Directory { path, liveness } => {
            let backend = FileBackend::open(path, Some(&opts.node)).map_err(|e| {
                format!(
                    "L2 announcements cannot start: lease directory {}: {e}",
                    path.display()
                )
            })?;
            let backend = if *liveness {
                backend
            } else {
                backend.without_liveness()
            };
            spawn_with(backend, opts, snapshots, stop, operator_problems).await
        }
        LeaseStore::Kubernetes(backend) => {
            spawn_with(backend.clone(), opts, snapshots, stop, operator_problems).await
        }
    }
}
