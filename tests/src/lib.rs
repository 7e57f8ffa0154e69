//! Integration tests that cross crate boundaries: interop with real routers in network
//! namespaces (through `frr-lab`), the daemon end to end, and an in-memory Kubernetes API
//! server ([`apiserver`], also the `test-apiserver` binary) for the Kubernetes side. The
//! tests themselves live in `tests/tests/`.
//!
//! [`harness`] runs our BGP speaker as a separate process inside a lab namespace (the
//! `bgp-harness` binary), so a test can SIGKILL it and start it again; [`injector`] is a raw
//! BGP peer that sends it crafted octets (the reliability tests).

pub mod apiserver;
pub mod harness;
pub mod injector;
