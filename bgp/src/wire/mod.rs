//! The BGP-4 message codec: bytes in, typed messages out, and back. Pure: no I/O, no tokio.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                        Marker (16 octets of 0xff)             +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Message::decode`] takes one whole message (header included) and the
//! [`DecodeContext`] the session negotiated; [`Message::encode`] appends one to a
//! `BytesMut` and refuses to exceed the negotiated maximum. Decoding never panics, never
//! reads out of bounds, and allocates at most a small multiple of the message's own size.
//! Errors follow RFC 4271 §6 as revised by RFC 7606: see [`error`] and `docs/bgp-wire.md`.
//!
//! [`pack`] builds as few UPDATEs as fit from one attribute set and many prefixes, for the
//! Adj-RIB-Out; [`Negotiated::from_opens`] turns an OPEN exchange into the two contexts.

pub mod attr;
pub mod context;
pub mod error;
pub mod family;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod pack;
mod reader;
pub mod route_refresh;
pub mod update;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

pub use attr::{
    Aggregator, AsPath, AsSegment, Community, ExtendedCommunity, LargeCommunity, MpReach,
    MpUnreach, NextHop, Origin, PathAttributes, RawAttribute, SegmentType,
};
pub use context::{DecodeContext, EncodeContext, Negotiated};
pub use error::{
    AsPathMalformation, AttributeError, DecodeError, DecodeErrorKind, EncodeError, Malformation,
    Rfc7606Action,
};
pub use family::{Family, FamilySet};
pub use nlri::Nlri;
pub use notification::{ErrorCode, Notification};
pub use open::{Capability, Open};
pub use pack::{Announce, pack_updates};
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use update::Update;

/// Length of the message header.
pub const HEADER_LEN: usize = 19;
/// OPEN and KEEPALIVE never exceed this, even with extended message (RFC 8654 §3).
const MAX_OPEN_KEEPALIVE_LEN: usize = context::MAX_MESSAGE_LEN;

/// Message type codes.
pub mod message_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH.
    pub const ROUTE_REFRESH: u8 = 5;
}

/// One BGP message.
// UPDATE, the largest variant, is also by far the most frequent: boxing it would add an
// allocation to every message for the sake of the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Open(_) => message_type::OPEN,
            Message::Update(_) => message_type::UPDATE,
            Message::Notification(_) => message_type::NOTIFICATION,
            Message::Keepalive => message_type::KEEPALIVE,
            Message::RouteRefresh(_) => message_type::ROUTE_REFRESH,
        }
    }

    /// Checks the header at the start of `buf` and returns the whole message's length, or
    /// `None` when fewer than 19 octets are there yet. For framers.
    pub fn frame_len(buf: &[u8], ctx: &DecodeContext) -> Result<Option<usize>, DecodeError> {
        let Some((marker, rest)) = buf.split_first_chunk::<16>() else {
            if buf.iter().any(|b| *b != 0xff) {
                let at = buf.iter().position(|b| *b != 0xff).unwrap_or(0);
                return Err(DecodeError::new(
                    at,
                    DecodeErrorKind::ConnectionNotSynchronized,
                ));
            }
            return Ok(None);
        };
        if let Some(at) = marker.iter().position(|b| *b != 0xff) {
            return Err(DecodeError::new(
                at,
                DecodeErrorKind::ConnectionNotSynchronized,
            ));
        }
        let Some((&len, rest)) = rest.split_first_chunk::<2>() else {
            return Ok(None);
        };
        let Some(&msg_type) = rest.first() else {
            return Ok(None);
        };
        let length = u16::from_be_bytes(len);
        let l = usize::from(length);
        let (min, max) = match msg_type {
            message_type::OPEN => (29, MAX_OPEN_KEEPALIVE_LEN),
            message_type::UPDATE => (23, ctx.max_message_len()),
            message_type::NOTIFICATION => (21, ctx.max_message_len()),
            message_type::KEEPALIVE => (19, 19),
            // ROUTE-REFRESH of the wrong length is reported by its own decoder (RFC 7313).
            message_type::ROUTE_REFRESH => (19, ctx.max_message_len()),
            t => {
                return Err(
                    DecodeError::new(18, DecodeErrorKind::BadMessageType(t)).with_data(&[t])
                );
            }
        };
        if l < min || l > max {
            return Err(
                DecodeError::new(16, DecodeErrorKind::BadMessageLength { length }).with_data(&len),
            );
        }
        Ok(Some(l))
    }

    /// Decodes one whole message, header included. `buf` must hold exactly that message.
    pub fn decode(buf: &[u8], ctx: &DecodeContext) -> Result<Message, DecodeError> {
        let short = || {
            let length = buf
                .get(16..18)
                .and_then(|b| b.first_chunk::<2>())
                .map_or(0, |b| u16::from_be_bytes(*b));
            DecodeError::new(16, DecodeErrorKind::BadMessageLength { length })
        };
        let Some(len) = Message::frame_len(buf, ctx)? else {
            return Err(short());
        };
        if len != buf.len() {
            return Err(short().with_data(buf.get(16..18).unwrap_or_default()));
        }
        let (head, body) = buf.split_at_checked(HEADER_LEN).ok_or_else(short)?;
        let msg_type = head.last().copied().unwrap_or(0);
        Ok(match msg_type {
            message_type::OPEN => Message::Open(Open::decode_body(body, HEADER_LEN)?),
            message_type::UPDATE => Message::Update(Update::decode_body(body, HEADER_LEN, ctx)?),
            message_type::NOTIFICATION => Message::Notification(
                Notification::decode_body(body, HEADER_LEN).ok_or_else(short)?,
            ),
            message_type::KEEPALIVE => Message::Keepalive,
            message_type::ROUTE_REFRESH => {
                Message::RouteRefresh(RouteRefresh::decode_body(body, HEADER_LEN, buf)?)
            }
            t => {
                return Err(
                    DecodeError::new(18, DecodeErrorKind::BadMessageType(t)).with_data(&[t])
                );
            }
        })
    }

    /// Appends the message, header included, to `out`. Fails (leaving `out` as it was) if it
    /// would exceed the negotiated maximum: 4096 octets, or 65535 with extended message
    /// (OPEN and KEEPALIVE: always 4096).
    pub fn encode(&self, ctx: &EncodeContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let res = self.encode_unchecked(ctx, out, start);
        let max = match self {
            Message::Open(_) | Message::Keepalive => MAX_OPEN_KEEPALIVE_LEN,
            _ => ctx.max_message_len(),
        };
        let length = out.len() - start;
        let res = res.and_then(|()| {
            (length <= max)
                .then_some(())
                .ok_or(EncodeError::TooLong { length, max })
        });
        match res {
            Ok(()) => {
                if let Some(slot) = out.get_mut(start + 16..start + 18) {
                    slot.copy_from_slice(&(length as u16).to_be_bytes());
                }
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn encode_unchecked(
        &self,
        ctx: &EncodeContext,
        out: &mut BytesMut,
        start: usize,
    ) -> Result<(), EncodeError> {
        put_header(out, self.type_code());
        match self {
            Message::Open(o) => o.encode_body(out),
            Message::Update(u) => u.encode_body(ctx, out)?,
            Message::Notification(n) => n.encode_body(out),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => r.encode_body(out),
        }
        debug_assert!(out.len() >= start + HEADER_LEN);
        Ok(())
    }

    /// Encodes into a new buffer.
    pub fn to_bytes(&self, ctx: &EncodeContext) -> Result<BytesMut, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(ctx, &mut out)?;
        Ok(out)
    }
}

/// Marker, a zero length (patched later) and the type.
pub(crate) fn put_header(out: &mut BytesMut, msg_type: u8) {
    out.put_slice(&[0xff; 16]);
    out.put_u16(0);
    out.put_u8(msg_type);
}
