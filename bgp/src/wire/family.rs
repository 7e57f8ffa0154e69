//! Address families (AFI, SAFI) and small sets of them.
//!
//! The codec decodes NLRI of the IPv4 and IPv6 unicast and multicast families, whose prefixes
//! share one encoding; any other family's MP_REACH_NLRI / MP_UNREACH_NLRI is kept as raw
//! bytes. [`FamilySet`] is a `Copy` bit set over the four families the codec understands, so
//! the negotiated contexts stay cheap to copy.

use std::fmt;

use serde::{Serialize, Serializer};

/// Address Family Identifier (IANA "Address Family Numbers").
pub type Afi = u16;
/// Subsequent Address Family Identifier (IANA "SAFI Values").
pub type Safi = u8;

/// AFI of IPv4.
pub const AFI_IPV4: Afi = 1;
/// AFI of IPv6.
pub const AFI_IPV6: Afi = 2;
/// SAFI of unicast forwarding.
pub const SAFI_UNICAST: Safi = 1;
/// SAFI of multicast forwarding.
pub const SAFI_MULTICAST: Safi = 2;

/// One (AFI, SAFI) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
}

impl Family {
    /// IPv4 unicast (1, 1).
    pub const IPV4_UNICAST: Family = Family::new(AFI_IPV4, SAFI_UNICAST);
    /// IPv6 unicast (2, 1).
    pub const IPV6_UNICAST: Family = Family::new(AFI_IPV6, SAFI_UNICAST);
    /// IPv4 multicast (1, 2).
    pub const IPV4_MULTICAST: Family = Family::new(AFI_IPV4, SAFI_MULTICAST);
    /// IPv6 multicast (2, 2).
    pub const IPV6_MULTICAST: Family = Family::new(AFI_IPV6, SAFI_MULTICAST);

    /// A family from its numbers.
    pub const fn new(afi: Afi, safi: Safi) -> Family {
        Family { afi, safi }
    }

    /// Whether the codec decodes this family's NLRI as IP prefixes.
    pub fn is_ip(self) -> bool {
        self.bit().is_some()
    }

    /// Whether its prefixes are IPv6.
    pub fn is_ipv6(self) -> bool {
        self.afi == AFI_IPV6
    }

    fn bit(self) -> Option<u8> {
        match (self.afi, self.safi) {
            (AFI_IPV4, SAFI_UNICAST) => Some(0),
            (AFI_IPV6, SAFI_UNICAST) => Some(1),
            (AFI_IPV4, SAFI_MULTICAST) => Some(2),
            (AFI_IPV6, SAFI_MULTICAST) => Some(3),
            _ => None,
        }
    }

    const ALL_IP: [Family; 4] = [
        Family::IPV4_UNICAST,
        Family::IPV6_UNICAST,
        Family::IPV4_MULTICAST,
        Family::IPV6_MULTICAST,
    ];

    /// The family's usual name (`ipv4-unicast`), or `afi-A/safi-S`.
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let afi = match self.afi {
            AFI_IPV4 => "ipv4",
            AFI_IPV6 => "ipv6",
            25 => "l2vpn",
            _ => return write!(f, "afi-{}/safi-{}", self.afi, self.safi),
        };
        let safi = match self.safi {
            SAFI_UNICAST => "unicast",
            SAFI_MULTICAST => "multicast",
            4 => "labeled-unicast",
            70 => "evpn",
            128 => "vpn",
            133 => "flowspec",
            _ => return write!(f, "{afi}/safi-{}", self.safi),
        };
        write!(f, "{afi}-{safi}")
    }
}

impl Serialize for Family {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A set of the IP families the codec understands (IPv4/IPv6 unicast/multicast).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FamilySet(u8);

impl FamilySet {
    /// No family.
    pub const EMPTY: FamilySet = FamilySet(0);
    /// Every IP family.
    pub const ALL: FamilySet = FamilySet(0b1111);

    /// A set of the given families; families the codec does not decode are left out.
    pub fn of(families: &[Family]) -> FamilySet {
        let mut s = FamilySet::EMPTY;
        for f in families {
            s.insert(*f);
        }
        s
    }

    /// Adds a family; returns whether it is one the set can hold.
    pub fn insert(&mut self, family: Family) -> bool {
        match family.bit() {
            Some(b) => {
                self.0 |= 1 << b;
                true
            }
            None => false,
        }
    }

    /// Whether the family is in the set.
    pub fn contains(self, family: Family) -> bool {
        family.bit().is_some_and(|b| self.0 & (1 << b) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The families in the set.
    pub fn iter(self) -> impl Iterator<Item = Family> {
        Family::ALL_IP
            .into_iter()
            .filter(move |f| self.contains(*f))
    }

    /// Families in both sets.
    pub fn intersection(self, other: FamilySet) -> FamilySet {
        FamilySet(self.0 & other.0)
    }

    /// The raw bits, for building a set from fuzzer input.
    pub fn from_bits(bits: u8) -> FamilySet {
        FamilySet(bits & 0b1111)
    }
}

impl Serialize for FamilySet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_names_follow_common_usage() {
        assert_eq!(Family::IPV4_UNICAST.to_string(), "ipv4-unicast");
        assert_eq!(Family::new(2, 128).to_string(), "ipv6-vpn");
        assert_eq!(Family::new(99, 7).to_string(), "afi-99/safi-7");
    }

    #[test]
    fn family_sets_hold_only_ip_families() {
        let mut s = FamilySet::EMPTY;
        assert!(s.insert(Family::IPV6_UNICAST));
        assert!(!s.insert(Family::new(1, 128)));
        assert!(s.contains(Family::IPV6_UNICAST));
        assert!(!s.contains(Family::IPV4_UNICAST));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Family::IPV6_UNICAST]);
    }
}
