//! NOTIFICATION (RFC 4271 §4.5), every error code and subcode named, and the shutdown
//! communication of RFC 9003.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The code and subcode stay plain numbers on the wire type (a peer may send values newer
//! than this code knows); [`ErrorCode`] and the `*_subcode_name` functions name them.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::reader::Reader;

/// Error codes (IANA "BGP Error (Notification) Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// 1, RFC 4271.
    MessageHeader = 1,
    /// 2, RFC 4271.
    OpenMessage = 2,
    /// 3, RFC 4271.
    UpdateMessage = 3,
    /// 4, RFC 4271.
    HoldTimerExpired = 4,
    /// 5, RFC 4271 and RFC 6608.
    FiniteStateMachine = 5,
    /// 6, RFC 4271 and RFC 4486.
    Cease = 6,
    /// 7, RFC 7313.
    RouteRefreshMessage = 7,
    /// 8, RFC 9687.
    SendHoldTimerExpired = 8,
}

impl ErrorCode {
    /// The code from its number.
    pub fn from_u8(code: u8) -> Option<ErrorCode> {
        Some(match code {
            1 => ErrorCode::MessageHeader,
            2 => ErrorCode::OpenMessage,
            3 => ErrorCode::UpdateMessage,
            4 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::FiniteStateMachine,
            6 => ErrorCode::Cease,
            7 => ErrorCode::RouteRefreshMessage,
            8 => ErrorCode::SendHoldTimerExpired,
            _ => return None,
        })
    }

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::MessageHeader => "Message Header Error",
            ErrorCode::OpenMessage => "OPEN Message Error",
            ErrorCode::UpdateMessage => "UPDATE Message Error",
            ErrorCode::HoldTimerExpired => "Hold Timer Expired",
            ErrorCode::FiniteStateMachine => "Finite State Machine Error",
            ErrorCode::Cease => "Cease",
            ErrorCode::RouteRefreshMessage => "ROUTE-REFRESH Message Error",
            ErrorCode::SendHoldTimerExpired => "Send Hold Timer Expired",
        }
    }
}

/// Message Header Error subcodes.
pub mod header {
    /// Connection Not Synchronized (the marker is not all ones).
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes.
pub mod open {
    /// Unsupported Version Number.
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// Role Mismatch (RFC 9234).
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes.
pub mod update {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm {
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
pub mod cease {
    /// Maximum Number of Prefixes Reached.
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    /// Administrative Shutdown (may carry an RFC 9003 shutdown communication).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset (may carry an RFC 9003 shutdown communication).
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
    /// BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313).
pub mod route_refresh {
    /// Invalid Message Length.
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// The IANA name of a subcode, when known (`None` for unassigned values).
pub fn subcode_name(code: u8, subcode: u8) -> Option<&'static str> {
    let name = match (ErrorCode::from_u8(code)?, subcode) {
        (_, 0) => "Unspecific",
        (ErrorCode::MessageHeader, 1) => "Connection Not Synchronized",
        (ErrorCode::MessageHeader, 2) => "Bad Message Length",
        (ErrorCode::MessageHeader, 3) => "Bad Message Type",
        (ErrorCode::OpenMessage, 1) => "Unsupported Version Number",
        (ErrorCode::OpenMessage, 2) => "Bad Peer AS",
        (ErrorCode::OpenMessage, 3) => "Bad BGP Identifier",
        (ErrorCode::OpenMessage, 4) => "Unsupported Optional Parameter",
        (ErrorCode::OpenMessage, 5) => "Authentication Failure (deprecated)",
        (ErrorCode::OpenMessage, 6) => "Unacceptable Hold Time",
        (ErrorCode::OpenMessage, 7) => "Unsupported Capability",
        (ErrorCode::OpenMessage, 11) => "Role Mismatch",
        (ErrorCode::UpdateMessage, 1) => "Malformed Attribute List",
        (ErrorCode::UpdateMessage, 2) => "Unrecognized Well-known Attribute",
        (ErrorCode::UpdateMessage, 3) => "Missing Well-known Attribute",
        (ErrorCode::UpdateMessage, 4) => "Attribute Flags Error",
        (ErrorCode::UpdateMessage, 5) => "Attribute Length Error",
        (ErrorCode::UpdateMessage, 6) => "Invalid ORIGIN Attribute",
        (ErrorCode::UpdateMessage, 7) => "AS Routing Loop (deprecated)",
        (ErrorCode::UpdateMessage, 8) => "Invalid NEXT_HOP Attribute",
        (ErrorCode::UpdateMessage, 9) => "Optional Attribute Error",
        (ErrorCode::UpdateMessage, 10) => "Invalid Network Field",
        (ErrorCode::UpdateMessage, 11) => "Malformed AS_PATH",
        (ErrorCode::FiniteStateMachine, 1) => "Receive Unexpected Message in OpenSent State",
        (ErrorCode::FiniteStateMachine, 2) => "Receive Unexpected Message in OpenConfirm State",
        (ErrorCode::FiniteStateMachine, 3) => "Receive Unexpected Message in Established State",
        (ErrorCode::Cease, 1) => "Maximum Number of Prefixes Reached",
        (ErrorCode::Cease, 2) => "Administrative Shutdown",
        (ErrorCode::Cease, 3) => "Peer De-configured",
        (ErrorCode::Cease, 4) => "Administrative Reset",
        (ErrorCode::Cease, 5) => "Connection Rejected",
        (ErrorCode::Cease, 6) => "Other Configuration Change",
        (ErrorCode::Cease, 7) => "Connection Collision Resolution",
        (ErrorCode::Cease, 8) => "Out of Resources",
        (ErrorCode::Cease, 9) => "Hard Reset",
        (ErrorCode::Cease, 10) => "BFD Down",
        (ErrorCode::RouteRefreshMessage, 1) => "Invalid Message Length",
        _ => return None,
    };
    Some(name)
}

/// Longest shutdown communication RFC 9003 allows, in octets.
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code ([`ErrorCode`]).
    pub code: u8,
    /// Error subcode (see the per-code modules of [`crate::wire::notification`]).
    pub subcode: u8,
    /// Diagnostic data.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with a code, subcode and data.
    pub fn new(code: ErrorCode, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code: code as u8,
            subcode,
            data,
        }
    }

    /// Cease with a subcode and, for Administrative Shutdown (2) or Reset (4), an RFC 9003
    /// shutdown communication. The message is cut at a character boundary to 255 octets.
    pub fn cease(subcode: u8, communication: Option<&str>) -> Notification {
        let data = match communication {
            Some(text)
                if subcode == cease::ADMINISTRATIVE_SHUTDOWN
                    || subcode == cease::ADMINISTRATIVE_RESET =>
            {
                let mut end = text.len().min(MAX_SHUTDOWN_COMMUNICATION);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let text = text.get(..end).unwrap_or_default();
                let mut d = Vec::with_capacity(end + 1);
                d.push(end as u8);
                d.extend_from_slice(text.as_bytes());
                d
            }
            _ => Vec::new(),
        };
        Notification::new(ErrorCode::Cease, subcode, data)
    }

    /// The named error code, if known.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u8(self.code)
    }

    /// `"Cease / Administrative Shutdown"`, or numbers where names are unknown.
    pub fn describe(&self) -> String {
        let code = self
            .error_code()
            .map_or_else(|| format!("code {}", self.code), |c| c.name().to_owned());
        let sub = subcode_name(self.code, self.subcode)
            .map_or_else(|| format!("subcode {}", self.subcode), str::to_owned);
        format!("{code} / {sub}")
    }

    /// The RFC 9003 shutdown communication of a Cease / Administrative Shutdown or Reset, when
    /// the data holds a well-formed one (a length octet and that many octets of UTF-8).
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != ErrorCode::Cease as u8
            || !(self.subcode == cease::ADMINISTRATIVE_SHUTDOWN
                || self.subcode == cease::ADMINISTRATIVE_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    pub(crate) fn decode_body(body: &[u8], base: usize) -> Option<Notification> {
        let mut r = Reader::new(body, base);
        let code = r.u8()?;
        let subcode = r.u8()?;
        Some(Notification {
            code,
            subcode,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }
}

impl Serialize for Notification {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Notification", 6)?;
        st.serialize_field("code", &self.code)?;
        st.serialize_field("subcode", &self.subcode)?;
        st.serialize_field("code_name", &self.error_code().map(ErrorCode::name))?;
        st.serialize_field("subcode_name", &subcode_name(self.code, self.subcode))?;
        st.serialize_field("data", &hex_string(&self.data))?;
        st.serialize_field("shutdown_communication", &self.shutdown_communication())?;
        st.end()
    }
}

/// Lower-case hex, for JSON views of opaque bytes.
pub(crate) fn hex_string(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cease_shutdown_carries_the_communication_with_its_length() {
        let n = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN, Some("maintenance"));
        assert_eq!(n.data.first(), Some(&11));
        assert_eq!(n.shutdown_communication(), Some("maintenance"));
        assert_eq!(n.describe(), "Cease / Administrative Shutdown");
    }

    #[test]
    fn long_shutdown_communication_is_cut_on_a_character_boundary() {
        let text = "é".repeat(200);
        let n = Notification::cease(cease::ADMINISTRATIVE_RESET, Some(&text));
        let got = n.shutdown_communication().unwrap();
        assert_eq!(got.len(), 254);
        assert!(n.data.len() <= 256);
    }

    #[test]
    fn shutdown_communication_longer_than_its_data_is_not_one() {
        let n = Notification {
            code: 6,
            subcode: 2,
            data: vec![10, b'a'],
        };
        assert_eq!(n.shutdown_communication(), None);
    }

    #[test]
    fn unknown_codes_are_described_by_number() {
        let n = Notification {
            code: 42,
            subcode: 9,
            data: vec![],
        };
        assert_eq!(n.describe(), "code 42 / subcode 9");
        assert_eq!(subcode_name(3, 11), Some("Malformed AS_PATH"));
    }
}
