//! `lbspeaker agent` and `lbspeaker operator`: the daemon on a Kubernetes cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::node::{DataplaneArgs, L2Args};
use crate::duration::parse_duration;
use crate::kube::client::ClientOptions;
use crate::kube::run::{AgentConfig, OperatorConfig};
use crate::logging::{self, LogFormat};

/// How to reach the API server, shared by both commands.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// A kubeconfig file; without it, the pod's service account (in-cluster configuration).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// lbspeaker's namespace, where its Leases live (L2 announcements, the operator's).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE", default_value = crate::kube::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Namespace of the Secrets that CiliumBGPPeerConfig `authSecretRef` names; no other
    /// Secret is read.
    #[arg(long, default_value = crate::bgp::DEFAULT_SECRETS_NAMESPACE)]
    pub bgp_secrets_namespace: String,
    /// Requests per second to the API server before scaling with the number of services
    /// (default: 10 for the agent, 50 for the operator).
    #[arg(long, value_name = "QPS")]
    pub k8s_client_qps: Option<f64>,
    /// Requests at once to the API server, before scaling (default: 20 for the agent, 100
    /// for the operator).
    #[arg(long, value_name = "N")]
    pub k8s_client_burst: Option<u32>,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9962).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level or directives (`info`, `debug`, `info,kube=debug`); RUST_LOG wins when set.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Drop every capability the role does not need once the API socket is bound, before
    /// anything else starts (see docs/daemon.md#privileges); `false` keeps them all.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub drop_capabilities: bool,
}

/// `lbspeaker agent --node NAME ...`
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The Node this agent speaks for (the downward API's `spec.nodeName`).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node: String,
    /// Run this node's BGP speaker (Cilium's `bgpControlPlane.enabled`); off, no BGP
    /// resource or Secret is read and nothing is advertised (L2 announcements only).
    #[arg(long, alias = "enable-bgp-control-plane", default_value_t = true, action = clap::ArgAction::Set)]
    pub bgp_control_plane: bool,
    /// Write this node's CiliumBGPNodeConfig status (Cilium's
    /// `bgpControlPlane.statusReport.enabled`); off clears what was written and writes nothing.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub bgp_status_report: bool,
    /// L2 announcements, with Kubernetes Leases in lbspeaker's namespace; the client's rate
    /// grows by one request per retry period per LoadBalancer service, for their renewals.
    #[command(flatten)]
    pub l2: L2Args,
    #[command(flatten)]
    pub dataplane: DataplaneArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `lbspeaker operator ...`
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// This replica's name, written as the holder of the operator's Lease (the downward API's
    /// `metadata.name`); default: the host name.
    #[arg(long, value_name = "NAME", env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long the operator's Lease lasts without renewal.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,
    /// How often standbys look at the Lease and the leader renews it.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,
    /// Write the BGP conditions and every node's CiliumBGPNodeConfig (Cilium's
    /// `bgpControlPlane.enabled`); off, no BGP resource or Secret is read or written.
    #[arg(long, alias = "enable-bgp-control-plane", default_value_t = true, action = clap::ArgAction::Set)]
    pub bgp_control_plane: bool,
    /// Write the CiliumL2AnnouncementPolicy conditions (bad selectors, bad interface
    /// expressions) while leading; turn off with the agents' L2 announcements.
    #[arg(long, alias = "enable-l2-announcements", default_value_t = true, action = clap::ArgAction::Set)]
    pub l2_announcements: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

fn client_options(k: &KubeArgs, qps: f64, burst: u32, per_service: f64) -> ClientOptions {
    ClientOptions {
        kubeconfig: k.kubeconfig.clone(),
        qps: k.k8s_client_qps.unwrap_or(qps),
        burst: k.k8s_client_burst.unwrap_or(burst),
        per_service_qps: per_service,
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs the agent until SIGTERM or SIGINT. `api` is the local API socket.
pub fn run_agent(args: AgentArgs, api: PathBuf) -> anyhow::Result<()> {
    logging::init(args.kube.log_format, &args.kube.log_level);
    let retry = args.l2.l2_lease_retry_period.as_secs_f64().max(0.1);
    let client = client_options(&args.kube, 10.0, 20, 1.0 / retry);
    let l2 = args.l2.settings()?;
    let dataplane = args.dataplane.options();
    let needs = crate::daemon::privileges::Needs {
        bgp: args.bgp_control_plane,
        l2: l2.is_some(),
        dataplane: dataplane.mode != crate::dataplane::Mode::Off,
    };
    let api_listener =
        super::node::bind_api_then_drop(&api, None, args.kube.drop_capabilities, needs)?;
    let bound = api.clone();
    let config = AgentConfig {
        node: args.node,
        namespace: args.kube.namespace,
        secrets_namespace: args.kube.bgp_secrets_namespace,
        bgp: args.bgp_control_plane,
        bgp_status_report: args.bgp_status_report,
        api,
        api_listener,
        metrics_addr: args.kube.metrics_addr,
        l2,
        dataplane,
    };
    let r = runtime()?.block_on(crate::kube::run::agent(
        config,
        client,
        crate::daemon::shutdown_signal(),
    ));
    forget_socket_on_error(r, &bound)
}

/// An error before the daemon served (no cluster, say) leaves no socket behind: it was
/// bound here, so it is ours.
fn forget_socket_on_error(r: anyhow::Result<()>, api: &std::path::Path) -> anyhow::Result<()> {
    if r.is_err() {
        let _ = std::fs::remove_file(api);
    }
    r
}

/// Runs the operator until SIGTERM or SIGINT.
pub fn run_operator(args: OperatorArgs, api: PathBuf) -> anyhow::Result<()> {
    logging::init(args.kube.log_format, &args.kube.log_level);
    let timers = l2announce::Timers::new(
        args.leader_election_lease_duration,
        args.leader_election_renew_deadline,
        args.leader_election_retry_period,
    )
    .context("leader election timers")?;
    let identity = match args.identity {
        Some(i) => i,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("lbspeaker-operator-{}", std::process::id())),
    };
    let client = client_options(&args.kube, 50.0, 100, 0.05);
    // The operator only talks to the API server: it keeps no capability at all.
    let needs = crate::daemon::privileges::Needs {
        bgp: false,
        l2: false,
        dataplane: false,
    };
    let api_listener =
        super::node::bind_api_then_drop(&api, None, args.kube.drop_capabilities, needs)?;
    let bound = api.clone();
    let config = OperatorConfig {
        identity,
        namespace: args.kube.namespace,
        secrets_namespace: args.kube.bgp_secrets_namespace,
        leader_timers: timers,
        bgp: args.bgp_control_plane,
        l2_policy_conditions: args.l2_announcements,
        api,
        api_listener,
        metrics_addr: args.kube.metrics_addr,
    };
    let r = runtime()?.block_on(crate::kube::run::operator(
        config,
        client,
        crate::daemon::shutdown_signal(),
    ));
    forget_socket_on_error(r, &bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    enum Cli {
        Agent(AgentArgs),
        Operator(OperatorArgs),
    }

    #[test]
    fn the_agent_takes_the_l2_and_dataplane_flags_of_lbspeaker_run() {
        let Cli::Agent(a) = Cli::try_parse_from([
            "lbspeaker",
            "agent",
            "--node",
            "node1",
            "--l2-lease-retry-period",
            "1s",
            "--dataplane",
            "best-effort",
        ])
        .unwrap() else {
            panic!("not the agent")
        };
        assert_eq!(a.l2.l2_lease_retry_period, Duration::from_secs(1));
        assert_eq!(
            a.dataplane.options().mode,
            crate::dataplane::Mode::BestEffort
        );
        assert!(a.l2.settings().unwrap().is_some());
    }

    #[test]
    fn the_operator_writes_l2_policy_conditions_unless_told_not_to() {
        let parse = |extra: &[&str]| match Cli::try_parse_from(
            ["lbspeaker", "operator"].iter().chain(extra),
        )
        .unwrap()
        {
            Cli::Operator(o) => o.l2_announcements,
            Cli::Agent(_) => panic!("not the operator"),
        };
        assert!(parse(&[]));
        assert!(!parse(&["--l2-announcements", "false"]));
    }

    #[test]
    fn both_roles_run_bgp_unless_told_not_to_under_either_name() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap() {
            Cli::Agent(a) => a.bgp_control_plane,
            Cli::Operator(o) => o.bgp_control_plane,
        };
        assert!(parse(&["lbspeaker", "agent", "--node", "n1"]));
        assert!(parse(&["lbspeaker", "operator"]));
        assert!(!parse(&[
            "lbspeaker",
            "agent",
            "--node",
            "n1",
            "--bgp-control-plane=false"
        ]));
        assert!(!parse(&[
            "lbspeaker",
            "operator",
            "--enable-bgp-control-plane",
            "false"
        ]));
    }
}
