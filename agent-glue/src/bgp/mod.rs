//! The BGP agent: from the snapshot's `cilium.io` BGP resources to the node's
//! [`bgp::speaker::Speaker`], and back as status.
//!
//! ```text
//!  Snapshot ─┐
//!  LocalFacts ┼─► reconcile (pure) ─► NodeDesired ─► apply (diff) ─► Speaker ─► peers
//!  node name ─┘                         │                              │
//!                                       └──────── status ◄─────────────┘
//!                                        CiliumBGPNodeConfig (spec + status) ─► StatusSink
//! ```
//!
//! - [`facts`]: interfaces and default routes of the machine (the only impure input).
//! - [`adverts`]: CiliumBGPAdvertisement entries to prefixes and attributes.
//! - [`reconcile`]: the pure function, per node.
//! - [`bfd`]: BFD for the peers whose peer config names a BFDProfile, and its runner.
//! - [`fib`]: kernel FIB installation of received routes (ClusterConfig annotations), and its
//!   runner.
//! - [`cluster`]: the operator role's conditions (ClusterConfig, PeerConfig).
//! - [`apply`]: the thin step that changes only what differs on the running Speaker.
//! - [`status`]: CiliumBGPNodeConfig status and the API views from the Speaker.
//! - [`agent`]: the loop that ties them to a source, a sink and the clock.

pub mod adverts;
pub mod agent;
pub mod apply;
pub mod bfd;
pub mod cluster;
pub mod desired;
pub mod facts;
pub mod fib;
pub mod reconcile;
pub mod status;

pub use desired::{DesiredInstance, NodeDesired};
pub use facts::LocalFacts;
pub use reconcile::{DEFAULT_SECRETS_NAMESPACE, Input, reconcile};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod agent_tests;

#[cfg(test)]
mod bfd_fib_tests;
