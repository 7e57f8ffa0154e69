//! The plain configuration the rest of lbspeaker hands the [`Speaker`](super::Speaker):
//! instances, peers and routes. Serde-friendly (the lab harness reads it from a file),
//! validated once by [`PeerConfig::validate`] and [`InstanceConfig::validate`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{Asn, ConfigError, HoldTime, RouterId};
use crate::fsm::{GracefulRestartCapability, SessionConfig};
use crate::rib::{Attrs, ExportPolicy, PeerSettings, RibConfig};
use crate::wire::{
    AsPath, Community, ExtendedCommunity, Family, FamilySet, LargeCommunity, NextHop, Origin,
    PathAttributes,
};

/// One BGP instance (a "virtual router": Cilium's `bgpInstances[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstanceConfig {
    /// Unique name.
    pub name: String,
    /// Our AS.
    pub local_as: Asn,
    /// Our BGP identifier.
    pub router_id: RouterId,
    /// Listen on this TCP port for the peers' connections (unset: only dial out).
    #[serde(default)]
    pub listen_port: Option<u16>,
    /// Addresses to listen on (default: every IPv4 and IPv6 address).
    #[serde(default)]
    pub listen_addresses: Vec<IpAddr>,
    /// ECMP: equal-cost paths kept per prefix.
    #[serde(default = "one")]
    pub max_paths: u16,
    /// Paths with different AS paths of equal length are equal cost.
    #[serde(default)]
    pub multipath_relax: bool,
    /// LOCAL_PREF given to routes from external peers and to ours without one.
    #[serde(default = "hundred")]
    pub default_local_pref: u32,
    /// Route-reflection cluster id (the router id when unset).
    #[serde(default)]
    pub cluster_id: Option<Ipv4Addr>,
    /// We have just restarted (graceful restart): set the R bit in the first OPEN per peer.
    #[serde(default)]
    pub restarting: bool,
    /// Hold End-of-RIB back until [`Speaker::table_complete`](super::Speaker::table_complete).
    #[serde(default)]
    pub defer_end_of_rib: bool,
}

fn one() -> u16 {
    1
}

fn hundred() -> u32 {
    100
}

impl InstanceConfig {
    /// An instance with defaults: no listening, no ECMP.
    pub fn new(name: impl Into<String>, local_as: Asn, router_id: RouterId) -> InstanceConfig {
        InstanceConfig {
            name: name.into(),
            local_as,
            router_id,
            listen_port: None,
            listen_addresses: Vec::new(),
            max_paths: 1,
            multipath_relax: false,
            default_local_pref: 100,
            cluster_id: None,
            restarting: false,
            defer_end_of_rib: false,
        }
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::Invalid("instance name is empty".into()));
        }
        if self.max_paths == 0 {
            return Err(ConfigError::Invalid("max-paths must be at least 1".into()));
        }
        Ok(())
    }

    pub(crate) fn rib_config(&self) -> RibConfig {
        RibConfig {
            local_as: self.local_as.get(),
            router_id: self.router_id.get(),
            cluster_id: self.cluster_id,
            default_local_pref: self.default_local_pref,
            max_paths: self.max_paths,
            multipath_relax: self.multipath_relax,
        }
    }
}

/// Graceful restart for a peer (RFC 4724, RFC 8538).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GracefulRestartConfig {
    /// How long the peer should keep our routes after losing us, in seconds (1-4095).
    pub restart_time: u16,
    /// Offer the N bit (RFC 8538).
    #[serde(default = "yes")]
    pub notification: bool,
}

fn yes() -> bool {
    true
}

/// A max-prefix limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MaxPrefix {
    /// Largest number of prefixes accepted.
    pub limit: u32,
    /// Seconds before the session may come back (unset: not until reconfigured).
    #[serde(default)]
    pub restart_after: Option<u32>,
}

/// One peer: every option of the transport, the session and the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PeerConfig {
    /// Unique name within the instance.
    pub name: String,
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS; 0 accepts whatever it says.
    #[serde(default)]
    pub peer_as: u32,
    /// TCP port to dial (179).
    #[serde(default = "bgp_port")]
    pub port: u16,
    /// Source address of our connections.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Hold time we propose.
    #[serde(default)]
    pub hold_time: HoldTime,
    /// Keepalive interval in seconds (a third of the hold time when unset).
    #[serde(default)]
    pub keepalive: Option<u16>,
    /// Seconds between connection attempts (120).
    #[serde(default = "connect_retry")]
    pub connect_retry: u16,
    /// TCP MD5 signature key (RFC 2385).
    #[serde(default)]
    pub password: Option<String>,
    /// TTL of our packets to an external peer (1 when unset); ignored for internal peers.
    #[serde(default)]
    pub ebgp_multihop: Option<u8>,
    /// GTSM (RFC 5082): the peer is at most this many hops away; TTL 255 out, 256-hops in.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// Families to offer (IPv4 and IPv6 unicast when empty).
    #[serde(default)]
    pub families: Vec<Family>,
    /// Offer IPv6 next hops for IPv4 prefixes (RFC 8950).
    #[serde(default)]
    pub extended_next_hop: bool,
    /// Graceful restart.
    #[serde(default)]
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Max-prefix limits per family.
    #[serde(default)]
    pub max_prefixes: BTreeMap<Family, MaxPrefix>,
    /// Only accept the peer's connections, never dial.
    #[serde(default)]
    pub passive: bool,
    /// The peer is a route-reflector client.
    #[serde(default)]
    pub route_reflector_client: bool,
    /// Set ourselves as next hop toward this internal peer.
    #[serde(default)]
    pub next_hop_self: bool,
    /// Our IPv4 next hop when the session does not give one (an IPv6 session).
    #[serde(default)]
    pub next_hop_ipv4: Option<Ipv4Addr>,
    /// Our IPv6 next hop when the session does not give one (an IPv4 session).
    #[serde(default)]
    pub next_hop_ipv6: Option<Ipv6Addr>,
    /// DelayOpen time in seconds (RFC 4271 §8.1.1).
    #[serde(default)]
    pub delay_open: Option<u16>,
    /// First automatic restart delay after a failed session, in milliseconds (1000).
    #[serde(default = "idle_hold")]
    pub idle_hold_ms: u32,
    /// Pass routes learnt from other peers on to this one, as a plain BGP router does (the
    /// default). lbspeaker's daemon sets `false`: a Kubernetes node is not a transit router.
    #[serde(default = "yes")]
    pub export_learned: bool,
    /// Our routes this peer is sent, each with the attributes this peer gets (Cilium's
    /// per-peer advertisements). Unset: every route of ours, as announced. A prefix listed
    /// here is sent only while the instance originates it too (see
    /// [`Speaker::announce`](super::Speaker::announce)); changes apply without a reset.
    #[serde(default)]
    pub export_routes: Option<Vec<Route>>,
}

fn bgp_port() -> u16 {
    179
}

fn connect_retry() -> u16 {
    120
}

fn idle_hold() -> u32 {
    1000
}

impl PeerConfig {
    /// A peer with Cilium's defaults.
    pub fn new(name: impl Into<String>, address: IpAddr, peer_as: u32) -> PeerConfig {
        PeerConfig {
            name: name.into(),
            address,
            peer_as,
            port: 179,
            local_address: None,
            hold_time: HoldTime::DEFAULT,
            keepalive: None,
            connect_retry: 120,
            password: None,
            ebgp_multihop: None,
            ttl_security: None,
            families: Vec::new(),
            extended_next_hop: false,
            graceful_restart: None,
            max_prefixes: BTreeMap::new(),
            passive: false,
            route_reflector_client: false,
            next_hop_self: false,
            next_hop_ipv4: None,
            next_hop_ipv6: None,
            delay_open: None,
            idle_hold_ms: 1000,
            export_learned: true,
            export_routes: None,
        }
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("peer {}: {m}", self.name)));
        if self.name.is_empty() {
            return bad("name is empty".into());
        }
        if self.address.is_unspecified() || self.address.is_multicast() {
            return bad(format!("address {} is not a unicast address", self.address));
        }
        let hold = self.hold_time.seconds();
        if let Some(k) = self.keepalive
            && (k > hold || (hold != 0 && k == 0))
        {
            return Err(ConfigError::Keepalive { keepalive: k, hold });
        }
        if self.connect_retry == 0 {
            return bad("connect-retry must be at least 1 s".into());
        }
        if let Some(p) = &self.password
            && (p.is_empty() || p.len() > 80)
        {
            return bad("TCP MD5 password must be 1-80 octets".into());
        }
        if self.ebgp_multihop == Some(0) || self.ttl_security == Some(0) {
            return bad("TTL and GTSM hops must be 1-255".into());
        }
        if self.ebgp_multihop.is_some_and(|t| t > 1) && self.ttl_security.is_some() {
            return bad("ebgp-multihop and ttl-security exclude each other".into());
        }
        if let Some(gr) = &self.graceful_restart
            && !(1..=4095).contains(&gr.restart_time)
        {
            return bad("graceful restart time must be 1-4095 s".into());
        }
        for f in self.family_set().iter() {
            if f != Family::IPV4_UNICAST && f != Family::IPV6_UNICAST {
                return bad(format!("family {f} is not supported"));
            }
        }
        if let Some(l) = self.local_address
            && l.is_ipv4() != self.address.is_ipv4()
        {
            return bad("local address and peer address are of different families".into());
        }
        Ok(())
    }

    /// The families offered.
    pub fn family_set(&self) -> FamilySet {
        if self.families.is_empty() {
            FamilySet::of(&[Family::IPV4_UNICAST, Family::IPV6_UNICAST])
        } else {
            FamilySet::of(&self.families)
        }
    }

    /// Whether the session will be internal (unknown when the peer AS is 0).
    pub fn is_ibgp(&self, local_as: u32) -> bool {
        self.peer_as == local_as
    }

    pub(crate) fn session_config(&self, inst: &InstanceConfig, seed: u64) -> SessionConfig {
        let mut c = SessionConfig::new(inst.local_as.get(), inst.router_id.get(), self.peer_as);
        c.hold_time = self.hold_time.seconds();
        c.keepalive = self.keepalive;
        c.connect_retry = Duration::from_secs(u64::from(self.connect_retry));
        c.delay_open = self.delay_open.map(|d| Duration::from_secs(u64::from(d)));
        c.idle_hold = Duration::from_millis(u64::from(self.idle_hold_ms));
        c.idle_hold_max = c
            .idle_hold
            .max(Duration::from_secs(60))
            .min(c.connect_retry.max(c.idle_hold));
        c.passive = self.passive;
        c.families = self.family_set();
        if self.extended_next_hop {
            c.extended_next_hop = FamilySet::of(&[Family::IPV4_UNICAST]);
        }
        c.graceful_restart = self.graceful_restart.map(|g| GracefulRestartCapability {
            restart_time: g.restart_time,
            notification: g.notification,
            forwarding_preserved: true,
        });
        c.restarting = inst.restarting && self.graceful_restart.is_some();
        c.jitter_seed = seed;
        c
    }

    pub(crate) fn rib_settings(&self) -> PeerSettings {
        let limit = |f: Family| self.max_prefixes.get(&f).map(|m| m.limit);
        PeerSettings {
            address: self.address,
            rr_client: self.route_reflector_client,
            next_hop_self: self.next_hop_self,
            max_prefixes: [limit(Family::IPV4_UNICAST), limit(Family::IPV6_UNICAST)],
            export: ExportPolicy {
                learned: self.export_learned,
                local: self.export_routes.as_ref().map(|routes| {
                    Arc::new(
                        routes
                            .iter()
                            .map(|r| {
                                let mut a = r.attrs();
                                a.path.next_hop = None;
                                (r.prefix.trunc(), a)
                            })
                            .collect(),
                    )
                }),
            },
        }
    }

    /// Whether going from `self` to `new` needs the session reset (anything the OPEN or the
    /// transport carries); the rest applies in place.
    pub fn needs_reset(&self, new: &PeerConfig) -> bool {
        let mut a = self.clone();
        let mut b = new.clone();
        for c in [&mut a, &mut b] {
            c.route_reflector_client = false;
            c.next_hop_self = false;
            c.max_prefixes.clear();
            c.next_hop_ipv4 = None;
            c.next_hop_ipv6 = None;
            c.export_learned = true;
            c.export_routes = None;
        }
        a != b
    }
}

/// Families are written `ipv4-unicast` / `ipv6-unicast` in configuration files.
impl<'de> Deserialize<'de> for Family {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "ipv4-unicast" | "ipv4/unicast" => Ok(Family::IPV4_UNICAST),
            "ipv6-unicast" | "ipv6/unicast" => Ok(Family::IPV6_UNICAST),
            other => Err(serde::de::Error::custom(format!(
                "unknown family {other:?} (ipv4-unicast or ipv6-unicast)"
            ))),
        }
    }
}

/// The attributes of a route we originate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RouteAttributes {
    /// ORIGIN (IGP by default).
    #[serde(default = "igp", deserialize_with = "de_origin")]
    pub origin: Origin,
    /// MULTI_EXIT_DISC.
    #[serde(default)]
    pub med: Option<u32>,
    /// LOCAL_PREF (internal peers only).
    #[serde(default)]
    pub local_pref: Option<u32>,
    /// Standard and well-known communities (`"65000:100"`, `"no-export"`).
    #[serde(default, deserialize_with = "de_communities")]
    pub communities: Vec<Community>,
    /// Large communities (`"65000:1:2"`).
    #[serde(default, deserialize_with = "de_large")]
    pub large_communities: Vec<LargeCommunity>,
    /// Extended communities.
    #[serde(default, skip)]
    pub extended_communities: Vec<ExtendedCommunity>,
    /// Next hop to advertise (our address toward each peer when unset).
    #[serde(default)]
    pub next_hop: Option<IpAddr>,
}

impl Default for RouteAttributes {
    fn default() -> Self {
        RouteAttributes {
            origin: Origin::Igp,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            extended_communities: Vec::new(),
            next_hop: None,
        }
    }
}

fn igp() -> Origin {
    Origin::Igp
}

fn de_origin<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Origin, D::Error> {
    match String::deserialize(d)?.as_str() {
        "igp" | "i" => Ok(Origin::Igp),
        "egp" | "e" => Ok(Origin::Egp),
        "incomplete" | "?" => Ok(Origin::Incomplete),
        o => Err(serde::de::Error::custom(format!("unknown origin {o:?}"))),
    }
}

/// A standard community as operators write it: `AS:value`, a 32-bit number, or a well-known
/// name (`no-export`, `no-advertise`, `blackhole`, `llgr-stale`, ...).
pub fn parse_community(s: &str) -> Result<Community, ConfigError> {
    let named = [
        Community::NO_EXPORT,
        Community::NO_ADVERTISE,
        Community::NO_EXPORT_SUBCONFED,
        Community::NOPEER,
        Community::BLACKHOLE,
        Community::GRACEFUL_SHUTDOWN,
        Community::ACCEPT_OWN,
        Community::LLGR_STALE,
        Community::NO_LLGR,
    ];
    if let Some(c) = named.iter().find(|c| c.well_known_name() == Some(s)) {
        return Ok(*c);
    }
    let bad = || {
        ConfigError::Invalid(format!(
            "community {s:?}: expected AS:value, a number or a well-known name"
        ))
    };
    match s.split_once(':') {
        Some((a, v)) => Ok(Community::new(
            a.parse().map_err(|_| bad())?,
            v.parse().map_err(|_| bad())?,
        )),
        None => s.parse::<u32>().map(Community).map_err(|_| bad()),
    }
}

/// A large community, `global:local1:local2`.
pub fn parse_large_community(s: &str) -> Result<LargeCommunity, ConfigError> {
    let bad = || ConfigError::Invalid(format!("large community {s:?}: expected a:b:c"));
    let parts: Vec<&str> = s.split(':').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err(bad());
    };
    Ok(LargeCommunity::new(
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
        c.parse().map_err(|_| bad())?,
    ))
}

fn de_communities<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Community>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_community(s).map_err(serde::de::Error::custom))
        .collect()
}

fn de_large<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<LargeCommunity>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_large_community(s).map_err(serde::de::Error::custom))
        .collect()
}

/// A route we originate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Route {
    /// The prefix (IPv4 or IPv6: that is its family).
    pub prefix: IpNet,
    /// Its attributes.
    #[serde(default, flatten)]
    pub attributes: RouteAttributes,
}

impl Route {
    /// A route with origin IGP and nothing else.
    pub fn new(prefix: IpNet) -> Route {
        Route {
            prefix: prefix.trunc(),
            attributes: RouteAttributes::default(),
        }
    }

    pub(crate) fn attrs(&self) -> Attrs {
        let a = &self.attributes;
        let mut path = PathAttributes::new(a.origin, AsPath::empty());
        path.med = a.med;
        path.local_pref = a.local_pref;
        path.communities = a.communities.clone();
        path.large_communities = a.large_communities.clone();
        path.extended_communities = a.extended_communities.clone();
        let next_hop = a.next_hop.map(|nh| match nh {
            IpAddr::V4(v4) => NextHop::Ipv4(v4),
            IpAddr::V6(v6) => NextHop::Ipv6 {
                global: v6,
                link_local: None,
            },
        });
        Attrs { path, next_hop }
    }
}
