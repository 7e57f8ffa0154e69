//! The local API: the daemon's state as JSON over HTTP on a Unix socket (default
//! `/run/lbspeaker/api.sock`), read by the `lbspeaker` subcommands. A Unix socket rather than a
//! TCP port because the API is for the node's administrators only: the socket is created
//! mode 0660, owned by root (and a group of the operator's choosing).
//!
//! The daemon implements [`Backend`]; [`server::serve`] exposes it; [`client::Client`] reads it.

pub mod client;
pub mod render;
pub mod server;
pub mod views;

use std::future::Future;

pub use views::{
    FamilyCounters, LeaseView, PeerView, PolicyView, PoolView, RouteTable, RouteView, ServiceView,
    StatusView,
};

/// Default path of the API socket.
pub const DEFAULT_SOCKET: &str = "/run/lbspeaker/api.sock";

/// An address family as the CLI names it: `ipv4 unicast`, `ipv6 unicast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FamilyName {
    /// `ipv4` or `ipv6`.
    pub afi: Afi,
    /// Only `unicast` is supported.
    pub safi: Safi,
}

/// Address family identifier, as users type it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Afi {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// Subsequent address family identifier, as users type it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Safi {
    /// Unicast.
    Unicast,
}

impl std::fmt::Display for Afi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Afi::Ipv4 => "ipv4",
            Afi::Ipv6 => "ipv6",
        })
    }
}

/// Why an API request failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status the server answers with.
    pub status: u16,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A 404 for something this daemon does not run (for example no dataplane).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }
}

/// What the daemon exposes. Each call reads the current state; nothing is cached by the API.
pub trait Backend: Send + Sync + 'static {
    /// Every BGP session.
    fn bgp_peers(&self) -> impl Future<Output = Vec<PeerView>> + Send;
    /// Routes of one family from the Loc-RIB or the Adj-RIBs-Out.
    fn bgp_routes(
        &self,
        table: RouteTable,
        family: FamilyName,
    ) -> impl Future<Output = Result<Vec<RouteView>, ApiError>> + Send;
    /// Export policies derived from the advertisements.
    fn bgp_route_policies(&self) -> impl Future<Output = Vec<PolicyView>> + Send;
    /// LB-IPAM pools.
    fn ipam_pools(&self) -> impl Future<Output = Result<Vec<PoolView>, ApiError>> + Send;
    /// LoadBalancer services and their addresses.
    fn ipam_services(&self) -> impl Future<Output = Result<Vec<ServiceView>, ApiError>> + Send;
    /// L2 announcement leases.
    fn l2_leases(&self) -> impl Future<Output = Result<Vec<LeaseView>, ApiError>> + Send;
    /// The L2 announcer's counters (frames sent, leases won and lost), for metrics; `None`
    /// when it does not run here.
    fn l2_counters(&self) -> impl Future<Output = Option<l2announce::CountersSnapshot>> + Send {
        async { None }
    }
    /// The dataplane's service table, as `lb list` lines.
    fn lb_list(&self) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send;
    /// The dataplane's state and packet counters for `/metrics` (none: no dataplane).
    fn dataplane_metrics(
        &self,
    ) -> impl Future<Output = Option<crate::dataplane::DataplaneMetrics>> + Send {
        async { None }
    }
    /// The daemon at a glance.
    fn status(&self) -> impl Future<Output = StatusView> + Send;
}
