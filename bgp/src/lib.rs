//! BGP-4 from scratch, with no knowledge of Kubernetes.
//!
//! The crate will hold four layers (see `docs/ARCHITECTURE.md`):
//! `wire` (the message codec, pure), `fsm` (one session's RFC 4271 state machine, sans-IO),
//! `rib` (Adj-RIB-In, Loc-RIB, Adj-RIB-Out) and `speaker` (the tokio driver and the `Speaker`
//! handle). None of them exists yet: they arrive with the codec and speaker issues.
