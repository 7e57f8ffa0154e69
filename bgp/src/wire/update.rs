//! UPDATE (RFC 4271 §4.3), End-of-RIB (RFC 4724 §2) and the RFC 7606 outcome of decoding.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! An [`Update`] holds IPv4 unicast prefixes of the classic fields, the attribute set, and
//! the multiprotocol reach/unreach of one other IP family. A decoded UPDATE also reports
//! its malformations ([`Update::errors`]); when one of them asks for treat-as-withdraw,
//! [`Update::withdrawn_routes`] yields every prefix it carried, announced or withdrawn.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::attr::{
    AttrBlock, MpReach, MpUnreach, PathAttributes, RawAttribute, decode_attributes,
    encode_attributes, type_code as tc,
};
use super::context::{DecodeContext, EncodeContext};
use super::error::{
    AttributeError, DecodeError, DecodeErrorKind, EncodeError, Malformation, Rfc7606Action,
};
use super::family::Family;
use super::nlri::{Nlri, decode_prefixes};
use super::reader::Reader;

/// An UPDATE message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes (the classic field).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<Nlri>,
    /// The path attributes, without the multiprotocol ones.
    pub attributes: PathAttributes,
    /// MP_REACH_NLRI of an IP family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI of an IP family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mp_unreach: Option<MpUnreach>,
    /// MP_REACH_NLRI / MP_UNREACH_NLRI of families the codec does not decode, kept raw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_families: Vec<RawAttribute>,
    /// Announced IPv4 unicast routes (the classic field).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nlri: Vec<Nlri>,
    /// Malformations found while decoding (RFC 7606), in order; empty when well formed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<AttributeError>,
    /// The attribute order and flags the sender used, so re-encoding gives its bytes back.
    /// Set by decoding; `None` encodes in canonical order. Not compared by `==`.
    #[serde(skip)]
    pub layout: Option<super::attr::Layout>,
}

impl PartialEq for Update {
    /// Equal when they say the same thing: the attribute order and flags a sender happened
    /// to use are not compared.
    fn eq(&self, o: &Update) -> bool {
        self.withdrawn == o.withdrawn
            && self.attributes == o.attributes
            && self.mp_reach == o.mp_reach
            && self.mp_unreach == o.mp_unreach
            && self.other_families == o.other_families
            && self.nlri == o.nlri
            && self.errors == o.errors
    }
}

impl Eq for Update {}

impl Update {
    /// End-of-RIB for a family: an empty UPDATE for IPv4 unicast, else an UPDATE with only
    /// an empty MP_UNREACH_NLRI (RFC 4724 §2).
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        let mut u = Update::default();
        if family.is_ip() {
            u.mp_unreach = Some(MpUnreach {
                family,
                withdrawn: Vec::new(),
            });
        } else {
            let mut value = family.afi.to_be_bytes().to_vec();
            value.push(family.safi);
            u.other_families.push(RawAttribute {
                flags: super::attr::FLAG_OPTIONAL,
                type_code: tc::MP_UNREACH_NLRI,
                value,
            });
        }
        u
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.attributes != PathAttributes::default()
            || self.mp_reach.is_some()
            || !self.errors.is_empty()
        {
            return None;
        }
        match (&self.mp_unreach, self.other_families.as_slice()) {
            (None, []) => Some(Family::IPV4_UNICAST),
            (Some(m), []) if m.withdrawn.is_empty() => Some(m.family),
            (None, [raw]) if raw.type_code == tc::MP_UNREACH_NLRI && raw.value.len() == 3 => {
                let v = raw.value.as_slice();
                match v {
                    [a, b, safi] => Some(Family::new(u16::from_be_bytes([*a, *b]), *safi)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The strongest RFC 7606 action among the malformations, if any.
    pub fn rfc7606_action(&self) -> Option<Rfc7606Action> {
        self.errors.iter().map(|e| e.action).max()
    }

    /// Whether RFC 7606 asks to handle every prefix of this UPDATE as withdrawn.
    pub fn is_treat_as_withdraw(&self) -> bool {
        self.rfc7606_action() == Some(Rfc7606Action::TreatAsWithdraw)
    }

    /// Attributes that were discarded (RFC 7606 attribute-discard), by type code.
    pub fn discarded_attributes(&self) -> impl Iterator<Item = u8> + '_ {
        self.errors
            .iter()
            .filter(|e| e.action == Rfc7606Action::AttributeDiscard)
            .map(|e| e.type_code)
    }

    /// Routes announced, by family: classic IPv4 unicast then MP_REACH_NLRI. Empty for a
    /// treat-as-withdraw UPDATE.
    pub fn announced_routes(&self) -> impl Iterator<Item = (Family, &Nlri)> {
        let taw = self.is_treat_as_withdraw();
        let classic = self.nlri.iter().map(|n| (Family::IPV4_UNICAST, n));
        let mp = self
            .mp_reach
            .iter()
            .flat_map(|m| m.nlri.iter().map(move |n| (m.family, n)));
        classic.chain(mp).filter(move |_| !taw)
    }

    /// Routes withdrawn, by family; for a treat-as-withdraw UPDATE the announced ones too.
    pub fn withdrawn_routes(&self) -> impl Iterator<Item = (Family, &Nlri)> {
        let taw = self.is_treat_as_withdraw();
        let w = self.withdrawn.iter().map(|n| (Family::IPV4_UNICAST, n));
        let mpu = self
            .mp_unreach
            .iter()
            .flat_map(|m| m.withdrawn.iter().map(move |n| (m.family, n)));
        let n = self
            .nlri
            .iter()
            .map(|n| (Family::IPV4_UNICAST, n))
            .filter(move |_| taw);
        let mpr = self
            .mp_reach
            .iter()
            .flat_map(|m| m.nlri.iter().map(move |n| (m.family, n)))
            .filter(move |_| taw);
        w.chain(mpu).chain(n).chain(mpr)
    }

    pub(crate) fn decode_body(
        body: &[u8],
        base: usize,
        ctx: &DecodeContext,
    ) -> Result<Update, DecodeError> {
        let mut r = Reader::new(body, base);
        let list = |at, what| DecodeError::new(at, DecodeErrorKind::MalformedAttributeList(what));
        let wl_at = r.offset();
        let wlen = r
            .u16()
            .ok_or_else(|| list(wl_at, "withdrawn routes length missing"))?;
        let withdrawn_buf = r
            .sub(usize::from(wlen))
            .ok_or_else(|| list(wl_at, "withdrawn routes overrun the message"))?;
        let al_at = r.offset();
        let alen = r
            .u16()
            .ok_or_else(|| list(al_at, "total path attribute length missing"))?;
        let attrs_buf = r
            .sub(usize::from(alen))
            .ok_or_else(|| list(al_at, "path attributes overrun the message"))?;
        let nlri_at = r.offset();
        let nlri_buf = r.rest();

        let add_path = ctx.add_path.contains(Family::IPV4_UNICAST);
        let net = |start: usize, e: super::nlri::NlriError| {
            DecodeError::new(start + e.at, DecodeErrorKind::InvalidNetworkField(e.what))
        };
        let mut withdrawn = Vec::new();
        decode_prefixes(withdrawn_buf.rest(), false, add_path, &mut withdrawn)
            .map_err(|e| net(withdrawn_buf.offset(), e))?;
        let mut nlri = Vec::new();
        decode_prefixes(nlri_buf, false, add_path, &mut nlri).map_err(|e| net(nlri_at, e))?;
        let AttrBlock {
            attrs,
            mp_reach,
            mp_unreach,
            other_mp,
            mut errors,
            layout,
            seen: _,
        } = decode_attributes(attrs_buf.rest(), attrs_buf.offset(), ctx)?;

        // RFC 7606 §3(d): a missing well-known mandatory attribute is treat-as-withdraw, but
        // only where there is something to announce and no earlier error covers it.
        let announces = !nlri.is_empty() || mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty());
        if announces {
            let reported = |t: u8| errors.iter().any(|e| e.type_code == t);
            let mut missing = Vec::new();
            if attrs.origin.is_none() && !reported(tc::ORIGIN) {
                missing.push(tc::ORIGIN);
            }
            if attrs.as_path.is_none() && !reported(tc::AS_PATH) {
                missing.push(tc::AS_PATH);
            }
            if !nlri.is_empty() && attrs.next_hop.is_none() && !reported(tc::NEXT_HOP) {
                missing.push(tc::NEXT_HOP);
            }
            for t in missing {
                errors.push(AttributeError {
                    type_code: t,
                    offset: attrs_buf.offset(),
                    malformation: Malformation::MissingWellKnown,
                    action: Rfc7606Action::TreatAsWithdraw,
                });
            }
        }
        Ok(Update {
            withdrawn,
            attributes: attrs,
            mp_reach,
            mp_unreach,
            other_families: other_mp,
            nlri,
            errors,
            layout: Some(layout),
        })
    }

    pub(crate) fn encode_body(
        &self,
        ctx: &EncodeContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let add_path = ctx.add_path.contains(Family::IPV4_UNICAST);
        let wpos = out.len();
        out.put_u16(0);
        for n in &self.withdrawn {
            n.encode(add_path, out);
        }
        patch_len(out, wpos, "withdrawn routes")?;
        let apos = out.len();
        out.put_u16(0);
        encode_attributes(
            &self.attributes,
            self.mp_reach.as_ref(),
            self.mp_unreach.as_ref(),
            &self.other_families,
            self.layout.as_ref(),
            ctx,
            out,
        )?;
        patch_len(out, apos, "path attributes")?;
        for n in &self.nlri {
            n.encode(add_path, out);
        }
        Ok(())
    }
}

/// Writes the length of what follows the 2-octet field at `pos`.
pub(crate) fn patch_len(
    out: &mut BytesMut,
    pos: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    let len = out.len() - pos - 2;
    let len = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong(what))?;
    if let Some(slot) = out.get_mut(pos..pos + 2) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}
