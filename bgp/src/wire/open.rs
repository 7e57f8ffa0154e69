//! OPEN (RFC 4271 §4.2) and its capabilities (RFC 5492), with the extended optional
//! parameters length of RFC 9072.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The only optional parameter in use is Capabilities (type 2). Implementations differ in
//! how they group capabilities into parameters (FRR and GoBGP one per parameter, BIRD all in
//! one), so [`Open::parameters`] keeps the grouping and re-encoding gives back the same
//! bytes. Capabilities this code does not know are kept as raw bytes.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::error::{DecodeError, DecodeErrorKind};
use super::family::Family;
use super::notification::hex_string;
use super::reader::Reader;

/// The AS number a 4-octet speaker puts in 2-octet fields (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// Optional parameter type of capabilities.
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: the first parameter type that announces the extended format.
const PARAM_EXTENDED: u8 = 255;

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// Multiprotocol Extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route Refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Extended Next Hop Encoding (RFC 8950).
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// Extended Message (RFC 8654).
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// BGP Role (RFC 9234).
    pub const ROLE: u8 = 9;
    /// Graceful Restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// Support for 4-octet AS numbers (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
    /// ADD-PATH (RFC 7911).
    pub const ADD_PATH: u8 = 69;
    /// Enhanced Route Refresh (RFC 7313).
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// FQDN (draft-walton-bgp-hostname-capability).
    pub const FQDN: u8 = 73;
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Open {
    /// BGP version; always 4 once decoded.
    pub version: u8,
    /// My Autonomous System: the 2-octet AS, or [`AS_TRANS`] for a 4-octet one.
    pub my_as: u16,
    /// Proposed hold time in seconds (0 or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, grouped as in the optional parameters that carried them.
    pub parameters: Vec<Vec<Capability>>,
}

impl Open {
    /// An OPEN for `asn` (AS_TRANS in My AS when it needs 4 octets) with all capabilities in
    /// one optional parameter. Add [`Capability::FourOctetAs`] yourself: whether to offer it
    /// is the speaker's choice.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            parameters: if capabilities.is_empty() {
                Vec::new()
            } else {
                vec![capabilities]
            },
        }
    }

    /// Every capability, in order.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.parameters.iter().flatten()
    }

    /// The sender's AS: the 4-octet capability's when present, else My AS.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The AS of the 4-octet AS capability, when offered.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// Families of the multiprotocol capabilities.
    pub fn multiprotocol(&self) -> impl Iterator<Item = Family> + '_ {
        self.capabilities().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }

    /// Whether a capability with this code was offered.
    pub fn has_capability(&self, code: u8) -> bool {
        self.capabilities().any(|c| c.code() == code)
    }

    pub(crate) fn decode_body(body: &[u8], base: usize) -> Result<Open, DecodeError> {
        let mut r = Reader::new(body, base);
        let short = |r: &Reader<'_>| {
            DecodeError::new(r.offset(), DecodeErrorKind::MalformedOpen("OPEN too short"))
        };
        let version = r.u8().ok_or_else(|| short(&r))?;
        if version != 4 {
            return Err(
                DecodeError::new(base, DecodeErrorKind::UnsupportedVersion(version))
                    .with_data(&[0, 4]),
            );
        }
        let my_as = r.u16().ok_or_else(|| short(&r))?;
        let hold_at = r.offset();
        let hold_time = r.u16().ok_or_else(|| short(&r))?;
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::new(
                hold_at,
                DecodeErrorKind::UnacceptableHoldTime(hold_time),
            ));
        }
        let id_at = r.offset();
        let id = r.u32().ok_or_else(|| short(&r))?;
        if id == 0 {
            return Err(DecodeError::new(id_at, DecodeErrorKind::BadBgpIdentifier));
        }
        let len_at = r.offset();
        let opt_len = r.u8().ok_or_else(|| short(&r))?;
        let extended = opt_len != 0 && r.peek_u8() == Some(PARAM_EXTENDED);
        let params_len = if extended {
            r.u8();
            r.u16().ok_or_else(|| short(&r))?
        } else {
            u16::from(opt_len)
        };
        let mut params = r.sub(usize::from(params_len)).ok_or_else(|| {
            DecodeError::new(
                len_at,
                DecodeErrorKind::MalformedOpen("optional parameters overrun the message"),
            )
        })?;
        if !r.is_empty() {
            return Err(DecodeError::new(
                r.offset(),
                DecodeErrorKind::MalformedOpen("octets after the optional parameters"),
            ));
        }
        let mut parameters = Vec::new();
        while !params.is_empty() {
            let at = params.offset();
            let truncated = || {
                DecodeError::new(
                    at,
                    DecodeErrorKind::MalformedOpen("optional parameter truncated"),
                )
            };
            let ptype = params.u8().ok_or_else(truncated)?;
            let plen = if extended {
                params.u16().ok_or_else(truncated)?
            } else {
                params.u8().map(u16::from).ok_or_else(truncated)?
            };
            let value = params.sub(usize::from(plen)).ok_or_else(truncated)?;
            if ptype != PARAM_CAPABILITIES {
                return Err(DecodeError::new(
                    at,
                    DecodeErrorKind::UnsupportedOptionalParameter(ptype),
                )
                .with_data(&[ptype]));
            }
            parameters.push(decode_capabilities(value)?);
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            parameters,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.version);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        let mut values = Vec::with_capacity(self.parameters.len());
        for group in &self.parameters {
            let mut v = BytesMut::new();
            for c in group {
                c.encode(&mut v);
            }
            values.push(v);
        }
        let total: usize = values.iter().map(|v| 2 + v.len()).sum();
        let extended = total > 255 || values.iter().any(|v| v.len() > 255);
        if extended {
            out.put_u8(255);
            out.put_u8(PARAM_EXTENDED);
            let total: usize = values.iter().map(|v| 3 + v.len()).sum();
            out.put_u16(u16::try_from(total).unwrap_or(u16::MAX));
            for v in &values {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u16(u16::try_from(v.len()).unwrap_or(u16::MAX));
                out.put_slice(v);
            }
        } else {
            out.put_u8(total as u8);
            for v in &values {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u8(v.len() as u8);
                out.put_slice(v);
            }
        }
    }
}

/// One capability (RFC 5492: code, length, value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "capability", content = "value")]
pub enum Capability {
    /// 1: a family the sender can exchange (RFC 4760).
    Multiprotocol(Family),
    /// 2: ROUTE-REFRESH (RFC 2918).
    RouteRefresh,
    /// 5: families whose NLRI may come with a next hop of another AFI (RFC 8950).
    ExtendedNextHop(Vec<ExtendedNextHopEntry>),
    /// 6: messages up to 65535 octets (RFC 8654).
    ExtendedMessage,
    /// 9: BGP role (RFC 9234).
    Role(u8),
    /// 64: graceful restart (RFC 4724, RFC 8538).
    GracefulRestart(GracefulRestart),
    /// 65: the sender's 4-octet AS (RFC 6793).
    FourOctetAs(u32),
    /// 69: add-path per family (RFC 7911).
    AddPath(Vec<AddPathEntry>),
    /// 70: enhanced route refresh (RFC 7313).
    EnhancedRouteRefresh,
    /// 73: host and domain name.
    Fqdn {
        /// Host name.
        hostname: String,
        /// Domain name.
        domain: String,
    },
    /// Anything else, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Value, hex in JSON.
        #[serde(serialize_with = "ser_hex")]
        value: Vec<u8>,
    },
}

fn ser_hex<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&hex_string(v))
}

/// One family of the extended next hop capability (RFC 8950).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ExtendedNextHopEntry {
    /// NLRI AFI.
    pub afi: u16,
    /// NLRI SAFI (two octets in this capability).
    pub safi: u16,
    /// AFI of the next hop it may carry.
    pub next_hop_afi: u16,
}

/// Graceful restart (RFC 4724) with the N bit of RFC 8538.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GracefulRestart {
    /// R: the sender has restarted.
    pub restart_state: bool,
    /// N: the sender supports graceful restart for NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families, each with its flags octet (bit 0x80: forwarding state preserved).
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of [`GracefulRestart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// F: forwarding state was preserved.
    pub forwarding_preserved: bool,
}

/// One family of the add-path capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AddPathEntry {
    /// The family.
    pub family: Family,
    /// Send/Receive: 1 receive, 2 send, 3 both.
    pub send_receive: u8,
}

impl AddPathEntry {
    /// The sender is able to receive multiple paths.
    pub fn can_receive(&self) -> bool {
        self.send_receive & 1 != 0
    }

    /// The sender is able to send multiple paths.
    pub fn can_send(&self) -> bool {
        self.send_receive & 2 != 0
    }
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::Role(_) => code::ROLE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::Fqdn { .. } => code::FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        let mut v = BytesMut::new();
        match self {
            Capability::Multiprotocol(f) => {
                v.put_u16(f.afi);
                v.put_u8(0);
                v.put_u8(f.safi);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(entries) => {
                for e in entries {
                    v.put_u16(e.afi);
                    v.put_u16(e.safi);
                    v.put_u16(e.next_hop_afi);
                }
            }
            Capability::Role(r) => v.put_u8(*r),
            Capability::GracefulRestart(gr) => {
                let mut head = gr.restart_time & 0x0fff;
                if gr.restart_state {
                    head |= 0x8000;
                }
                if gr.notification {
                    head |= 0x4000;
                }
                v.put_u16(head);
                for f in &gr.families {
                    v.put_u16(f.family.afi);
                    v.put_u8(f.family.safi);
                    v.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Capability::FourOctetAs(a) => v.put_u32(*a),
            Capability::AddPath(entries) => {
                for e in entries {
                    v.put_u16(e.family.afi);
                    v.put_u8(e.family.safi);
                    v.put_u8(e.send_receive);
                }
            }
            Capability::Fqdn { hostname, domain } => {
                for s in [hostname, domain] {
                    let b = s.as_bytes();
                    let b = b.get(..b.len().min(255)).unwrap_or_default();
                    v.put_u8(b.len() as u8);
                    v.put_slice(b);
                }
            }
            Capability::Unknown { value, .. } => v.put_slice(value),
        }
        out.put_u8(self.code());
        out.put_u8(u8::try_from(v.len()).unwrap_or(u8::MAX));
        out.put_slice(v.get(..v.len().min(255)).unwrap_or_default());
    }
}

fn decode_capabilities(mut r: Reader<'_>) -> Result<Vec<Capability>, DecodeError> {
    let mut caps = Vec::new();
    while !r.is_empty() {
        let at = r.offset();
        let err = |what| DecodeError::new(at, DecodeErrorKind::MalformedOpen(what));
        let code = r.u8().ok_or_else(|| err("capability truncated"))?;
        let len = r.u8().ok_or_else(|| err("capability truncated"))?;
        let value = r
            .take(usize::from(len))
            .ok_or_else(|| err("capability overruns its parameter"))?;
        caps.push(
            decode_capability(code, value).ok_or_else(|| {
                err("capability value has the wrong length").with_data(&[code, len])
            })?,
        );
    }
    Ok(caps)
}

/// One capability's value; `None` when its length is wrong for its code.
fn decode_capability(code: u8, value: &[u8]) -> Option<Capability> {
    let mut r = Reader::new(value, 0);
    let exact = |n: usize| value.len() == n;
    let cap = match code {
        code::MULTIPROTOCOL if exact(4) => {
            let afi = r.u16()?;
            r.u8()?;
            Capability::Multiprotocol(Family::new(afi, r.u8()?))
        }
        code::ROUTE_REFRESH if exact(0) => Capability::RouteRefresh,
        code::EXTENDED_MESSAGE if exact(0) => Capability::ExtendedMessage,
        code::ENHANCED_ROUTE_REFRESH if exact(0) => Capability::EnhancedRouteRefresh,
        code::ROLE if exact(1) => Capability::Role(r.u8()?),
        code::FOUR_OCTET_AS if exact(4) => Capability::FourOctetAs(r.u32()?),
        code::EXTENDED_NEXT_HOP if value.len().is_multiple_of(6) => {
            let mut entries = Vec::with_capacity(value.len() / 6);
            while !r.is_empty() {
                entries.push(ExtendedNextHopEntry {
                    afi: r.u16()?,
                    safi: r.u16()?,
                    next_hop_afi: r.u16()?,
                });
            }
            Capability::ExtendedNextHop(entries)
        }
        code::GRACEFUL_RESTART if value.len() >= 2 && (value.len() - 2).is_multiple_of(4) => {
            let head = r.u16()?;
            let mut families = Vec::with_capacity((value.len() - 2) / 4);
            while !r.is_empty() {
                let afi = r.u16()?;
                let safi = r.u8()?;
                let flags = r.u8()?;
                families.push(GracefulRestartFamily {
                    family: Family::new(afi, safi),
                    forwarding_preserved: flags & 0x80 != 0,
                });
            }
            Capability::GracefulRestart(GracefulRestart {
                restart_state: head & 0x8000 != 0,
                notification: head & 0x4000 != 0,
                restart_time: head & 0x0fff,
                families,
            })
        }
        code::ADD_PATH if value.len().is_multiple_of(4) => {
            let mut entries = Vec::with_capacity(value.len() / 4);
            while !r.is_empty() {
                let afi = r.u16()?;
                let safi = r.u8()?;
                entries.push(AddPathEntry {
                    family: Family::new(afi, safi),
                    send_receive: r.u8()?,
                });
            }
            Capability::AddPath(entries)
        }
        code::FQDN => {
            let fqdn = (|| {
                let hl = r.u8()?;
                let hostname = std::str::from_utf8(r.take(usize::from(hl))?).ok()?;
                let dl = r.u8()?;
                let domain = std::str::from_utf8(r.take(usize::from(dl))?).ok()?;
                r.is_empty().then(|| Capability::Fqdn {
                    hostname: hostname.to_owned(),
                    domain: domain.to_owned(),
                })
            })();
            // A name that is not UTF-8 (or lengths that do not add up) is kept raw.
            fqdn.unwrap_or_else(|| Capability::Unknown {
                code,
                value: value.to_vec(),
            })
        }
        code::MULTIPROTOCOL
        | code::ROUTE_REFRESH
        | code::EXTENDED_MESSAGE
        | code::ENHANCED_ROUTE_REFRESH
        | code::ROLE
        | code::FOUR_OCTET_AS
        | code::EXTENDED_NEXT_HOP
        | code::GRACEFUL_RESTART
        | code::ADD_PATH => return None,
        _ => Capability::Unknown {
            code,
            value: value.to_vec(),
        },
    };
    Some(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Open {
        Open {
            version: 4,
            my_as: AS_TRANS,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(10, 0, 0, 1),
            parameters: vec![
                vec![Capability::Multiprotocol(Family::IPV4_UNICAST)],
                vec![
                    Capability::RouteRefresh,
                    Capability::FourOctetAs(4_200_000_001),
                    Capability::AddPath(vec![AddPathEntry {
                        family: Family::IPV6_UNICAST,
                        send_receive: 3,
                    }]),
                    Capability::GracefulRestart(GracefulRestart {
                        restart_state: true,
                        notification: true,
                        restart_time: 120,
                        families: vec![GracefulRestartFamily {
                            family: Family::IPV4_UNICAST,
                            forwarding_preserved: true,
                        }],
                    }),
                    Capability::Fqdn {
                        hostname: "tor".into(),
                        domain: String::new(),
                    },
                    Capability::Unknown {
                        code: 128,
                        value: vec![],
                    },
                ],
            ],
        }
    }

    fn round_trip(o: &Open) -> Open {
        let mut b = BytesMut::new();
        o.encode_body(&mut b);
        Open::decode_body(&b, 19).unwrap()
    }

    #[test]
    fn open_with_many_capabilities_round_trips_with_its_grouping() {
        let o = sample();
        assert_eq!(round_trip(&o), o);
        assert_eq!(o.asn(), 4_200_000_001);
    }

    #[test]
    fn open_with_two_byte_peer_as_reports_my_as() {
        let o = Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), vec![]);
        assert_eq!(o.asn(), 65001);
        assert_eq!(
            Open::new(4_200_000_000, 90, o.bgp_id, vec![]).my_as,
            AS_TRANS
        );
    }

    #[test]
    fn open_with_more_than_255_octets_of_parameters_uses_the_extended_format() {
        let mut o = sample();
        o.parameters.push(vec![Capability::Unknown {
            code: 200,
            value: vec![7; 250],
        }]);
        let mut b = BytesMut::new();
        o.encode_body(&mut b);
        assert_eq!(&b[9..11], &[255, 255]);
        assert_eq!(round_trip(&o), o);
    }

    #[test]
    fn open_errors_carry_their_notification() {
        let mut b = BytesMut::new();
        sample().encode_body(&mut b);
        let mut bad = b.to_vec();
        bad[0] = 3;
        let e = Open::decode_body(&bad, 19).unwrap_err();
        assert_eq!(e.notification().subcode, 1);
        assert_eq!(e.data, vec![0, 4]);
        let mut bad = b.to_vec();
        bad[3..5].copy_from_slice(&[0, 2]);
        let e = Open::decode_body(&bad, 19).unwrap_err();
        assert_eq!((e.offset, e.kind.code_subcode().1), (22, 6));
        let mut bad = b.to_vec();
        bad[5..9].copy_from_slice(&[0; 4]);
        assert_eq!(
            Open::decode_body(&bad, 19).unwrap_err().kind,
            DecodeErrorKind::BadBgpIdentifier
        );
        let mut bad = b.to_vec();
        bad[10] = 1; // first parameter type: authentication (deprecated)
        let e = Open::decode_body(&bad, 19).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnsupportedOptionalParameter(1));
        let mut bad = b.to_vec();
        bad.truncate(bad.len() - 1);
        assert!(Open::decode_body(&bad, 19).is_err());
    }

    #[test]
    fn four_octet_as_capability_of_wrong_length_is_malformed() {
        // version 4, AS 1, hold 90, id 1.1.1.1, one parameter with capability 65 of 2 octets.
        let body = [4, 0, 1, 0, 90, 1, 1, 1, 1, 6, 2, 4, 65, 2, 0, 1];
        let e = Open::decode_body(&body, 19).unwrap_err();
        assert!(matches!(e.kind, DecodeErrorKind::MalformedOpen(_)));
        assert_eq!(e.offset, 19 + 12);
    }
}
