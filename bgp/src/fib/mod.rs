//! Kernel FIB installation: the routes the Loc-RIB selects among those received (the ECMP
//! set), filtered by prefix, written into a kernel table with a protocol number of our own —
//! what users of Cilium's BGP control plane add by hand as static routes today.
//!
//! - [`config`]: [`FibConfig`] (table, protocol 212, metric 20, prefix rules, startup hold);
//! - [`plan`]: pure: next-hop resolution through the kernel's other routes, the routes
//!   wanted, and the diff against the routes of ours the kernel holds;
//! - [`netlink`]: rtnetlink I/O (dump, add, replace, delete, change notifications);
//! - [`installer`]: [`FibInstaller`], the task that follows the Loc-RIB.
//!
//! Ownership is by protocol number and table: a route with our protocol in our table is
//! ours; nothing else is ever changed or removed, and a destination already held by someone
//! else's route at our metric is reported and left alone. Routes follow the Loc-RIB: a
//! withdrawn prefix goes at once; a peer that goes down takes its routes with it, after the
//! graceful-restart stale time when it negotiated graceful restart (that is when the
//! Loc-RIB drops them). At start, routes of ours from before are adopted when still wanted
//! and kept until the table has converged (every peer sent End-of-RIB, or the startup hold
//! ran out), then the rest go; they are never duplicated. On stop they are all removed, or
//! all left for a graceful restart.

pub mod config;
pub mod installer;
pub mod netlink;
pub mod plan;

#[cfg(test)]
mod plan_tests;

use ipnet::IpNet;

pub use config::{
    DEFAULT_METRIC, DEFAULT_PROTOCOL, FibConfig, FibConfigError, MAIN_TABLE, PrefixRule,
};
pub use installer::{Cleanup, FibInstaller, FibStatus, InstalledRoute};
pub use netlink::{Kernel, NetlinkKernel};
pub use plan::{BgpNextHop, DesiredRoute, KernelRoute, KernelView, NextHop, Op, RouteKind};

/// What FIB installation reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FibError {
    /// The configuration is refused.
    #[error("FIB configuration: {0}")]
    Config(#[from] FibConfigError),
    /// The speaker has no such instance.
    #[error(transparent)]
    Speaker(#[from] crate::speaker::SpeakerError),
    /// A route that is not ours holds the destination at our table and metric.
    #[error("{0}: a route that is not ours is in the way")]
    Exists(IpNet),
    /// The route to delete is not there.
    #[error("{0}: no such route")]
    Gone(IpNet),
    /// Netlink failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// The installer's task has ended.
    #[error("the FIB installer is stopped")]
    Stopped,
}
