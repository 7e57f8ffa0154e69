//! Path attributes (RFC 4271 §4.3, §5) and the multiprotocol attributes (RFC 4760).
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +---------------+---------------+---------------------------+
//! |O|T|P|E| unused| Attr. Type    | Length (1 or 2 octets, E) | Value ...
//! +---------------+---------------+---------------------------+
//! ```
//!
//! [`PathAttributes`] is the attribute set of a route: `Clone + Eq + Hash`, so the RIB can
//! intern it, and built with a few calls for locally originated routes. It holds neither
//! MP_REACH_NLRI nor MP_UNREACH_NLRI: those carry prefixes and belong to the
//! [`Update`](super::Update). Attributes this code does not know are kept as
//! [`RawAttribute`]s; [`PathAttributes::to_pass_on`] prepares them for another peer as
//! RFC 4271 §5 says (optional transitive ones kept with Partial set, others dropped).

pub mod aspath;
pub mod community;
mod decode;
mod encode;

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};

pub use aspath::{AsPath, AsSegment, SegmentType};
pub use community::{Community, ExtendedCommunity, LargeCommunity};
pub(crate) use decode::{AttrBlock, decode_attributes};
pub use encode::Layout;
pub(crate) use encode::encode_attributes;

use super::family::Family;
use super::nlri::Nlri;
use super::notification::hex_string;

/// Attribute flag: optional.
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial.
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: two-octet length.
pub const FLAG_EXTENDED_LENGTH: u8 = 0x10;

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod type_code {
    /// ORIGIN, well-known mandatory.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH, well-known mandatory.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP, well-known mandatory (for IPv4 NLRI in the NLRI field).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC, optional non-transitive.
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF, well-known (iBGP).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE, well-known discretionary.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR, optional transitive.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997), optional transitive.
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456), optional non-transitive.
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456), optional non-transitive.
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES (RFC 4360), optional transitive.
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793), optional transitive.
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793), optional transitive.
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092), optional transitive.
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// ORIGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Origin {
    /// 0: learned from an interior protocol or configured.
    Igp = 0,
    /// 1: learned from EGP.
    Egp = 1,
    /// 2: learned some other way (redistribution).
    Incomplete = 2,
}

/// AGGREGATOR / AS4_AGGREGATOR: who aggregated the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Aggregator {
    /// The aggregating speaker's AS (AS_TRANS in AGGREGATOR on 2-octet sessions).
    pub asn: u32,
    /// Its BGP identifier.
    pub address: Ipv4Addr,
}

/// An attribute kept as received: unknown ones, and those of families the codec does not
/// decode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawAttribute {
    /// Flags as received, without the extended length bit (recomputed on encoding).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// Whether the Optional and Transitive bits are both set.
    pub fn is_optional_transitive(&self) -> bool {
        self.flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == FLAG_OPTIONAL | FLAG_TRANSITIVE
    }
}

impl Serialize for RawAttribute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("RawAttribute", 3)?;
        st.serialize_field("type_code", &self.type_code)?;
        st.serialize_field("flags", &self.flags)?;
        st.serialize_field("value", &hex_string(&self.value))?;
        st.end()
    }
}

/// A route's attribute set, without MP_REACH_NLRI / MP_UNREACH_NLRI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PathAttributes {
    /// ORIGIN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// AS_PATH (as received: AS_TRANS where a 2-octet session hid a 4-octet AS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (for IPv4 prefixes of the NLRI field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// LOCAL_PREF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE is present.
    #[serde(skip_serializing_if = "is_false")]
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES, in order received (empty: absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    /// ORIGINATOR_ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (empty: absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_list: Vec<Ipv4Addr>,
    /// EXTENDED COMMUNITIES (empty: absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extended_communities: Vec<ExtendedCommunity>,
    /// AS4_PATH (only meaningful on 2-octet sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as4_path: Option<AsPath>,
    /// AS4_AGGREGATOR (only meaningful on 2-octet sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as4_aggregator: Option<Aggregator>,
    /// LARGE_COMMUNITY (empty: absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<LargeCommunity>,
    /// Attributes this code does not know, in order received.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttribute>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PathAttributes {
    /// The attributes every route needs: ORIGIN and AS_PATH.
    pub fn new(origin: Origin, as_path: AsPath) -> PathAttributes {
        PathAttributes {
            origin: Some(origin),
            as_path: Some(as_path),
            ..PathAttributes::default()
        }
    }

    /// With NEXT_HOP.
    pub fn with_next_hop(mut self, next_hop: Ipv4Addr) -> Self {
        self.next_hop = Some(next_hop);
        self
    }

    /// With MULTI_EXIT_DISC.
    pub fn with_med(mut self, med: u32) -> Self {
        self.med = Some(med);
        self
    }

    /// With LOCAL_PREF.
    pub fn with_local_pref(mut self, local_pref: u32) -> Self {
        self.local_pref = Some(local_pref);
        self
    }

    /// With these standard communities.
    pub fn with_communities(mut self, c: impl IntoIterator<Item = Community>) -> Self {
        self.communities = c.into_iter().collect();
        self
    }

    /// With these extended communities.
    pub fn with_extended_communities(
        mut self,
        c: impl IntoIterator<Item = ExtendedCommunity>,
    ) -> Self {
        self.extended_communities = c.into_iter().collect();
        self
    }

    /// With these large communities.
    pub fn with_large_communities(mut self, c: impl IntoIterator<Item = LargeCommunity>) -> Self {
        self.large_communities = c.into_iter().collect();
        self
    }

    /// The real AS path: AS_PATH merged with AS4_PATH when both are present (RFC 6793).
    pub fn effective_as_path(&self) -> Option<AsPath> {
        match (&self.as_path, &self.as4_path) {
            (Some(p), Some(p4)) => Some(AsPath::merge_as4(p, p4)),
            (Some(p), None) => Some(p.clone()),
            (None, _) => None,
        }
    }

    /// The real aggregator: AS4_AGGREGATOR when AGGREGATOR says AS_TRANS (RFC 6793).
    pub fn effective_aggregator(&self) -> Option<Aggregator> {
        match (self.aggregator, self.as4_aggregator) {
            (Some(a), Some(a4)) if a.asn == u32::from(super::open::AS_TRANS) => Some(a4),
            (a, _) => a,
        }
    }

    /// The set as passed on to another peer: unknown optional transitive attributes kept
    /// with the Partial bit set, other unknown attributes dropped (RFC 4271 §5, §9.1.2.2).
    pub fn to_pass_on(&self) -> PathAttributes {
        let mut out = self.clone();
        out.unknown = self
            .unknown
            .iter()
            .filter(|a| a.is_optional_transitive())
            .map(|a| RawAttribute {
                flags: a.flags | FLAG_PARTIAL,
                ..a.clone()
            })
            .collect();
        out
    }
}

/// A next hop as MP_REACH_NLRI carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum NextHop {
    /// An IPv4 address (4 octets).
    Ipv4(Ipv4Addr),
    /// An IPv6 global address (16 octets) and optionally a link-local one (32 octets).
    Ipv6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address.
        #[serde(skip_serializing_if = "Option::is_none")]
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    /// Octets on the wire.
    pub fn encoded_len(&self) -> usize {
        match self {
            NextHop::Ipv4(_) => 4,
            NextHop::Ipv6 {
                link_local: None, ..
            } => 16,
            NextHop::Ipv6 {
                link_local: Some(_),
                ..
            } => 32,
        }
    }
}

/// MP_REACH_NLRI of an IP family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MpReach {
    /// The family of the NLRI.
    pub family: Family,
    /// The next hop.
    pub next_hop: NextHop,
    /// Reachable prefixes.
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI of an IP family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MpUnreach {
    /// The family of the withdrawn routes.
    pub family: Family,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<Nlri>,
}
