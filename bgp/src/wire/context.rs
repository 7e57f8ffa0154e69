//! What a session negotiated in its OPEN exchange, in the form the codec needs.
//!
//! Decoding and encoding depend on the capabilities both sides offered: 2- or 4-octet AS
//! numbers in AS_PATH and AGGREGATOR, which families carry add-path identifiers in each
//! direction, which families may carry an IPv6 next hop for IPv4 NLRI, and the largest
//! message. [`Negotiated::from_opens`] computes it once after the OPEN exchange; the two
//! contexts are small `Copy` values handed to every decode and encode.

use serde::Serialize;

use super::family::{AFI_IPV6, Family, FamilySet};
use super::open::{Capability, Open};

/// Largest message without the extended message capability (RFC 4271).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with extended message (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// What the decoder must know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct DecodeContext {
    /// Both sides offered 4-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// Families whose NLRI the peer sends with path identifiers (we receive, it sends).
    pub add_path: FamilySet,
    /// Families whose NLRI may come with an IPv6 next hop (RFC 8950).
    pub extended_next_hop: FamilySet,
    /// Messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
    /// Families both sides offered.
    pub families: FamilySet,
}

/// What the encoder must know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct EncodeContext {
    /// Both sides offered 4-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// Families whose NLRI we send with path identifiers (we send, the peer receives).
    pub add_path: FamilySet,
    /// Families whose NLRI we may send with an IPv6 next hop (RFC 8950).
    pub extended_next_hop: FamilySet,
    /// Messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
    /// Families both sides offered.
    pub families: FamilySet,
}

impl Default for DecodeContext {
    /// A session before its OPEN exchange: RFC 4271 only (2-octet AS, IPv4 unicast, 4096).
    fn default() -> Self {
        DecodeContext {
            four_octet_as: false,
            add_path: FamilySet::EMPTY,
            extended_next_hop: FamilySet::EMPTY,
            extended_message: false,
            families: FamilySet::of(&[Family::IPV4_UNICAST]),
        }
    }
}

impl Default for EncodeContext {
    /// A session before its OPEN exchange: RFC 4271 only (2-octet AS, IPv4 unicast, 4096).
    fn default() -> Self {
        DecodeContext::default().mirror()
    }
}

impl DecodeContext {
    /// The most permissive context: 4-octet AS, extended next hop and extended message for
    /// every family, no add-path. For tools that see messages without their OPENs.
    pub fn permissive() -> DecodeContext {
        DecodeContext {
            four_octet_as: true,
            add_path: FamilySet::EMPTY,
            extended_next_hop: FamilySet::ALL,
            extended_message: true,
            families: FamilySet::ALL,
        }
    }

    /// Largest acceptable message.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    /// The encode context with the same settings (what the peer would use to send to us).
    pub fn mirror(&self) -> EncodeContext {
        EncodeContext {
            four_octet_as: self.four_octet_as,
            add_path: self.add_path,
            extended_next_hop: self.extended_next_hop,
            extended_message: self.extended_message,
            families: self.families,
        }
    }
}

impl EncodeContext {
    /// Largest message we may send.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    /// The decode context with the same settings (what the peer uses to read what we send).
    pub fn mirror(&self) -> DecodeContext {
        DecodeContext {
            four_octet_as: self.four_octet_as,
            add_path: self.add_path,
            extended_next_hop: self.extended_next_hop,
            extended_message: self.extended_message,
            families: self.families,
        }
    }
}

/// Both directions of a session, from its two OPENs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Negotiated {
    /// For messages from the peer.
    pub decode: DecodeContext,
    /// For messages to the peer.
    pub encode: EncodeContext,
}

impl Negotiated {
    /// What `ours` and `theirs` agree on. A side offering no multiprotocol capability offers
    /// IPv4 unicast alone (RFC 4760 §8).
    pub fn from_opens(ours: &Open, theirs: &Open) -> Negotiated {
        let four = ours.four_octet_as().is_some() && theirs.four_octet_as().is_some();
        let ext_msg = ours.has_capability(super::open::code::EXTENDED_MESSAGE)
            && theirs.has_capability(super::open::code::EXTENDED_MESSAGE);
        let families = offered_families(ours).intersection(offered_families(theirs));
        let (our_rx, our_tx) = add_path_sets(ours);
        let (their_rx, their_tx) = add_path_sets(theirs);
        // RFC 8950 §4: a speaker may send IPv6 next hops for IPv4 NLRI when the *receiver*
        // advertised the capability; what the sender advertised does not matter.
        let enh_rx = ext_next_hop_set(ours).intersection(families);
        let enh_tx = ext_next_hop_set(theirs).intersection(families);
        Negotiated {
            decode: DecodeContext {
                four_octet_as: four,
                add_path: our_rx.intersection(their_tx).intersection(families),
                extended_next_hop: enh_rx,
                extended_message: ext_msg,
                families,
            },
            encode: EncodeContext {
                four_octet_as: four,
                add_path: our_tx.intersection(their_rx).intersection(families),
                extended_next_hop: enh_tx,
                extended_message: ext_msg,
                families,
            },
        }
    }
}

fn offered_families(open: &Open) -> FamilySet {
    let mut set = FamilySet::EMPTY;
    let mut any = false;
    for f in open.multiprotocol() {
        any = true;
        set.insert(f);
    }
    if !any {
        set.insert(Family::IPV4_UNICAST);
    }
    set
}

/// (families it can receive multiple paths for, families it can send them for).
fn add_path_sets(open: &Open) -> (FamilySet, FamilySet) {
    let (mut rx, mut tx) = (FamilySet::EMPTY, FamilySet::EMPTY);
    for c in open.capabilities() {
        if let Capability::AddPath(entries) = c {
            for e in entries {
                if e.can_receive() {
                    rx.insert(e.family);
                }
                if e.can_send() {
                    tx.insert(e.family);
                }
            }
        }
    }
    (rx, tx)
}

fn ext_next_hop_set(open: &Open) -> FamilySet {
    let mut set = FamilySet::EMPTY;
    for c in open.capabilities() {
        if let Capability::ExtendedNextHop(entries) = c {
            for e in entries {
                if e.next_hop_afi == AFI_IPV6
                    && let Ok(safi) = u8::try_from(e.safi)
                {
                    set.insert(Family::new(e.afi, safi));
                }
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::wire::open::{AddPathEntry, ExtendedNextHopEntry};

    fn open(caps: Vec<Capability>) -> Open {
        Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), caps)
    }

    #[test]
    fn add_path_is_directional() {
        let ours = open(vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::AddPath(vec![AddPathEntry {
                family: Family::IPV4_UNICAST,
                send_receive: 1,
            }]),
        ]);
        let theirs = open(vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::AddPath(vec![AddPathEntry {
                family: Family::IPV4_UNICAST,
                send_receive: 3,
            }]),
        ]);
        let n = Negotiated::from_opens(&ours, &theirs);
        assert!(n.decode.add_path.contains(Family::IPV4_UNICAST));
        assert!(!n.encode.add_path.contains(Family::IPV4_UNICAST));
    }

    #[test]
    fn open_without_multiprotocol_means_ipv4_unicast_only() {
        let ours = open(vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::FourOctetAs(65001),
            Capability::ExtendedMessage,
        ]);
        let theirs = open(vec![Capability::ExtendedMessage]);
        let n = Negotiated::from_opens(&ours, &theirs);
        assert_eq!(n.decode.families, FamilySet::of(&[Family::IPV4_UNICAST]));
        assert!(!n.decode.four_octet_as);
        assert!(n.decode.extended_message);
        assert_eq!(n.encode.max_message_len(), 65535);
    }

    #[test]
    fn extended_next_hop_follows_the_receivers_capability() {
        let enh = Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
            afi: 1,
            safi: 1,
            next_hop_afi: 2,
        }]);
        let ours = open(vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            enh.clone(),
        ]);
        let theirs = open(vec![Capability::Multiprotocol(Family::IPV4_UNICAST)]);
        let n = Negotiated::from_opens(&ours, &theirs);
        // We may not send them (the peer did not say it can receive them)...
        assert!(n.encode.extended_next_hop.is_empty());
        // ...but we said we can, so the peer may send them to us.
        assert!(n.decode.extended_next_hop.contains(Family::IPV4_UNICAST));
        let theirs = open(vec![Capability::Multiprotocol(Family::IPV4_UNICAST), enh]);
        assert!(
            Negotiated::from_opens(&ours, &theirs)
                .decode
                .extended_next_hop
                .contains(Family::IPV4_UNICAST)
        );
    }
}
