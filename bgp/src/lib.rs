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
//! Beside the speaker: [`bfd`], single-hop BFD (RFC 5880/5881) that resets BGP sessions whose
//! path fails, and [`fib`], which installs received best paths into the kernel (rtnetlink).
//!
//! [`config`] holds the validated newtypes (`Asn`, `HoldTime`, `RouterId`).

pub mod bfd;
pub mod config;
pub mod fib;
pub mod fsm;
pub mod rib;
pub mod speaker;
pub mod wire;
