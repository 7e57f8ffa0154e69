//! agent-glue: the only crate that knows Kubernetes. It turns `cilium.io` resources (from the
//! API server or from a directory of manifests) into the plain configuration of the core crates
//! (`bgp`, `lbipam`, `l2announce`, `ebpf`), runs their reconcilers, writes status back, and
//! serves the local API behind the `lbspeaker` CLI.
//!
//! `lbspeaker run` ([`daemon`]) runs the operator role (LB-IPAM, BGP and L2 policy conditions)
//! and the node's agents — BGP ([`bgp`]), L2 announcements ([`l2`]) and the eBPF dataplane
//! reconciler ([`dataplane`]) — on a directory of manifests, with the local API ([`api`]) and
//! metrics ([`metrics`]); `lbspeaker agent` and `lbspeaker operator` run the same on a
//! Kubernetes API server ([`kube`]); the other subcommands ([`cli`]) ask it, and [`convert`]
//! turns MetalLB manifests into cilium.io ones.

pub mod api;
pub mod bgp;
pub mod cli;
pub mod convert;
pub mod daemon;
pub mod dataplane;
pub mod duration;
pub mod ipam;
pub mod kube;
pub mod l2;
pub mod logging;
pub mod metrics;
pub mod source;
