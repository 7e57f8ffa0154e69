//! Packing many prefixes that share one attribute set into as few UPDATEs as fit.
//!
//! The Adj-RIB-Out groups outgoing routes by attribute set; for each group it calls
//! [`pack_updates`] with the attributes, the next hop, the prefixes to announce and those
//! to withdraw, all of one family. IPv4 unicast with an IPv4 next hop uses the classic
//! fields (withdrawn routes, NEXT_HOP, NLRI); IPv6, multicast and IPv4 with an IPv6 next hop
//! (RFC 8950, only where negotiated) use MP_UNREACH_NLRI and MP_REACH_NLRI. The attributes
//! are encoded once; each message is filled greedily up to the negotiated maximum, so only
//! the last one is short, and withdrawals share the first message with announcements when
//! there is room.

use bytes::{BufMut, Bytes, BytesMut};
use ipnet::IpNet;

use super::attr::{FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL};
use super::attr::{NextHop, PathAttributes, encode_attributes, type_code as tc};
use super::context::EncodeContext;
use super::error::EncodeError;
use super::family::{AFI_IPV4, Family};
use super::nlri::Nlri;
use super::update::patch_len;
use super::{HEADER_LEN, message_type, put_header};

/// Routes to announce with one attribute set.
#[derive(Debug, Clone, Copy)]
pub struct Announce<'a> {
    /// The attributes (NEXT_HOP is taken from `next_hop`, not from here).
    pub attributes: &'a PathAttributes,
    /// The next hop of every prefix.
    pub next_hop: NextHop,
    /// The prefixes, with path identifiers where add-path is negotiated for sending.
    pub nlri: &'a [Nlri],
}

/// Encodes `withdrawn` and `announce` (all of `family`) into as few UPDATE messages as fit
/// the session's maximum length. Returns whole messages, header included.
pub fn pack_updates(
    ctx: &EncodeContext,
    family: Family,
    announce: Option<Announce<'_>>,
    withdrawn: &[Nlri],
) -> Result<Vec<Bytes>, EncodeError> {
    if !family.is_ip() {
        return Err(EncodeError::UnsupportedFamily(family.to_string()));
    }
    let v6 = family.is_ipv6();
    let announced = announce.map_or(&[][..], |a| a.nlri);
    for n in withdrawn.iter().chain(announced) {
        if matches!(n.prefix, IpNet::V6(_)) != v6 {
            return Err(EncodeError::PrefixFamily {
                prefix: n.prefix.to_string(),
                family: family.to_string(),
            });
        }
    }
    let classic = family == Family::IPV4_UNICAST
        && announce.is_none_or(|a| matches!(a.next_hop, NextHop::Ipv4(_)));
    if let Some(a) = &announce {
        let ok = match a.next_hop {
            NextHop::Ipv4(_) => family.afi == AFI_IPV4,
            NextHop::Ipv6 { .. } => v6 || ctx.extended_next_hop.contains(family),
        };
        if !ok {
            return Err(EncodeError::NextHop {
                family: family.to_string(),
                next_hop: format!("{:?}", a.next_hop),
            });
        }
    }
    // The attribute block, encoded once (NEXT_HOP only for the classic fields).
    let mut attr_bytes = BytesMut::new();
    if let Some(a) = &announce {
        let mut attrs = a.attributes.clone();
        attrs.next_hop = match (classic, a.next_hop) {
            (true, NextHop::Ipv4(nh)) => Some(nh),
            _ => None,
        };
        encode_attributes(&attrs, None, None, &[], None, ctx, &mut attr_bytes)?;
    }
    let add_path = ctx.add_path.contains(family);
    let max = ctx.max_message_len();
    let mut packer = Packer {
        family,
        add_path,
        max,
        classic,
        attr_bytes: &attr_bytes,
        next_hop: announce.map(|a| a.next_hop),
        out: Vec::new(),
    };
    packer.run(withdrawn, announced)?;
    Ok(packer.out)
}

struct Packer<'a> {
    family: Family,
    add_path: bool,
    max: usize,
    classic: bool,
    attr_bytes: &'a [u8],
    next_hop: Option<NextHop>,
    out: Vec<Bytes>,
}

/// MP attribute header with a two-octet length (flags, type, length).
const MP_HEADER: usize = 4;

impl Packer<'_> {
    fn run(&mut self, mut withdrawn: &[Nlri], mut announced: &[Nlri]) -> Result<(), EncodeError> {
        while !withdrawn.is_empty() || !announced.is_empty() {
            let mut msg = BytesMut::with_capacity(self.max.min(4096));
            put_header(&mut msg, message_type::UPDATE);
            let before = (withdrawn.len(), announced.len());
            if self.classic {
                self.classic_message(&mut msg, &mut withdrawn, &mut announced)?;
            } else {
                self.mp_message(&mut msg, &mut withdrawn, &mut announced)?;
            }
            if (withdrawn.len(), announced.len()) == before {
                // Not even one prefix fits with these attributes.
                let length = HEADER_LEN + 4 + self.attr_bytes.len() + 64;
                return Err(EncodeError::TooLong {
                    length,
                    max: self.max,
                });
            }
            let len = msg.len() as u16;
            if let Some(slot) = msg.get_mut(16..18) {
                slot.copy_from_slice(&len.to_be_bytes());
            }
            self.out.push(msg.freeze());
        }
        Ok(())
    }

    /// Takes prefixes from the front of `list` while they fit in `room`; returns the octets
    /// used.
    fn fill(&self, msg: &mut BytesMut, list: &mut &[Nlri], room: usize) -> usize {
        let mut used = 0;
        let mut taken = 0;
        for n in list.iter() {
            let l = n.encoded_len(self.add_path);
            if used + l > room {
                break;
            }
            n.encode(self.add_path, msg);
            used += l;
            taken += 1;
        }
        *list = list.get(taken..).unwrap_or_default();
        used
    }

    fn first_len(&self, list: &[Nlri]) -> usize {
        list.first().map_or(0, |n| n.encoded_len(self.add_path))
    }

    fn classic_message(
        &self,
        msg: &mut BytesMut,
        withdrawn: &mut &[Nlri],
        announced: &mut &[Nlri],
    ) -> Result<(), EncodeError> {
        let mut room = self.max - HEADER_LEN - 4;
        let wpos = msg.len();
        msg.put_u16(0);
        room -= self.fill(msg, withdrawn, room);
        patch_len(msg, wpos, "withdrawn routes")?;
        let apos = msg.len();
        msg.put_u16(0);
        if !announced.is_empty() && room >= self.attr_bytes.len() + self.first_len(announced) {
            msg.put_slice(self.attr_bytes);
            patch_len(msg, apos, "path attributes")?;
            room -= self.attr_bytes.len();
            self.fill(msg, announced, room);
        }
        Ok(())
    }

    fn mp_message(
        &self,
        msg: &mut BytesMut,
        withdrawn: &mut &[Nlri],
        announced: &mut &[Nlri],
    ) -> Result<(), EncodeError> {
        let mut room = self.max - HEADER_LEN - 4;
        msg.put_u16(0); // no classic withdrawn routes
        let apos = msg.len();
        msg.put_u16(0);
        let unreach_fixed = MP_HEADER + 3;
        if !withdrawn.is_empty() && room >= unreach_fixed + self.first_len(withdrawn) {
            msg.put_u8(FLAG_OPTIONAL | FLAG_EXTENDED_LENGTH);
            msg.put_u8(tc::MP_UNREACH_NLRI);
            let lpos = msg.len();
            msg.put_u16(0);
            msg.put_u16(self.family.afi);
            msg.put_u8(self.family.safi);
            room -= unreach_fixed;
            room -= self.fill(msg, withdrawn, room);
            patch_len(msg, lpos, "MP_UNREACH_NLRI")?;
        }
        if let Some(nh) = self.next_hop {
            let reach_fixed = MP_HEADER + 5 + nh.encoded_len();
            let need = self.attr_bytes.len() + reach_fixed + self.first_len(announced);
            if !announced.is_empty() && room >= need {
                msg.put_u8(FLAG_OPTIONAL | FLAG_EXTENDED_LENGTH);
                msg.put_u8(tc::MP_REACH_NLRI);
                let lpos = msg.len();
                msg.put_u16(0);
                msg.put_u16(self.family.afi);
                msg.put_u8(self.family.safi);
                msg.put_u8(nh.encoded_len() as u8);
                match nh {
                    NextHop::Ipv4(a) => msg.put_slice(&a.octets()),
                    NextHop::Ipv6 { global, link_local } => {
                        msg.put_slice(&global.octets());
                        if let Some(ll) = link_local {
                            msg.put_slice(&ll.octets());
                        }
                    }
                }
                msg.put_u8(0);
                room -= self.attr_bytes.len() + reach_fixed;
                self.fill(msg, announced, room);
                patch_len(msg, lpos, "MP_REACH_NLRI")?;
                msg.put_slice(self.attr_bytes);
            }
        }
        patch_len(msg, apos, "path attributes")?;
        Ok(())
    }
}
