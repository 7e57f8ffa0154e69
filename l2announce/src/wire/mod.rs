//! Wire formats: Ethernet II framing, ARP (RFC 826, RFC 5227 announcements) and IPv6
//! neighbour discovery (RFC 4861 solicitations and advertisements, RFC 4443 checksums).
//!
//! Parsers take bytes straight from a packet socket and never panic: every read goes through
//! [`Reader`], which returns [`WireError::Truncated`] instead of indexing past the end.
//! Builders append to a `Vec<u8>` so one buffer can be reused per packet.

pub mod arp;
pub mod ndp;

use std::fmt;
use std::str::FromStr;

pub use arp::{ArpOperation, ArpPacket};
pub use ndp::{
    Ipv6Header, NdpMessage, NeighborAdvertisement, NeighborSolicitation, icmpv6_checksum,
    solicited_node,
};

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of an Ethernet II header (no 802.1Q tag).
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Shortest Ethernet frame without its FCS; shorter frames are padded with zeros.
pub const ETHERNET_MIN_FRAME: usize = 60;

/// What went wrong while decoding. Every variant names the field, so a log line says which
/// part of which packet was bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes end before the field does.
    #[error("{what}: truncated, need {need} more octets, have {have}")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Octets the field needs.
        need: usize,
        /// Octets left.
        have: usize,
    },
    /// A well-formed value this implementation does not handle (another hardware type, an
    /// ICMPv6 type that is not neighbour discovery, ...).
    #[error("{what}: unsupported value {value:#x}")]
    Unsupported {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u32,
    },
    /// A value the protocol forbids (RFC 4861 §7.1 validity checks and the like).
    #[error("{what}: invalid ({why})")]
    Invalid {
        /// The field.
        what: &'static str,
        /// The rule it breaks.
        why: &'static str,
    },
    /// The ICMPv6 checksum does not match.
    #[error("ICMPv6 checksum {found:#06x} does not match {expected:#06x}")]
    BadChecksum {
        /// The checksum in the packet.
        found: u16,
        /// The checksum of the packet's contents.
        expected: u16,
    },
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00, the "unknown" target hardware address of ARP requests.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Whether the group bit is set (multicast and broadcast).
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The Ethernet address IPv6 multicast `group` maps to (RFC 2464 §7): 33:33 and the
    /// group's last four octets.
    pub fn for_ipv6_multicast(group: std::net::Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// From a netlink `IFLA_ADDRESS` or similar: exactly six octets.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (six hex octets separated by ':')")]
pub struct MacAddrParseError(String);

impl FromStr for MacAddr {
    type Err = MacAddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacAddrParseError(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for slot in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An Ethernet II frame: addresses, EtherType and the payload (which may end in padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    /// Destination.
    pub dst: MacAddr,
    /// Source.
    pub src: MacAddr,
    /// EtherType. 802.1Q-tagged frames are not unwrapped: a packet socket on a VLAN device
    /// receives them untagged.
    pub ethertype: u16,
    /// What follows the header.
    pub payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Splits a frame into header fields and payload.
    pub fn parse(bytes: &'a [u8]) -> Result<EthernetFrame<'a>, WireError> {
        let mut r = Reader::new(bytes, "Ethernet header");
        let dst = MacAddr(r.array()?);
        let src = MacAddr(r.array()?);
        let ethertype = r.u16()?;
        Ok(EthernetFrame {
            dst,
            src,
            ethertype,
            payload: r.rest(),
        })
    }
}

/// Appends an Ethernet II header.
pub fn write_ethernet_header(out: &mut Vec<u8>, dst: MacAddr, src: MacAddr, ethertype: u16) {
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// Pads a frame to the Ethernet minimum, as a NIC would; some switches drop runts.
pub fn pad_frame(out: &mut Vec<u8>) {
    if out.len() < ETHERNET_MIN_FRAME {
        out.resize(ETHERNET_MIN_FRAME, 0);
    }
}

/// A cursor over untrusted bytes: every read is checked and names the field it was reading.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, what }
    }

    /// Names the field the next reads belong to, for error messages.
    pub(crate) fn field(&mut self, what: &'static str) -> &mut Self {
        self.what = what;
        self
    }

    fn truncated(&self, need: usize) -> WireError {
        WireError::Truncated {
            what: self.what,
            need,
            have: self.bytes.len(),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or_else(|| self.truncated(N))?;
        self.bytes = rest;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.bytes.len() {
            return Err(self.truncated(n));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_print_and_parse_in_colon_form() {
        let mac: MacAddr = "02:00:5e:10:0a:FF".parse().unwrap();
        assert_eq!(mac, MacAddr([2, 0, 0x5e, 0x10, 0x0a, 0xff]));
        assert_eq!(mac.to_string(), "02:00:5e:10:0a:ff");
        for bad in [
            "",
            "02:00:5e:10:0a",
            "02:00:5e:10:0a:ff:00",
            "02:00:5e:10:0a:fff",
            "zz:00:00:00:00:00",
            "02::5e:10:0a:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn ipv6_multicast_groups_map_to_33_33_and_the_last_four_octets() {
        let group: std::net::Ipv6Addr = "ff02::1:ff00:211".parse().unwrap();
        assert_eq!(
            MacAddr::for_ipv6_multicast(group).to_string(),
            "33:33:ff:00:02:11"
        );
        assert!(MacAddr::for_ipv6_multicast(group).is_multicast());
        assert!(
            !"02:00:00:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
    }

    #[test]
    fn an_ethernet_header_round_trips_and_a_short_one_is_truncated() {
        let mut out = Vec::new();
        write_ethernet_header(
            &mut out,
            MacAddr::BROADCAST,
            MacAddr([2, 0, 0, 0, 0, 1]),
            ETHERTYPE_ARP,
        );
        out.extend_from_slice(b"payload");
        let f = EthernetFrame::parse(&out).unwrap();
        assert_eq!(
            (f.dst, f.src, f.ethertype, f.payload),
            (
                MacAddr::BROADCAST,
                MacAddr([2, 0, 0, 0, 0, 1]),
                ETHERTYPE_ARP,
                &b"payload"[..]
            )
        );
        assert!(matches!(
            EthernetFrame::parse(&out[..13]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn frames_shorter_than_sixty_octets_are_padded() {
        let mut out = vec![1u8; 42];
        pad_frame(&mut out);
        assert_eq!(out.len(), 60);
        assert!(out[42..].iter().all(|b| *b == 0));
        let mut long = vec![1u8; 86];
        pad_frame(&mut long);
        assert_eq!(long.len(), 86);
    }
}
