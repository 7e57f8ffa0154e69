//! The BFD Control packet (RFC 5880 §4.1) and the checks of §6.8.6 that need no session.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Your Discriminator                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Desired Min TX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Required Min RX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |   (A bit set only)
//! ```
//!
//! Intervals are in microseconds on the wire. We implement no authentication (§6.7): a packet
//! with the A bit set is refused, as §6.8.6 says for a session without authentication.

use std::fmt;

use serde::Serialize;

/// The only version there is.
pub const VERSION: u8 = 1;

/// Length of a Control packet without the authentication section.
pub const MIN_LENGTH: usize = 24;

/// Length of a Control packet with the A bit set, at least (Auth Type and Auth Len).
const MIN_LENGTH_AUTH: usize = 26;

/// A session state as the Sta field carries it (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BfdState {
    /// Held down by its own system.
    AdminDown,
    /// Down (or never up).
    Down,
    /// The remote's Down was heard; waiting for the remote to hear us.
    Init,
    /// Both directions work.
    Up,
}

impl BfdState {
    fn from_bits(b: u8) -> BfdState {
        match b & 0b11 {
            0 => BfdState::AdminDown,
            1 => BfdState::Down,
            2 => BfdState::Init,
            _ => BfdState::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            BfdState::AdminDown => 0,
            BfdState::Down => 1,
            BfdState::Init => 2,
            BfdState::Up => 3,
        }
    }

    /// Lower-case name, as FRR's `show bfd peers` writes it.
    pub fn name(self) -> &'static str {
        match self {
            BfdState::AdminDown => "admin-down",
            BfdState::Down => "down",
            BfdState::Init => "init",
            BfdState::Up => "up",
        }
    }
}

impl fmt::Display for BfdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a session last went down (the Diag field, §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Diagnostic {
    /// 0.
    None,
    /// 1: no packet from the remote within the detection time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the remote said Down (or AdminDown).
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: taken down by its own system.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9-31: reserved, kept as received.
    Reserved(u8),
}

impl Diagnostic {
    fn from_bits(b: u8) -> Diagnostic {
        match b & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            n => Diagnostic::Reserved(n),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(n) => n & 0x1f,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::None => f.write_str("no diagnostic"),
            Diagnostic::ControlDetectionTimeExpired => {
                f.write_str("control detection time expired")
            }
            Diagnostic::EchoFunctionFailed => f.write_str("echo function failed"),
            Diagnostic::NeighborSignaledSessionDown => {
                f.write_str("neighbor signaled session down")
            }
            Diagnostic::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diagnostic::PathDown => f.write_str("path down"),
            Diagnostic::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diagnostic::AdministrativelyDown => f.write_str("administratively down"),
            Diagnostic::ReverseConcatenatedPathDown => {
                f.write_str("reverse concatenated path down")
            }
            Diagnostic::Reserved(n) => write!(f, "reserved diagnostic {n}"),
        }
    }
}

/// One BFD Control packet, every field of §4.1 but the authentication section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ControlPacket {
    /// Diag.
    pub diag: Diagnostic,
    /// Sta.
    pub state: BfdState,
    /// P: a Poll Sequence is under way (§6.5).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: BFD does not share fate with the control plane.
    pub control_plane_independent: bool,
    /// D: Demand mode wanted.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discriminator: u32,
    /// Your Discriminator (0 until the remote's is known).
    pub your_discriminator: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval, microseconds (0: no Echo packets, please).
    pub required_min_echo_rx: u32,
}

/// Why a received Control packet is discarded (RFC 5880 §6.8.6, the checks before a session
/// is looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Fewer octets than a Control packet has.
    #[error("{0} octets: a BFD Control packet has at least 24")]
    Short(usize),
    /// The version is not 1.
    #[error("version {0}: only version 1 exists")]
    Version(u8),
    /// The Length field is below the minimum (24, or 26 with the A bit).
    #[error("length field {0} is below the minimum")]
    LengthTooSmall(u8),
    /// The Length field says more than the datagram holds.
    #[error("length field {length} exceeds the {available} octets received")]
    LengthBeyondPayload {
        /// The Length field.
        length: u8,
        /// Octets in the datagram.
        available: usize,
    },
    /// Detect Mult is zero.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// The Multipoint bit is set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator 0")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero but the remote claims Init or Up.
    #[error("your discriminator 0 in state {0}")]
    ZeroYourDiscriminator(BfdState),
    /// The A bit is set: no authentication is configured (and none is implemented).
    #[error("authentication present, but the session uses none")]
    AuthenticationUnsupported,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

impl ControlPacket {
    /// Decodes and checks one datagram's payload. Octets beyond the Length field are ignored.
    pub fn decode(b: &[u8]) -> Result<ControlPacket, PacketError> {
        let short = || PacketError::Short(b.len());
        if b.len() < MIN_LENGTH {
            return Err(short());
        }
        let b0 = *b.first().ok_or_else(short)?;
        let b1 = *b.get(1).ok_or_else(short)?;
        let detect_mult = *b.get(2).ok_or_else(short)?;
        let length = *b.get(3).ok_or_else(short)?;
        let version = b0 >> 5;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let auth = b1 & 0x04 != 0;
        let min = if auth { MIN_LENGTH_AUTH } else { MIN_LENGTH };
        if usize::from(length) < min {
            return Err(PacketError::LengthTooSmall(length));
        }
        if usize::from(length) > b.len() {
            return Err(PacketError::LengthBeyondPayload {
                length,
                available: b.len(),
            });
        }
        if detect_mult == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if b1 & 0x01 != 0 {
            return Err(PacketError::Multipoint);
        }
        let state = BfdState::from_bits(b1 >> 6);
        let my_discriminator = be32(b, 4).ok_or_else(short)?;
        let your_discriminator = be32(b, 8).ok_or_else(short)?;
        if my_discriminator == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        if your_discriminator == 0 && matches!(state, BfdState::Init | BfdState::Up) {
            return Err(PacketError::ZeroYourDiscriminator(state));
        }
        if auth {
            return Err(PacketError::AuthenticationUnsupported);
        }
        Ok(ControlPacket {
            diag: Diagnostic::from_bits(b0),
            state,
            poll: b1 & 0x20 != 0,
            final_: b1 & 0x10 != 0,
            control_plane_independent: b1 & 0x08 != 0,
            demand: b1 & 0x02 != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: be32(b, 12).ok_or_else(short)?,
            required_min_rx: be32(b, 16).ok_or_else(short)?,
            required_min_echo_rx: be32(b, 20).ok_or_else(short)?,
        })
    }

    /// The 24 octets of this packet (version 1, no authentication, M clear).
    pub fn encode(&self) -> [u8; MIN_LENGTH] {
        let mut out = [0u8; MIN_LENGTH];
        let flags = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.demand) << 1);
        let head = [
            (VERSION << 5) | self.diag.bits(),
            flags,
            self.detect_mult,
            MIN_LENGTH as u8,
        ];
        let words = [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx,
            self.required_min_rx,
            self.required_min_echo_rx,
        ];
        for (dst, src) in out.iter_mut().zip(
            head.into_iter()
                .chain(words.into_iter().flat_map(u32::to_be_bytes)),
        ) {
            *dst = src;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::ControlDetectionTimeExpired,
            state: BfdState::Up,
            poll: true,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 0x0a0b_0c0d,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }
    }

    #[test]
    fn a_packet_encodes_to_the_layout_of_section_4_1_and_decodes_back() {
        let p = sample();
        let b = p.encode();
        assert_eq!(
            hex::encode(b),
            "21e0031801020304 0a0b0c0d 000493e0 000493e0 00000000".replace(' ', "")
        );
        assert_eq!(ControlPacket::decode(&b), Ok(p));
    }

    /// Captured with tcpdump in the tor namespace of a lab (FRR 8.4.4 bfdd, `neighbor X bfd`,
    /// against our session): its first packet, its Up with Poll after the handshake, its
    /// answer to our Poll, and a plain Up.
    #[test]
    fn packets_captured_from_frr_bfdd_decode_and_encode_to_the_same_octets() {
        let cases = [
            (
                "204003180569a21300000000000f4240000f42400000c350",
                BfdState::Down,
                false,
                false,
            ),
            (
                "20e00318382cfd607fa35a5d000493e0000493e00000c350",
                BfdState::Up,
                true,
                false,
            ),
            (
                "20d00318382cfd607fa35a5d000493e0000493e00000c350",
                BfdState::Up,
                false,
                true,
            ),
            (
                "20c00318382cfd607fa35a5d000493e0000493e00000c350",
                BfdState::Up,
                false,
                false,
            ),
        ];
        for (hex, state, poll, final_) in cases {
            let b = hex::decode(hex).unwrap();
            let p = ControlPacket::decode(&b).unwrap();
            assert_eq!((p.state, p.poll, p.final_), (state, poll, final_), "{hex}");
            assert_eq!(p.diag, Diagnostic::None);
            assert_eq!(p.detect_mult, 3);
            assert!(!p.control_plane_independent && !p.demand);
            assert_eq!(p.required_min_echo_rx, 50_000, "bfdd offers to loop echoes");
            assert_eq!(hex::encode(p.encode()), hex, "encode gives the same octets");
        }
        let first = ControlPacket::decode(&hex::decode(cases[0].0).unwrap()).unwrap();
        assert_eq!(first.my_discriminator, 0x0569_a213);
        assert_eq!(first.your_discriminator, 0);
        // Slow start: 1 s both ways until Up (RFC 5880 §6.8.3), then 300 ms.
        assert_eq!(
            (first.desired_min_tx, first.required_min_rx),
            (1_000_000, 1_000_000)
        );
        let up = ControlPacket::decode(&hex::decode(cases[3].0).unwrap()).unwrap();
        assert_eq!(up.your_discriminator, 0x7fa3_5a5d);
        assert_eq!((up.desired_min_tx, up.required_min_rx), (300_000, 300_000));
    }

    #[test]
    fn every_flag_and_diagnostic_survives_a_round_trip() {
        for diag in 0..32u8 {
            for flags in 0..32u8 {
                let mut p = sample();
                p.diag = Diagnostic::from_bits(diag);
                p.poll = flags & 1 != 0;
                p.final_ = flags & 2 != 0;
                p.control_plane_independent = flags & 4 != 0;
                p.demand = flags & 8 != 0;
                p.state = BfdState::from_bits(flags >> 3);
                let b = p.encode();
                assert_eq!(
                    ControlPacket::decode(&b),
                    Ok(p),
                    "diag {diag} flags {flags}"
                );
            }
        }
    }

    #[test]
    fn short_and_wrong_version_packets_are_discarded() {
        let b = sample().encode();
        assert_eq!(ControlPacket::decode(&b[..23]), Err(PacketError::Short(23)));
        assert_eq!(ControlPacket::decode(&[]), Err(PacketError::Short(0)));
        let mut v = b;
        v[0] = (2 << 5) | (v[0] & 0x1f);
        assert_eq!(ControlPacket::decode(&v), Err(PacketError::Version(2)));
        let mut v0 = b;
        v0[0] &= 0x1f;
        assert_eq!(ControlPacket::decode(&v0), Err(PacketError::Version(0)));
    }

    #[test]
    fn a_length_field_below_24_or_beyond_the_datagram_is_discarded() {
        let mut b = sample().encode();
        b[3] = 23;
        assert_eq!(
            ControlPacket::decode(&b),
            Err(PacketError::LengthTooSmall(23))
        );
        b[3] = 25;
        assert_eq!(
            ControlPacket::decode(&b),
            Err(PacketError::LengthBeyondPayload {
                length: 25,
                available: 24
            })
        );
    }

    #[test]
    fn trailing_octets_beyond_the_length_field_are_ignored() {
        let mut v = sample().encode().to_vec();
        v.extend_from_slice(&[0xff; 8]);
        assert_eq!(ControlPacket::decode(&v), Ok(sample()));
    }

    #[test]
    fn zero_detect_multiplier_multipoint_and_zero_discriminator_are_discarded() {
        let mut b = sample().encode();
        b[2] = 0;
        assert_eq!(ControlPacket::decode(&b), Err(PacketError::ZeroDetectMult));
        let mut b = sample().encode();
        b[1] |= 0x01;
        assert_eq!(ControlPacket::decode(&b), Err(PacketError::Multipoint));
        let mut p = sample();
        p.my_discriminator = 0;
        assert_eq!(
            ControlPacket::decode(&p.encode()),
            Err(PacketError::ZeroMyDiscriminator)
        );
    }

    #[test]
    fn your_discriminator_zero_is_only_valid_in_down_or_admin_down() {
        for (state, ok) in [
            (BfdState::AdminDown, true),
            (BfdState::Down, true),
            (BfdState::Init, false),
            (BfdState::Up, false),
        ] {
            let mut p = sample();
            p.state = state;
            p.your_discriminator = 0;
            let r = ControlPacket::decode(&p.encode());
            if ok {
                assert_eq!(r, Ok(p));
            } else {
                assert_eq!(r, Err(PacketError::ZeroYourDiscriminator(state)));
            }
        }
    }

    #[test]
    fn a_packet_claiming_authentication_is_refused() {
        // Simple password, key id 1, "secret": 24 + 3 + 6 octets.
        let mut v = sample().encode().to_vec();
        v[1] |= 0x04;
        v[3] = 33;
        v.extend_from_slice(&[1, 9, 1]);
        v.extend_from_slice(b"secret");
        assert_eq!(
            ControlPacket::decode(&v),
            Err(PacketError::AuthenticationUnsupported)
        );
        // A bit with a Length too small even for the auth header.
        let mut b = sample().encode();
        b[1] |= 0x04;
        assert_eq!(
            ControlPacket::decode(&b),
            Err(PacketError::LengthTooSmall(24))
        );
    }
}
