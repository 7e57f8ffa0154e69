//! Encoding path attributes.
//!
//! By default attributes go out in type-code order with MP_REACH_NLRI and MP_UNREACH_NLRI
//! first (RFC 7606 §5.1), each with the shortest length field. An UPDATE that was decoded
//! remembers the order and flags its sender used ([`Layout`]), so re-encoding it gives back
//! the sender's bytes, which is what the golden tests check.
//!
//! On a session without 4-octet AS numbers, an AS_PATH or AGGREGATOR with a 4-octet ASN is
//! sent with AS_TRANS and accompanied by AS4_PATH / AS4_AGGREGATOR (RFC 6793 §4.2.2); on a
//! 4-octet session AS4_PATH and AS4_AGGREGATOR are never sent.

use bytes::{BufMut, BytesMut};

use super::type_code as tc;
use super::{
    FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE, MpReach, MpUnreach,
    NextHop, PathAttributes, RawAttribute,
};
use crate::wire::context::EncodeContext;
use crate::wire::error::EncodeError;
use crate::wire::open::AS_TRANS;

const MAX_LAYOUT: usize = 32;

/// The order and flags of the attributes of a decoded UPDATE (opaque; at most 32 kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    entries: [(u8, u8); MAX_LAYOUT],
    len: u8,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            entries: [(0, 0); MAX_LAYOUT],
            len: 0,
        }
    }
}

impl Layout {
    pub(crate) fn push(&mut self, type_code: u8, flags: u8) {
        if let Some(e) = self.entries.get_mut(usize::from(self.len)) {
            *e = (type_code, flags);
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.entries.iter().take(usize::from(self.len)).copied()
    }

    fn flags_for(&self, type_code: u8) -> Option<u8> {
        self.iter().find(|(t, _)| *t == type_code).map(|(_, f)| f)
    }
}

/// Canonical order of known attributes after the multiprotocol ones.
const CANONICAL: [u8; 14] = [
    tc::ORIGIN,
    tc::AS_PATH,
    tc::NEXT_HOP,
    tc::MULTI_EXIT_DISC,
    tc::LOCAL_PREF,
    tc::ATOMIC_AGGREGATE,
    tc::AGGREGATOR,
    tc::COMMUNITIES,
    tc::ORIGINATOR_ID,
    tc::CLUSTER_LIST,
    tc::EXTENDED_COMMUNITIES,
    tc::AS4_PATH,
    tc::AS4_AGGREGATOR,
    tc::LARGE_COMMUNITY,
];

struct Writer<'a> {
    attrs: &'a PathAttributes,
    mp_reach: Option<&'a MpReach>,
    mp_unreach: Option<&'a MpUnreach>,
    other_mp: &'a [RawAttribute],
    layout: Option<&'a Layout>,
    ctx: &'a EncodeContext,
}

/// Writes the path attributes field (without its length).
pub(crate) fn encode_attributes(
    attrs: &PathAttributes,
    mp_reach: Option<&MpReach>,
    mp_unreach: Option<&MpUnreach>,
    other_mp: &[RawAttribute],
    layout: Option<&Layout>,
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let w = Writer {
        attrs,
        mp_reach,
        mp_unreach,
        other_mp,
        layout,
        ctx,
    };
    let mut done = [0u64; 4];
    let mark = |done: &mut [u64; 4], t: u8| {
        if let Some(x) = done.get_mut(usize::from(t / 64)) {
            *x |= 1 << (t % 64);
        }
    };
    let is_done = |done: &[u64; 4], t: u8| {
        done.get(usize::from(t / 64))
            .is_some_and(|x| x & (1 << (t % 64)) != 0)
    };
    if let Some(l) = layout {
        for (t, _) in l.iter() {
            if !is_done(&done, t) {
                mark(&mut done, t);
                w.write(t, out)?;
            }
        }
    }
    for t in [tc::MP_REACH_NLRI, tc::MP_UNREACH_NLRI]
        .into_iter()
        .chain(CANONICAL)
    {
        if !is_done(&done, t) {
            mark(&mut done, t);
            w.write(t, out)?;
        }
    }
    for a in &attrs.unknown {
        if !is_done(&done, a.type_code) {
            write_raw(a, false, out)?;
        }
    }
    Ok(())
}

fn header(out: &mut BytesMut, flags: u8, type_code: u8, len: usize) -> Result<(), EncodeError> {
    let len16 = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong("path attribute"))?;
    if flags & FLAG_EXTENDED_LENGTH != 0 || len > 255 {
        out.put_u8(flags | FLAG_EXTENDED_LENGTH);
        out.put_u8(type_code);
        out.put_u16(len16);
    } else {
        out.put_u8(flags);
        out.put_u8(type_code);
        out.put_u8(len as u8);
    }
    Ok(())
}

/// Writes a kept attribute; its length field is two octets when `extended` or needed.
fn write_raw(a: &RawAttribute, extended: bool, out: &mut BytesMut) -> Result<(), EncodeError> {
    let ext = if extended { FLAG_EXTENDED_LENGTH } else { 0 };
    let flags = (a.flags & !FLAG_EXTENDED_LENGTH) | ext;
    header(out, flags, a.type_code, a.value.len())?;
    out.put_slice(&a.value);
    Ok(())
}

impl Writer<'_> {
    /// Flags for a known attribute: its category's, plus the extended length and (for
    /// optional transitive attributes) partial bits the sender used.
    fn flags(&self, type_code: u8, base: u8) -> u8 {
        let hint = self
            .layout
            .and_then(|l| l.flags_for(type_code))
            .unwrap_or(0);
        let mut keep = hint & FLAG_EXTENDED_LENGTH;
        if base == FLAG_OPTIONAL | FLAG_TRANSITIVE {
            keep |= hint & FLAG_PARTIAL;
        }
        base | keep
    }

    fn write(&self, t: u8, out: &mut BytesMut) -> Result<(), EncodeError> {
        let a = self.attrs;
        let hinted_ext = self
            .layout
            .and_then(|l| l.flags_for(t))
            .is_some_and(|f| f & FLAG_EXTENDED_LENGTH != 0);
        let four = self.ctx.four_octet_as;
        const WK: u8 = FLAG_TRANSITIVE;
        const OT: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
        const ON: u8 = FLAG_OPTIONAL;
        match t {
            tc::MP_REACH_NLRI => {
                if let Some(m) = self.mp_reach {
                    let ext = self.flags(t, ON) & FLAG_EXTENDED_LENGTH != 0;
                    encode_mp_reach(m, self.ctx, ext, out)?;
                } else {
                    for raw in self.other_mp.iter().filter(|r| r.type_code == t) {
                        write_raw(raw, hinted_ext, out)?;
                    }
                }
            }
            tc::MP_UNREACH_NLRI => {
                if let Some(m) = self.mp_unreach {
                    let ext = self.flags(t, ON) & FLAG_EXTENDED_LENGTH != 0;
                    encode_mp_unreach(m, self.ctx, ext, out)?;
                } else {
                    for raw in self.other_mp.iter().filter(|r| r.type_code == t) {
                        write_raw(raw, hinted_ext, out)?;
                    }
                }
            }
            tc::ORIGIN => {
                if let Some(o) = a.origin {
                    header(out, self.flags(t, WK), t, 1)?;
                    out.put_u8(o as u8);
                }
            }
            tc::AS_PATH => {
                if let Some(p) = &a.as_path {
                    header(out, self.flags(t, WK), t, p.encoded_len(four))?;
                    p.encode(four, out);
                }
            }
            tc::NEXT_HOP => {
                if let Some(nh) = a.next_hop {
                    header(out, self.flags(t, WK), t, 4)?;
                    out.put_slice(&nh.octets());
                }
            }
            tc::MULTI_EXIT_DISC => {
                if let Some(v) = a.med {
                    header(out, self.flags(t, ON), t, 4)?;
                    out.put_u32(v);
                }
            }
            tc::LOCAL_PREF => {
                if let Some(v) = a.local_pref {
                    header(out, self.flags(t, WK), t, 4)?;
                    out.put_u32(v);
                }
            }
            tc::ATOMIC_AGGREGATE => {
                if a.atomic_aggregate {
                    header(out, self.flags(t, WK), t, 0)?;
                }
            }
            tc::AGGREGATOR => {
                if let Some(g) = a.aggregator {
                    header(out, self.flags(t, OT), t, if four { 8 } else { 6 })?;
                    if four {
                        out.put_u32(g.asn);
                    } else {
                        out.put_u16(u16::try_from(g.asn).unwrap_or(AS_TRANS));
                    }
                    out.put_slice(&g.address.octets());
                }
            }
            tc::COMMUNITIES => {
                if !a.communities.is_empty() {
                    header(out, self.flags(t, OT), t, 4 * a.communities.len())?;
                    for c in &a.communities {
                        out.put_u32(c.0);
                    }
                }
            }
            tc::ORIGINATOR_ID => {
                if let Some(id) = a.originator_id {
                    header(out, self.flags(t, ON), t, 4)?;
                    out.put_slice(&id.octets());
                }
            }
            tc::CLUSTER_LIST => {
                if !a.cluster_list.is_empty() {
                    header(out, self.flags(t, ON), t, 4 * a.cluster_list.len())?;
                    for id in &a.cluster_list {
                        out.put_slice(&id.octets());
                    }
                }
            }
            tc::EXTENDED_COMMUNITIES => {
                if !a.extended_communities.is_empty() {
                    header(out, self.flags(t, OT), t, 8 * a.extended_communities.len())?;
                    for c in &a.extended_communities {
                        out.put_slice(&c.0);
                    }
                }
            }
            tc::AS4_PATH => {
                if four {
                    return Ok(());
                }
                let generated = match (&a.as4_path, &a.as_path) {
                    (Some(p), _) => Some(p),
                    (None, Some(p)) if p.has_four_octet_asn() => Some(p),
                    _ => None,
                };
                if let Some(p) = generated {
                    header(out, self.flags(t, OT), t, p.encoded_len(true))?;
                    p.encode(true, out);
                }
            }
            tc::AS4_AGGREGATOR => {
                if four {
                    return Ok(());
                }
                let generated = match (a.as4_aggregator, a.aggregator) {
                    (Some(g), _) => Some(g),
                    (None, Some(g)) if g.asn > u32::from(u16::MAX) => Some(g),
                    _ => None,
                };
                if let Some(g) = generated {
                    header(out, self.flags(t, OT), t, 8)?;
                    out.put_u32(g.asn);
                    out.put_slice(&g.address.octets());
                }
            }
            tc::LARGE_COMMUNITY => {
                if !a.large_communities.is_empty() {
                    header(out, self.flags(t, OT), t, 12 * a.large_communities.len())?;
                    for c in &a.large_communities {
                        out.put_u32(c.global_admin);
                        out.put_u32(c.local_data1);
                        out.put_u32(c.local_data2);
                    }
                }
            }
            other => {
                for raw in a.unknown.iter().filter(|r| r.type_code == other) {
                    write_raw(raw, hinted_ext, out)?;
                }
            }
        }
        Ok(())
    }
}

fn put_next_hop(nh: &NextHop, out: &mut BytesMut) {
    match nh {
        NextHop::Ipv4(a) => out.put_slice(&a.octets()),
        NextHop::Ipv6 { global, link_local } => {
            out.put_slice(&global.octets());
            if let Some(ll) = link_local {
                out.put_slice(&ll.octets());
            }
        }
    }
}

/// Writes MP_REACH_NLRI, with a two-octet length when `extended` or needed.
fn encode_mp_reach(
    m: &MpReach,
    ctx: &EncodeContext,
    extended: bool,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let add_path = ctx.add_path.contains(m.family);
    let nlri_len: usize = m.nlri.iter().map(|n| n.encoded_len(add_path)).sum();
    let len = 5 + m.next_hop.encoded_len() + nlri_len;
    let flags = FLAG_OPTIONAL | if extended { FLAG_EXTENDED_LENGTH } else { 0 };
    header(out, flags, tc::MP_REACH_NLRI, len)?;
    out.put_u16(m.family.afi);
    out.put_u8(m.family.safi);
    out.put_u8(m.next_hop.encoded_len() as u8);
    put_next_hop(&m.next_hop, out);
    out.put_u8(0);
    for n in &m.nlri {
        n.encode(add_path, out);
    }
    Ok(())
}

/// Writes MP_UNREACH_NLRI, with a two-octet length when `extended` or needed.
fn encode_mp_unreach(
    m: &MpUnreach,
    ctx: &EncodeContext,
    extended: bool,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let add_path = ctx.add_path.contains(m.family);
    let len = 3 + m
        .withdrawn
        .iter()
        .map(|n| n.encoded_len(add_path))
        .sum::<usize>();
    let flags = FLAG_OPTIONAL | if extended { FLAG_EXTENDED_LENGTH } else { 0 };
    header(out, flags, tc::MP_UNREACH_NLRI, len)?;
    out.put_u16(m.family.afi);
    out.put_u8(m.family.safi);
    for n in &m.withdrawn {
        n.encode(add_path, out);
    }
    Ok(())
}
