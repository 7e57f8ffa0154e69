//! agent-glue: the only crate that knows Kubernetes. It turns `cilium.io` resources (from the
//! API server or from a directory of manifests) into the plain configuration of the core crates
//! (`bgp`, `lbipam`, `l2announce`, `ebpf`), runs their reconcilers, writes status back, and
//! serves the local API behind the `lbspeaker` CLI.
//!
//! Only the command line exists so far (`lbspeaker bgp decode`); the daemon arrives with the
//! `lbspeaker run` issue.

pub mod api;
pub mod bgp;
pub mod cli;
pub mod ipam;
pub mod logging;
pub mod metrics;
pub mod source;
