//! `lbspeaker run`: every role in one process, on one source of desired state.
//!
//! ```text
//!                    ┌─ operator role (while leading) ─ LB-IPAM ─────────────► Service / pool status
//!  Source ─ Snapshot ┤                                 └ BGP conditions ─────► ClusterConfig / PeerConfig status
//!  (directory)       ├─ BGP agent ─ reconcile ─ apply ─► Speaker ─► peers;    CiliumBGPNodeConfig
//!                    ├─ L2 agent ─ policy::evaluate ─► l2announce::Runner ─► leases, ARP/NDP
//!                    │  (operator role: CiliumL2AnnouncementPolicy conditions)
//!                    └─ dataplane reconciler ─ translate (what changed) ─► ebpf maps; conntrack GC
//!  local API (Unix socket) and /metrics, /healthz, /readyz read the same state
//! ```
//!
//! [`run_directory`] builds the source, the status sink and the leadership from a manifest
//! directory and hands them to [`run`], which knows nothing of directories: a Kubernetes
//! source (reflectors, a Lease for leadership, the status subresource as sink) plugs in there
//! unchanged. The L2 agent ([`crate::l2`]) and the dataplane reconciler ([`crate::dataplane`])
//! run beside the BGP agent on `source.subscribe()` and the same stop signal.

pub mod backend;
pub mod malloc;
pub mod privileges;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::bgp::agent::{self, AgentOptions};
use crate::bgp::cluster::ClusterController;
use crate::l2::L2Handle;
use crate::source::directory::{DirectoryOptions, DirectorySource};
use crate::source::leader::{DirectoryLeader, Leadership};
use crate::source::{Snapshot, Source, StatusSink};
use backend::DaemonBackend;

/// What `lbspeaker run` is told.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The manifest directory.
    pub config_dir: PathBuf,
    /// The Node this process speaks for.
    pub node: String,
    /// The local API socket.
    pub api: PathBuf,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (none: not served).
    pub metrics_addr: Option<SocketAddr>,
    /// Namespace of `authSecretRef` Secrets.
    pub secrets_namespace: String,
    /// Write the node's CiliumBGPNodeConfig.
    pub bgp_status_report: bool,
    /// How often a standby process tries to take the operator lock.
    pub leader_retry: Duration,
    /// This node's L2 announcer (agent role; `None`: turned off).
    pub l2: Option<crate::l2::L2Options>,
    /// Write the CiliumL2AnnouncementPolicy conditions while leading (operator role).
    pub l2_policy_conditions: bool,
    /// The eBPF dataplane (`--dataplane` and friends; agent role).
    pub dataplane: crate::dataplane::DataplaneOptions,
    /// Which roles this process runs (`lbspeaker run`: both).
    pub roles: Roles,
    /// The BGP control plane (Cilium's `bgpControlPlane.enabled`): this node's speaker in
    /// the agent role, the BGP conditions in the operator role. Off: neither runs, and the
    /// API shows no peers.
    pub bgp: bool,
    /// The group allowed on the local API socket (mode 0660); `None`: root only (0600).
    pub api_group: Option<nix::unistd::Gid>,
    /// The local API socket when it was bound before the runtime (privileges dropped since).
    pub api_listener: PreBound,
}

/// A listener bound before the runtime existed, handed to [`run`] once.
#[derive(Clone, Default)]
pub struct PreBound(Arc<std::sync::Mutex<Option<std::os::unix::net::UnixListener>>>);

impl PreBound {
    /// Wraps a bound listener.
    pub fn new(l: std::os::unix::net::UnixListener) -> Self {
        PreBound(Arc::new(std::sync::Mutex::new(Some(l))))
    }

    fn take(&self) -> Option<std::os::unix::net::UnixListener> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::fmt::Debug for PreBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreBound")
    }
}

/// The roles of a process: `lbspeaker run` runs both, `lbspeaker agent` only the node's
/// (BGP, and the L2 and dataplane reconcilers), `lbspeaker operator` only the cluster's
/// (LB-IPAM and the BGP conditions, while it leads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// LB-IPAM and the BGP conditions, while `leading` says so.
    pub operator: bool,
    /// This node's BGP speaker (and the other per-node reconcilers).
    pub agent: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            operator: true,
            agent: true,
        }
    }
}

/// Runs against a manifest directory until SIGTERM or SIGINT.
pub async fn run_directory(opts: RunOptions) -> anyhow::Result<()> {
    let source = DirectorySource::open(&opts.config_dir, DirectoryOptions::default())
        .await
        .with_context(|| format!("cannot read manifests from {}", opts.config_dir.display()))?;
    let sink: Arc<dyn StatusSink> = Arc::new(source.status_sink());
    let identity = format!("{} pid {}", opts.node, std::process::id());
    let leader = DirectoryLeader::new(source.root(), identity).spawn(opts.leader_retry);
    let leading = leader.subscribe();
    let source: Arc<dyn Source> = Arc::new(source);
    run(source, sink, leading, opts, shutdown_signal()).await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = i.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stopping only when killed");
            std::future::pending::<()>().await;
        }
    }
}

/// Runs every role on `source` until `shutdown` resolves. `leading` says whether this
/// process runs the operator role (LB-IPAM, BGP conditions).
pub async fn run(
    source: Arc<dyn Source>,
    sink: Arc<dyn StatusSink>,
    leading: watch::Receiver<bool>,
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let listener = match opts.api_listener.take() {
        Some(l) => {
            l.set_nonblocking(true)?;
            tokio::net::UnixListener::from_std(l)?
        }
        None => crate::api::server::bind(&opts.api, opts.api_group).await?,
    };
    let metrics_listener = match opts.metrics_addr {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = std::fs::remove_file(&opts.api);
                return Err(anyhow::anyhow!(
                    "cannot listen on --metrics-addr {addr}: {e}"
                ));
            }
        },
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    // The dataplane first (agent role): `--dataplane on` refuses to start when it cannot load.
    let (dataplane, dataplane_task) = if opts.roles.agent {
        match crate::dataplane::start(
            opts.dataplane.clone(),
            opts.node.clone(),
            source.subscribe(),
            stop_rx.clone(),
        )
        .await
        {
            Ok((d, t)) => (Some(d), Some(t)),
            Err(e) => {
                let _ = std::fs::remove_file(&opts.api);
                return Err(e.into());
            }
        }
    } else {
        (None, None)
    };
    let (problems_tx, problems_rx) = watch::channel(Vec::<String>::new());
    let problems_tx = Arc::new(problems_tx);

    // The operator role.
    let (ipam_tx, ipam_rx) = watch::channel(crate::ipam::Desired::default());
    let mut operator_tasks = Vec::new();
    if opts.roles.operator {
        operator_tasks.push(tokio::spawn(crate::ipam::run(
            source.subscribe(),
            leading.clone(),
            sink.clone(),
            Duration::from_secs(2),
            Some(ipam_tx),
        )));
        if opts.bgp {
            operator_tasks.push(tokio::spawn(cluster_loop(
                source.subscribe(),
                leading.clone(),
                sink.clone(),
                opts.secrets_namespace.clone(),
                problems_tx.clone(),
            )));
        }
    }

    // L2 announcements: the policies' conditions (operator role) and this node's announcer
    // (agent role), which shows the conditions' problems in its status.
    let (cond_tx, cond_rx) = watch::channel(Vec::new());
    let l2_conditions_task = (opts.roles.operator && opts.l2_policy_conditions).then(|| {
        tokio::spawn(crate::l2::conditions::run(
            source.subscribe(),
            leading.clone(),
            sink.clone(),
            cond_tx,
        ))
    });
    let (l2, l2_task) = match opts.l2.as_ref().filter(|_| opts.roles.agent) {
        None => (None, None),
        Some(l2_opts) => {
            match crate::l2::start(
                l2_opts,
                source.subscribe(),
                stop_rx.clone(),
                cond_rx.clone(),
            )
            .await
            {
                Ok((h, t)) => (Some(h), Some(t)),
                Err(e) => {
                    tracing::error!(error = %e, "running without L2 announcements");
                    (Some(L2Handle::failed(e, cond_rx)), None)
                }
            }
        }
    };

    // The node's BGP agent.
    let (agent, agent_task) = if opts.roles.agent && opts.bgp {
        let mut agent_opts = AgentOptions::new(&opts.node);
        agent_opts.secrets_namespace = opts.secrets_namespace.clone();
        agent_opts.status_report = opts.bgp_status_report;
        let (agent, task) = agent::spawn(source.subscribe(), sink.clone(), agent_opts, stop_rx);
        (agent, Some(task))
    } else {
        (agent::idle(), None)
    };

    let backend = Arc::new(DaemonBackend {
        node: opts.node.clone(),
        started,
        source: source.describe(),
        snapshots: source.subscribe(),
        agent,
        ipam: ipam_rx,
        leader: leading,
        operator_problems: problems_rx,
        l2,
        dataplane,
        roles: opts.roles,
        bgp: opts.bgp,
    });

    let (api_stop_tx, api_stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let api_task = tokio::spawn(crate::api::server::serve(
        listener,
        backend.clone(),
        stopped(api_stop_rx.clone()),
    ));
    let metrics_task = metrics_listener.map(|l| {
        let router = crate::metrics::router(backend.clone());
        let stop = stopped(api_stop_rx.clone());
        tokio::spawn(async move { axum::serve(l, router).with_graceful_shutdown(stop).await })
    });
    tracing::info!(node = %opts.node, api = %opts.api.display(), metrics = ?opts.metrics_addr, source = %source.describe(), "lbspeaker running");

    shutdown.await;
    // BGP first (Cease or graceful-restart close), then the rest.
    let _ = stop_tx.send(true);
    if let Some(t) = agent_task {
        let _ = t.await;
    }
    if let Some(t) = l2_task {
        let _ = t.await;
    }
    if let Some(t) = dataplane_task {
        let _ = t.await;
    }
    if let Some(t) = l2_conditions_task {
        t.abort();
    }
    for t in operator_tasks {
        t.abort();
    }
    let _ = api_stop_tx.send(true);
    let _ = api_task.await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    let _ = std::fs::remove_file(&opts.api);
    tracing::info!("lbspeaker stopped");
    Ok(())
}

/// The operator role's BGP share: conditions on ClusterConfigs and PeerConfigs, stale
/// CiliumBGPNodeConfigs removed, while this process leads.
async fn cluster_loop(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    leading: watch::Receiver<bool>,
    sink: Arc<dyn StatusSink>,
    secrets_namespace: String,
    problems: Arc<watch::Sender<Vec<String>>>,
) {
    struct Bgp {
        ctl: ClusterController,
        sink: Arc<dyn StatusSink>,
        secrets_namespace: String,
    }
    impl LeaderRound for Bgp {
        fn round<'a>(&'a mut self, snap: &'a Snapshot) -> RoundFuture<'a> {
            Box::pin(async move {
                let span = tracing::info_span!("bgp-conditions", revision = snap.revision);
                let r = self
                    .ctl
                    .round(
                        snap,
                        self.sink.as_ref(),
                        &self.secrets_namespace,
                        Timestamp::now(),
                    )
                    .instrument(span)
                    .await;
                r.failed.iter().map(|(o, e)| format!("{o}: {e}")).collect()
            })
        }
    }
    let bgp = Bgp {
        ctl: ClusterController::new(),
        sink,
        secrets_namespace,
    };
    leader_rounds(snapshots, leading, &problems, "BGP", bgp).await;
}

/// What a round of an operator-role writer returns: the writes that failed.
pub(crate) type RoundFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>>;

/// An operator-role writer (BGP conditions, L2 policy conditions): one round on a snapshot.
pub(crate) trait LeaderRound: Send {
    /// Writes what `snap` calls for; the failures, as `object: error`.
    fn round<'a>(&'a mut self, snap: &'a Snapshot) -> RoundFuture<'a>;
}

/// The loop of an operator-role writer: while this process leads, a `round` on every synced
/// snapshot (and every 2 s while its writes fail); the failures it returns are logged and
/// published to `problems` (only when they change). Ends when a channel closes.
pub(crate) async fn leader_rounds(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut leading: watch::Receiver<bool>,
    problems: &watch::Sender<Vec<String>>,
    what: &'static str,
    mut writer: impl LeaderRound,
) {
    loop {
        let lead = *leading.borrow_and_update();
        let snap = snapshots.borrow_and_update().clone();
        let mut failing = false;
        if lead && snap.synced {
            let errs = writer.round(&snap).await;
            for e in &errs {
                tracing::error!(error = %e, "writing {what} status failed; retrying");
            }
            failing = !errs.is_empty();
            problems.send_if_modified(|p| {
                let changed = *p != errs;
                *p = errs;
                changed
            });
        }
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { return },
            r = leading.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(2)), if failing => {}
        }
    }
}
