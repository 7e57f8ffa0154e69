//! `lbspeaker`: the daemon, the operator and the CLI in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use agent_glue::cli::query::{self, Query, QueryArgs};

/// BGP control plane, LB-IPAM, L2 announcements and an eBPF service dataplane for bare-metal
/// Kubernetes, driven by the cilium.io resources.
#[derive(Debug, Parser)]
#[command(name = "lbspeaker", version, about)]
struct Cli {
    #[command(flatten)]
    query: QueryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon on a directory of manifests: LB-IPAM and BGP conditions (operator role,
    /// one process per directory leads), this node's BGP speaker, L2 announcements and
    /// dataplane, the local API and metrics.
    Run(Box<agent_glue::cli::run::RunArgs>),
    /// Run the node agent on a Kubernetes cluster (a DaemonSet, one per node): this node's BGP
    /// speaker, L2 announcements and dataplane, its CiliumBGPNodeConfig status, the local API
    /// and metrics.
    Agent(Box<agent_glue::cli::kube::AgentArgs>),
    /// Run the operator on a Kubernetes cluster (a Deployment; one replica leads through a
    /// Lease): LB-IPAM, the BGP and L2 policy conditions and every node's CiliumBGPNodeConfig.
    Operator(Box<agent_glue::cli::kube::OperatorArgs>),
    /// BGP sessions, routes and policies of the running daemon, and BGP tools.
    #[command(subcommand)]
    Bgp(agent_glue::cli::bgp::BgpCommand),
    /// LB-IPAM pools and the services' addresses.
    #[command(subcommand)]
    Ipam(IpamCommand),
    /// L2 announcements.
    #[command(subcommand)]
    L2(L2Command),
    /// The eBPF service dataplane.
    #[command(subcommand)]
    Lb(LbCommand),
    /// BFD sessions of the BGP peers that ask for them (a BFDProfile named by the peer config).
    #[command(subcommand)]
    Bfd(BfdCommand),
    /// Received routes installed in the kernel (ClusterConfig annotation
    /// lbspeaker.io/install-routes).
    #[command(subcommand)]
    Fib(FibCommand),
    /// The daemon at a glance.
    Status,
    /// Convert another load balancer's configuration into cilium.io manifests.
    #[command(subcommand)]
    Convert(agent_glue::cli::convert::ConvertCommand),
}

#[derive(Debug, Subcommand)]
enum IpamCommand {
    /// CiliumLoadBalancerIPPools: disabled, conflicting, addresses available, used and total.
    Pools,
    /// LoadBalancer services, their addresses and the IPAMRequestSatisfied condition.
    Services,
}

#[derive(Debug, Subcommand)]
enum LbCommand {
    /// The dataplane's services: SERVICE ADDRESS, BACKEND ADDRESS (REVNAT_ID) (SLOT), flags.
    List,
}

#[derive(Debug, Subcommand)]
enum BfdCommand {
    /// Sessions: peer address, BGP peers, state, diagnostic, intervals, detection time, uptime,
    /// flaps, BGP resets.
    Peers,
}

#[derive(Debug, Subcommand)]
enum FibCommand {
    /// Our routes in the kernel per instance, and what is not installed and why.
    Routes,
}

#[derive(Debug, Subcommand)]
enum L2Command {
    /// Announced addresses: services, lease, holder, interfaces, since.
    Leases,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Run(_) | Command::Agent(_) | Command::Operator(_)
    ) && let Some(e) = agent_glue::daemon::malloc::limit_arenas()
    {
        eprintln!("lbspeaker: cannot limit malloc arenas ({e}); going on with glibc's default");
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lbspeaker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let q = &cli.query;
    match cli.command {
        Command::Run(args) => agent_glue::cli::run::run(*args, q.api.clone())?,
        Command::Agent(args) => agent_glue::cli::kube::run_agent(*args, q.api.clone())?,
        Command::Operator(args) => agent_glue::cli::kube::run_operator(*args, q.api.clone())?,
        Command::Bgp(cmd) => agent_glue::cli::bgp::run(cmd, q)?,
        Command::Ipam(IpamCommand::Pools) => query::run(q, Query::Pools)?,
        Command::Ipam(IpamCommand::Services) => query::run(q, Query::Services)?,
        Command::L2(L2Command::Leases) => query::run(q, Query::Leases)?,
        Command::Lb(LbCommand::List) => query::run(q, Query::LbList)?,
        Command::Bfd(BfdCommand::Peers) => query::run(q, Query::BfdPeers)?,
        Command::Fib(FibCommand::Routes) => query::run(q, Query::FibRoutes)?,
        Command::Status => query::run(q, Query::Status)?,
        Command::Convert(cmd) => {
            // Everything that converted is printed even when something else could not be.
            if !agent_glue::cli::convert::run(cmd)? {
                return Ok(ExitCode::from(agent_glue::cli::convert::EXIT_INCOMPLETE));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
