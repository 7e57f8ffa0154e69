//! `lbspeaker run`: the daemon on a directory of manifests.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::daemon::{RunOptions, run_directory};
use crate::dataplane::{DataplaneOptions, Mode};
use crate::l2::{L2Options, LeaseStore};
use crate::logging::{self, LogFormat};
use l2announce::{AnnounceConfig, Timers};

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
    #[command(flatten)]
    pub l2: L2Args,
    #[command(flatten)]
    pub dataplane: DataplaneArgs,
}

/// The L2 announcement flags of `lbspeaker run` (Cilium's `l2announcements.*` Helm values).
#[derive(Debug, Clone, Args)]
pub struct L2Args {
    /// Answer ARP/NDP for the addresses CiliumL2AnnouncementPolicies select, and write the
    /// policies' conditions (Cilium's `l2announcements.enabled`). Without a policy nothing is
    /// announced.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub l2_announcements: bool,
    /// How long a lease lasts without renewal (Cilium's `l2announcements.leaseDuration`).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub l2_lease_duration: Duration,
    /// How long a holder keeps answering without a successful renewal
    /// (`l2announcements.leaseRenewDeadline`); below the lease duration.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub l2_lease_renew_deadline: Duration,
    /// How often candidates look at a lease and holders renew it
    /// (`l2announcements.leaseRetryPeriod`); the renew deadline must exceed 1.2 of it.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub l2_lease_retry_period: Duration,
    /// Directory of the lease files, shared by every process on the manifest directory
    /// [default: DIR/.lbspeaker/leases].
    #[arg(long, value_name = "PATH")]
    pub l2_lease_dir: Option<PathBuf>,
    /// Let candidates take the lease of a holder whose process is gone at once (the lease
    /// files' liveness locks) instead of when the lease expires, as with Kubernetes Leases.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub l2_lease_liveness: bool,
    /// Rounds of gratuitous ARP / unsolicited neighbour advertisements after a takeover or a
    /// link flap.
    #[arg(long, value_name = "COUNT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub l2_announce_count: u32,
    /// Time between those rounds.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub l2_announce_interval: Duration,
    /// How long an interface may be down before this node gives its leases up (shorter flaps
    /// keep them and are announced again).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub l2_link_down_grace: Duration,
}

impl L2Args {
    /// The L2 agent's options for `node` on manifest directory `config_dir`, or `None` when
    /// turned off; timers that break client-go's rules are an error.
    pub fn options(
        &self,
        node: &str,
        config_dir: &std::path::Path,
    ) -> anyhow::Result<Option<L2Options>> {
        if !self.l2_announcements {
            return Ok(None);
        }
        let timers = Timers::new(
            self.l2_lease_duration,
            self.l2_lease_renew_deadline,
            self.l2_lease_retry_period,
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "--l2-lease-duration/--l2-lease-renew-deadline/--l2-lease-retry-period: {e}"
            )
        })?;
        let path = self
            .l2_lease_dir
            .clone()
            .unwrap_or_else(|| default_lease_dir(config_dir));
        let mut o = L2Options::new(
            node,
            LeaseStore::Directory {
                path,
                liveness: self.l2_lease_liveness,
            },
        );
        o.timers = timers;
        o.announce = AnnounceConfig {
            count: self.l2_announce_count,
            interval: self.l2_announce_interval,
        };
        o.link_down_grace = self.l2_link_down_grace;
        Ok(Some(o))
    }
}

/// `DIR/.lbspeaker/leases`: inside the manifest directory so every process sharing it shares
/// the leases, under a hidden name so the directory source never reads it as manifests and a
/// renewal never wakes its watcher.
pub fn default_lease_dir(config_dir: &std::path::Path) -> PathBuf {
    config_dir.join(".lbspeaker").join("leases")
}

/// A duration as Go and Cilium's flags write it (`15s`, `500ms`, `1m30s`, `1.5s`), or a
/// plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (e.g. 15s, 500ms, 1m30s)"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (ns, us, ms, s, m, h)"
                ));
            }
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("{text:?}: {e}"))
}

/// `lbspeaker run`'s eBPF dataplane flags (names after Cilium's agent flags where it has one).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "eBPF dataplane")]
pub struct DataplaneArgs {
    /// The service dataplane: `off` loads nothing (lb list shows what it would program),
    /// `on` refuses to start without it, `best-effort` runs without it when it cannot load.
    #[arg(long, value_enum, default_value_t = Mode::Off)]
    pub dataplane: Mode,
    /// Uplinks to attach to, comma-separated [default: the interfaces holding the Node's
    /// InternalIP].
    #[arg(long, value_delimiter = ',', value_name = "IFACES")]
    pub dataplane_interfaces: Vec<String>,
    /// Interfaces facing local backends (hairpin, internalTrafficPolicy), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "IFACES")]
    pub dataplane_backend_interfaces: Vec<String>,
    /// The bpffs directory where maps and links are pinned (kept across restarts).
    #[arg(long, value_name = "DIR", default_value = ebpf::config::DEFAULT_BPFFS_ROOT)]
    pub bpffs_root: PathBuf,
    /// Entries of the service, backend and reverse-NAT maps (reverse NAT at most 65535).
    #[arg(long, value_name = "N", default_value_t = 65536)]
    pub bpf_lb_map_max: u32,
    /// Entries of the TCP conntrack map (two per flow).
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub bpf_ct_global_tcp_max: u32,
    /// Entries of the UDP conntrack map (two per flow).
    #[arg(long, value_name = "N", default_value_t = 131_072)]
    pub bpf_ct_global_any_max: u32,
    /// Backend selection of services without the annotation.
    #[arg(long, value_enum, default_value_t = LbAlgorithm::Random)]
    pub bpf_lb_algorithm: LbAlgorithm,
    /// Honour the service.cilium.io/lb-algorithm annotation.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub bpf_lb_algorithm_annotation: bool,
    /// Maglev table size, one of Cilium's primes (251 ... 131071).
    #[arg(long, value_name = "M", default_value_t = ebpf::maglev::DEFAULT_M)]
    pub bpf_lb_maglev_table_size: u32,
    /// How many services may use Maglev at once (one table each).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub bpf_lb_maglev_tables: u16,
    /// Source address of SNATed IPv4 flows [default: the Node's IPv4 InternalIP].
    #[arg(long, value_name = "ADDR")]
    pub snat_ipv4: Option<Ipv4Addr>,
    /// Source address of SNATed IPv6 flows [default: the Node's IPv6 InternalIP].
    #[arg(long, value_name = "ADDR")]
    pub snat_ipv6: Option<Ipv6Addr>,
    /// Conntrack garbage collection interval (`30s`, `2m`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_interval)]
    pub conntrack_gc_interval: Duration,
}

/// `--bpf-lb-algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LbAlgorithm {
    /// A random backend per new flow.
    Random,
    /// Maglev consistent hashing: every node picks the same backend for a flow.
    Maglev,
}

/// An interval for a timer: a duration (`30s`, `2m`) of at least one second.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?}: the interval must be at least 1s"));
    }
    Ok(d)
}

impl DataplaneArgs {
    /// The reconciler's options.
    pub fn options(&self) -> DataplaneOptions {
        let n = self.bpf_lb_map_max;
        let sizes = ebpf::MapSizes {
            services: n,
            backends: n,
            rev_nat: n.min(65535),
            conntrack_tcp: self.bpf_ct_global_tcp_max,
            conntrack_other: self.bpf_ct_global_any_max,
            maglev_tables: self.bpf_lb_maglev_tables,
            ..ebpf::MapSizes::default()
        };
        DataplaneOptions {
            mode: self.dataplane,
            interfaces: self.dataplane_interfaces.clone(),
            backend_interfaces: self.dataplane_backend_interfaces.clone(),
            bpffs_root: self.bpffs_root.clone(),
            sizes,
            maglev_m: self.bpf_lb_maglev_table_size,
            snat_v4: self.snat_ipv4,
            snat_v6: self.snat_ipv6,
            algorithm: match self.bpf_lb_algorithm {
                LbAlgorithm::Random => ebpf::Algorithm::Random,
                LbAlgorithm::Maglev => ebpf::Algorithm::Maglev,
            },
            algorithm_annotation: self.bpf_lb_algorithm_annotation,
            gc_interval: self.conntrack_gc_interval,
            ..DataplaneOptions::default()
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT. `api` is the local API socket.
pub fn run(args: RunArgs, api: PathBuf) -> anyhow::Result<()> {
    let l2 = args.l2.options(&args.node, &args.config_dir)?;
    logging::init(args.log_format, &args.log_level);
    let opts = RunOptions {
        config_dir: args.config_dir,
        node: args.node,
        api,
        metrics_addr: args.metrics_addr,
        secrets_namespace: args.bgp_secrets_namespace,
        bgp_status_report: args.bgp_status_report,
        leader_retry: Duration::from_secs(1),
        l2,
        dataplane: args.dataplane.options(),
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

    #[test]
    fn durations_are_read_as_go_writes_them() {
        let ok =
            |t: &str, ms: u64| assert_eq!(parse_duration(t), Ok(Duration::from_millis(ms)), "{t}");
        ok("15s", 15_000);
        ok("500ms", 500);
        ok("0.5s", 500);
        ok("1m30s", 90_000);
        ok("2", 2_000);
        ok("1.5", 1_500);
        ok("1h", 3_600_000);
        for bad in ["", "s", "5x", "-1s", "1..2s", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timers_that_break_client_gos_rules_are_refused_and_off_means_no_options() {
        let mut args = L2Args {
            l2_announcements: true,
            l2_lease_duration: Duration::from_secs(15),
            l2_lease_renew_deadline: Duration::from_secs(5),
            l2_lease_retry_period: Duration::from_secs(2),
            l2_lease_dir: None,
            l2_lease_liveness: true,
            l2_announce_count: 5,
            l2_announce_interval: Duration::from_secs(1),
            l2_link_down_grace: Duration::from_secs(1),
        };
        let dir = std::path::Path::new("/m");
        let o = args.options("node1", dir).unwrap().unwrap();
        assert_eq!(o.timers, Timers::default());
        assert_eq!(
            o.leases,
            LeaseStore::Directory {
                path: PathBuf::from("/m/.lbspeaker/leases"),
                liveness: true
            }
        );
        args.l2_lease_renew_deadline = Duration::from_secs(15);
        let e = args.options("node1", dir).unwrap_err().to_string();
        assert!(e.contains("renew deadline"), "{e}");
        args.l2_announcements = false;
        assert!(args.options("node1", dir).unwrap().is_none());
    }
}
