//! What can go wrong while decoding and encoding, and what RFC 4271 and RFC 7606 say to do
//! about it.
//!
//! Decoding has two outcomes for a bad message. A [`DecodeError`] is "session reset": the
//! message cannot be used at all, and the error carries the NOTIFICATION to send (code,
//! subcode, data) and the offset of the offending byte. Lesser UPDATE malformations do not
//! fail the decode: the [`Update`](super::Update) comes back with one [`AttributeError`] per
//! malformation, each saying whether RFC 7606 asks to treat the UPDATE as a withdrawal of
//! all its prefixes or just to discard the attribute.

use serde::Serialize;

use super::notification::{self, ErrorCode, Notification};

/// The three approaches of RFC 7606 §2, strongest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rfc7606Action {
    /// Drop the malformed attribute, keep processing the UPDATE.
    AttributeDiscard,
    /// Handle every prefix of the UPDATE (announced or withdrawn) as withdrawn.
    TreatAsWithdraw,
    /// Send a NOTIFICATION and close the session.
    SessionReset,
}

/// A message that cannot be used: the session must be reset with [`DecodeError::notification`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
pub struct DecodeError {
    /// Offset of the offending byte from the start of the message (its first marker byte).
    pub offset: usize,
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// The NOTIFICATION's data field, as the RFC for this error prescribes.
    pub data: Vec<u8>,
}

impl DecodeError {
    pub(crate) fn new(offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset,
            kind,
            data: Vec::new(),
        }
    }

    pub(crate) fn with_data(mut self, data: &[u8]) -> DecodeError {
        // Bounded by the message it comes from (at most 65535 octets).
        self.data = data.to_vec();
        self
    }

    /// Always [`Rfc7606Action::SessionReset`]: lesser errors are reported on the UPDATE.
    pub fn action(&self) -> Rfc7606Action {
        Rfc7606Action::SessionReset
    }

    /// The NOTIFICATION to send before closing the session.
    pub fn notification(&self) -> Notification {
        let (code, subcode) = self.kind.code_subcode();
        Notification::new(code, subcode, self.data.clone())
    }
}

/// What made a message unusable, each with the NOTIFICATION code and subcode it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// 1/1: the 16-octet marker is not all ones.
    #[error("marker is not all ones")]
    ConnectionNotSynchronized,
    /// 1/2: the header's length is out of range for the message type or the session, or
    /// differs from the bytes given.
    #[error("bad message length {length}")]
    BadMessageLength {
        /// The length field.
        length: u16,
    },
    /// 1/3: unknown message type.
    #[error("unknown message type {0}")]
    BadMessageType(u8),
    /// 2/1: version other than 4.
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    /// 2/3: BGP identifier zero (RFC 6286).
    #[error("BGP identifier is 0.0.0.0")]
    BadBgpIdentifier,
    /// 2/6: hold time 1 or 2 seconds.
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// 2/4: an optional parameter other than capabilities.
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// 2/0: optional parameters or a capability whose lengths do not add up.
    #[error("malformed OPEN: {0}")]
    MalformedOpen(&'static str),
    /// 3/1: withdrawn routes or path attributes overrun the UPDATE, or MP_REACH_NLRI /
    /// MP_UNREACH_NLRI appear twice.
    #[error("malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    /// 3/2: a well-known attribute this speaker does not know.
    #[error("unrecognized well-known attribute type {0}")]
    UnrecognizedWellKnownAttribute(u8),
    /// 3/10: the withdrawn routes or NLRI field cannot be parsed (RFC 7606 §5.3).
    #[error("invalid network field: {0}")]
    InvalidNetworkField(&'static str),
    /// 3/9: MP_REACH_NLRI or MP_UNREACH_NLRI is malformed (RFC 7606 §7.11, §5.3).
    #[error("malformed {attribute}: {what}")]
    MalformedMpAttribute {
        /// `MP_REACH_NLRI` or `MP_UNREACH_NLRI`.
        attribute: &'static str,
        /// What was wrong.
        what: &'static str,
    },
    /// 7/1: a ROUTE-REFRESH whose length is not 23 (RFC 7313).
    #[error("ROUTE-REFRESH of invalid length {0}")]
    RouteRefreshLength(u16),
}

impl DecodeErrorKind {
    /// The NOTIFICATION code and subcode.
    pub fn code_subcode(&self) -> (ErrorCode, u8) {
        use DecodeErrorKind as K;
        use notification::{header, open, update};
        match self {
            K::ConnectionNotSynchronized => (
                ErrorCode::MessageHeader,
                header::CONNECTION_NOT_SYNCHRONIZED,
            ),
            K::BadMessageLength { .. } => (ErrorCode::MessageHeader, header::BAD_MESSAGE_LENGTH),
            K::BadMessageType(_) => (ErrorCode::MessageHeader, header::BAD_MESSAGE_TYPE),
            K::UnsupportedVersion(_) => (ErrorCode::OpenMessage, open::UNSUPPORTED_VERSION_NUMBER),
            K::BadBgpIdentifier => (ErrorCode::OpenMessage, open::BAD_BGP_IDENTIFIER),
            K::UnacceptableHoldTime(_) => (ErrorCode::OpenMessage, open::UNACCEPTABLE_HOLD_TIME),
            K::UnsupportedOptionalParameter(_) => {
                (ErrorCode::OpenMessage, open::UNSUPPORTED_OPTIONAL_PARAMETER)
            }
            K::MalformedOpen(_) => (ErrorCode::OpenMessage, 0),
            K::MalformedAttributeList(_) => {
                (ErrorCode::UpdateMessage, update::MALFORMED_ATTRIBUTE_LIST)
            }
            K::UnrecognizedWellKnownAttribute(_) => (
                ErrorCode::UpdateMessage,
                update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            ),
            K::InvalidNetworkField(_) => (ErrorCode::UpdateMessage, update::INVALID_NETWORK_FIELD),
            K::MalformedMpAttribute { .. } => {
                (ErrorCode::UpdateMessage, update::OPTIONAL_ATTRIBUTE_ERROR)
            }
            K::RouteRefreshLength(_) => (
                ErrorCode::RouteRefreshMessage,
                notification::route_refresh::INVALID_MESSAGE_LENGTH,
            ),
        }
    }
}

/// One malformed attribute of an UPDATE that did not cost the session (RFC 7606).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AttributeError {
    /// Attribute type code (0 where the attribute header itself could not be read).
    pub type_code: u8,
    /// Offset of the attribute's first byte (its flags) from the start of the message.
    pub offset: usize,
    /// What was wrong.
    pub malformation: Malformation,
    /// What RFC 7606 asks for.
    pub action: Rfc7606Action,
}

impl AttributeError {
    /// The UPDATE Message Error subcode RFC 4271 would have used. RFC 7606 sends no
    /// NOTIFICATION for these; the subcode is for logs.
    pub fn rfc4271_subcode(&self) -> u8 {
        use notification::update as u;
        match self.malformation {
            Malformation::FlagsConflict { .. } => u::ATTRIBUTE_FLAGS_ERROR,
            Malformation::BadLength { .. } | Malformation::LengthNotMultiple { .. } => {
                u::ATTRIBUTE_LENGTH_ERROR
            }
            Malformation::InvalidOrigin(_) => u::INVALID_ORIGIN_ATTRIBUTE,
            Malformation::AsPath(_) => u::MALFORMED_AS_PATH,
            Malformation::MissingWellKnown => u::MISSING_WELL_KNOWN_ATTRIBUTE,
            Malformation::Duplicate
            | Malformation::AttributeOverrun
            | Malformation::HeaderTruncated => u::MALFORMED_ATTRIBUTE_LIST,
            Malformation::FourOctetAsAttributeOnNewSession => u::OPTIONAL_ATTRIBUTE_ERROR,
        }
    }
}

impl std::fmt::Display for AttributeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "attribute type {} at byte {}: {} ({:?})",
            self.type_code, self.offset, self.malformation, self.action
        )
    }
}

/// How an attribute was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
#[non_exhaustive]
pub enum Malformation {
    /// The Optional, Transitive or Partial flag conflicts with the attribute's definition.
    #[error("attribute flags {flags:#04x} conflict with the attribute's definition")]
    FlagsConflict {
        /// The flags octet received.
        flags: u8,
    },
    /// The attribute's length is not the one its definition requires.
    #[error("length {length}, expected {expected}")]
    BadLength {
        /// The length received.
        length: u16,
        /// The length required.
        expected: u16,
    },
    /// The length is zero or not a multiple of the element size.
    #[error("length {length} is zero or not a multiple of {unit}")]
    LengthNotMultiple {
        /// The length received.
        length: u16,
        /// The element size.
        unit: u16,
    },
    /// ORIGIN other than IGP, EGP, INCOMPLETE.
    #[error("undefined ORIGIN value {0}")]
    InvalidOrigin(u8),
    /// AS_PATH (or AS4_PATH) segments do not parse.
    #[error("malformed AS path: {0}")]
    AsPath(AsPathMalformation),
    /// A well-known mandatory attribute is missing while NLRI are present.
    #[error("well-known mandatory attribute missing")]
    MissingWellKnown,
    /// The attribute appeared before in this UPDATE; later copies are discarded.
    #[error("attribute appears more than once")]
    Duplicate,
    /// The attribute's length runs past the path attributes field (RFC 7606 §4).
    #[error("attribute length overruns the path attributes")]
    AttributeOverrun,
    /// Fewer octets left than an attribute header needs (RFC 7606 §4).
    #[error("attribute header truncated")]
    HeaderTruncated,
    /// AS4_PATH or AS4_AGGREGATOR received on a session with 4-octet AS numbers.
    #[error("AS4_PATH/AS4_AGGREGATOR on a 4-octet AS session")]
    FourOctetAsAttributeOnNewSession,
}

/// Why an AS_PATH did not parse (RFC 7606 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum AsPathMalformation {
    /// A segment type other than AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET.
    #[error("unrecognized segment type")]
    UnknownSegmentType,
    /// A segment of zero ASNs.
    #[error("segment of length zero")]
    EmptySegment,
    /// A segment runs past the attribute.
    #[error("segment overruns the attribute")]
    SegmentOverrun,
    /// One octet left, too little for a segment header.
    #[error("segment header truncated")]
    HeaderTruncated,
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The message would exceed the session's maximum length.
    #[error("message of {length} octets exceeds the maximum of {max}")]
    TooLong {
        /// The length it would have.
        length: usize,
        /// The session's maximum (4096, or 65535 with extended message).
        max: usize,
    },
    /// A single field is longer than its length field can express.
    #[error("{0} too long for its length field")]
    FieldTooLong(&'static str),
    /// A next hop that the family cannot carry on this session.
    #[error("next hop {next_hop} cannot be sent for {family} on this session")]
    NextHop {
        /// The family.
        family: String,
        /// The next hop.
        next_hop: String,
    },
    /// The packer was asked for a family the codec only carries as raw bytes.
    #[error("family {0} is not an IP family")]
    UnsupportedFamily(String),
    /// A prefix of the wrong address family for the family being packed.
    #[error("prefix {prefix} does not belong to {family}")]
    PrefixFamily {
        /// The prefix.
        prefix: String,
        /// The family.
        family: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_map_to_their_notification() {
        let e = DecodeError::new(18, DecodeErrorKind::BadMessageType(9)).with_data(&[9]);
        let n = e.notification();
        assert_eq!((n.code, n.subcode, n.data), (1, 3, vec![9]));
        assert_eq!(e.to_string(), "unknown message type 9 (at byte 18)");
    }

    #[test]
    fn rfc7606_actions_are_ordered_by_strength() {
        assert!(Rfc7606Action::SessionReset > Rfc7606Action::TreatAsWithdraw);
        assert!(Rfc7606Action::TreatAsWithdraw > Rfc7606Action::AttributeDiscard);
    }
}
