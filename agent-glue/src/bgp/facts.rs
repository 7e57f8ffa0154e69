//! What the BGP reconciler needs to know about the machine it runs on, gathered apart from
//! the reconcile so that the reconcile stays a pure function: the addresses of each interface
//! (for `Interface` advertisements) and the default gateways (for
//! `autoDiscovery.mode: DefaultGateway`).
//!
//! [`LocalFacts::gather`] reads them from the kernel of the network namespace the process runs
//! in: `getifaddrs(3)` for addresses, `/proc/net/route` and `/proc/net/ipv6_route` for the
//! default routes (the same tables `ip route` shows, read without netlink).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// A default route: its gateway and the interface it leaves through.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DefaultGateway {
    /// The gateway's address.
    pub gateway: IpAddr,
    /// The outgoing interface.
    pub interface: String,
}

/// The machine's interfaces and default routes at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalFacts {
    /// Addresses (with prefix length) per interface name.
    pub interfaces: BTreeMap<String, Vec<IpNet>>,
    /// IPv4 default routes, lowest metric first.
    pub default_v4: Vec<DefaultGateway>,
    /// IPv6 default routes, lowest metric first.
    pub default_v6: Vec<DefaultGateway>,
}

impl LocalFacts {
    /// Reads the facts of this network namespace. What cannot be read is left empty (and the
    /// reconcile then reports what it misses, e.g. "no IPv4 default route").
    pub fn gather() -> LocalFacts {
        let mut facts = LocalFacts::default();
        if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
            for ifa in addrs {
                let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
                    continue;
                };
                let net = if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in())
                {
                    let len = u32::from(m.ip()).count_ones() as u8;
                    IpNet::new(IpAddr::V4(a.ip()), len).ok()
                } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6())
                {
                    let len = u128::from(m.ip()).count_ones() as u8;
                    IpNet::new(IpAddr::V6(a.ip()), len).ok()
                } else {
                    None
                };
                if let Some(net) = net {
                    facts
                        .interfaces
                        .entry(ifa.interface_name.clone())
                        .or_default()
                        .push(net);
                }
            }
        }
        for v in facts.interfaces.values_mut() {
            v.sort();
            v.dedup();
        }
        if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
            facts.default_v4 = parse_ipv4_defaults(&t);
        }
        if let Ok(t) = std::fs::read_to_string("/proc/net/ipv6_route") {
            facts.default_v6 = parse_ipv6_defaults(&t);
        }
        facts
    }

    /// The default gateway of one family (the lowest metric), if any.
    pub fn default_gateway(&self, ipv6: bool) -> Option<&DefaultGateway> {
        if ipv6 {
            self.default_v6.first()
        } else {
            self.default_v4.first()
        }
    }
}

/// `/proc/net/route`: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, addresses
/// in hexadecimal, in the kernel's (little-endian) byte order.
pub(crate) fn parse_ipv4_defaults(text: &str) -> Vec<DefaultGateway> {
    let mut out: Vec<(u32, DefaultGateway)> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [iface, dest, gw, flags, _refcnt, _use, metric, mask, ..] = f.as_slice() else {
            continue;
        };
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(gw), Some(flags), Some(mask)) =
            (hex(dest), hex(gw), hex(flags), hex(mask))
        else {
            continue;
        };
        // RTF_UP (1) and RTF_GATEWAY (2).
        if dest != 0 || mask != 0 || flags & 3 != 3 {
            continue;
        }
        // The kernel prints the address's in-memory (network-order) bytes as a native u32.
        let gateway = Ipv4Addr::from(gw.to_ne_bytes());
        out.push((
            metric.parse().unwrap_or(u32::MAX),
            DefaultGateway {
                gateway: IpAddr::V4(gateway),
                interface: (*iface).to_owned(),
            },
        ));
    }
    out.sort();
    out.into_iter().map(|(_, g)| g).collect()
}

/// `/proc/net/ipv6_route`: `dest dest_len src src_len next_hop metric refcnt use flags iface`,
/// addresses as 32 hexadecimal digits in network order.
pub(crate) fn parse_ipv6_defaults(text: &str) -> Vec<DefaultGateway> {
    let mut out: Vec<(u32, DefaultGateway)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [
            dest,
            dest_len,
            _src,
            _src_len,
            nh,
            metric,
            _refcnt,
            _use,
            _flags,
            iface,
        ] = f.as_slice()
        else {
            continue;
        };
        let (Ok(dest), Ok(dest_len), Ok(nh), Ok(metric)) = (
            u128::from_str_radix(dest, 16),
            u8::from_str_radix(dest_len, 16),
            u128::from_str_radix(nh, 16),
            u32::from_str_radix(metric, 16),
        ) else {
            continue;
        };
        if dest != 0 || dest_len != 0 || nh == 0 || *iface == "lo" {
            continue;
        }
        out.push((
            metric,
            DefaultGateway {
                gateway: IpAddr::V6(Ipv6Addr::from(nh)),
                interface: (*iface).to_owned(),
            },
        ));
    }
    out.sort();
    out.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_default_route_is_read_from_proc_net_route() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t000AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth1\t00000000\tC80AA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth2\t00000000\t0114A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n";
        let d = parse_ipv4_defaults(text);
        assert_eq!(
            d,
            vec![
                DefaultGateway {
                    gateway: "192.168.20.1".parse().unwrap(),
                    interface: "eth2".into()
                },
                DefaultGateway {
                    gateway: "192.168.10.200".parse().unwrap(),
                    interface: "eth1".into()
                },
            ],
            "lowest metric first"
        );
    }

    #[test]
    fn the_ipv6_default_route_is_read_from_proc_net_ipv6_route() {
        let text = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd0000000000000000000000000000c8 00000400 00000001 00000000 00000003     eth1\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        let d = parse_ipv6_defaults(text);
        assert_eq!(
            d,
            vec![DefaultGateway {
                gateway: "fd00::c8".parse().unwrap(),
                interface: "eth1".into()
            }]
        );
    }

    #[test]
    fn gathering_sees_the_loopback_address() {
        let f = LocalFacts::gather();
        let lo = f.interfaces.get("lo").expect("lo is listed");
        assert!(lo.contains(&"127.0.0.1/8".parse().unwrap()), "{lo:?}");
    }
}
