//! The eBPF service dataplane: tc programs (written in C under `bpf/`, built with clang) that
//! translate LoadBalancer addresses to backends, the aya loader, the `#[repr(C)]` map types
//! and the synchronisation of those maps from desired state.
//!
//! Empty for now; it arrives with the ebpf issue.
