//! `lbspeaker agent` and `lbspeaker operator`: the pieces of this module plugged into
//! [`crate::daemon::run`], which runs the same reconcilers as `lbspeaker run`.
//!
//! | | agent (DaemonSet) | operator (Deployment) |
//! |---|---|---|
//! | source | every kind, its own Node / node config / override | pools, Services, Nodes, BGP configs, node configs, overrides, referenced Secrets |
//! | roles | BGP (and the node's L2 and dataplane reconcilers) | LB-IPAM, BGP conditions, CiliumBGPNodeConfig specs, while it holds the Lease |
//! | writes | its CiliumBGPNodeConfig status | Service / pool / BGP config status, node configs, its Lease |
//! | rate limit | grows by one request per lease retry period per LoadBalancer service | grows by 0.05 per service |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::api::{Api, Patch, PatchParams};
use l2announce::{LeaseName, Timers};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::{self, ClientOptions};
use super::events::EventPublisher;
use super::leader::LeaseLeader;
use super::lease::KubeLeaseBackend;
use super::ratelimit::RateLimit;
use super::sink::KubeSink;
use super::source::{KubeSource, SourceOptions};
use super::{
    AGENT_CONTROLLER, AGENT_MANAGER, OPERATOR_CONTROLLER, OPERATOR_LEASE, OPERATOR_MANAGER, Role,
};
use crate::daemon::{PreBound, Roles, RunOptions};
use crate::dataplane::DataplaneOptions;
use crate::ipam::translate::manages;
use crate::l2::{L2Options, L2Settings, LeaseStore};
use crate::source::leader::Leadership;
use crate::source::{ObjectKey, Snapshot, Source, StatusSink};

/// What `lbspeaker agent` is told.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node (`NODE_NAME` from the downward API).
    pub node: String,
    /// lbspeaker's namespace: L2 Leases live there.
    pub namespace: String,
    /// Where `authSecretRef` Secrets live.
    pub secrets_namespace: String,
    /// The BGP control plane (off: no speaker, and no BGP resource is read or written).
    pub bgp: bool,
    /// Write the node's CiliumBGPNodeConfig status (off: cleared once, then never written).
    pub bgp_status_report: bool,
    /// The local API socket.
    pub api: PathBuf,
    /// The local API socket when the command bound it before the runtime (to drop
    /// privileges first); empty: bound here.
    pub api_listener: PreBound,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: Option<SocketAddr>,
    /// L2 announcements (`None`: turned off); the leases are Kubernetes Leases in `namespace`.
    pub l2: Option<L2Settings>,
    /// The eBPF dataplane.
    pub dataplane: DataplaneOptions,
}

/// What `lbspeaker operator` is told.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// This replica's name (`POD_NAME`): the Lease's holder identity.
    pub identity: String,
    /// lbspeaker's namespace: the operator's Lease lives there.
    pub namespace: String,
    /// Where `authSecretRef` Secrets live.
    pub secrets_namespace: String,
    /// Leader election: lease duration, renew deadline, retry period.
    pub leader_timers: Timers,
    /// The BGP control plane's share: conditions and CiliumBGPNodeConfigs (off: none, and no
    /// BGP resource is read or written).
    pub bgp: bool,
    /// Write the CiliumL2AnnouncementPolicy conditions while leading.
    pub l2_policy_conditions: bool,
    /// The local API socket.
    pub api: PathBuf,
    /// The local API socket when the command bound it before the runtime; empty: bound here.
    pub api_listener: PreBound,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: Option<SocketAddr>,
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The daemon's options for a role; the per-node parts (L2, dataplane) are the agent's.
fn run_options(
    node: &str,
    (api, api_listener): (PathBuf, PreBound),
    metrics: Option<SocketAddr>,
    secrets: &str,
    roles: Roles,
) -> RunOptions {
    RunOptions {
        config_dir: PathBuf::new(),
        node: node.to_owned(),
        api,
        metrics_addr: metrics,
        secrets_namespace: secrets.to_owned(),
        bgp_status_report: false,
        leader_retry: Duration::from_secs(1),
        l2: None,
        l2_policy_conditions: false,
        dataplane: DataplaneOptions::default(),
        roles,
        bgp: true,
        api_group: None,
        api_listener,
    }
}

/// Keeps the client's rate in step with the number of LoadBalancer services.
fn scale_rate(mut snapshots: watch::Receiver<Arc<Snapshot>>, limit: RateLimit) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let n = snapshots
                .borrow_and_update()
                .services
                .values()
                .filter(|s| manages(s))
                .count();
            if limit.scale_to(n) {
                let (qps, burst) = limit.current();
                tracing::info!(services = n, qps, burst, "client rate limit scaled");
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    })
}

/// With status reporting off, removes what this agent reported before (once, when the source
/// has listed), as Cilium does; the agent writes nothing afterwards.
fn clear_status(
    client: kube::Client,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    node: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(snap) = snapshots.wait_for(|s| s.synced).await.map(|s| s.clone()) else {
            return;
        };
        let Some(nc) = snap.bgp_node_configs.get(&ObjectKey::cluster(&node)) else {
            return;
        };
        let reported = nc
            .status
            .as_ref()
            .is_some_and(|s| !s.bgp_instances.is_empty() || !s.conditions.is_empty());
        if !reported {
            return;
        }
        let api: Api<crds::bgp::CiliumBGPNodeConfig> = Api::all(client);
        let body = json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumBGPNodeConfig",
            "metadata": {"name": node, "uid": nc.metadata.uid},
            "status": {},
        });
        match api
            .patch_status(
                &node,
                &PatchParams::apply(AGENT_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(node = %node, "BGP status reporting is off: the CiliumBGPNodeConfig status this agent wrote is cleared")
            }
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "clearing the CiliumBGPNodeConfig status failed")
            }
        }
    })
}

/// `lbspeaker agent`: connects and runs until `shutdown`.
pub async fn agent(
    config: AgentConfig,
    client_opts: ClientOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (client, limit) = client::connect(Role::Agent, &config.node, &client_opts).await?;
    agent_with(client, limit, config, shutdown).await
}

/// The agent on a given client (tests pass one over the in-memory API server).
pub async fn agent_with(
    client: kube::Client,
    limit: RateLimit,
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut source_opts = SourceOptions::agent(&config.node, &config.secrets_namespace);
    if !config.bgp {
        source_opts = source_opts.without_bgp();
    }
    let source = KubeSource::start(client.clone(), source_opts);
    let events = EventPublisher::start(client.clone(), AGENT_CONTROLLER, &config.node);
    let sink: Arc<dyn StatusSink> = Arc::new(KubeSink::new(
        client.clone(),
        source.subscribe(),
        false,
        Some(events),
    ));
    let mut tasks = vec![scale_rate(source.subscribe(), limit)];
    if config.bgp && !config.bgp_status_report {
        tasks.push(clear_status(
            client.clone(),
            source.subscribe(),
            config.node.clone(),
        ));
    }
    let _tasks = Tasks(tasks);
    let (_never, leading) = watch::channel(false);
    let mut opts = run_options(
        &config.node,
        (config.api, config.api_listener),
        config.metrics_addr,
        &config.secrets_namespace,
        Roles {
            operator: false,
            agent: true,
        },
    );
    opts.bgp = config.bgp;
    opts.bgp_status_report = config.bgp_status_report;
    opts.dataplane = config.dataplane;
    opts.l2 = config.l2.map(|settings| {
        let leases = KubeLeaseBackend::start(client.clone(), &config.namespace, AGENT_MANAGER);
        L2Options::with_settings(&config.node, settings, LeaseStore::Kubernetes(leases))
    });
    let source: Arc<dyn Source> = Arc::new(source);
    crate::daemon::run(source, sink, leading, opts, shutdown).await
}

/// `lbspeaker operator`: connects and runs until `shutdown`, then releases its Lease.
pub async fn operator(
    config: OperatorConfig,
    client_opts: ClientOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (client, limit) = client::connect(Role::Operator, &config.identity, &client_opts).await?;
    operator_with(client, limit, config, shutdown).await
}

/// The operator on a given client.
pub async fn operator_with(
    client: kube::Client,
    limit: RateLimit,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut source_opts = SourceOptions::operator(&config.secrets_namespace);
    if !config.bgp {
        source_opts = source_opts.without_bgp();
    }
    let source = KubeSource::start(client.clone(), source_opts);
    let events = EventPublisher::start(client.clone(), OPERATOR_CONTROLLER, &config.identity);
    let sink: Arc<dyn StatusSink> = Arc::new(KubeSink::new(
        client.clone(),
        source.subscribe(),
        true,
        Some(events.clone()),
    ));
    let leases = KubeLeaseBackend::start(client.clone(), &config.namespace, OPERATOR_MANAGER);
    let lease = LeaseName::new(OPERATOR_LEASE).context("the operator Lease's name")?;
    let leader = LeaseLeader::spawn(
        leases,
        lease,
        config.identity.clone(),
        config.leader_timers,
        Some(events),
    );
    let leading = leader.subscribe();
    let mut tasks = vec![scale_rate(source.subscribe(), limit)];
    if config.bgp {
        tasks.push(tokio::spawn(super::nodeconfig::run(
            source.subscribe(),
            leading.clone(),
            client.clone(),
            config.secrets_namespace.clone(),
            Duration::from_secs(2),
        )));
    }
    let tasks = Tasks(tasks);
    let mut opts = run_options(
        &config.identity,
        (config.api, config.api_listener),
        config.metrics_addr,
        &config.secrets_namespace,
        Roles {
            operator: true,
            agent: false,
        },
    );
    opts.l2_policy_conditions = config.l2_policy_conditions;
    opts.bgp = config.bgp;
    let source: Arc<dyn Source> = Arc::new(source);
    let r = crate::daemon::run(source, sink, leading, opts, shutdown).await;
    drop(tasks);
    leader.release().await;
    r
}
