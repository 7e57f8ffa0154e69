//! What the speaker reports, in the shapes users know: the node's CiliumBGPNodeConfig status
//! (peering state, established time, applied timers, route counts), and the local API's views
//! (`bgp peers`, `bgp routes`), with each route's age taken from [`RouteAges`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bgp::fsm::State;
use bgp::rib::Attrs;
use bgp::speaker::{PeerState, RibRoute, Speaker};
use bgp::wire::Family;
use crds::bgp::{
    BgpFamilyRouteCount, CiliumBGPNodeConfig, CiliumBGPNodeConfigStatus,
    CiliumBGPNodeInstanceStatus, CiliumBGPNodePeerStatus, CiliumBGPTimersState,
};
use crds::conditions::{self, Status};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use tokio::task::JoinHandle;

use super::desired::NodeDesired;
use crate::api::{FamilyCounters, PeerView, RouteTable, RouteView};

/// `(afi, safi)` as the resources and the CLI spell a family.
pub fn family_names(f: Family) -> (&'static str, &'static str) {
    if f.is_ipv6() {
        ("ipv6", "unicast")
    } else {
        ("ipv4", "unicast")
    }
}

/// An RFC 3339 time to the second, as Kubernetes stores times.
pub fn rfc3339(t: SystemTime) -> Option<String> {
    let ts = Timestamp::try_from(t).ok()?;
    Some(Timestamp::from_second(ts.as_second()).ok()?.to_string())
}

type AgeKey = (IpNet, Option<String>);

/// When each Loc-RIB path (prefix and the peer it came from, `None`: ours) was first seen
/// with its current attributes, fed by one best-path subscription per instance. Cheap to
/// clone; the tasks end when the instance is forgotten or the value is dropped.
#[derive(Clone)]
pub struct RouteAges {
    speaker: Speaker,
    inner: Arc<Mutex<AgesInner>>,
}

#[derive(Default)]
struct AgesInner {
    seen: HashMap<String, HashMap<AgeKey, (Arc<Attrs>, Instant)>>,
    tasks: HashMap<String, JoinHandle<()>>,
}

impl Drop for AgesInner {
    fn drop(&mut self) {
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
    }
}

impl RouteAges {
    /// No instance watched yet.
    pub fn new(speaker: Speaker) -> RouteAges {
        RouteAges {
            speaker,
            inner: Arc::new(Mutex::new(AgesInner::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AgesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts following an instance's Loc-RIB.
    pub async fn watch(&self, instance: &str) {
        let Ok(mut sub) = self.speaker.subscribe_best_paths(instance).await else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let name = instance.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let batch = sub.next_batch().await;
                let Some(inner) = weak.upgrade() else { return };
                let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
                let seen = g.seen.entry(name.clone()).or_default();
                let now = Instant::now();
                for change in batch {
                    let mut old: HashMap<AgeKey, (Arc<Attrs>, Instant)> = HashMap::new();
                    seen.retain(|k, v| {
                        if k.0 == change.prefix {
                            old.insert(k.clone(), v.clone());
                            false
                        } else {
                            true
                        }
                    });
                    for path in change.paths {
                        let key = (path.prefix, path.peer.clone());
                        // A path that stayed as it was keeps its age when others come or go.
                        let since = old
                            .get(&key)
                            .filter(|(a, _)| *a == path.attrs)
                            .map_or(now, |(_, t)| *t);
                        seen.insert(key, (path.attrs.clone(), since));
                    }
                }
            }
        });
        let mut g = self.lock();
        if let Some(old) = g.tasks.insert(instance.to_owned(), task) {
            old.abort();
        }
    }

    /// Stops following an instance.
    pub fn forget(&self, instance: &str) {
        let mut g = self.lock();
        if let Some(t) = g.tasks.remove(instance) {
            t.abort();
        }
        g.seen.remove(instance);
    }

    /// How long a path has been in the Loc-RIB as it is now.
    pub fn age(&self, instance: &str, route: &RibRoute) -> Duration {
        let g = self.lock();
        g.seen
            .get(instance)
            .and_then(|m| m.get(&(route.prefix, route.peer.clone())))
            .filter(|(a, _)| **a == *route.attrs)
            .map(|(_, t)| t.elapsed())
            .unwrap_or_default()
    }
}

/// Counts of the families a peer is configured for.
fn counters(p: &PeerState) -> Vec<FamilyCounters> {
    p.counts
        .iter()
        .map(|c| {
            let (afi, safi) = family_names(c.family);
            FamilyCounters {
                afi: afi.into(),
                safi: safi.into(),
                received: u64::from(c.received),
                advertised: u64::from(c.advertised),
            }
        })
        .collect()
}

/// `lbspeaker bgp peers`: every session of every instance.
pub async fn peer_views(node: &str, speaker: &Speaker) -> Vec<PeerView> {
    let mut out = Vec::new();
    for inst in speaker.instances() {
        let Ok(states) = speaker.peer_states(&inst).await else {
            continue;
        };
        for p in states {
            // Before Established: what we propose.
            let (hold, keep) = speaker
                .peer_config(&inst, &p.name)
                .await
                .map(|c| {
                    let h = c.hold_time.seconds();
                    (h, c.keepalive.unwrap_or(h / 3))
                })
                .unwrap_or((90, 30));
            out.push(PeerView {
                node: node.to_owned(),
                instance: inst.clone(),
                name: p.name.clone(),
                local_asn: p.local_as,
                peer_asn: p.peer_as.unwrap_or(p.configured_as),
                peer_address: p.address.to_string(),
                session_state: p.state.name().to_owned(),
                uptime_seconds: p.uptime.map(|u| u.as_secs()),
                hold_time_seconds: p.hold_time.unwrap_or(hold),
                keepalive_seconds: p.keepalive.unwrap_or(keep),
                families: counters(&p),
                last_error: p.last_error.clone(),
            });
        }
    }
    out
}

/// Attributes as Cilium's CLI prints them: `{Origin: i} {AsPath: 65000} {Nexthop: ...}`.
pub fn attr_strings(a: &Attrs, next_hop: &str) -> Vec<String> {
    let p = &a.path;
    let mut v = Vec::new();
    if let Some(o) = p.origin {
        let o = match o {
            bgp::wire::Origin::Igp => "i",
            bgp::wire::Origin::Egp => "e",
            bgp::wire::Origin::Incomplete => "?",
        };
        v.push(format!("{{Origin: {o}}}"));
    }
    if let Some(path) = p.as_path.as_ref().filter(|x| !x.to_string().is_empty()) {
        v.push(format!("{{AsPath: {path}}}"));
    }
    v.push(format!("{{Nexthop: {next_hop}}}"));
    if let Some(m) = p.med {
        v.push(format!("{{Med: {m}}}"));
    }
    if let Some(l) = p.local_pref {
        v.push(format!("{{LocalPref: {l}}}"));
    }
    if !p.communities.is_empty() {
        let c: Vec<String> = p.communities.iter().map(ToString::to_string).collect();
        v.push(format!("{{Communities: {}}}", c.join(", ")));
    }
    if !p.large_communities.is_empty() {
        let c: Vec<String> = p
            .large_communities
            .iter()
            .map(ToString::to_string)
            .collect();
        v.push(format!("{{LargeCommunity: {}}}", c.join(", ")));
    }
    v
}

fn unspecified(ipv6: bool) -> String {
    if ipv6 { "::" } else { "0.0.0.0" }.to_owned()
}

/// `lbspeaker bgp routes available|advertised AFI unicast`.
pub async fn route_views(
    node: &str,
    speaker: &Speaker,
    ages: &RouteAges,
    table: RouteTable,
    family: Family,
) -> Vec<RouteView> {
    let ipv6 = family.is_ipv6();
    let mut out = Vec::new();
    for inst in speaker.instances() {
        let vrouter = speaker
            .instance_config(&inst)
            .await
            .map(|c| c.local_as.get())
            .unwrap_or_default();
        match table {
            RouteTable::Available => {
                let Ok(routes) = speaker.loc_rib(&inst, family).await else {
                    continue;
                };
                for r in routes {
                    let nh = match (r.peer.is_none(), r.next_hop) {
                        (true, _) | (_, None) => unspecified(ipv6),
                        (false, Some(a)) => a.to_string(),
                    };
                    out.push(RouteView {
                        node: node.to_owned(),
                        vrouter,
                        peer: None,
                        prefix: r.prefix.to_string(),
                        next_hop: nh.clone(),
                        age_seconds: ages.age(&inst, &r).as_secs(),
                        best: r.best,
                        attrs: attr_strings(&r.attrs, &nh),
                    });
                }
            }
            RouteTable::Advertised => {
                let Ok(states) = speaker.peer_states(&inst).await else {
                    continue;
                };
                let local: HashMap<IpNet, RibRoute> = speaker
                    .local_routes(&inst)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| (r.prefix, r))
                    .collect();
                for p in states {
                    let Ok(routes) = speaker.adj_rib_out(&inst, &p.name, family).await else {
                        continue;
                    };
                    for r in routes {
                        let nh = r
                            .next_hop
                            .map(|a: IpAddr| a.to_string())
                            .unwrap_or_else(|| unspecified(ipv6));
                        // Sent since the session came up, or since the route appeared.
                        let since_up = p.uptime.unwrap_or_default();
                        let since_route = local
                            .get(&r.prefix)
                            .map(|l| ages.age(&inst, l))
                            .unwrap_or(since_up);
                        out.push(RouteView {
                            node: node.to_owned(),
                            vrouter,
                            peer: Some(p.address.to_string()),
                            prefix: r.prefix.to_string(),
                            next_hop: nh.clone(),
                            age_seconds: since_up.min(since_route).as_secs(),
                            best: true,
                            attrs: attr_strings(&r.attrs, &nh),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The node's CiliumBGPNodeConfig: the spec the reconcile resolved and the status the speaker
/// reports. `None` when no ClusterConfig selects the node. `created` keeps the creation time
/// of the object already stored.
pub async fn node_config(
    desired: &NodeDesired,
    errors: &[String],
    speaker: &Speaker,
    created: Option<Time>,
    now: Timestamp,
    previous: Option<&CiliumBGPNodeConfig>,
) -> Option<CiliumBGPNodeConfig> {
    let spec = desired.spec.clone()?;
    let mut status = CiliumBGPNodeConfigStatus::default();
    for inst in &spec.bgp_instances {
        let states = speaker.peer_states(&inst.name).await.unwrap_or_default();
        let mut is = CiliumBGPNodeInstanceStatus {
            name: inst.name.clone(),
            local_asn: inst.local_asn,
            peers: Vec::new(),
        };
        for p in states {
            is.peers.push(CiliumBGPNodePeerStatus {
                name: p.name.clone(),
                peer_address: p.address.to_string(),
                peer_asn: Some(i64::from(p.peer_as.unwrap_or(p.configured_as))),
                peering_state: Some(p.state.name().to_owned()),
                established_time: (p.state == State::Established)
                    .then_some(p.established_since)
                    .flatten()
                    .and_then(rfc3339),
                timers: (p.state == State::Established).then(|| CiliumBGPTimersState {
                    applied_hold_time_seconds: p.hold_time.map(i32::from),
                    applied_keepalive_seconds: p.keepalive.map(i32::from),
                }),
                route_count: p
                    .counts
                    .iter()
                    .map(|c| {
                        let (afi, safi) = family_names(c.family);
                        BgpFamilyRouteCount {
                            afi: afi.into(),
                            safi: safi.into(),
                            received: i32::try_from(c.received).ok(),
                            advertised: i32::try_from(c.advertised).ok(),
                        }
                    })
                    .collect(),
            });
        }
        status.bgp_instances.push(is);
    }
    let mut conds = previous
        .and_then(|p| p.status.as_ref())
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let (st, reason, msg) = if errors.is_empty() {
        (
            Status::False,
            "Reconciled",
            "every instance and peer applied".to_string(),
        )
    } else {
        (Status::True, "ReconcileError", errors.join("; "))
    };
    conditions::set(
        &mut conds,
        conditions::new(conditions::BGP_RECONCILE_ERROR, st, reason, msg, None, now),
    );
    status.conditions = conds;
    Some(CiliumBGPNodeConfig {
        metadata: ObjectMeta {
            name: Some(desired.node.clone()),
            creation_timestamp: created
                .or_else(|| Some(Time(Timestamp::from_second(now.as_second()).unwrap_or(now)))),
            ..ObjectMeta::default()
        },
        spec,
        status: Some(status),
    })
}

/// Whether two node configs say the same (spec and status, condition times ignored).
pub fn same_node_config(a: &CiliumBGPNodeConfig, b: &CiliumBGPNodeConfig) -> bool {
    let strip = |c: &CiliumBGPNodeConfig| {
        let mut s = c.status.clone().unwrap_or_default();
        let conds = std::mem::take(&mut s.conditions);
        (s, conds)
    };
    let (sa, ca) = strip(a);
    let (sb, cb) = strip(b);
    a.spec == b.spec && sa == sb && conditions::same_ignoring_time(&ca, &cb)
}
