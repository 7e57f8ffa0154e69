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

/// BFD on this node (`lbspeaker bfd peers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BfdView {
    /// Whether the BFD manager runs (some BGP peer asks for BFD).
    pub running: bool,
    /// One session per path.
    pub sessions: Vec<BfdSessionView>,
    /// Datagrams with a TTL other than 255 (RFC 5881 §5), discarded.
    pub bad_ttl: u64,
    /// Datagrams that are no valid Control packet.
    pub malformed: u64,
    /// Valid packets that match no session.
    pub unknown_session: u64,
    /// Packets that could not be sent.
    pub send_errors: u64,
}

/// One BFD session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BfdSessionView {
    /// The node.
    pub node: String,
    /// The BGP peers it serves, `instance/peer`.
    pub peers: Vec<String>,
    /// The remote address.
    pub peer_address: String,
    /// Our address, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    /// `down`, `init`, `up` or `admin-down`.
    pub state: String,
    /// The remote's state as last heard.
    pub remote_state: String,
    /// Why we last went down (RFC 5880 §4.1 diagnostic).
    pub local_diag: String,
    /// Why the remote last went down.
    pub remote_diag: String,
    /// The profile's Desired Min TX, milliseconds.
    pub transmit_interval_ms: u64,
    /// The profile's Required Min RX, milliseconds.
    pub receive_interval_ms: u64,
    /// The profile's Detect Mult.
    pub detect_multiplier: u8,
    /// The detection time in use, milliseconds (none until the remote is heard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_time_ms: Option<u64>,
    /// The remote's Detect Mult.
    pub remote_detect_multiplier: u8,
    /// Seconds Up, while Up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Milliseconds flap damping still holds it Down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_down_ms: Option<u64>,
    /// Up to Down transitions since the session was created.
    pub flaps: u32,
    /// BGP sessions it reset.
    pub bgp_resets: u32,
    /// Control packets accepted.
    pub packets_in: u64,
    /// Control packets sent.
    pub packets_out: u64,
    /// Why it cannot send, if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Kernel FIB installation of one instance (`lbspeaker fib routes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FibView {
    /// The node.
    pub node: String,
    /// The instance.
    pub instance: String,
    /// The kernel table.
    pub table: u32,
    /// Our protocol number.
    pub protocol: u8,
    /// Our metric.
    pub metric: u32,
    /// The prefix rules (empty: every received route).
    pub accept: Vec<String>,
    /// The startup hold is over: routes of ours no longer wanted are removed.
    pub converged: bool,
    /// Accepted prefixes of the Loc-RIB (installed, conflicting or unresolved).
    pub wanted: usize,
    /// Our routes in the kernel.
    pub routes: Vec<FibRouteView>,
    /// Destinations held by a route that is not ours at our table and metric (left alone).
    pub conflicts: Vec<String>,
    /// Prefixes not installed because no next hop resolves, with the reason.
    pub unresolved: Vec<String>,
    /// Routes of ours found at start.
    pub found_at_start: usize,
    /// Of those, adopted in place.
    pub adopted: usize,
    /// Kernel operations so far.
    pub added: u64,
    /// Replacements so far.
    pub replaced: u64,
    /// Deletions so far.
    pub deleted: u64,
    /// The last error, if the last reconcile had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One route of ours in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FibRouteView {
    /// The destination.
    pub prefix: String,
    /// `via GATEWAY dev LINK` (or `dev LINK`), one per ECMP path.
    pub next_hops: Vec<String>,
}
