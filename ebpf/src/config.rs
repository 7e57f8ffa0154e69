//! The dataplane's configuration, validated before anything is loaded.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::gc::CtTimeouts;
use crate::maglev;
use crate::maps::{ConfigVal, LAYOUT_VERSION, LbAddr};
use crate::plan::Limits;

/// Where the maps and links are pinned unless told otherwise.
pub const DEFAULT_BPFFS_ROOT: &str = "/sys/fs/bpf/lbspeaker";

/// The SNAT source ports. Kubernetes' NodePorts are 30000-32767 and Linux's own ephemeral
/// ports 32768-60999 (`net.ipv4.ip_local_port_range`): 61000-65535 collides with neither, so
/// a SNATed flow never takes a port the node's own connections or a NodePort use.
pub const DEFAULT_SNAT_PORTS: (u16, u16) = (61000, 65535);

/// Kubernetes' default `--service-node-port-range`.
pub const DEFAULT_NODEPORT_RANGE: (u16, u16) = (30000, 32767);

/// Map sizes (entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSizes {
    /// `lb_services`: one per frontend and scope plus one per backend slot.
    pub services: u32,
    /// `lb_backends`.
    pub backends: u32,
    /// `lb_rev_nat`: one per frontend.
    pub rev_nat: u32,
    /// `lb_ct`: two per TCP flow.
    pub conntrack_tcp: u32,
    /// `lb_ct_any`: two per UDP flow.
    pub conntrack_other: u32,
    /// How many frontends may use Maglev (each table is `maglev_m` entries of 4 bytes).
    pub maglev_tables: u16,
    /// `lb_ifaces`: attached interfaces.
    pub interfaces: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            services: 65536,
            backends: 65536,
            rev_nat: 65535,
            conntrack_tcp: 262_144,
            conntrack_other: 131_072,
            maglev_tables: 16,
            interfaces: 256,
        }
    }
}

/// How the dataplane is set up on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneConfig {
    /// The bpffs directory for the pinned maps and links (`/sys/fs/bpf/lbspeaker`).
    pub bpffs_root: PathBuf,
    /// Map sizes.
    pub sizes: MapSizes,
    /// Maglev table size: a prime of [`maglev::SUPPORTED_M`], 16381 by default.
    pub maglev_m: u32,
    /// The node's IPv4 address, the source of SNATed IPv4 flows (Cluster policy, remote
    /// backends, hairpin). Without it such flows are dropped.
    pub snat_v4: Option<Ipv4Addr>,
    /// The node's IPv6 address for SNAT.
    pub snat_v6: Option<Ipv6Addr>,
    /// SNAT source ports, inclusive.
    pub snat_ports: (u16, u16),
    /// The cluster's NodePort range, which the SNAT ports must not overlap.
    pub nodeport_range: (u16, u16),
    /// Conntrack timeouts for GC.
    pub ct_timeouts: CtTimeouts,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            bpffs_root: PathBuf::from(DEFAULT_BPFFS_ROOT),
            sizes: MapSizes::default(),
            maglev_m: maglev::DEFAULT_M,
            snat_v4: None,
            snat_v6: None,
            snat_ports: DEFAULT_SNAT_PORTS,
            nodeport_range: DEFAULT_NODEPORT_RANGE,
            ct_timeouts: CtTimeouts::default(),
        }
    }
}

fn overlap(a: (u16, u16), b: (u16, u16)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

impl DataplaneConfig {
    /// Checks what would make the programs misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !maglev::SUPPORTED_M.contains(&self.maglev_m) {
            return Err(ConfigError::MaglevSize(self.maglev_m));
        }
        let (lo, hi) = self.snat_ports;
        if lo == 0 || hi < lo {
            return Err(ConfigError::SnatPorts { lo, hi });
        }
        if overlap(self.snat_ports, self.nodeport_range) {
            return Err(ConfigError::SnatOverlapsNodePorts {
                snat: self.snat_ports,
                nodeports: self.nodeport_range,
            });
        }
        let s = &self.sizes;
        for (name, v) in [
            ("services", s.services),
            ("backends", s.backends),
            ("rev_nat", s.rev_nat),
            ("conntrack_tcp", s.conntrack_tcp),
            ("conntrack_other", s.conntrack_other),
            ("interfaces", s.interfaces),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroSize(name));
            }
        }
        if s.rev_nat > 65535 {
            return Err(ConfigError::RevNatSize(s.rev_nat));
        }
        if u64::from(self.maglev_m) * u64::from(s.maglev_tables.max(1)) > u64::from(u32::MAX) {
            return Err(ConfigError::MaglevTooBig);
        }
        Ok(())
    }

    /// Checks the SNAT ports against the node's ephemeral port range (`ip_local_port_range`
    /// of the namespace the caller runs in).
    pub fn check_ephemeral_ports(&self) -> Result<(), ConfigError> {
        let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
            return Ok(());
        };
        let mut it = text
            .split_whitespace()
            .filter_map(|w| w.parse::<u16>().ok());
        if let (Some(lo), Some(hi)) = (it.next(), it.next())
            && overlap(self.snat_ports, (lo, hi))
        {
            return Err(ConfigError::SnatOverlapsEphemeral {
                snat: self.snat_ports,
                ephemeral: (lo, hi),
            });
        }
        Ok(())
    }

    /// Entries of `lb_maglev`.
    pub fn maglev_entries(&self) -> u32 {
        self.maglev_m * u32::from(self.sizes.maglev_tables.max(1))
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            maglev_m: self.maglev_m,
            maglev_tables: self.sizes.maglev_tables,
        }
    }

    pub(crate) fn config_val(&self) -> ConfigVal {
        ConfigVal {
            layout_version: LAYOUT_VERSION,
            maglev_m: self.maglev_m,
            snat_v4: self.snat_v4.map(LbAddr::from).unwrap_or(LbAddr::ZERO),
            snat_v6: self.snat_v6.map(LbAddr::from).unwrap_or(LbAddr::ZERO),
            snat_port_min: self.snat_ports.0,
            snat_port_max: self.snat_ports.1,
            flags: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_is_valid() {
        assert_eq!(DataplaneConfig::default().validate(), Ok(()));
    }

    #[test]
    fn snat_ports_inside_the_nodeport_range_are_refused() {
        let c = DataplaneConfig {
            snat_ports: (32000, 40000),
            ..Default::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::SnatOverlapsNodePorts { .. })
        ));
    }

    #[test]
    fn a_maglev_size_that_is_not_a_supported_prime_is_refused() {
        let c = DataplaneConfig {
            maglev_m: 16384,
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::MaglevSize(16384)));
    }
}
