//! The dataplane reconciler of `lbspeaker run`: Services and EndpointSlices to this node's
//! eBPF maps (crate `ebpf`), with conntrack GC on a timer.
//!
//! ```text
//!  Snapshot ─► Translator (per service, only what changed) ─► Delta ─► Dataplane::upsert/remove
//!                                                    first time, after an error: Dataplane::sync
//!  every 30 s: Dataplane::gc            every 5 s: interfaces attached? SNAT address = InternalIP?
//! ```
//!
//! - [`translate`]: the pure translation (what a frontend and its backends are).
//! - [`incremental`]: the same, kept up to date service by service.
//! - [`agent`]: loading (or the mode without a dataplane), attaching, the loop, the handle the
//!   API and `/metrics` read.
//!
//! Modes (`--dataplane`): `off` (the default) loads nothing and touches no kernel state; the
//! reconciler still runs on maps in memory, so `lbspeaker lb list` shows what would be
//! programmed. `on` loads the programs and attaches them to the uplinks, and refuses to start
//! when the kernel or the privileges do not allow it (the error says what is missing and what
//! to do). `best-effort` tries, and when loading fails runs BGP and the rest without it (the
//! reason is in `lbspeaker status` and the log).

pub mod agent;
pub mod incremental;
pub mod translate;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use ebpf::MapSizes;
use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};

pub use agent::{DataplaneHandle, DataplaneView, LbListView, StartError, start};
pub use translate::{TranslateOptions, translate};

/// `--dataplane`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// No eBPF: nothing is loaded or attached; `lb list` shows what would be programmed.
    #[default]
    Off,
    /// Load and attach; refuse to start when that is not possible.
    On,
    /// Load and attach when possible; otherwise run without (and say why).
    BestEffort,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Off => "off",
            Mode::On => "on",
            Mode::BestEffort => "best-effort",
        })
    }
}

/// How the dataplane reconciler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneOptions {
    /// Off, on or best-effort.
    pub mode: Mode,
    /// Uplinks to attach to (ingress and egress); empty: the interfaces holding the Node's
    /// InternalIP addresses.
    pub interfaces: Vec<String>,
    /// Interfaces facing local backends (ingress, internal scope: hairpin and two-scope
    /// services).
    pub backend_interfaces: Vec<String>,
    /// Where maps and links are pinned.
    pub bpffs_root: PathBuf,
    /// Map sizes.
    pub sizes: MapSizes,
    /// Maglev table size (a supported prime).
    pub maglev_m: u32,
    /// SNAT source for IPv4; `None`: the Node's IPv4 InternalIP.
    pub snat_v4: Option<Ipv4Addr>,
    /// SNAT source for IPv6; `None`: the Node's IPv6 InternalIP.
    pub snat_v6: Option<Ipv6Addr>,
    /// Algorithm and annotation handling.
    pub algorithm: ebpf::Algorithm,
    /// Honour `service.cilium.io/lb-algorithm`.
    pub algorithm_annotation: bool,
    /// Conntrack GC interval.
    pub gc_interval: Duration,
    /// How often interfaces and the Node's addresses are checked again (and failed
    /// attachments retried).
    pub facts_interval: Duration,
    /// Retry interval after a failed map update.
    pub retry: Duration,
}

impl Default for DataplaneOptions {
    fn default() -> Self {
        DataplaneOptions {
            mode: Mode::Off,
            interfaces: Vec::new(),
            backend_interfaces: Vec::new(),
            bpffs_root: PathBuf::from(ebpf::config::DEFAULT_BPFFS_ROOT),
            sizes: MapSizes::default(),
            maglev_m: ebpf::maglev::DEFAULT_M,
            snat_v4: None,
            snat_v6: None,
            algorithm: ebpf::Algorithm::Random,
            algorithm_annotation: true,
            gc_interval: Duration::from_secs(30),
            facts_interval: Duration::from_secs(5),
            retry: Duration::from_secs(2),
        }
    }
}

/// The Node's InternalIP addresses, in the order the Node lists them.
pub fn internal_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// The SNAT addresses: the flags, else the Node's first InternalIP of each family.
pub fn snat_addresses(
    opts: &DataplaneOptions,
    node: Option<&Node>,
) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let ips = node.map(internal_ips).unwrap_or_default();
    let v4 = opts.snat_v4.or_else(|| {
        ips.iter().find_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
    });
    let v6 = opts.snat_v6.or_else(|| {
        ips.iter().find_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
    });
    (v4, v6)
}

/// The uplinks: the flag, else the interfaces (of `facts`) holding one of the Node's
/// InternalIP addresses.
pub fn uplinks(
    opts: &DataplaneOptions,
    node: Option<&Node>,
    facts: &crate::bgp::facts::LocalFacts,
) -> Vec<String> {
    if !opts.interfaces.is_empty() {
        return opts.interfaces.clone();
    }
    let ips = node.map(internal_ips).unwrap_or_default();
    facts
        .interfaces
        .iter()
        .filter(|(_, nets)| nets.iter().any(|n| ips.contains(&n.addr())))
        .map(|(name, _)| name.clone())
        .collect()
}

/// What `/metrics` shows of the dataplane: the reconciler's view and the programs' counters.
#[derive(Debug, Clone, Default)]
pub struct DataplaneMetrics {
    /// The reconciler's state.
    pub view: DataplaneView,
    /// `lb_stats` by name (empty without a kernel dataplane).
    pub counters: Vec<(&'static str, u64)>,
}

impl DataplaneView {
    /// The line `lbspeaker status` shows among the roles.
    pub fn role(&self) -> String {
        let attached: Vec<&str> = self
            .interfaces
            .iter()
            .filter(|i| i.attached)
            .map(|i| i.name.as_str())
            .collect();
        match (self.mode, self.kernel) {
            (Mode::Off, _) => "dataplane off (maps in memory, nothing forwards)".into(),
            (_, false) => format!("dataplane {} but not loaded (nothing forwards)", self.mode),
            (_, true) if attached.is_empty() => {
                format!("dataplane {} (loaded, attached nowhere yet)", self.mode)
            }
            (_, true) => format!(
                "dataplane {} (attached: {})",
                self.mode,
                attached.join(", ")
            ),
        }
    }
}
