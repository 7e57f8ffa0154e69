//! Single-hop BFD (RFC 5880 asynchronous mode over RFC 5881 UDP), to take a BGP session down
//! within a second of its path failing instead of after the hold time.
//!
//! ```text
//!  BfdManager ── one task ──┬─ transport: UDP 3784 in (TTL 255 checked), one socket per
//!   set_peers(..)           │  session out (source port 49152-65535, TTL 255)
//!   sessions()              ├─ session::Session per path: pure, time passed in
//!   subscribe()             └─ Up → Down ──► BfdClient::session_down ──► Speaker::reset_peer
//!                                                              (Cease / BFD Down, RFC 9384)
//! ```
//!
//! - [`packet`]: the Control packet codec and the checks of §6.8.6 that need no session;
//! - [`session`]: the state machine (Down/Init/Up/AdminDown, timers, Poll Sequence, jitter,
//!   detection), sans-IO like [`crate::fsm`];
//! - [`damping`]: how long a flapping session is held Down;
//! - [`transport`]: the sockets of RFC 5881;
//! - [`manager`]: sessions for the BGP peers that ask for one, and what a failure does to BGP.
//!
//! No authentication (a packet claiming it is discarded), no Echo function (we send Required
//! Min Echo RX 0, so peers send us none), no Demand mode of our own (a peer's is honoured).

pub mod damping;
pub mod manager;
pub mod packet;
pub mod session;
pub mod transport;

#[cfg(test)]
mod session_tests;

pub use damping::DampingConfig;
pub use manager::{
    BfdClient, BfdError, BfdEvent, BfdManager, BfdManagerConfig, BfdPeer, BfdProfile,
    BfdSessionInfo,
};
pub use packet::{BfdState, ControlPacket, Diagnostic, PacketError};
pub use session::{Action, Input, Session, SessionConfig, SessionStatus};

/// Durations as integral milliseconds in configuration files (`300` for 300 ms).
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Durations as integral microseconds in status output (BFD's own unit).
pub(crate) mod micros {
    use std::time::Duration;

    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// Optional durations as integral microseconds (or null).
pub(crate) mod opt_micros {
    use std::time::Duration;

    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }
}
