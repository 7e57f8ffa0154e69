//! The map types of the dataplane, mirrored field for field from `bpf/lb.h` (the one
//! definition; a test checks these against the BTF of the compiled object).
//!
//! Addresses are 16 bytes in network order, IPv4 as the IPv4-mapped IPv6 address, so one set
//! of maps serves both families. Ports are kept in network order, as the programs read them
//! from packets; the accessors convert.
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// `LB_LAYOUT_VERSION`: kept in the config map so that pinned maps of another layout are
/// never adopted.
pub const LAYOUT_VERSION: u32 = 1;

/// `LB_SCOPE_EXT`: the lookup scope of traffic from outside (and of services with one scope).
pub const SCOPE_EXT: u8 = 0;
/// `LB_SCOPE_INT`: the lookup scope of traffic from backend-facing interfaces.
pub const SCOPE_INT: u8 = 1;

/// Frontend flags (`LB_SVC_*`).
pub mod svc_flags {
    /// A LoadBalancer address.
    pub const LOADBALANCER: u16 = 1 << 0;
    /// An external IP.
    pub const EXTERNAL_IP: u16 = 1 << 1;
    /// A ClusterIP.
    pub const CLUSTER_IP: u16 = 1 << 2;
    /// externalTrafficPolicy: Local.
    pub const LOCAL: u16 = 1 << 3;
    /// internalTrafficPolicy: Local.
    pub const INT_LOCAL: u16 = 1 << 4;
    /// The internal scope has its own entry.
    pub const TWO_SCOPES: u16 = 1 << 5;
    /// Backends by Maglev table rather than at random.
    pub const MAGLEV: u16 = 1 << 6;
}

/// Backend flags (`LB_BE_*`).
pub mod backend_flags {
    /// Runs on this node: reached without SNAT.
    pub const LOCAL: u8 = 1 << 0;
    /// Terminating: keeps its flows, gets no new ones.
    pub const TERMINATING: u8 = 1 << 1;
}

/// Conntrack entry flags (`LB_CT_*`).
pub mod ct_flags {
    /// The flow's source is rewritten to the node.
    pub const SNAT: u16 = 1 << 0;
    /// REV: a reply was seen.
    pub const SEEN: u16 = 1 << 1;
    /// TCP FIN or RST seen in this direction.
    pub const CLOSING: u16 = 1 << 2;
    /// A backend reaching its own service.
    pub const HAIRPIN: u16 = 1 << 3;
}

/// Interface flags (`LB_IF_*`).
pub mod iface_flags {
    /// Faces backends: frontends with two scopes are looked up in the internal one.
    pub const INTERNAL: u32 = 1 << 0;
}

/// Conntrack directions (`LB_CT_FWD`, `LB_CT_REV`).
pub const CT_FWD: u8 = 0;
/// See [`CT_FWD`].
pub const CT_REV: u8 = 1;

/// The counters of `lb_stats`, by index.
pub const STAT_NAMES: [&str; 8] = [
    "translated",
    "established",
    "reversed",
    "icmp",
    "no_backend",
    "snat_fail",
    "redirect",
    "fragment",
];

/// `struct lb_addr`: an IPv6 address, or an IPv4-mapped one, in network order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LbAddr {
    /// The 16 bytes as four words in memory order.
    pub w: [u32; 4],
}

impl LbAddr {
    /// The all-zero address (no address).
    pub const ZERO: LbAddr = LbAddr { w: [0; 4] };

    /// The 16 bytes in network order.
    pub fn octets(&self) -> [u8; 16] {
        let mut o = [0u8; 16];
        for (chunk, w) in o.chunks_exact_mut(4).zip(self.w) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        o
    }

    /// From 16 bytes in network order.
    pub fn from_octets(o: [u8; 16]) -> LbAddr {
        let mut w = [0u32; 4];
        for (w, chunk) in w.iter_mut().zip(o.chunks_exact(4)) {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            *w = u32::from_ne_bytes(b);
        }
        LbAddr { w }
    }

    /// The address, IPv4 when IPv4-mapped.
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.octets());
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    /// Whether this is the zero address.
    pub fn is_zero(&self) -> bool {
        self.w == [0; 4]
    }
}

impl From<IpAddr> for LbAddr {
    fn from(ip: IpAddr) -> LbAddr {
        match ip {
            IpAddr::V4(v4) => LbAddr::from(v4),
            IpAddr::V6(v6) => LbAddr::from_octets(v6.octets()),
        }
    }
}

impl From<Ipv4Addr> for LbAddr {
    fn from(v4: Ipv4Addr) -> LbAddr {
        LbAddr::from_octets(v4.to_ipv6_mapped().octets())
    }
}

impl From<Ipv6Addr> for LbAddr {
    fn from(v6: Ipv6Addr) -> LbAddr {
        LbAddr::from_octets(v6.octets())
    }
}

/// `struct lb_svc_key`: a frontend (slot 0) or one of its backend slots.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SvcKey {
    /// The frontend address.
    pub addr: LbAddr,
    /// The frontend port, network order.
    pub port_be: u16,
    /// 0 for the frontend, 1.. for backend slots.
    pub slot: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`SCOPE_EXT`] or [`SCOPE_INT`].
    pub scope: u8,
    /// Zero.
    pub pad: [u8; 2],
}

impl SvcKey {
    /// A key from host-order values.
    pub fn new(addr: LbAddr, port: u16, proto: u8, scope: u8, slot: u16) -> SvcKey {
        SvcKey {
            addr,
            port_be: port.to_be(),
            slot,
            proto,
            scope,
            pad: [0; 2],
        }
    }

    /// The port in host order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.port_be)
    }

    /// The same frontend and scope at another slot.
    pub fn with_slot(&self, slot: u16) -> SvcKey {
        SvcKey { slot, ..*self }
    }
}

/// `struct lb_svc_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SvcVal {
    /// Slot > 0: the backend in this slot.
    pub backend_id: u32,
    /// Slot 0: active backends.
    pub count: u16,
    /// The frontend's reverse-NAT entry.
    pub rev_nat_id: u16,
    /// Slot 0: [`svc_flags`].
    pub flags: u16,
    /// Slot 0: terminating backends after the active ones.
    pub qcount: u16,
    /// Slot 0 with [`svc_flags::MAGLEV`]: the table region.
    pub maglev_slot: u16,
    /// Zero.
    pub pad: u16,
}

/// `struct lb_backend`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendVal {
    /// The backend address.
    pub addr: LbAddr,
    /// The backend port, network order.
    pub port_be: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`backend_flags`].
    pub flags: u8,
}

impl BackendVal {
    /// A backend from host-order values.
    pub fn new(addr: LbAddr, port: u16, proto: u8, flags: u8) -> BackendVal {
        BackendVal {
            addr,
            port_be: port.to_be(),
            proto,
            flags,
        }
    }

    /// The port in host order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.port_be)
    }
}

/// `struct lb_rev_nat`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RevNatVal {
    /// What a reply's source address becomes.
    pub addr: LbAddr,
    /// What a reply's source port becomes, network order.
    pub port_be: u16,
    /// Zero.
    pub pad: u16,
}

impl RevNatVal {
    /// From host-order values.
    pub fn new(addr: LbAddr, port: u16) -> RevNatVal {
        RevNatVal {
            addr,
            port_be: port.to_be(),
            pad: 0,
        }
    }

    /// The port in host order.
    pub fn port(&self) -> u16 {
        u16::from_be(self.port_be)
    }
}

/// `struct lb_ct_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtKey {
    /// Source address as the packet arrives.
    pub saddr: LbAddr,
    /// Destination address as the packet arrives.
    pub daddr: LbAddr,
    /// Source port, network order.
    pub sport_be: u16,
    /// Destination port, network order.
    pub dport_be: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`CT_FWD`] or [`CT_REV`].
    pub dir: u8,
    /// Zero.
    pub pad: [u8; 2],
}

impl CtKey {
    /// From host-order values.
    pub fn new(saddr: LbAddr, sport: u16, daddr: LbAddr, dport: u16, proto: u8, dir: u8) -> Self {
        CtKey {
            saddr,
            daddr,
            sport_be: sport.to_be(),
            dport_be: dport.to_be(),
            proto,
            dir,
            pad: [0; 2],
        }
    }

    /// Source port in host order.
    pub fn sport(&self) -> u16 {
        u16::from_be(self.sport_be)
    }

    /// Destination port in host order.
    pub fn dport(&self) -> u16 {
        u16::from_be(self.dport_be)
    }
}

/// `struct lb_ct_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtVal {
    /// FWD: the SNAT source; REV: the client.
    pub nat_addr: LbAddr,
    /// Port of `nat_addr`, network order.
    pub nat_port_be: u16,
    /// The frontend's reverse-NAT entry.
    pub rev_nat_id: u16,
    /// The flow's backend.
    pub backend_id: u32,
    /// Seconds of CLOCK_MONOTONIC.
    pub last_seen: u32,
    /// Seconds of CLOCK_MONOTONIC.
    pub created: u32,
    /// [`ct_flags`].
    pub flags: u16,
    /// Zero.
    pub pad: u16,
}

impl CtVal {
    /// `nat_port` in host order.
    pub fn nat_port(&self) -> u16 {
        u16::from_be(self.nat_port_be)
    }
}

/// `struct lb_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigVal {
    /// [`LAYOUT_VERSION`] of whoever wrote the maps.
    pub layout_version: u32,
    /// Maglev table size.
    pub maglev_m: u32,
    /// IPv4 SNAT address (IPv4-mapped) or zero.
    pub snat_v4: LbAddr,
    /// IPv6 SNAT address or zero.
    pub snat_v6: LbAddr,
    /// SNAT ports, host order, inclusive.
    pub snat_port_min: u16,
    /// SNAT ports, host order, inclusive.
    pub snat_port_max: u16,
    /// Reserved.
    pub flags: u32,
}

/// `struct lb_iface`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfaceVal {
    /// [`iface_flags`].
    pub flags: u32,
}

// SAFETY (all impls below): each type is `#[repr(C)]`, made only of integers and arrays of
// integers with explicit padding fields, so it has no padding bytes, every bit pattern is a
// valid value, and its layout is that of the C struct the kernel stores (checked against the
// object's BTF by `layout_matches_the_c_header`).
unsafe impl aya::Pod for LbAddr {}
// SAFETY: see above.
unsafe impl aya::Pod for SvcKey {}
// SAFETY: see above.
unsafe impl aya::Pod for SvcVal {}
// SAFETY: see above.
unsafe impl aya::Pod for BackendVal {}
// SAFETY: see above.
unsafe impl aya::Pod for RevNatVal {}
// SAFETY: see above.
unsafe impl aya::Pod for CtKey {}
// SAFETY: see above.
unsafe impl aya::Pod for CtVal {}
// SAFETY: see above.
unsafe impl aya::Pod for ConfigVal {}
// SAFETY: see above.
unsafe impl aya::Pod for IfaceVal {}

/// IP protocol numbers the dataplane translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// From an IP protocol number.
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// The object file built from `bpf/lb.bpf.c`, aligned as aya needs it.
pub(crate) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb.bpf.o"));

/// Where the build put the object, for tools that inspect it.
pub const OBJECT_PATH: &str = concat!(env!("OUT_DIR"), "/lb.bpf.o");

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn ipv4_addresses_are_stored_ipv4_mapped_in_network_order() {
        let a = LbAddr::from("10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(
            a.octets(),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]
        );
        assert_eq!(a.ip(), "10.1.2.3".parse::<IpAddr>().unwrap());
        let b = LbAddr::from("2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(b.ip(), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ports_are_kept_in_network_order() {
        let k = SvcKey::new(LbAddr::ZERO, 80, 6, SCOPE_EXT, 0);
        assert_eq!(k.port_be.to_ne_bytes(), [0, 80]);
        assert_eq!(k.port(), 80);
    }

    /// Every struct of `bpf/lb.h`, as (C name, Rust size, [(field, Rust offset)]).
    /// (C name, Rust size, [(field, Rust offset)]).
    type Layout = (&'static str, usize, Vec<(&'static str, usize)>);

    fn rust_layouts() -> Vec<Layout> {
        vec![
            (
                "lb_addr",
                size_of::<LbAddr>(),
                vec![("w", offset_of!(LbAddr, w))],
            ),
            (
                "lb_svc_key",
                size_of::<SvcKey>(),
                vec![
                    ("addr", offset_of!(SvcKey, addr)),
                    ("port", offset_of!(SvcKey, port_be)),
                    ("slot", offset_of!(SvcKey, slot)),
                    ("proto", offset_of!(SvcKey, proto)),
                    ("scope", offset_of!(SvcKey, scope)),
                    ("pad", offset_of!(SvcKey, pad)),
                ],
            ),
            (
                "lb_svc_val",
                size_of::<SvcVal>(),
                vec![
                    ("backend_id", offset_of!(SvcVal, backend_id)),
                    ("count", offset_of!(SvcVal, count)),
                    ("rev_nat_id", offset_of!(SvcVal, rev_nat_id)),
                    ("flags", offset_of!(SvcVal, flags)),
                    ("qcount", offset_of!(SvcVal, qcount)),
                    ("maglev_slot", offset_of!(SvcVal, maglev_slot)),
                    ("pad", offset_of!(SvcVal, pad)),
                ],
            ),
            (
                "lb_backend",
                size_of::<BackendVal>(),
                vec![
                    ("addr", offset_of!(BackendVal, addr)),
                    ("port", offset_of!(BackendVal, port_be)),
                    ("proto", offset_of!(BackendVal, proto)),
                    ("flags", offset_of!(BackendVal, flags)),
                ],
            ),
            (
                "lb_rev_nat",
                size_of::<RevNatVal>(),
                vec![
                    ("addr", offset_of!(RevNatVal, addr)),
                    ("port", offset_of!(RevNatVal, port_be)),
                    ("pad", offset_of!(RevNatVal, pad)),
                ],
            ),
            (
                "lb_ct_key",
                size_of::<CtKey>(),
                vec![
                    ("saddr", offset_of!(CtKey, saddr)),
                    ("daddr", offset_of!(CtKey, daddr)),
                    ("sport", offset_of!(CtKey, sport_be)),
                    ("dport", offset_of!(CtKey, dport_be)),
                    ("proto", offset_of!(CtKey, proto)),
                    ("dir", offset_of!(CtKey, dir)),
                    ("pad", offset_of!(CtKey, pad)),
                ],
            ),
            (
                "lb_ct_val",
                size_of::<CtVal>(),
                vec![
                    ("nat_addr", offset_of!(CtVal, nat_addr)),
                    ("nat_port", offset_of!(CtVal, nat_port_be)),
                    ("rev_nat_id", offset_of!(CtVal, rev_nat_id)),
                    ("backend_id", offset_of!(CtVal, backend_id)),
                    ("last_seen", offset_of!(CtVal, last_seen)),
                    ("created", offset_of!(CtVal, created)),
                    ("flags", offset_of!(CtVal, flags)),
                    ("pad", offset_of!(CtVal, pad)),
                ],
            ),
            (
                "lb_config",
                size_of::<ConfigVal>(),
                vec![
                    ("layout_version", offset_of!(ConfigVal, layout_version)),
                    ("maglev_m", offset_of!(ConfigVal, maglev_m)),
                    ("snat_v4", offset_of!(ConfigVal, snat_v4)),
                    ("snat_v6", offset_of!(ConfigVal, snat_v6)),
                    ("snat_port_min", offset_of!(ConfigVal, snat_port_min)),
                    ("snat_port_max", offset_of!(ConfigVal, snat_port_max)),
                    ("flags", offset_of!(ConfigVal, flags)),
                ],
            ),
            (
                "lb_iface",
                size_of::<IfaceVal>(),
                vec![("flags", offset_of!(IfaceVal, flags))],
            ),
        ]
    }

    #[test]
    fn constants_match_the_c_header() {
        let header = include_str!("../bpf/lb.h");
        let define = |name: &str| -> u32 {
            let line = header
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("{name} is not defined in lb.h"));
            let value = line
                .split_whitespace()
                .skip(2)
                .collect::<Vec<_>>()
                .join(" ");
            let value = value.split("/*").next().unwrap().trim();
            let value = value.trim_start_matches('(').trim_end_matches(')');
            match value.split_once("<<") {
                Some((a, b)) => {
                    a.trim().parse::<u32>().unwrap() << b.trim().parse::<u32>().unwrap()
                }
                None => value.parse().unwrap(),
            }
        };
        let pairs: &[(&str, u32)] = &[
            ("LB_LAYOUT_VERSION", LAYOUT_VERSION),
            ("LB_SCOPE_EXT", SCOPE_EXT.into()),
            ("LB_SCOPE_INT", SCOPE_INT.into()),
            ("LB_SVC_LOADBALANCER", svc_flags::LOADBALANCER.into()),
            ("LB_SVC_EXTERNAL_IP", svc_flags::EXTERNAL_IP.into()),
            ("LB_SVC_CLUSTER_IP", svc_flags::CLUSTER_IP.into()),
            ("LB_SVC_LOCAL", svc_flags::LOCAL.into()),
            ("LB_SVC_INT_LOCAL", svc_flags::INT_LOCAL.into()),
            ("LB_SVC_TWO_SCOPES", svc_flags::TWO_SCOPES.into()),
            ("LB_SVC_MAGLEV", svc_flags::MAGLEV.into()),
            ("LB_BE_LOCAL", backend_flags::LOCAL.into()),
            ("LB_BE_TERMINATING", backend_flags::TERMINATING.into()),
            ("LB_CT_FWD", CT_FWD.into()),
            ("LB_CT_REV", CT_REV.into()),
            ("LB_CT_SNAT", ct_flags::SNAT.into()),
            ("LB_CT_SEEN", ct_flags::SEEN.into()),
            ("LB_CT_CLOSING", ct_flags::CLOSING.into()),
            ("LB_CT_HAIRPIN", ct_flags::HAIRPIN.into()),
            ("LB_IF_INTERNAL", iface_flags::INTERNAL),
            ("LB_STAT_MAX", STAT_NAMES.len() as u32),
        ];
        for (name, rust) in pairs {
            assert_eq!(define(name), *rust, "{name}");
        }
        for (i, stat) in STAT_NAMES.iter().enumerate() {
            let name = format!("LB_STAT_{}", stat.to_uppercase());
            assert_eq!(define(&name), i as u32, "{name}");
        }
    }

    #[test]
    fn the_dataplane_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<crate::Dataplane>();
    }

    #[test]
    fn layout_matches_the_c_header() {
        // The BTF of the compiled object is the C compiler's view of bpf/lb.h.
        let out = std::process::Command::new("bpftool")
            .args(["-j", "btf", "dump", "file", OBJECT_PATH])
            .output()
            .expect("bpftool (apt-get install bpftool) dumps the object's BTF");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let btf: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let types = btf["types"].as_array().unwrap();
        for (name, size, fields) in rust_layouts() {
            let t = types
                .iter()
                .find(|t| t["kind"] == "STRUCT" && t["name"] == name)
                .unwrap_or_else(|| panic!("struct {name} is not in the object's BTF"));
            assert_eq!(
                t["size"].as_u64(),
                Some(size as u64),
                "size of struct {name}"
            );
            let members = t["members"].as_array().unwrap();
            assert_eq!(members.len(), fields.len(), "field count of struct {name}");
            for (m, (field, offset)) in members.iter().zip(fields) {
                assert_eq!(m["name"], field, "field order of struct {name}");
                assert_eq!(
                    m["bits_offset"].as_u64(),
                    Some(offset as u64 * 8),
                    "offset of {name}.{field}"
                );
            }
        }
    }
}
