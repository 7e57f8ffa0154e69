//! `lbspeaker run`: the daemon on a directory of manifests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::daemon::{RunOptions, run_directory};
use crate::logging::{self, LogFormat};

/// `lbspeaker run --config-dir DIR --node NAME ...`
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Directory of manifests (CRDs, Services, EndpointSlices, Nodes, Secrets), read and
    /// watched; status is written under DIR/status/.
    #[arg(long, value_name = "DIR")]
    pub config_dir: PathBuf,
    /// The Node object this process speaks for.
    #[arg(long, value_name = "NAME", env = "LBSPEAKER_NODE")]
    pub node: String,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9962).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log level or directives (`info`, `debug`, `info,bgp=debug`); RUST_LOG wins when set.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Namespace of the Secrets that CiliumBGPPeerConfig `authSecretRef` names.
    #[arg(long, default_value = crate::bgp::DEFAULT_SECRETS_NAMESPACE)]
    pub bgp_secrets_namespace: String,
    /// Write this node's CiliumBGPNodeConfig (spec and status); large clusters may turn it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub bgp_status_report: bool,
}

/// Runs the daemon until SIGTERM or SIGINT. `api` is the local API socket.
pub fn run(args: RunArgs, api: PathBuf) -> anyhow::Result<()> {
    logging::init(args.log_format, &args.log_level);
    let opts = RunOptions {
        config_dir: args.config_dir,
        node: args.node,
        api,
        metrics_addr: args.metrics_addr,
        secrets_namespace: args.bgp_secrets_namespace,
        bgp_status_report: args.bgp_status_report,
        leader_retry: Duration::from_secs(1),
        roles: crate::daemon::Roles::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // An error is printed once, by main.
    rt.block_on(run_directory(opts))
}
