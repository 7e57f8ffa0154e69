//! frr-lab: labs in network namespaces, so lbspeaker can be verified against real routers
//! (FRR, GoBGP, BIRD) with real packets and real kernels on one machine.
//!
//! A [`Topology`] (a small YAML file, see [`topology`]) names nodes, the links between them,
//! their addresses and static routes, and which daemon each runs. [`Lab::up`] builds it in
//! namespaces named `PREFIX-NODE`; the [`Lab`] value is a guard that removes everything it made
//! when dropped, also on panic, so tests can use unique prefixes ([`unique_prefix`]) and run in
//! parallel. The `frr-lab` binary is the command-line face of the same library.

pub mod bench;
mod cmd;
pub mod daemons;
pub mod demo;
mod error;
pub mod lab;
pub mod render;
pub mod topology;
pub mod witness;

pub use error::LabError;
pub use lab::{KernelRoute, Lab, LabOptions, LabState, ProcessRecord, unique_prefix};
pub use topology::{AddressFamily, BgpSpec, NeighborSpec, Node, NodeKind, Topology};

/// For tests that need the lab (root, FRR, iproute2): whether they can run here. When the
/// environment variable `FRR_LAB_REQUIRED=1` is set (the project's test command sets it), a
/// missing prerequisite is a failure instead of a skip.
pub fn lab_available() -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if !std::path::Path::new("/usr/lib/frr/bgpd").exists() {
        Some("FRR is not installed")
    } else {
        None
    };
    match reason {
        None => true,
        Some(why) => {
            if std::env::var("FRR_LAB_REQUIRED").as_deref() == Ok("1") {
                panic!("lab tests are required (FRR_LAB_REQUIRED=1) but cannot run: {why}");
            }
            eprintln!("skipping lab test: {why} (set FRR_LAB_REQUIRED=1 to make this an error)");
            false
        }
    }
}
