//! The per-node flags `lbspeaker run` and `lbspeaker agent` share: L2 announcements and the
//! eBPF dataplane.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use l2announce::{AnnounceConfig, Timers};

use crate::dataplane::{DataplaneOptions, Mode};
use crate::duration::{parse_duration, parse_interval};
use crate::l2::L2Settings;

/// The L2 announcement flags of `lbspeaker run` and `lbspeaker agent` (Cilium's
/// `l2announcements.*` Helm values; Cilium's agent flag names are accepted too).
#[derive(Debug, Clone, Args)]
pub struct L2Args {
    /// Answer ARP/NDP for the addresses CiliumL2AnnouncementPolicies select, and write the
    /// policies' conditions (Cilium's `l2announcements.enabled`). Without a policy nothing is
    /// announced.
    #[arg(long, alias = "enable-l2-announcements", default_value_t = true, action = clap::ArgAction::Set)]
    pub l2_announcements: bool,
    /// How long a lease lasts without renewal (Cilium's `l2announcements.leaseDuration`).
    #[arg(long, alias = "l2-announcements-lease-duration", value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub l2_lease_duration: Duration,
    /// How long a holder keeps answering without a successful renewal
    /// (`l2announcements.leaseRenewDeadline`); below the lease duration.
    #[arg(long, alias = "l2-announcements-renew-deadline", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub l2_lease_renew_deadline: Duration,
    /// How often candidates look at a lease and holders renew it
    /// (`l2announcements.leaseRetryPeriod`); the renew deadline must exceed 1.2 of it.
    #[arg(long, alias = "l2-announcements-retry-period", value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub l2_lease_retry_period: Duration,
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
    /// The L2 agent's settings, or `None` when turned off; timers that break client-go's
    /// rules are an error.
    pub fn settings(&self) -> anyhow::Result<Option<L2Settings>> {
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
        Ok(Some(L2Settings {
            timers,
            announce: AnnounceConfig {
                count: self.l2_announce_count,
                interval: self.l2_announce_interval,
            },
            link_down_grace: self.l2_link_down_grace,
        }))
    }
}

/// The eBPF dataplane flags of `lbspeaker run` and `lbspeaker agent` (names after Cilium's agent flags where it has one).
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

/// Binds the local API socket (mode 0600, or 0660 with `group`) on the only thread there is,
/// then, when `drop` is set, drops every capability `needs` does not call for: capabilities
/// are per thread, so the runtime's threads are all born with the small set. Shared by
/// `run`, `agent` and `operator`; on a failed drop the socket is removed again.
pub fn bind_api_then_drop(
    api: &std::path::Path,
    group: Option<nix::unistd::Gid>,
    drop: bool,
    needs: crate::daemon::privileges::Needs,
) -> anyhow::Result<crate::daemon::PreBound> {
    let listener = crate::api::server::bind_std(api, group)?;
    if drop && let Err(e) = crate::daemon::privileges::drop_for(needs) {
        let _ = std::fs::remove_file(api);
        return Err(e.into());
    }
    Ok(crate::daemon::PreBound::new(listener))
}
