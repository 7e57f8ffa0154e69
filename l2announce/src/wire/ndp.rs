//! IPv6 neighbour discovery (RFC 4861): neighbour solicitations and advertisements with their
//! link-layer address options, inside an IPv6 header, with the ICMPv6 checksum over the
//! pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1).
//!
//! ```text
//! Neighbor Solicitation (type 135)         Neighbor Advertisement (type 136)
//! +--------+--------+-----------------+    +--------+--------+-----------------+
//! | type   | code 0 |    checksum     |    | type   | code 0 |    checksum     |
//! +--------+--------+-----------------+    +-+-+-+--+--------+-----------------+
//! |           reserved (32)           |    |R|S|O|      reserved (29)          |
//! +-----------------------------------+    +-+-+-+-----------------------------+
//! |        target address (128)       |    |        target address (128)       |
//! +-----------------------------------+    +-----------------------------------+
//! | options: source link-layer (1)    |    | options: target link-layer (2)    |
//! +-----------------------------------+    +-----------------------------------+
//! option: | type | length in 8 octets | link-layer address (6 for Ethernet) |
//! ```

use std::net::Ipv6Addr;

use super::{ETHERTYPE_IPV6, MacAddr, Reader, WireError, write_ethernet_header};

/// IPv6 next header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// ICMPv6 type of a neighbour solicitation.
pub const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Neighbour discovery packets are sent, and only accepted, with hop limit 255 (RFC 4861 §7.1),
/// which proves they come from the link.
pub const NDP_HOP_LIMIT: u8 = 255;
/// All-nodes multicast, ff02::1: where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const OPTION_SOURCE_LINK_LAYER: u8 = 1;
const OPTION_TARGET_LINK_LAYER: u8 = 2;
/// ICMPv6 header plus reserved/flags plus target: the shortest valid NS or NA.
const NDP_MIN_LEN: usize = 24;

const FLAG_ROUTER: u32 = 1 << 31;
const FLAG_SOLICITED: u32 = 1 << 30;
const FLAG_OVERRIDE: u32 = 1 << 29;

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1), ff02::1:ffXX:XXXX, to
/// which solicitations for `addr` are sent.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

fn is_solicited_node(addr: Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]
}

/// The fixed IPv6 header (RFC 8200 §3). Extension headers are not followed: neighbour
/// discovery messages carry none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Length of what follows the header.
    pub payload_len: u16,
    /// The next header (58 for ICMPv6).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source.
    pub src: Ipv6Addr,
    /// Destination.
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Octets of the fixed header.
    pub const LEN: usize = 40;

    /// Decodes the header and returns it with exactly `payload_len` octets of payload (link
    /// padding after it is dropped).
    pub fn parse(bytes: &[u8]) -> Result<(Ipv6Header, &[u8]), WireError> {
        let mut r = Reader::new(bytes, "IPv6 header");
        let first = r.u32()?;
        let version = first >> 28;
        if version != 6 {
            return Err(WireError::Unsupported {
                what: "IP version",
                value: version,
            });
        }
        let payload_len = r.u16()?;
        let next_header = r.u8()?;
        let hop_limit = r.u8()?;
        let src = Ipv6Addr::from(r.array::<16>()?);
        let dst = Ipv6Addr::from(r.array::<16>()?);
        let payload = r.field("IPv6 payload").take(payload_len.into())?;
        Ok((
            Ipv6Header {
                traffic_class: ((first >> 20) & 0xff) as u8,
                flow_label: first & 0x000f_ffff,
                payload_len,
                next_header,
                hop_limit,
                src,
                dst,
            },
            payload,
        ))
    }

    /// Appends the 40 octets of the header.
    pub fn write(&self, out: &mut Vec<u8>) {
        let first =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff);
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&self.payload_len.to_be_bytes());
        out.push(self.next_header);
        out.push(self.hop_limit);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }
}

fn sum_words(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u32 = 0;
    for c in &mut chunks {
        if let Ok(w) = <[u8; 2]>::try_from(c) {
            sum += u32::from(u16::from_be_bytes(w));
        }
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u64 {
    let len = len as u64;
    u64::from(sum_words(&src.octets()))
        + u64::from(sum_words(&dst.octets()))
        + (len >> 16)
        + (len & 0xffff)
        + u64::from(NEXT_HEADER_ICMPV6)
}

/// The ICMPv6 checksum of `message` (an ICMPv6 message whose checksum field is zero) sent from
/// `src` to `dst`: the one's complement of the one's-complement sum of the pseudo-header
/// (source, destination, upper-layer length, next header 58) and the message.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    !fold(pseudo_header_sum(src, dst, message.len()) + u64::from(sum_words(message)))
}

/// A neighbour solicitation with the addresses of the IPv6 header it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// IPv6 source; unspecified (::) during duplicate address detection.
    pub src: Ipv6Addr,
    /// IPv6 destination: the target's solicited-node group, or the target itself.
    pub dst: Ipv6Addr,
    /// The address being resolved.
    pub target: Ipv6Addr,
    /// The sender's MAC, if it sent the option (it must not when `src` is ::).
    pub source_link_layer: Option<MacAddr>,
}

/// A neighbour advertisement with the addresses of its IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination: the solicitor, or all-nodes.
    pub dst: Ipv6Addr,
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: replace a cached link-layer address. Set by the owner of an address, clear for
    /// anycast and proxies that must not win over the owner.
    pub override_flag: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The MAC the target is at.
    pub target_link_layer: Option<MacAddr>,
}

/// A decoded neighbour discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpMessage {
    /// Type 135.
    Solicitation(NeighborSolicitation),
    /// Type 136.
    Advertisement(NeighborAdvertisement),
}

/// Walks the options, checking that none has length zero (RFC 4861 §7.1), and returns the
/// first link-layer address option of `wanted` type. Unknown options are skipped (§4.6).
fn link_layer_option(mut r: Reader<'_>, wanted: u8) -> Result<Option<MacAddr>, WireError> {
    let mut found = None;
    while !r.is_empty() {
        let kind = r.field("NDP option type").u8()?;
        let len = r.field("NDP option length").u8()?;
        if len == 0 {
            return Err(WireError::Invalid {
                what: "NDP option length",
                why: "options of length zero are forbidden (RFC 4861 §4.6)",
            });
        }
        let body = r.field("NDP option").take(usize::from(len) * 8 - 2)?;
        if kind == wanted && found.is_none() {
            let mut b = Reader::new(body, "NDP link-layer address option");
            found = Some(MacAddr(b.array()?));
        }
    }
    Ok(found)
}

impl NdpMessage {
    /// Decodes an IPv6 packet (the payload of an Ethernet frame of type 0x86dd) carrying a
    /// neighbour solicitation or advertisement, applying the validity checks of RFC 4861
    /// §7.1.1 and §7.1.2. Other ICMPv6 types are [`WireError::Unsupported`].
    pub fn parse(packet: &[u8]) -> Result<NdpMessage, WireError> {
        let (ip, icmp) = Ipv6Header::parse(packet)?;
        if ip.next_header != NEXT_HEADER_ICMPV6 {
            return Err(WireError::Unsupported {
                what: "IPv6 next header",
                value: ip.next_header.into(),
            });
        }
        let mut r = Reader::new(icmp, "ICMPv6 header");
        let kind = r.u8()?;
        let code = r.u8()?;
        let found = r.u16()?;
        if kind != ICMPV6_NEIGHBOR_SOLICITATION && kind != ICMPV6_NEIGHBOR_ADVERTISEMENT {
            return Err(WireError::Unsupported {
                what: "ICMPv6 type",
                value: kind.into(),
            });
        }
        if ip.hop_limit != NDP_HOP_LIMIT {
            return Err(WireError::Invalid {
                what: "IPv6 hop limit",
                why: "neighbour discovery must arrive with hop limit 255 (RFC 4861 §7.1)",
            });
        }
        // The kernel drops such packets, but a packet socket sees them first; answering one
        // would send a solicited advertisement to a group, which RFC 4861 §7.1.2 forbids.
        if ip.src.is_multicast() {
            return Err(WireError::Invalid {
                what: "IPv6 source",
                why: "a multicast address is never a source (RFC 4291 §2.7)",
            });
        }
        if code != 0 {
            return Err(WireError::Invalid {
                what: "ICMPv6 code",
                why: "neighbour discovery messages have code 0",
            });
        }
        if icmp.len() < NDP_MIN_LEN {
            return Err(WireError::Truncated {
                what: "neighbour discovery message",
                need: NDP_MIN_LEN,
                have: icmp.len(),
            });
        }
        // The sum without the checksum field, so a mismatch can say what was expected.
        let without = sum_words(icmp.get(..2).unwrap_or_default())
            + sum_words(icmp.get(4..).unwrap_or_default());
        let expected = !fold(pseudo_header_sum(ip.src, ip.dst, icmp.len()) + u64::from(without));
        if found != expected {
            return Err(WireError::BadChecksum { found, expected });
        }
        let word = r.field("NDP flags").u32()?;
        let target = Ipv6Addr::from(r.field("NDP target address").array::<16>()?);
        if target.is_multicast() {
            return Err(WireError::Invalid {
                what: "NDP target address",
                why: "the target must not be a multicast address",
            });
        }
        if kind == ICMPV6_NEIGHBOR_SOLICITATION {
            let source_link_layer = link_layer_option(r, OPTION_SOURCE_LINK_LAYER)?;
            if ip.src.is_unspecified() {
                if !is_solicited_node(ip.dst) {
                    return Err(WireError::Invalid {
                        what: "IPv6 destination",
                        why: "a solicitation from :: must go to a solicited-node group",
                    });
                }
                if source_link_layer.is_some() {
                    return Err(WireError::Invalid {
                        what: "NDP source link-layer option",
                        why: "a solicitation from :: must not carry one",
                    });
                }
            }
            Ok(NdpMessage::Solicitation(NeighborSolicitation {
                src: ip.src,
                dst: ip.dst,
                target,
                source_link_layer,
            }))
        } else {
            let solicited = word & FLAG_SOLICITED != 0;
            if solicited && ip.dst.is_multicast() {
                return Err(WireError::Invalid {
                    what: "NDP solicited flag",
                    why: "an advertisement to a multicast group cannot be solicited",
                });
            }
            Ok(NdpMessage::Advertisement(NeighborAdvertisement {
                src: ip.src,
                dst: ip.dst,
                router: word & FLAG_ROUTER != 0,
                solicited,
                override_flag: word & FLAG_OVERRIDE != 0,
                target,
                target_link_layer: link_layer_option(r, OPTION_TARGET_LINK_LAYER)?,
            }))
        }
    }
}

/// Appends IPv6 header and ICMPv6 message, filling in length and checksum.
fn write_icmpv6(out: &mut Vec<u8>, src: Ipv6Addr, dst: Ipv6Addr, body: &[u8]) {
    Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: body.len() as u16,
        next_header: NEXT_HEADER_ICMPV6,
        hop_limit: NDP_HOP_LIMIT,
        src,
        dst,
    }
    .write(out);
    let start = out.len();
    out.extend_from_slice(body);
    let sum = icmpv6_checksum(src, dst, body);
    if let Some(field) = out.get_mut(start + 2..start + 4) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
}

fn ndp_body(kind: u8, word: u32, target: Ipv6Addr, option: Option<(u8, MacAddr)>) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&[kind, 0, 0, 0]);
    body.extend_from_slice(&word.to_be_bytes());
    body.extend_from_slice(&target.octets());
    if let Some((kind, mac)) = option {
        body.extend_from_slice(&[kind, 1]);
        body.extend_from_slice(&mac.0);
    }
    body
}

fn frame(eth_dst: MacAddr, eth_src: MacAddr, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(86);
    write_ethernet_header(&mut out, eth_dst, eth_src, ETHERTYPE_IPV6);
    write(&mut out);
    out
}

/// The Ethernet destination of an IPv6 destination that is multicast.
fn multicast_mac(dst: Ipv6Addr) -> Option<MacAddr> {
    dst.is_multicast().then(|| MacAddr::for_ipv6_multicast(dst))
}

impl NeighborSolicitation {
    /// A multicast solicitation for `target` from `src` (address resolution, RFC 4861 §7.2.2):
    /// sent to the target's solicited-node group, with our MAC unless `src` is ::.
    pub fn new(src: Ipv6Addr, target: Ipv6Addr, mac: MacAddr) -> NeighborSolicitation {
        NeighborSolicitation {
            src,
            dst: solicited_node(target),
            target,
            source_link_layer: (!src.is_unspecified()).then_some(mac),
        }
    }

    /// Appends the IPv6 packet.
    pub fn write(&self, out: &mut Vec<u8>) {
        let option = self
            .source_link_layer
            .map(|m| (OPTION_SOURCE_LINK_LAYER, m));
        let body = ndp_body(ICMPV6_NEIGHBOR_SOLICITATION, 0, self.target, option);
        write_icmpv6(out, self.src, self.dst, &body);
    }

    /// The Ethernet frame, to the group's MAC when the destination is multicast, else to
    /// `unicast_dst`.
    pub fn to_frame(&self, eth_src: MacAddr, unicast_dst: MacAddr) -> Vec<u8> {
        let dst = multicast_mac(self.dst).unwrap_or(unicast_dst);
        frame(dst, eth_src, |out| self.write(out))
    }

    /// The advertisement the owner of the target sends back (RFC 4861 §7.2.4): to the
    /// solicitor with S and O set, or, for a solicitation from :: (duplicate address
    /// detection), to all-nodes with S clear. The source is the target address itself.
    pub fn answer(&self, mac: MacAddr) -> NeighborAdvertisement {
        let unspecified = self.src.is_unspecified();
        NeighborAdvertisement {
            src: self.target,
            dst: if unspecified { ALL_NODES } else { self.src },
            router: false,
            solicited: !unspecified,
            override_flag: true,
            target: self.target,
            target_link_layer: Some(mac),
        }
    }
}

impl NeighborAdvertisement {
    /// An unsolicited advertisement of `target` at `mac` to all-nodes with the override flag
    /// (RFC 4861 §7.2.6): neighbours that cache `target` move to `mac`.
    pub fn unsolicited(target: Ipv6Addr, mac: MacAddr) -> NeighborAdvertisement {
        NeighborAdvertisement {
            src: target,
            dst: ALL_NODES,
            router: false,
            solicited: false,
            override_flag: true,
            target,
            target_link_layer: Some(mac),
        }
    }

    /// Appends the IPv6 packet.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut word = 0;
        if self.router {
            word |= FLAG_ROUTER;
        }
        if self.solicited {
            word |= FLAG_SOLICITED;
        }
        if self.override_flag {
            word |= FLAG_OVERRIDE;
        }
        let option = self
            .target_link_layer
            .map(|m| (OPTION_TARGET_LINK_LAYER, m));
        let body = ndp_body(ICMPV6_NEIGHBOR_ADVERTISEMENT, word, self.target, option);
        write_icmpv6(out, self.src, self.dst, &body);
    }

    /// The Ethernet frame: to the group's MAC when the destination is multicast, else to
    /// `unicast_dst` (the solicitor's MAC).
    pub fn to_frame(&self, eth_src: MacAddr, unicast_dst: MacAddr) -> Vec<u8> {
        let dst = multicast_mac(self.dst).unwrap_or(unicast_dst);
        frame(dst, eth_src, |out| self.write(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetFrame;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    #[test]
    fn the_solicited_node_group_keeps_the_last_24_bits() {
        assert_eq!(solicited_node(ip("fd00:10::211")), ip("ff02::1:ff00:211"));
        assert_eq!(
            solicited_node(ip("2001:db8::ab:cdef")),
            ip("ff02::1:ffab:cdef")
        );
        assert!(is_solicited_node(ip("ff02::1:ff00:211")));
        assert!(!is_solicited_node(ip("ff02::1")));
    }

    #[test]
    fn a_solicitation_round_trips_and_goes_to_the_group_mac() {
        let ns = NeighborSolicitation::new(ip("fd00:10::1"), ip("fd00:10::211"), mac(1));
        let f = ns.to_frame(mac(1), MacAddr::BROADCAST);
        let eth = EthernetFrame::parse(&f).unwrap();
        assert_eq!(eth.dst.to_string(), "33:33:ff:00:02:11");
        assert_eq!(
            NdpMessage::parse(eth.payload).unwrap(),
            NdpMessage::Solicitation(ns)
        );
    }

    #[test]
    fn the_answer_to_a_solicitation_is_solicited_and_overrides() {
        let ns = NeighborSolicitation::new(ip("fd00:10::1"), ip("fd00:10::211"), mac(1));
        let na = ns.answer(mac(9));
        assert!(na.solicited && na.override_flag && !na.router);
        assert_eq!(
            (na.src, na.dst, na.target, na.target_link_layer),
            (
                ip("fd00:10::211"),
                ip("fd00:10::1"),
                ip("fd00:10::211"),
                Some(mac(9))
            )
        );
        let f = na.to_frame(mac(9), mac(1));
        let eth = EthernetFrame::parse(&f).unwrap();
        assert_eq!(eth.dst, mac(1));
        assert_eq!(
            NdpMessage::parse(eth.payload).unwrap(),
            NdpMessage::Advertisement(na)
        );
    }

    #[test]
    fn a_duplicate_address_probe_is_answered_to_all_nodes_unsolicited() {
        let ns = NeighborSolicitation::new(Ipv6Addr::UNSPECIFIED, ip("fd00:10::211"), mac(1));
        assert_eq!(ns.source_link_layer, None);
        let mut bytes = Vec::new();
        ns.write(&mut bytes);
        assert_eq!(
            NdpMessage::parse(&bytes).unwrap(),
            NdpMessage::Solicitation(ns)
        );
        let na = ns.answer(mac(9));
        assert_eq!(na.dst, ALL_NODES);
        assert!(!na.solicited && na.override_flag);
    }

    #[test]
    fn an_unsolicited_advertisement_goes_to_all_nodes_with_override() {
        let na = NeighborAdvertisement::unsolicited(ip("fd00:10::211"), mac(9));
        let f = na.to_frame(mac(9), MacAddr::BROADCAST);
        let eth = EthernetFrame::parse(&f).unwrap();
        assert_eq!(eth.dst.to_string(), "33:33:00:00:00:01");
        assert_eq!(f.len(), 14 + 40 + 32);
        let Ok(NdpMessage::Advertisement(back)) = NdpMessage::parse(eth.payload) else {
            panic!("not an NA")
        };
        assert!(back.override_flag && !back.solicited);
    }

    #[test]
    fn a_solicitation_from_a_multicast_source_is_refused_so_no_solicited_answer_goes_to_a_group() {
        // Found by the l2_frame fuzz target (fuzz/regressions/l2_frame/).
        let mut ns = NeighborSolicitation::new(ip("fd00:10::1"), ip("fd00:10::211"), mac(1));
        ns.src = ip("ffff:ffff::");
        let mut b = Vec::new();
        ns.write(&mut b);
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Invalid {
                what: "IPv6 source",
                ..
            })
        ));
        let mut na = NeighborAdvertisement::unsolicited(ip("fd00:10::211"), mac(9));
        na.src = ip("ff02::1");
        let mut b = Vec::new();
        na.write(&mut b);
        assert!(NdpMessage::parse(&b).is_err());
    }

    #[test]
    fn validity_checks_of_rfc_4861_reject_what_they_should() {
        let ns = NeighborSolicitation::new(ip("fd00:10::1"), ip("fd00:10::211"), mac(1));
        let mut good = Vec::new();
        ns.write(&mut good);

        let mut b = good.clone();
        b[7] = 64; // hop limit
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Invalid {
                what: "IPv6 hop limit",
                ..
            })
        ));

        let mut b = good.clone();
        b[45] ^= 1; // a checksum bit
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::BadChecksum { .. })
        ));

        let mut b = good.clone();
        b[40 + 24 + 1] = 0; // option length zero
        let sum = {
            b[42] = 0;
            b[43] = 0;
            icmpv6_checksum(ns.src, ns.dst, &b[40..])
        };
        b[42..44].copy_from_slice(&sum.to_be_bytes());
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Invalid {
                what: "NDP option length",
                ..
            })
        ));

        // A multicast target.
        let bad = NeighborSolicitation {
            target: ip("ff02::1"),
            ..ns
        };
        let mut b = Vec::new();
        bad.write(&mut b);
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Invalid {
                what: "NDP target address",
                ..
            })
        ));

        // From :: to a unicast address, and from :: with a source link-layer option.
        let bad = NeighborSolicitation {
            src: Ipv6Addr::UNSPECIFIED,
            dst: ip("fd00:10::211"),
            source_link_layer: None,
            ..ns
        };
        let mut b = Vec::new();
        bad.write(&mut b);
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Invalid {
                what: "IPv6 destination",
                ..
            })
        ));
        let bad = NeighborSolicitation {
            src: Ipv6Addr::UNSPECIFIED,
            ..ns
        };
        let mut b = Vec::new();
        bad.write(&mut b);
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Invalid {
                what: "NDP source link-layer option",
                ..
            })
        ));

        // A solicited advertisement to a group.
        let bad = NeighborAdvertisement {
            solicited: true,
            ..NeighborAdvertisement::unsolicited(ip("fd00:10::211"), mac(9))
        };
        let mut b = Vec::new();
        bad.write(&mut b);
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Invalid {
                what: "NDP solicited flag",
                ..
            })
        ));

        // An echo request is not ours.
        let mut b = good.clone();
        b[40] = 128;
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Unsupported {
                what: "ICMPv6 type",
                value: 128
            })
        ));
        // Nor is UDP.
        let mut b = good.clone();
        b[6] = 17;
        assert!(matches!(
            NdpMessage::parse(&b),
            Err(WireError::Unsupported {
                what: "IPv6 next header",
                value: 17
            })
        ));
        // Truncated payload.
        assert!(matches!(
            NdpMessage::parse(&good[..good.len() - 1]),
            Err(WireError::Truncated {
                what: "IPv6 payload",
                ..
            })
        ));
    }

    #[test]
    fn unknown_options_are_skipped_and_the_link_layer_option_still_found() {
        // A nonce option (type 14, RFC 3971) before the source link-layer option.
        let src = ip("fd00:10::1");
        let dst = solicited_node(ip("fd00:10::211"));
        let mut body = ndp_body(ICMPV6_NEIGHBOR_SOLICITATION, 0, ip("fd00:10::211"), None);
        body.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 7]);
        let mut b = Vec::new();
        write_icmpv6(&mut b, src, dst, &body);
        let Ok(NdpMessage::Solicitation(ns)) = NdpMessage::parse(&b) else {
            panic!("not an NS")
        };
        assert_eq!(ns.source_link_layer, Some(mac(7)));
    }

    #[test]
    fn the_checksum_matches_a_worked_example() {
        // Computed independently (scapy 2.5, ICMPv6ND_NS from fe80::1 for fe80::2 with
        // source link-layer 02:00:00:00:00:01): checksum 0x7a97 over this body.
        let src = ip("fe80::1");
        let dst = solicited_node(ip("fe80::2"));
        let body = ndp_body(
            ICMPV6_NEIGHBOR_SOLICITATION,
            0,
            ip("fe80::2"),
            Some((1, mac(1))),
        );
        assert_eq!(icmpv6_checksum(src, dst, &body), 0x7a97);
    }

    fn arb_v6() -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>().prop_map(Ipv6Addr::from)
    }

    proptest! {
        #[test]
        fn advertisements_round_trip(src in arb_v6(), dst in arb_v6(), target in arb_v6(), r: bool, s: bool, o: bool, tlla in proptest::option::of(any::<[u8; 6]>())) {
            prop_assume!(!target.is_multicast() && !src.is_multicast());
            prop_assume!(!(s && dst.is_multicast()));
            let na = NeighborAdvertisement { src, dst, router: r, solicited: s, override_flag: o, target, target_link_layer: tlla.map(MacAddr) };
            let mut b = Vec::new();
            na.write(&mut b);
            prop_assert_eq!(NdpMessage::parse(&b), Ok(NdpMessage::Advertisement(na)));
        }

        #[test]
        fn solicitations_round_trip(src in arb_v6(), target in arb_v6(), m in any::<[u8; 6]>()) {
            prop_assume!(!target.is_multicast() && !src.is_multicast());
            let ns = NeighborSolicitation::new(src, target, MacAddr(m));
            let mut b = Vec::new();
            ns.write(&mut b);
            prop_assert_eq!(NdpMessage::parse(&b), Ok(NdpMessage::Solicitation(ns)));
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = NdpMessage::parse(&bytes);
        }

        #[test]
        fn parsing_mutated_packets_never_panics(flip in proptest::collection::vec((0usize..86, any::<u8>()), 1..6), cut in 0usize..87) {
            let mut b = Vec::new();
            NeighborSolicitation::new("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), MacAddr([2, 0, 0, 0, 0, 1])).write(&mut b);
            for (i, v) in flip {
                if let Some(x) = b.get_mut(i) { *x = v; }
            }
            b.truncate(cut);
            let _ = NdpMessage::parse(&b);
        }
    }
}
