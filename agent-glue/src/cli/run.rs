//! `lbspeaker run`: the daemon on a directory of manifests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::node::{DataplaneArgs, L2Args};
use crate::daemon::{RunOptions, run_directory};
use crate::l2::{L2Options, LeaseStore};
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
    /// Let this group use the local API socket (mode 0660; a name or a number); without it
    /// the socket is root's only (mode 0600).
    #[arg(long, value_name = "GROUP")]
    pub api_socket_group: Option<String>,
    /// Drop every capability the run does not need once the API socket is bound, before
    /// anything else starts (see docs/daemon.md#privileges); `false` keeps them all.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub drop_capabilities: bool,
    #[command(flatten)]
    pub l2: L2Args,
    #[command(flatten)]
    pub l2_files: L2FileArgs,
    #[command(flatten)]
    pub dataplane: DataplaneArgs,
}

/// Where `lbspeaker run` keeps its L2 leases: files every process on the manifest directory
/// shares.
#[derive(Debug, Clone, Args)]
pub struct L2FileArgs {
    /// Directory of the lease files, shared by every process on the manifest directory
    /// [default: DIR/.lbspeaker/leases].
    #[arg(long, value_name = "PATH")]
    pub l2_lease_dir: Option<PathBuf>,
    /// Let candidates take the lease of a holder whose process is gone at once (the lease
    /// files' liveness locks) instead of when the lease expires, as with Kubernetes Leases.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub l2_lease_liveness: bool,
}

impl RunArgs {
    /// The L2 agent's options (`None`: turned off).
    pub fn l2_options(&self) -> anyhow::Result<Option<L2Options>> {
        let Some(settings) = self.l2.settings()? else {
            return Ok(None);
        };
        let path = self
            .l2_files
            .l2_lease_dir
            .clone()
            .unwrap_or_else(|| default_lease_dir(&self.config_dir));
        let leases = LeaseStore::Directory {
            path,
            liveness: self.l2_files.l2_lease_liveness,
        };
        Ok(Some(L2Options::with_settings(&self.node, settings, leases)))
    }
}

/// `DIR/.lbspeaker/leases`: inside the manifest directory so every process sharing it shares
/// the leases, under a hidden name so the directory source never reads it as manifests and a
/// renewal never wakes its watcher.
pub fn default_lease_dir(config_dir: &Path) -> PathBuf {
    config_dir.join(".lbspeaker").join("leases")
}

/// A group by name or number.
pub fn resolve_group(group: &str) -> anyhow::Result<nix::unistd::Gid> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(anyhow::anyhow!("--api-socket-group: no group {group:?}")),
        Err(e) => Err(anyhow::anyhow!("--api-socket-group {group:?}: {e}")),
    }
}

/// Runs the daemon until SIGTERM or SIGINT. `api` is the local API socket.
pub fn run(args: RunArgs, api: PathBuf) -> anyhow::Result<()> {
    let l2 = args.l2_options()?;
    logging::init(args.log_format, &args.log_level);
    let api_group = args
        .api_socket_group
        .as_deref()
        .map(resolve_group)
        .transpose()?;
    let dataplane = args.dataplane.options();
    let needs = crate::daemon::privileges::Needs {
        bgp: true,
        l2: l2.is_some(),
        dataplane: dataplane.mode != crate::dataplane::Mode::Off,
    };
    let api_listener =
        super::node::bind_api_then_drop(&api, api_group, args.drop_capabilities, needs)?;
    let opts = RunOptions {
        config_dir: args.config_dir,
        node: args.node,
        api,
        metrics_addr: args.metrics_addr,
        secrets_namespace: args.bgp_secrets_namespace,
        bgp_status_report: args.bgp_status_report,
        leader_retry: Duration::from_secs(1),
        l2_policy_conditions: args.l2.l2_announcements,
        l2,
        dataplane,
        roles: crate::daemon::Roles::default(),
        bgp: true,
        api_group,
        api_listener,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // An error is printed once, by main.
    rt.block_on(run_directory(opts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(extra: &[&str]) -> Result<RunArgs, clap::Error> {
        let args = ["lbspeaker", "--config-dir", "/m", "--node", "node1"];
        Cli::try_parse_from(args.iter().chain(extra)).map(|c| c.run)
    }

    #[test]
    fn timers_that_break_client_gos_rules_are_refused_and_off_means_no_options() {
        let o = parse(&[]).unwrap().l2_options().unwrap().unwrap();
        assert_eq!(o.timers, l2announce::Timers::default());
        assert!(matches!(
            &o.leases,
            LeaseStore::Directory { path, liveness: true } if path == Path::new("/m/.lbspeaker/leases")
        ));
        let e = parse(&["--l2-lease-renew-deadline", "15s"])
            .unwrap()
            .l2_options()
            .unwrap_err()
            .to_string();
        assert!(e.contains("renew deadline"), "{e}");
        let off = parse(&["--l2-announcements", "false"]).unwrap();
        assert!(off.l2_options().unwrap().is_none());
    }

    #[test]
    fn cilium_agent_flag_names_are_accepted_for_the_l2_timers() {
        let a = parse(&[
            "--l2-announcements-lease-duration",
            "20s",
            "--l2-announcements-renew-deadline",
            "8s",
            "--l2-announcements-retry-period",
            "1s",
            "--enable-l2-announcements",
            "true",
        ])
        .unwrap();
        let o = a.l2_options().unwrap().unwrap();
        assert_eq!(
            o.timers,
            l2announce::Timers::new(
                Duration::from_secs(20),
                Duration::from_secs(8),
                Duration::from_secs(1)
            )
            .unwrap()
        );
    }
}
