//! The pure step of the BGP agent: a snapshot, this node's name and the machine's facts in,
//! the node's instances, peers and per-peer routes out ([`NodeDesired`]).
//!
//! - **Which ClusterConfig.** Those whose `nodeSelector` (nil: every node) selects the Node
//!   object, oldest first (`creationTimestamp`, then name); the oldest applies, the others
//!   conflict (`cilium.io/ConflictingClusterConfig`, set by the operator role, see
//!   [`super::cluster`]). A selector that cannot be evaluated selects nothing.
//! - **Instances.** `localASN`, `localPort` and `routerID` from the node's
//!   CiliumBGPNodeConfigOverride (named after the node) when it sets them, else from the
//!   ClusterConfig; the router ID else the node's IPv4 InternalIP; missing: the instance is
//!   not run and the error says why.
//! - **Peers.** The address is `peerAddress`, or with `autoDiscovery.mode: DefaultGateway` the
//!   gateway of the node's default route of that family. The CiliumBGPPeerConfig named by
//!   `peerConfigRef` (none: every default) gives port, timers, TCP MD5 key (key `password` of
//!   the Secret `authSecretRef` in the BGP secrets namespace), eBGP multihop, graceful restart
//!   and the families, each selecting its advertisements. A peer whose config or Secret is
//!   missing is not run (rather than run without its key); the error names what is missing.
//! - **Routes.** Each peer gets exactly the routes its families' advertisements give
//!   (`export_routes`) and nothing it learns from other peers (`export_learned: false`: a node
//!   is not a transit router); the instance originates their union.
//! - **BFD.** A peer whose CiliumBGPPeerConfig carries `lbspeaker.io/bfd-profile: NAME` gets a
//!   single-hop BFD session with that BFDProfile's timers when it is directly connected
//!   ([`super::bfd`]); a missing profile or a peer behind a router is a problem, and BGP runs
//!   on without BFD.
//! - **FIB.** The ClusterConfig's `lbspeaker.io/install-routes` annotations say which
//!   instances install their received routes in the kernel ([`super::fib`]); two instances
//!   cannot share a table.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp::config::{Asn, HoldTime, RouterId};
use bgp::speaker::{GracefulRestartConfig, InstanceConfig, PeerConfig, Route};
use bgp::wire::Family;
use crds::bgp::{
    AddressFamily, Afi, AutoDiscoveryMode, CiliumBGPClusterConfig, CiliumBGPInstance,
    CiliumBGPNodeConfigInstanceOverride, CiliumBGPNodeConfigSpec, CiliumBGPNodeInstance,
    CiliumBGPNodePeer, CiliumBGPPeer, CiliumBGPPeerConfigSpec, Safi,
};
use crds::selector::{Selector, WhenNil};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use super::adverts::{self, Context, Merged};
use super::bfd;
use super::desired::{DesiredInstance, NodeDesired};
use super::facts::LocalFacts;
use super::fib::{self, FibWant};
use crate::api::PolicyView;
use crate::source::{ObjectKey, Snapshot};

/// The namespace BGP Secrets are read from unless told otherwise (Cilium's default).
pub const DEFAULT_SECRETS_NAMESPACE: &str = "kube-system";

/// The key of a BGP Secret holding the TCP MD5 password.
pub const PASSWORD_KEY: &str = "password";

/// Creation time as Unix seconds (0 when unknown: oldest).
fn created(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> i64 {
    meta.creation_timestamp
        .as_ref()
        .map_or(0, |t| t.0.as_second())
}

/// The ClusterConfigs, oldest first (creation time, then name).
pub fn cluster_configs_by_age(snapshot: &Snapshot) -> Vec<&Arc<CiliumBGPClusterConfig>> {
    let mut v: Vec<&Arc<CiliumBGPClusterConfig>> = snapshot.bgp_cluster_configs.values().collect();
    v.sort_by_key(|c| (created(&c.metadata), c.metadata.name.clone()));
    v
}

/// A ClusterConfig's compiled `nodeSelector` (nil: every node), or why it cannot be evaluated.
pub fn node_selector(cc: &CiliumBGPClusterConfig) -> Result<Selector, String> {
    Selector::compile_optional(cc.spec.node_selector.as_ref(), WhenNil::Everything)
        .map_err(|e| e.under("spec.nodeSelector"))
}

/// Whether a ClusterConfig selects a node.
pub fn selects(cc: &CiliumBGPClusterConfig, node: &Node) -> bool {
    let none = BTreeMap::new();
    node_selector(cc).is_ok_and(|s| s.matches(node.metadata.labels.as_ref().unwrap_or(&none)))
}

/// The ClusterConfigs selecting a node, oldest (the one that applies) first.
pub fn selecting<'a>(snapshot: &'a Snapshot, node: &Node) -> Vec<&'a Arc<CiliumBGPClusterConfig>> {
    cluster_configs_by_age(snapshot)
        .into_iter()
        .filter(|cc| selects(cc, node))
        .collect()
}

/// The node's IPv4 InternalIP, the default router ID.
pub fn internal_ipv4(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
}

/// The override of one instance for this node, if any.
fn instance_override<'a>(
    snapshot: &'a Snapshot,
    node: &str,
    instance: &str,
) -> Option<&'a CiliumBGPNodeConfigInstanceOverride> {
    snapshot
        .bgp_node_config_overrides
        .get(&ObjectKey::cluster(node))?
        .spec
        .bgp_instances
        .iter()
        .find(|i| i.name == instance)
}

/// The TCP MD5 key of a Secret, or why there is none.
pub fn auth_password(snapshot: &Snapshot, namespace: &str, secret: &str) -> Result<String, String> {
    let s = snapshot
        .secrets
        .get(&ObjectKey::namespaced(namespace, secret))
        .ok_or_else(|| format!("Secret {namespace}/{secret} does not exist"))?;
    let bytes = s
        .data
        .as_ref()
        .and_then(|d| d.get(PASSWORD_KEY))
        .ok_or_else(|| format!("Secret {namespace}/{secret} has no key {PASSWORD_KEY:?}"))?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| format!("Secret {namespace}/{secret}: key {PASSWORD_KEY:?} is not UTF-8"))
}

/// Everything a reconcile needs besides the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The node this process speaks for.
    pub node: &'a str,
    /// Interfaces and default routes of the machine.
    pub facts: &'a LocalFacts,
    /// Where `authSecretRef` Secrets live.
    pub secrets_namespace: &'a str,
}

/// Computes what the node's speaker should run.
pub fn reconcile(snapshot: &Snapshot, input: Input<'_>) -> NodeDesired {
    let mut d = NodeDesired {
        node: input.node.to_owned(),
        ..NodeDesired::default()
    };
    let Some(node) = snapshot.nodes.get(&ObjectKey::cluster(input.node)) else {
        if !snapshot.bgp_cluster_configs.is_empty() {
            d.errors.push(format!(
                "Node {} is not among the manifests: no BGP configuration applies",
                input.node
            ));
        }
        return d;
    };
    let Some(cc) = selecting(snapshot, node).into_iter().next() else {
        return d;
    };
    let cc_name = cc.metadata.name.clone().unwrap_or_default();
    d.cluster_config = Some(cc_name.clone());
    let ctx = Context {
        snapshot,
        node_name: input.node,
        node,
        facts: input.facts,
    };
    let mut spec = CiliumBGPNodeConfigSpec {
        bgp_instances: Vec::new(),
    };
    for inst in &cc.spec.bgp_instances {
        match instance(&ctx, cc, inst, input, &mut d) {
            Ok((desired, node_inst)) => {
                d.instances.insert(inst.name.clone(), desired);
                spec.bgp_instances.push(node_inst);
            }
            Err(e) => d.errors.push(e),
        }
    }
    d.spec = Some(spec);
    one_table_per_instance(&mut d);
    d
}

/// Two instances installing routes into one table would remove each other's: the first (by
/// name) keeps it, the others install nothing and say why.
fn one_table_per_instance(d: &mut NodeDesired) {
    let mut owner: BTreeMap<u32, String> = BTreeMap::new();
    for (name, inst) in d.instances.iter_mut() {
        let FibWant::Install(cfg) = &inst.fib else {
            continue;
        };
        match owner.get(&cfg.table) {
            Some(first) => {
                d.errors.push(format!(
                    "instance {name}: {}: table {} already holds instance {first}'s routes; choose another with {}",
                    fib::INSTALL_ROUTES,
                    cfg.table,
                    fib::ROUTE_TABLE
                ));
                inst.fib = FibWant::Invalid;
            }
            None => {
                owner.insert(cfg.table, name.clone());
            }
        }
    }
}

fn instance(
    ctx: &Context<'_>,
    cc: &CiliumBGPClusterConfig,
    inst: &CiliumBGPInstance,
    input: Input<'_>,
    d: &mut NodeDesired,
) -> Result<(DesiredInstance, CiliumBGPNodeInstance), String> {
    let what = format!("instance {}", inst.name);
    let cc_name = cc.metadata.name.as_deref().unwrap_or_default();
    let ov = instance_override(ctx.snapshot, input.node, &inst.name);
    let asn = ov
        .and_then(|o| o.local_asn)
        .or(inst.local_asn)
        .ok_or_else(|| {
            format!("{what}: no localASN in CiliumBGPClusterConfig {cc_name} nor in an override")
        })?;
    let asn = u32::try_from(asn)
        .ok()
        .and_then(|a| Asn::new(a).ok())
        .ok_or_else(|| format!("{what}: localASN {asn} is not 1..4294967295"))?;
    let port = ov.and_then(|o| o.local_port).or(inst.local_port);
    let listen_port = port
        .map(|p| u16::try_from(p).ok().filter(|p| *p != 0))
        .map(|p| p.ok_or_else(|| format!("{what}: localPort is not 1..65535")))
        .transpose()?;
    let router_id = match ov.and_then(|o| o.router_id.as_deref()) {
        Some(s) => s.parse::<Ipv4Addr>().map_err(|_| {
            format!("{what}: routerID {s:?} of CiliumBGPNodeConfigOverride {} is not an IPv4 address", input.node)
        })?,
        None => internal_ipv4(ctx.node).ok_or_else(|| {
            format!(
                "{what}: no router ID: Node {} has no IPv4 InternalIP; set routerID in a CiliumBGPNodeConfigOverride named {}",
                input.node, input.node
            )
        })?,
    };
    let router_id =
        RouterId::new(router_id).map_err(|e| format!("{what}: router ID {router_id}: {e}"))?;
    let mut config = InstanceConfig::new(&inst.name, asn, router_id);
    config.listen_port = listen_port;
    let fib = fib::want(cc, &inst.name).unwrap_or_else(|e| {
        d.errors.push(format!("{what}: {e}"));
        FibWant::Invalid
    });
    let mut desired = DesiredInstance {
        config,
        peers: BTreeMap::new(),
        routes: Vec::new(),
        bfd: BTreeMap::new(),
        fib,
    };
    let mut node_inst = CiliumBGPNodeInstance {
        name: inst.name.clone(),
        local_asn: Some(i64::from(asn.get())),
        local_port: listen_port.map(i32::from),
        router_id: Some(router_id.to_string()),
        peers: Vec::new(),
    };
    let mut union: BTreeMap<IpNet, Merged> = BTreeMap::new();
    for peer in &inst.peers {
        let local_address = ov
            .and_then(|o| o.peers.iter().find(|p| p.name == peer.name))
            .and_then(|p| p.local_address.clone());
        node_inst.peers.push(CiliumBGPNodePeer {
            name: peer.name.clone(),
            peer_address: peer.peer_address.clone(),
            peer_asn: peer.peer_asn,
            auto_discovery: peer.auto_discovery.clone(),
            local_address: local_address.clone(),
            peer_config_ref: peer.peer_config_ref.clone(),
        });
        let resolved = match resolve_peer(ctx, asn.get(), peer, local_address, input) {
            Ok(r) => r,
            Err(e) => {
                d.errors.push(format!("{what}: peer {}: {e}", peer.name));
                continue;
            }
        };
        if let Some((other, _)) = desired
            .peers
            .iter()
            .find(|(_, p)| p.address == resolved.config.address)
        {
            d.errors.push(format!(
                "{what}: peer {}: address {} is already peer {other}'s",
                peer.name, resolved.config.address
            ));
            continue;
        }
        for (p, m) in &resolved.routes {
            union.entry(*p).or_default().merge(m);
        }
        d.errors.extend(
            resolved
                .problems
                .iter()
                .map(|e| format!("{what}: peer {}: {e}", peer.name)),
        );
        d.policies
            .extend(resolved.policies.into_iter().map(|mut p| {
                p.vrouter = asn.get();
                p
            }));
        let peer_config = peer.peer_config_ref.as_ref().and_then(|r| {
            ctx.snapshot
                .bgp_peer_configs
                .get(&ObjectKey::cluster(&r.name))
        });
        match bfd::peer_for(
            ctx.snapshot,
            ctx.facts,
            &inst.name,
            peer_config.map(|p| p.as_ref()),
            &resolved.config,
        ) {
            Ok(Some(b)) => {
                desired.bfd.insert(peer.name.clone(), b);
            }
            Ok(None) => {}
            Err(e) => d.errors.push(format!("{what}: peer {}: {e}", peer.name)),
        }
        desired.peers.insert(peer.name.clone(), resolved.config);
    }
    desired.routes = union.iter().map(|(p, m)| m.route(*p)).collect();
    Ok((desired, node_inst))
}

struct ResolvedPeer {
    config: PeerConfig,
    routes: BTreeMap<IpNet, Merged>,
    policies: Vec<PolicyView>,
    problems: Vec<String>,
}

fn resolve_peer(
    ctx: &Context<'_>,
    local_as: u32,
    peer: &CiliumBGPPeer,
    local_address: Option<String>,
    input: Input<'_>,
) -> Result<ResolvedPeer, String> {
    let address: IpAddr = match (&peer.peer_address, &peer.auto_discovery) {
        (Some(a), _) => a
            .parse()
            .map_err(|_| format!("peerAddress {a:?} is not an IP address"))?,
        (None, Some(ad)) => match ad.mode {
            AutoDiscoveryMode::DefaultGateway => {
                let ipv6 = ad
                    .default_gateway
                    .as_ref()
                    .is_some_and(|g| g.address_family == AddressFamily::Ipv6);
                let fam = if ipv6 { "IPv6" } else { "IPv4" };
                ctx.facts
                    .default_gateway(ipv6)
                    .map(|g| g.gateway)
                    .ok_or_else(|| {
                        format!(
                            "autoDiscovery DefaultGateway: this node has no {fam} default route"
                        )
                    })?
            }
            AutoDiscoveryMode::Unnumbered => {
                return Err("autoDiscovery mode Unnumbered is not supported".into());
            }
        },
        (None, None) => return Err("neither peerAddress nor autoDiscovery".into()),
    };
    let peer_as = peer
        .peer_asn
        .map(|a| u32::try_from(a).map_err(|_| format!("peerASN {a} is out of range")))
        .transpose()?
        .unwrap_or(0);
    let spec: CiliumBGPPeerConfigSpec = match &peer.peer_config_ref {
        None => CiliumBGPPeerConfigSpec::default(),
        Some(r) => {
            if r.group() != crds::GROUP || r.kind() != "CiliumBGPPeerConfig" {
                return Err(format!(
                    "peerConfigRef names {}/{}, not a cilium.io CiliumBGPPeerConfig",
                    r.group(),
                    r.kind()
                ));
            }
            ctx.snapshot
                .bgp_peer_configs
                .get(&ObjectKey::cluster(&r.name))
                .map(|p| p.spec.clone())
                .ok_or_else(|| format!("CiliumBGPPeerConfig {} does not exist", r.name))?
        }
    };
    let mut c = PeerConfig::new(peer.name.clone(), address, peer_as);
    c.port = u16::try_from(spec.peer_port()).map_err(|_| "peerPort is out of range")?;
    let timers = spec.timers();
    let hold = timers.hold_time_seconds();
    c.hold_time = u16::try_from(hold)
        .ok()
        .and_then(|h| HoldTime::new(h).ok())
        .ok_or_else(|| format!("holdTimeSeconds {hold} is not 3..65535"))?;
    c.keepalive = u16::try_from(timers.keep_alive_time_seconds()).ok();
    c.connect_retry = u16::try_from(timers.connect_retry_time_seconds()).unwrap_or(u16::MAX);
    if let Some(secret) = &spec.auth_secret_ref {
        c.password = Some(
            auth_password(ctx.snapshot, input.secrets_namespace, secret)
                .map_err(|e| format!("authSecretRef: {e}"))?,
        );
    }
    let ttl = spec.ebgp_multihop();
    if ttl > 1 && peer_as != local_as {
        c.ebgp_multihop = u8::try_from(ttl).ok();
    }
    if let Some(gr) = spec.graceful_restart.as_ref().filter(|g| g.enabled) {
        c.graceful_restart = Some(GracefulRestartConfig {
            restart_time: u16::try_from(gr.restart_time_seconds()).unwrap_or(120),
            notification: true,
        });
    }
    if let Some(l) = local_address {
        c.local_address = Some(
            l.parse()
                .map_err(|_| format!("localAddress {l:?} is not an IP address"))?,
        );
    }
    c.export_learned = false;
    let mut routes: BTreeMap<IpNet, Merged> = BTreeMap::new();
    let mut policies = Vec::new();
    let mut problems = Vec::new();
    let mut families = Vec::new();
    for fam in spec.families_or_default() {
        let (family, ipv6, afi) = match (fam.afi, fam.safi) {
            (Afi::Ipv4, Safi::Unicast) => (Family::IPV4_UNICAST, false, "ipv4"),
            (Afi::Ipv6, Safi::Unicast) => (Family::IPV6_UNICAST, true, "ipv6"),
            (a, s) => {
                problems.push(format!(
                    "family {a:?}/{s:?} is not supported; only ipv4/unicast and ipv6/unicast are"
                ));
                continue;
            }
        };
        if !families.contains(&family) {
            families.push(family);
        }
        let sel = match Selector::compile_optional(fam.advertisements.as_ref(), WhenNil::Nothing) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("families[{afi}/unicast].advertisements: {e}"));
                continue;
            }
        };
        for advert in adverts::selected_adverts(ctx.snapshot, &sel) {
            let aname = advert.metadata.name.clone().unwrap_or_default();
            for (i, entry) in advert.spec.advertisements.iter().enumerate() {
                match adverts::expand(ctx, advert, i, entry, ipv6) {
                    Ok(er) => {
                        policies.push(PolicyView {
                            vrouter: local_as,
                            name: format!(
                                "{}-{afi}-{aname}-{:?}",
                                peer.name, entry.advertisement_type
                            ),
                            kind: "export".into(),
                            match_peers: vec![IpNet::from(address).to_string()],
                            match_prefixes: er.prefixes.iter().map(ToString::to_string).collect(),
                            rib_action: "accept".into(),
                            path_actions: er.attributes.actions(),
                        });
                        for p in &er.prefixes {
                            routes.entry(*p).or_default().merge(&er.attributes);
                        }
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    if families.is_empty() {
        return Err("no supported address family (ipv4/unicast, ipv6/unicast)".into());
    }
    families.sort();
    c.families = families;
    c.export_routes = Some(
        routes
            .iter()
            .map(|(p, m)| m.route(*p))
            .collect::<Vec<Route>>(),
    );
    Ok(ResolvedPeer {
        config: c,
        routes,
        policies,
        problems,
    })
}
