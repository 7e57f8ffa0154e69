//! Integration tests that cross crate boundaries: interop with real routers in network
//! namespaces (through `frr-lab`), the daemon end to end, and, later, an in-memory Kubernetes
//! API server. The tests themselves live in `tests/tests/`.
//!
//! [`harness`] runs our BGP speaker as a separate process inside a lab namespace (the
//! `bgp-harness` binary), so a test can SIGKILL it and start it again; it stands in for
//! `lbspeaker run` until that exists.

pub mod harness;
