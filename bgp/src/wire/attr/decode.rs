//! Decoding the path attributes field, with the error handling of RFC 7606.
//!
//! Every attribute is checked for its flags, its length and its value. A malformation is
//! recorded as an [`AttributeError`] with the action RFC 7606 assigns to that attribute
//! (treat-as-withdraw or attribute-discard), and the attribute is left out; only the cases
//! RFC 7606 keeps as "session reset" (a malformed MP_REACH_NLRI / MP_UNREACH_NLRI, either
//! of them twice, an unrecognized well-known attribute) fail the decode.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::encode::Layout;
use super::type_code as tc;
use super::{
    Aggregator, AsPath, Community, ExtendedCommunity, FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL,
    FLAG_PARTIAL, FLAG_TRANSITIVE, LargeCommunity, MpReach, MpUnreach, NextHop, Origin,
    PathAttributes, RawAttribute,
};
use crate::wire::context::DecodeContext;
use crate::wire::error::{
    AttributeError, DecodeError, DecodeErrorKind, Malformation, Rfc7606Action,
};
use crate::wire::family::{AFI_IPV4, AFI_IPV6, Family};
use crate::wire::nlri::decode_prefixes;
use crate::wire::reader::Reader;

/// Everything the path attributes field held.
#[derive(Debug, Default)]
pub(crate) struct AttrBlock {
    pub(crate) attrs: PathAttributes,
    pub(crate) mp_reach: Option<MpReach>,
    pub(crate) mp_unreach: Option<MpUnreach>,
    pub(crate) other_mp: Vec<RawAttribute>,
    pub(crate) errors: Vec<AttributeError>,
    pub(crate) layout: Layout,
    /// Type codes seen (first occurrence), as a 256-bit set.
    pub(crate) seen: [u64; 4],
}

impl AttrBlock {
    pub(crate) fn saw(&self, type_code: u8) -> bool {
        let (w, b) = (usize::from(type_code / 64), type_code % 64);
        self.seen.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    fn mark(&mut self, type_code: u8) {
        let (w, b) = (usize::from(type_code / 64), type_code % 64);
        if let Some(x) = self.seen.get_mut(w) {
            *x |= 1 << b;
        }
    }

    fn error(&mut self, type_code: u8, offset: usize, m: Malformation, a: Rfc7606Action) {
        self.errors.push(AttributeError {
            type_code,
            offset,
            malformation: m,
            action: a,
        });
    }
}

/// The flags an attribute must have: (mask, expected value).
enum Category {
    /// Optional clear, Transitive set, Partial clear.
    WellKnown,
    /// Optional and Transitive set; Partial may be either.
    OptionalTransitive,
    /// Optional set, Transitive and Partial clear.
    OptionalNonTransitive,
}

impl Category {
    fn accepts(&self, flags: u8) -> bool {
        let otp = flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE | FLAG_PARTIAL);
        match self {
            Category::WellKnown => otp == FLAG_TRANSITIVE,
            Category::OptionalTransitive => otp & !FLAG_PARTIAL == FLAG_OPTIONAL | FLAG_TRANSITIVE,
            Category::OptionalNonTransitive => otp == FLAG_OPTIONAL,
        }
    }
}

/// For each known attribute: its flag category and the RFC 7606 action when malformed.
fn known(type_code: u8) -> Option<(Category, Rfc7606Action)> {
    use Rfc7606Action::{AttributeDiscard as D, SessionReset as R, TreatAsWithdraw as W};
    Some(match type_code {
        tc::ORIGIN | tc::AS_PATH | tc::NEXT_HOP | tc::LOCAL_PREF => (Category::WellKnown, W),
        tc::ATOMIC_AGGREGATE => (Category::WellKnown, D),
        tc::MULTI_EXIT_DISC | tc::ORIGINATOR_ID | tc::CLUSTER_LIST => {
            (Category::OptionalNonTransitive, W)
        }
        tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI => (Category::OptionalNonTransitive, R),
        tc::COMMUNITIES | tc::EXTENDED_COMMUNITIES | tc::LARGE_COMMUNITY => {
            (Category::OptionalTransitive, W)
        }
        tc::AGGREGATOR | tc::AS4_PATH | tc::AS4_AGGREGATOR => (Category::OptionalTransitive, D),
        _ => return None,
    })
}

fn mp_name(type_code: u8) -> &'static str {
    if type_code == tc::MP_REACH_NLRI {
        "MP_REACH_NLRI"
    } else {
        "MP_UNREACH_NLRI"
    }
}

/// Decodes the path attributes field `buf`, which starts at `base` in the message.
pub(crate) fn decode_attributes(
    buf: &[u8],
    base: usize,
    ctx: &DecodeContext,
) -> Result<AttrBlock, DecodeError> {
    let mut out = AttrBlock::default();
    let mut r = Reader::new(buf, base);
    while !r.is_empty() {
        let at = r.offset();
        let header = r.rest();
        // RFC 7606 §4: too few octets for a header, or a length past the end, is
        // treat-as-withdraw; the NLRI field is still found through the total length.
        let (Some(flags), Some(type_code)) = (r.u8(), r.u8()) else {
            out.error(
                0,
                at,
                Malformation::HeaderTruncated,
                Rfc7606Action::TreatAsWithdraw,
            );
            break;
        };
        let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            r.u16()
        } else {
            r.u8().map(u16::from)
        };
        let Some(len) = len else {
            out.error(
                type_code,
                at,
                Malformation::HeaderTruncated,
                Rfc7606Action::TreatAsWithdraw,
            );
            break;
        };
        let value_at = r.offset();
        let Some(value) = r.take(usize::from(len)) else {
            out.error(
                type_code,
                at,
                Malformation::AttributeOverrun,
                Rfc7606Action::TreatAsWithdraw,
            );
            break;
        };
        let whole = header
            .get(..value_at - at + usize::from(len))
            .unwrap_or_default();
        if out.saw(type_code) {
            if type_code == tc::MP_REACH_NLRI || type_code == tc::MP_UNREACH_NLRI {
                return Err(DecodeError::new(
                    at,
                    DecodeErrorKind::MalformedAttributeList(
                        "MP_REACH_NLRI or MP_UNREACH_NLRI twice",
                    ),
                ));
            }
            out.error(
                type_code,
                at,
                Malformation::Duplicate,
                Rfc7606Action::AttributeDiscard,
            );
            continue;
        }
        out.mark(type_code);
        out.layout.push(type_code, flags);
        let Some((category, action)) = known(type_code) else {
            if flags & FLAG_OPTIONAL == 0 {
                return Err(DecodeError::new(
                    at,
                    DecodeErrorKind::UnrecognizedWellKnownAttribute(type_code),
                )
                .with_data(whole));
            }
            out.attrs.unknown.push(RawAttribute {
                flags: flags & !FLAG_EXTENDED_LENGTH,
                type_code,
                value: value.to_vec(),
            });
            continue;
        };
        let malformed = |m: Malformation| -> Result<Option<Malformation>, DecodeError> {
            if action == Rfc7606Action::SessionReset {
                Err(DecodeError::new(
                    at,
                    DecodeErrorKind::MalformedMpAttribute {
                        attribute: mp_name(type_code),
                        what: "attribute flags or length",
                    },
                )
                .with_data(whole.get(1..).unwrap_or_default()))
            } else {
                Ok(Some(m))
            }
        };
        let problem = if !category.accepts(flags) {
            malformed(Malformation::FlagsConflict { flags })?
        } else {
            decode_one(&mut out, type_code, flags, value, value_at, ctx)?
        };
        if let Some(m) = problem {
            out.error(type_code, at, m, action);
        }
    }
    Ok(out)
}

fn exact(value: &[u8], n: u16) -> Result<(), Malformation> {
    if value.len() == usize::from(n) {
        Ok(())
    } else {
        Err(Malformation::BadLength {
            length: value.len() as u16,
            expected: n,
        })
    }
}

fn multiple(value: &[u8], unit: u16) -> Result<(), Malformation> {
    if !value.is_empty() && value.len().is_multiple_of(usize::from(unit)) {
        Ok(())
    } else {
        Err(Malformation::LengthNotMultiple {
            length: value.len() as u16,
            unit,
        })
    }
}

fn u32_of(value: &[u8]) -> u32 {
    value
        .first_chunk::<4>()
        .map_or(0, |b| u32::from_be_bytes(*b))
}

/// Decodes one known attribute into `out`; a malformation is returned for the caller to
/// record, a session reset is an error.
fn decode_one(
    out: &mut AttrBlock,
    type_code: u8,
    flags: u8,
    value: &[u8],
    value_at: usize,
    ctx: &DecodeContext,
) -> Result<Option<Malformation>, DecodeError> {
    let a = &mut out.attrs;
    let res: Result<(), Malformation> = (|| {
        match type_code {
            tc::ORIGIN => {
                exact(value, 1)?;
                a.origin = Some(match value.first().copied().unwrap_or(255) {
                    0 => Origin::Igp,
                    1 => Origin::Egp,
                    2 => Origin::Incomplete,
                    v => return Err(Malformation::InvalidOrigin(v)),
                });
            }
            tc::AS_PATH => {
                a.as_path =
                    Some(AsPath::decode(value, ctx.four_octet_as).map_err(Malformation::AsPath)?);
            }
            tc::NEXT_HOP => {
                exact(value, 4)?;
                a.next_hop = Some(Ipv4Addr::from(u32_of(value)));
            }
            tc::MULTI_EXIT_DISC => {
                exact(value, 4)?;
                a.med = Some(u32_of(value));
            }
            tc::LOCAL_PREF => {
                exact(value, 4)?;
                a.local_pref = Some(u32_of(value));
            }
            tc::ATOMIC_AGGREGATE => {
                exact(value, 0)?;
                a.atomic_aggregate = true;
            }
            tc::AGGREGATOR => {
                let agg = if ctx.four_octet_as {
                    exact(value, 8)?;
                    let (asn, addr) = value.split_at_checked(4).unwrap_or_default();
                    Aggregator {
                        asn: u32_of(asn),
                        address: Ipv4Addr::from(u32_of(addr)),
                    }
                } else {
                    exact(value, 6)?;
                    let (asn, addr) = value.split_at_checked(2).unwrap_or_default();
                    Aggregator {
                        asn: u32::from(
                            asn.first_chunk::<2>().map_or(0, |b| u16::from_be_bytes(*b)),
                        ),
                        address: Ipv4Addr::from(u32_of(addr)),
                    }
                };
                a.aggregator = Some(agg);
            }
            tc::COMMUNITIES => {
                multiple(value, 4)?;
                let (chunks, _) = value.as_chunks::<4>();
                a.communities = chunks
                    .iter()
                    .map(|c| Community(u32::from_be_bytes(*c)))
                    .collect();
            }
            tc::ORIGINATOR_ID => {
                exact(value, 4)?;
                a.originator_id = Some(Ipv4Addr::from(u32_of(value)));
            }
            tc::CLUSTER_LIST => {
                multiple(value, 4)?;
                let (chunks, _) = value.as_chunks::<4>();
                a.cluster_list = chunks.iter().map(|c| Ipv4Addr::from(*c)).collect();
            }
            tc::EXTENDED_COMMUNITIES => {
                multiple(value, 8)?;
                let (chunks, _) = value.as_chunks::<8>();
                a.extended_communities = chunks.iter().map(|c| ExtendedCommunity(*c)).collect();
            }
            tc::LARGE_COMMUNITY => {
                multiple(value, 12)?;
                let (chunks, _) = value.as_chunks::<12>();
                a.large_communities = chunks
                    .iter()
                    .map(|c| {
                        let (g, rest) = c.split_at(4);
                        let (l1, l2) = rest.split_at(4);
                        LargeCommunity::new(u32_of(g), u32_of(l1), u32_of(l2))
                    })
                    .collect();
            }
            tc::AS4_PATH => {
                if ctx.four_octet_as {
                    return Err(Malformation::FourOctetAsAttributeOnNewSession);
                }
                a.as4_path = Some(AsPath::decode(value, true).map_err(Malformation::AsPath)?);
            }
            tc::AS4_AGGREGATOR => {
                if ctx.four_octet_as {
                    return Err(Malformation::FourOctetAsAttributeOnNewSession);
                }
                exact(value, 8)?;
                let (asn, addr) = value.split_at_checked(4).unwrap_or_default();
                a.as4_aggregator = Some(Aggregator {
                    asn: u32_of(asn),
                    address: Ipv4Addr::from(u32_of(addr)),
                });
            }
            _ => {}
        }
        Ok(())
    })();
    match type_code {
        tc::MP_REACH_NLRI => decode_mp_reach(out, flags, value, value_at, ctx).map(|()| None),
        tc::MP_UNREACH_NLRI => decode_mp_unreach(out, flags, value, value_at, ctx).map(|()| None),
        _ => Ok(res.err()),
    }
}

fn mp_error(type_code: u8, at: usize, what: &'static str, value: &[u8]) -> DecodeError {
    // RFC 4271 §6.3: the data of an Optional Attribute Error is the attribute.
    let mut data = Vec::with_capacity(value.len() + 3);
    data.push(type_code);
    data.extend_from_slice(&(value.len() as u16).to_be_bytes());
    data.extend_from_slice(value);
    DecodeError {
        offset: at,
        kind: DecodeErrorKind::MalformedMpAttribute {
            attribute: mp_name(type_code),
            what,
        },
        data,
    }
}

fn decode_mp_reach(
    out: &mut AttrBlock,
    flags: u8,
    value: &[u8],
    at: usize,
    ctx: &DecodeContext,
) -> Result<(), DecodeError> {
    let err = |off: usize, what| mp_error(tc::MP_REACH_NLRI, at + off, what, value);
    let mut r = Reader::new(value, at);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(err(0, "shorter than its fixed fields"));
    };
    let family = Family::new(afi, safi);
    let Some(nh) = r.take(usize::from(nh_len)) else {
        return Err(err(3, "next hop overruns the attribute"));
    };
    if r.u8().is_none() {
        return Err(err(value.len(), "reserved octet missing"));
    }
    if !family.is_ip() {
        out.other_mp.push(RawAttribute {
            flags: flags & !FLAG_EXTENDED_LENGTH,
            type_code: tc::MP_REACH_NLRI,
            value: value.to_vec(),
        });
        return Ok(());
    }
    let v6_allowed = afi == AFI_IPV6 || ctx.extended_next_hop.contains(family);
    let next_hop = match (nh_len, afi) {
        (4, AFI_IPV4) => NextHop::Ipv4(Ipv4Addr::from(u32_of(nh))),
        (16, _) if v6_allowed => NextHop::Ipv6 {
            global: v6_at(nh, 0),
            link_local: None,
        },
        (32, _) if v6_allowed => NextHop::Ipv6 {
            global: v6_at(nh, 0),
            link_local: Some(v6_at(nh, 16)),
        },
        _ => {
            return Err(err(3, "next hop length inconsistent with the family"));
        }
    };
    let nlri_at = r.offset() - at;
    let mut nlri = Vec::new();
    decode_prefixes(
        r.rest(),
        family.is_ipv6(),
        ctx.add_path.contains(family),
        &mut nlri,
    )
    .map_err(|e| err(nlri_at + e.at, e.what))?;
    out.mp_reach = Some(MpReach {
        family,
        next_hop,
        nlri,
    });
    Ok(())
}

fn v6_at(b: &[u8], off: usize) -> Ipv6Addr {
    b.get(off..off + 16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
        .map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from)
}

fn decode_mp_unreach(
    out: &mut AttrBlock,
    flags: u8,
    value: &[u8],
    at: usize,
    ctx: &DecodeContext,
) -> Result<(), DecodeError> {
    let err = |off: usize, what| mp_error(tc::MP_UNREACH_NLRI, at + off, what, value);
    let mut r = Reader::new(value, at);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(err(0, "shorter than its fixed fields"));
    };
    let family = Family::new(afi, safi);
    if !family.is_ip() {
        out.other_mp.push(RawAttribute {
            flags: flags & !FLAG_EXTENDED_LENGTH,
            type_code: tc::MP_UNREACH_NLRI,
            value: value.to_vec(),
        });
        return Ok(());
    }
    let mut withdrawn = Vec::new();
    decode_prefixes(
        r.rest(),
        family.is_ipv6(),
        ctx.add_path.contains(family),
        &mut withdrawn,
    )
    .map_err(|e| err(3 + e.at, e.what))?;
    out.mp_unreach = Some(MpUnreach { family, withdrawn });
    Ok(())
}
