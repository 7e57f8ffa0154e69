//! L2 announcements: one node per service address answers ARP (IPv4) and neighbour
//! solicitations (IPv6) for it, chosen by a lease, and announces takeovers with gratuitous ARP
//! and unsolicited neighbour advertisements.
//!
//! - [`wire`]: Ethernet, ARP and neighbour discovery, parsed and built, panic-free.
//! - [`election`]: the lease election as a pure function of the clock, the lease and this
//!   node (client-go `leaderelection` semantics), and the records it writes.
//! - [`lease`]: lease names, the [`LeaseBackend`] trait (optimistic concurrency on a resource
//!   version) and its file and in-memory backends.
//! - [`responder`]: AF_PACKET sockets per interface that answer for held addresses, announce
//!   takeovers and link flaps; interface state from rtnetlink.
//! - [`runner`]: all of it for a set of [`DesiredAnnouncement`]s, with visible state and
//!   counters, which is what the daemon uses.
//!
//! See `docs/l2announce.md` for the design and the lab that proves it.

pub mod election;
pub mod lease;
pub mod responder;
pub mod runner;
pub mod wire;

pub use election::Timers;
pub use lease::{
    FileBackend, Lease, LeaseBackend, LeaseError, LeaseName, LeaseNamer, LeaseRecord,
    MemoryBackend, ResourceVersion, ServiceKey,
};
pub use responder::link::LinkInfo;
pub use responder::{AnnounceConfig, CountersSnapshot};
pub use runner::{AnnouncementState, DesiredAnnouncement, Runner, RunnerConfig, RunnerError};
