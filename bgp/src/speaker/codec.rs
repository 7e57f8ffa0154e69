//! A `tokio_util::codec` framer for BGP messages over TCP.
//!
//! It splits the byte stream at message boundaries (checking marker and length as soon as
//! the 19-octet header is in) and decodes each message with the session's current
//! [`DecodeContext`]. The session replaces the contexts after the OPEN exchange
//! ([`BgpCodec::set_contexts`]), since everything from then on depends on what was
//! negotiated.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::{DecodeContext, DecodeError, EncodeContext, EncodeError, Message};

/// Why the framer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The peer sent something that ends the session (send its NOTIFICATION).
    #[error("cannot decode message: {0}")]
    Decode(#[from] DecodeError),
    /// A message we wanted to send could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(#[from] EncodeError),
    /// The socket failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Frames and decodes BGP messages.
#[derive(Debug, Clone, Default)]
pub struct BgpCodec {
    decode: DecodeContext,
    encode: EncodeContext,
}

impl BgpCodec {
    /// A framer for a session whose OPENs have not been exchanged yet.
    pub fn new() -> BgpCodec {
        BgpCodec::default()
    }

    /// A framer with given contexts.
    pub fn with_contexts(decode: DecodeContext, encode: EncodeContext) -> BgpCodec {
        BgpCodec { decode, encode }
    }

    /// Switches to what the OPEN exchange negotiated.
    pub fn set_contexts(&mut self, decode: DecodeContext, encode: EncodeContext) {
        self.decode = decode;
        self.encode = encode;
    }

    /// The context used for incoming messages.
    pub fn decode_context(&self) -> &DecodeContext {
        &self.decode
    }

    /// The context used for outgoing messages.
    pub fn encode_context(&self) -> &EncodeContext {
        &self.encode
    }
}

impl Decoder for BgpCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(len) = Message::frame_len(src, &self.decode)? else {
            return Ok(None);
        };
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let frame = src.split_to(len);
        Ok(Some(Message::decode(&frame, &self.decode)?))
    }
}

impl Encoder<&Message> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        msg.encode(&self.encode, dst)?;
        Ok(())
    }
}

impl Encoder<Message> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        msg.encode(&self.encode, dst)?;
        Ok(())
    }
}

/// Already encoded messages (for example from [`crate::wire::pack_updates`]) pass through.
impl Encoder<bytes::Bytes> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: bytes::Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&msg);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_util::codec::{FramedRead, FramedWrite};

    use super::*;
    use crate::wire::{Notification, notification::cease};

    #[tokio::test]
    async fn messages_split_across_reads_come_out_whole() {
        let mut bytes = BytesMut::new();
        let ctx = EncodeContext::default();
        Message::Keepalive.encode(&ctx, &mut bytes).unwrap();
        Message::Notification(Notification::cease(
            cease::ADMINISTRATIVE_SHUTDOWN,
            Some("bye"),
        ))
        .encode(&ctx, &mut bytes)
        .unwrap();
        // A reader that hands out three octets at a time.
        let reader = tokio_test_reader(bytes.to_vec(), 3);
        let mut framed = FramedRead::new(reader, BgpCodec::new());
        assert_eq!(framed.next().await.unwrap().unwrap(), Message::Keepalive);
        match framed.next().await.unwrap().unwrap() {
            Message::Notification(n) => assert_eq!(n.shutdown_communication(), Some("bye")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(framed.next().await.is_none());
    }

    #[tokio::test]
    async fn a_bad_marker_fails_before_the_message_is_complete() {
        let reader = tokio_test_reader(vec![0xff, 0xff, 0x00], 3);
        let mut framed = FramedRead::new(reader, BgpCodec::new());
        match framed.next().await {
            Some(Err(CodecError::Decode(e))) => {
                assert_eq!(e.notification().subcode, 1);
                assert_eq!(e.offset, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_writer_encodes_with_the_session_context() {
        let mut out = Vec::new();
        {
            let mut w = FramedWrite::new(&mut out, BgpCodec::new());
            w.send(Message::Keepalive).await.unwrap();
        }
        assert_eq!(out.len(), 19);
    }

    /// A reader that gets at most `chunk` octets per read, fed by a task.
    fn tokio_test_reader(data: Vec<u8>, chunk: usize) -> impl tokio::io::AsyncRead + Unpin {
        use tokio::io::AsyncWriteExt as _;
        let (mut tx, rx) = tokio::io::duplex(chunk);
        tokio::spawn(async move {
            let _ = tx.write_all(&data).await;
        });
        rx
    }
}
