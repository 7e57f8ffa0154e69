//! The desired world: every object lbspeaker acts on, from wherever it comes.
//!
//! A [`Source`] publishes typed [`Snapshot`]s (cluster-scoped `cilium.io` resources plus core
//! Services, EndpointSlices, Nodes and Secrets) through a tokio `watch` channel; reconcilers
//! read the latest snapshot, compute what they want, and write status through a
//! [`StatusSink`]. Implementations:
//!
//! - [`directory::DirectorySource`]: a directory of YAML manifests in any layout, re-read on
//!   change, with status written under `DIR/status/` and merged back into the objects it
//!   serves, the way an API server would;
//! - [`memory::MemoryStore`]: an in-memory store for tests;
//! - [`crate::kube::source::KubeSource`]: watchers on the API server publishing the same
//!   snapshots.

pub mod directory;
pub mod leader;
pub mod memory;
mod object;
mod snapshot;
pub mod status;

pub use object::{Kind, Object, ObjectKey, parse_document};
pub use snapshot::{Objects, Problem, Snapshot, SnapshotBuilder};
pub use status::{StatusError, StatusSink, StatusUpdate};

use std::sync::Arc;

use tokio::sync::watch;

/// Where the desired world comes from.
pub trait Source: Send + Sync {
    /// The latest snapshot now, and every later one. The first value is complete for
    /// sources that load synchronously; otherwise it has `synced == false` until the source
    /// has seen everything once (reconcilers that allocate, such as LB-IPAM, must wait for it).
    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>>;

    /// One line for `lbspeaker status`: `directory /etc/lbspeaker`, `kubernetes`.
    fn describe(&self) -> String;
}
