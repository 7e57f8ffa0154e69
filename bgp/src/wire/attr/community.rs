//! Communities: standard (RFC 1997, well-known values named), extended (RFC 4360) and
//! large (RFC 8092).
//!
//! Each is a small `Copy` value that shows itself the way operators write it
//! (`65000:100`, `no-export`, `rt:65000:1`, `4200000000:1:2`), which is also its JSON form.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Serialize, Serializer};

/// A standard community (RFC 1997): 32 bits, usually `AS:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// LLGR_STALE (RFC 9494).
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// NO_LLGR (RFC 9494).
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);
    /// NO_EXPORT (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997).
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// NOPEER (RFC 3765).
    pub const NOPEER: Community = Community(0xFFFF_FF04);

    /// `asn:value`.
    pub const fn new(asn: u16, value: u16) -> Community {
        Community(((asn as u32) << 16) | value as u32)
    }

    /// The well-known name, if it has one.
    pub fn well_known_name(self) -> Option<&'static str> {
        Some(match self {
            Community::GRACEFUL_SHUTDOWN => "graceful-shutdown",
            Community::ACCEPT_OWN => "accept-own",
            Community::LLGR_STALE => "llgr-stale",
            Community::NO_LLGR => "no-llgr",
            Community::BLACKHOLE => "blackhole",
            Community::NO_EXPORT => "no-export",
            Community::NO_ADVERTISE => "no-advertise",
            Community::NO_EXPORT_SUBCONFED => "no-export-subconfed",
            Community::NOPEER => "no-peer",
            _ => return None,
        })
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.well_known_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff),
        }
    }
}

impl Serialize for Community {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An extended community (RFC 4360): 8 octets, type, sub-type and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    const SUBTYPE_ROUTE_TARGET: u8 = 0x02;
    const SUBTYPE_ROUTE_ORIGIN: u8 = 0x03;

    /// Route target `asn:value` (two-octet AS specific, transitive).
    pub fn route_target_as2(asn: u16, value: u32) -> ExtendedCommunity {
        Self::as2(Self::SUBTYPE_ROUTE_TARGET, asn, value)
    }

    /// Route target `asn:value` (four-octet AS specific, RFC 5668).
    pub fn route_target_as4(asn: u32, value: u16) -> ExtendedCommunity {
        let mut b = [0u8; 8];
        b[0] = 0x02;
        b[1] = Self::SUBTYPE_ROUTE_TARGET;
        b[2..6].copy_from_slice(&asn.to_be_bytes());
        b[6..8].copy_from_slice(&value.to_be_bytes());
        ExtendedCommunity(b)
    }

    /// Route target `address:value` (IPv4 address specific).
    pub fn route_target_ipv4(address: Ipv4Addr, value: u16) -> ExtendedCommunity {
        let mut b = [0u8; 8];
        b[0] = 0x01;
        b[1] = Self::SUBTYPE_ROUTE_TARGET;
        b[2..6].copy_from_slice(&address.octets());
        b[6..8].copy_from_slice(&value.to_be_bytes());
        ExtendedCommunity(b)
    }

    /// Route origin (site of origin) `asn:value`.
    pub fn route_origin_as2(asn: u16, value: u32) -> ExtendedCommunity {
        Self::as2(Self::SUBTYPE_ROUTE_ORIGIN, asn, value)
    }

    fn as2(subtype: u8, asn: u16, value: u32) -> ExtendedCommunity {
        let mut b = [0u8; 8];
        b[1] = subtype;
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..8].copy_from_slice(&value.to_be_bytes());
        ExtendedCommunity(b)
    }

    /// The type octet (high bit 0x40 clear: transitive).
    pub fn type_high(self) -> u8 {
        self.0[0]
    }

    /// The sub-type octet.
    pub fn sub_type(self) -> u8 {
        self.0[1]
    }

    /// Whether it may cross AS boundaries (bit 0x40 of the type clear).
    pub fn is_transitive(self) -> bool {
        self.0[0] & 0x40 == 0
    }
}

impl fmt::Display for ExtendedCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        let name = match b[1] {
            Self::SUBTYPE_ROUTE_TARGET => "rt",
            Self::SUBTYPE_ROUTE_ORIGIN => "soo",
            _ => "",
        };
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match (b[0] & 0x3f, name) {
            (0x00, n) if !n.is_empty() => write!(f, "{n}:{}:{}", u16_at(2), u32_at(4)),
            (0x01, n) if !n.is_empty() => write!(
                f,
                "{n}:{}:{}",
                Ipv4Addr::new(b[2], b[3], b[4], b[5]),
                u16_at(6)
            ),
            (0x02, n) if !n.is_empty() => write!(f, "{n}:{}:{}", u32_at(2), u16_at(6)),
            _ => {
                f.write_str("0x")?;
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for ExtendedCommunity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A large community (RFC 8092): `global:local1:local2`, three 32-bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (usually an ASN).
    pub global_admin: u32,
    /// First local data part.
    pub local_data1: u32,
    /// Second local data part.
    pub local_data2: u32,
}

impl LargeCommunity {
    /// `global:local1:local2`.
    pub const fn new(global_admin: u32, local_data1: u32, local_data2: u32) -> LargeCommunity {
        LargeCommunity {
            global_admin,
            local_data1,
            local_data2,
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

impl Serialize for LargeCommunity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_show_as_operators_write_them() {
        assert_eq!(Community::new(65000, 100).to_string(), "65000:100");
        assert_eq!(Community::NO_EXPORT.to_string(), "no-export");
        assert_eq!(Community::BLACKHOLE.to_string(), "blackhole");
        assert_eq!(
            ExtendedCommunity::route_target_as2(65000, 1).to_string(),
            "rt:65000:1"
        );
        assert_eq!(
            ExtendedCommunity::route_target_as4(4_200_000_000, 7).to_string(),
            "rt:4200000000:7"
        );
        assert_eq!(
            ExtendedCommunity::route_target_ipv4(Ipv4Addr::new(10, 0, 0, 1), 7).to_string(),
            "rt:10.0.0.1:7"
        );
        assert_eq!(
            ExtendedCommunity([0x80, 6, 0, 0, 0, 0, 0, 0]).to_string(),
            "0x8006000000000000"
        );
        assert_eq!(LargeCommunity::new(1, 2, 3).to_string(), "1:2:3");
    }
}
