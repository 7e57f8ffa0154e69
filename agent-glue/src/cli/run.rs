//! `lbspeaker run`: the daemon on a directory of manifests.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::daemon::{RunOptions, run_directory};
use crate::dataplane::{DataplaneOptions, Mode};
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
    #[command(flatten)]
    pub dataplane: DataplaneArgs,
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
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
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

/// `30s`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 30s, 2m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    if secs == 0 {
        return Err("the interval must be at least 1s".into());
    }
    Ok(Duration::from_secs(secs))
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
    logging::init(args.log_format, &args.log_level);
    let opts = RunOptions {
        config_dir: args.config_dir,
        node: args.node,
        api,
        metrics_addr: args.metrics_addr,
        secrets_namespace: args.bgp_secrets_namespace,
        bgp_status_report: args.bgp_status_report,
        leader_retry: Duration::from_secs(1),
        dataplane: args.dataplane.options(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // An error is printed once, by main.
    rt.block_on(run_directory(opts))
}
