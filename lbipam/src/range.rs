//! Address ranges: families, conversions between addresses and integers, and how ranges print.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::count::Count;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(a: IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address width in bits.
    pub fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// `IPv4` or `IPv6`, as Kubernetes spells the families.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An address as (family, integer): the key of every map in the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    /// Family.
    pub family: Family,
    /// The address as an integer (below 2^32 for IPv4).
    pub value: u128,
}

impl Addr {
    /// Back to an `IpAddr`.
    pub fn ip(self) -> IpAddr {
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(self.value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.value)),
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(v4) => Addr {
                family: Family::V4,
                value: u128::from(u32::from(v4)),
            },
            IpAddr::V6(v6) => Addr {
                family: Family::V6,
                value: u128::from(v6),
            },
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrRange {
    /// Family.
    pub family: Family,
    /// First address.
    pub first: u128,
    /// Last address (`>= first`).
    pub last: u128,
}

impl AddrRange {
    /// `first..=last`; `None` when the families differ or `first > last`.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<Self> {
        let (a, b) = (Addr::from(first), Addr::from(last));
        (a.family == b.family && a.value <= b.value).then_some(AddrRange {
            family: a.family,
            first: a.value,
            last: b.value,
        })
    }

    /// Every address of a prefix (host bits of `net` ignored).
    pub fn of_cidr(net: ipnet::IpNet) -> Self {
        let (n, b) = (Addr::from(net.network()), Addr::from(net.broadcast()));
        AddrRange {
            family: n.family,
            first: n.value,
            last: b.value,
        }
    }

    /// Whether `a` is inside.
    pub fn contains(&self, a: Addr) -> bool {
        a.family == self.family && self.first <= a.value && a.value <= self.last
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, o: &AddrRange) -> bool {
        self.family == o.family && self.first <= o.last && o.first <= self.last
    }

    /// Number of addresses.
    pub fn len(&self) -> Count {
        Count::inclusive(self.first, self.last)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn addr(&self, v: u128) -> Addr {
        Addr {
            family: self.family,
            value: v,
        }
    }

    /// The prefix length, when the range is exactly one CIDR.
    fn as_prefix_len(&self) -> Option<u32> {
        let size_minus_one = self.last - self.first;
        // A CIDR has 2^k addresses and starts on a multiple of 2^k.
        let host_bits = 128 - size_minus_one.leading_zeros();
        let host_bits = if size_minus_one == 0 { 0 } else { host_bits };
        let mask = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        (size_minus_one == mask && self.first & mask == 0).then(|| self.family.bits() - host_bits)
    }
}

impl fmt::Display for AddrRange {
    /// `10.0.0.0/24` when the range is a CIDR, one address when it is one, else `a-b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.addr(self.first);
        if self.first == self.last {
            return write!(f, "{first}");
        }
        match self.as_prefix_len() {
            Some(len) => write!(f, "{first}/{len}"),
            None => write!(f, "{first}-{}", self.addr(self.last)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_print_as_cidrs_when_they_are_cidrs() {
        let r = AddrRange::of_cidr("172.16.1.0/24".parse().unwrap());
        assert_eq!(r.to_string(), "172.16.1.0/24");
        assert_eq!(r.len().to_string(), "256");
        let all6 = AddrRange::of_cidr("::/0".parse().unwrap());
        assert_eq!(all6.to_string(), "::/0");
        let all4 = AddrRange::of_cidr("0.0.0.0/0".parse().unwrap());
        assert_eq!(all4.to_string(), "0.0.0.0/0");
        let r = AddrRange::new(ip("192.168.10.211"), ip("192.168.10.215")).unwrap();
        assert_eq!(r.to_string(), "192.168.10.211-192.168.10.215");
        let one = AddrRange::new(ip("fd00::1"), ip("fd00::1")).unwrap();
        assert_eq!(one.to_string(), "fd00::1");
        let r = AddrRange::new(ip("10.0.0.4"), ip("10.0.0.7")).unwrap();
        assert_eq!(r.to_string(), "10.0.0.4/30");
    }

    #[test]
    fn host_bits_of_a_cidr_are_ignored() {
        let r = AddrRange::of_cidr("10.1.2.3/16".parse().unwrap());
        assert_eq!(r.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn ranges_of_different_families_never_overlap_or_contain() {
        let v4 = AddrRange::of_cidr("0.0.0.0/0".parse().unwrap());
        let v6 = AddrRange::of_cidr("::/96".parse().unwrap());
        assert!(!v4.overlaps(&v6));
        assert!(!v6.contains(Addr::from(ip("0.0.0.1"))));
        assert!(AddrRange::new(ip("10.0.0.1"), ip("fd00::1")).is_none());
        assert!(AddrRange::new(ip("10.0.0.2"), ip("10.0.0.1")).is_none());
    }

    #[test]
    fn addresses_round_trip_through_integers() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:1.2.3.4",
        ] {
            assert_eq!(Addr::from(ip(s)).ip(), ip(s));
        }
    }
}
