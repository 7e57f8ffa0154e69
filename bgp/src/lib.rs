//! BGP-4 from scratch, with no knowledge of Kubernetes.
//!
//! The crate holds four layers (see `docs/ARCHITECTURE.md`):
//! [`wire`] (the message codec, pure: bytes in, typed messages out, and back), `fsm` (one
//! session's RFC 4271 state machine, sans-IO), `rib` (Adj-RIB-In, Loc-RIB, Adj-RIB-Out) and
//! [`speaker`] (the tokio driver and the `Speaker` handle). The codec and the framer that
//! puts it on a byte stream exist; the FSM, the RIBs and the rest of the speaker arrive with
//! their own issue.

pub mod speaker;
pub mod wire;
