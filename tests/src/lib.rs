//! Integration tests that cross crate boundaries: interop with real routers in network
//! namespaces (through `frr-lab`), the daemon end to end, and an in-memory Kubernetes API
//! server ([`apiserver`], also the `test-apiserver` binary) for the Kubernetes side. The
//! tests themselves live in `tests/tests/`.

pub mod apiserver;
