//! BGP-4 from scratch, with no knowledge of Kubernetes.
//!
//! Four layers (see `docs/ARCHITECTURE.md` and `docs/bgp-speaker.md`):
//! - [`wire`]: the message codec, pure: bytes in, typed messages out, and back;
//! - [`fsm`]: one connection's RFC 4271 state machine, sans-IO (inputs and the time in,
//!   actions out);
//! - [`rib`]: Adj-RIB-In, Loc-RIB (decision process, ECMP) and Adj-RIB-Out (export rules,
//!   update packing), with interned attribute sets, pure;
//! - [`speaker`]: the tokio driver (one task per peer, sockets and their options) and the
//!   cloneable [`Speaker`] handle the rest of lbspeaker uses.
//!
//! [`config`] holds the validated newtypes (`Asn`, `HoldTime`, `RouterId`).

pub mod config;
pub mod fsm;
pub mod rib;
pub mod speaker;
pub mod wire;
