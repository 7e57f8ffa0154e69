//! What the local API returns: one serde type per CLI table, with the columns users know from
//! the Cilium CLI (`cilium bgp peers`, `cilium bgp routes`, ...). The daemon fills them; the
//! CLI prints them as tables or passes the JSON through.

use serde::{Deserialize, Serialize};

/// One BGP session and its per-family counters (`lbspeaker bgp peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    /// The node this speaker runs for.
    pub node: String,
    /// The BGP instance (CiliumBGPClusterConfig `bgpInstances[].name`).
    pub instance: String,
    /// The peer's name in the cluster config.
    pub name: String,
    /// Local AS.
    pub local_asn: u32,
    /// The peer's AS as configured (0 = any) or, once established, as announced.
    pub peer_asn: u32,
    /// The peer's address.
    pub peer_address: String,
    /// `idle`, `connect`, `active`, `opensent`, `openconfirm` or `established`.
    pub session_state: String,
    /// Seconds since the session reached Established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Hold time and keepalive in use (negotiated when established, configured otherwise).
    pub hold_time_seconds: u16,
    /// Keepalive interval in use.
    pub keepalive_seconds: u16,
    /// Per address family counters.
    pub families: Vec<FamilyCounters>,
    /// The last error: a NOTIFICATION sent or received, a connection failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Routes of one family on one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyCounters {
    /// `ipv4` or `ipv6`.
    pub afi: String,
    /// `unicast`.
    pub safi: String,
    /// Routes received from the peer.
    pub received: u64,
    /// Routes advertised to the peer.
    pub advertised: u64,
}

/// Which table `lbspeaker bgp routes` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteTable {
    /// The Loc-RIB: every route this node knows, originated and received.
    Available,
    /// What is sent to each peer (Adj-RIB-Out).
    Advertised,
}

/// One route (`lbspeaker bgp routes available|advertised`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// The node.
    pub node: String,
    /// The instance's local AS, as Cilium's "VRouter" column shows it.
    pub vrouter: u32,
    /// For advertised routes: the peer it goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The prefix.
    pub prefix: String,
    /// The next hop (`0.0.0.0` / `::` for locally originated routes in the Loc-RIB).
    pub next_hop: String,
    /// Seconds since the route was learned or originated.
    pub age_seconds: u64,
    /// Whether this is the best path (Loc-RIB).
    #[serde(default)]
    pub best: bool,
    /// Path attributes, as `{Name: value}` strings.
    pub attrs: Vec<String>,
}

/// One export policy (`lbspeaker bgp route-policies`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// The instance's local AS.
    pub vrouter: u32,
    /// Policy name: the peer and the advertisement it comes from.
    pub name: String,
    /// `export` (lbspeaker imports everything and filters on export).
    pub kind: String,
    /// Peers the policy applies to.
    pub match_peers: Vec<String>,
    /// Prefixes it matches.
    pub match_prefixes: Vec<String>,
    /// `accept` or `reject`.
    pub rib_action: String,
    /// Attribute changes: communities added, local preference set.
    pub path_actions: Vec<String>,
}

/// One CiliumLoadBalancerIPPool (`lbspeaker ipam pools`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolView {
    /// Pool name.
    pub name: String,
    /// `spec.disabled`.
    pub disabled: bool,
    /// Conflicting with another pool or inside itself.
    pub conflicting: bool,
    /// Why, when conflicting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// Exact decimal counts (they exceed 64 bits for large IPv6 pools).
    pub ips_total: String,
    /// Addresses still free.
    pub ips_available: String,
    /// Addresses given to services.
    pub ips_used: String,
}

/// One LoadBalancer service's allocation (`lbspeaker ipam services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Addresses in `status.loadBalancer.ingress`.
    pub addresses: Vec<String>,
    /// `cilium.io/IPAMRequestSatisfied` reason (`satisfied`, `no_pool`, `out_of_ips`, ...).
    pub reason: String,
    /// The condition's message.
    #[serde(default)]
    pub message: String,
}

/// One announced address and its lease (`lbspeaker l2 leases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    /// The announced address.
    pub address: String,
    /// `namespace/name` of each service using it.
    pub services: Vec<String>,
    /// The lease's name.
    pub lease: String,
    /// The node holding it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The interfaces this node answers on, when it holds the lease.
    pub interfaces: Vec<String>,
    /// Seconds since the holder acquired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_seconds: Option<u64>,
    /// Whether this node answers ARP/NDP for the address now.
    #[serde(default)]
    pub announcing: bool,
    /// Whether this node may hold the lease (a policy selects it and the service, an
    /// interface is up, and for `externalTrafficPolicy: Local` a ready endpoint is here).
    #[serde(default)]
    pub eligible: bool,
}

/// The daemon at a glance (`lbspeaker status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// The node this process speaks for.
    pub node: String,
    /// lbspeaker's version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Where the desired world comes from (`directory /etc/lbspeaker`, `kubernetes`).
    pub source: String,
    /// Roles this process currently runs (`bgp`, `ipam (leader)`, `l2`, `dataplane`).
    pub roles: Vec<String>,
    /// Whether the first reconcile has completed.
    pub ready: bool,
    /// Established sessions / configured sessions.
    pub peers_established: usize,
    /// Configured sessions.
    pub peers_total: usize,
    /// Problems found in the configuration, one line each.
    pub problems: Vec<String>,
}
