//! Integration tests that cross crate boundaries: interop with real routers in network
//! namespaces (through `frr-lab`), the daemon end to end, and, later, an in-memory Kubernetes
//! API server. The tests themselves live in `tests/tests/`.
