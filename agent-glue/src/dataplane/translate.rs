//! Services and EndpointSlices to the frontends this node's dataplane holds: pure, so that the
//! daemon, its tests and a future Kubernetes source compute the same thing.
//!
//! - **Frontends.** One per address × service port: every `status.loadBalancer.ingress[].ip`
//!   of a `type: LoadBalancer` service (whatever its `loadBalancerClass`: the dataplane
//!   forwards what an address controller gave, as kube-proxy does; ingress entries with
//!   `ipMode: Proxy` are left to the load balancer that proxies them), and every
//!   `spec.externalIPs` entry. TCP and UDP; SCTP is reported and skipped. Services labelled
//!   `service.kubernetes.io/service-proxy-name` belong to another proxy and are skipped.
//! - **Backends.** The endpoints of the EndpointSlices labelled `kubernetes.io/service-name`
//!   in the service's namespace, of the frontend's address family, on the slice port whose
//!   `name` and protocol match the service port's (its `port` is the resolved target port).
//!   `ready` (unset counts as ready) and not `terminating`: active. Otherwise `serving`
//!   (unset: as `ready`): terminating — it keeps its flows and gets no new ones — unless no
//!   eligible endpoint is ready, in which case the serving ones take new flows (kube-proxy's
//!   fallback to terminating endpoints). Neither: left out (its established flows drain).
//!   `local` when the endpoint's `nodeName` is this node.
//! - **Policies and algorithm.** `externalTrafficPolicy` and `internalTrafficPolicy`;
//!   `service.cilium.io/lb-algorithm: random|maglev` (when honoured) or the daemon's default.
//! - **Conflicts.** Two services claiming one frontend (address, port, protocol): the older
//!   service (creation time, then namespace and name) keeps it, the other is reported.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ebpf::{Algorithm, Backend, BackendState, DesiredState, Frontend, FrontendKey, Protocol};
use ebpf::{ServiceKind, TrafficPolicy};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::bgp::adverts::SERVICE_NAME_LABEL;
use crate::source::{ObjectKey, Snapshot};

/// Cilium's per-service algorithm annotation.
pub const ANNOTATION_LB_ALGORITHM: &str = "service.cilium.io/lb-algorithm";

/// Services with this label are served by the proxy it names, not by this dataplane (the label
/// kube-proxy and Cilium honour).
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";

/// What the translation needs to know besides the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateOptions {
    /// This node's name (endpoints with this `nodeName` are local).
    pub node: String,
    /// The algorithm of services without the annotation (`--bpf-lb-algorithm`).
    pub default_algorithm: Algorithm,
    /// Honour `service.cilium.io/lb-algorithm` (`--bpf-lb-algorithm-annotation`).
    pub algorithm_annotation: bool,
}

impl TranslateOptions {
    /// Defaults for `node`: random, annotation honoured.
    pub fn new(node: impl Into<String>) -> TranslateOptions {
        TranslateOptions {
            node: node.into(),
            default_algorithm: Algorithm::Random,
            algorithm_annotation: true,
        }
    }
}

/// One service's frontends and what was wrong with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceFrontends {
    /// The frontends, by key (one per address × port).
    pub frontends: BTreeMap<FrontendKey, Frontend>,
    /// Problems, one line each, naming the service.
    pub problems: Vec<String>,
}

/// The whole node's translation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    /// What the dataplane should hold.
    pub desired: DesiredState,
    /// Problems, one line each.
    pub problems: Vec<String>,
}

/// The EndpointSlices of each service, by service key (namespace, name).
pub fn slices_by_service(snapshot: &Snapshot) -> HashMap<ObjectKey, Vec<&EndpointSlice>> {
    let mut out: HashMap<ObjectKey, Vec<&EndpointSlice>> = HashMap::new();
    for (key, slice) in &snapshot.endpoint_slices {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        out.entry(ObjectKey {
            namespace: key.namespace.clone(),
            name: service.clone(),
        })
        .or_default()
        .push(slice);
    }
    out
}

fn policy(p: Option<&str>) -> TrafficPolicy {
    match p {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    }
}

fn protocol(p: Option<&str>) -> Result<Protocol, String> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        other => Err(other.to_owned()),
    }
}

/// Whether a service is served by another proxy.
fn other_proxy(svc: &Service) -> bool {
    svc.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(LABEL_SERVICE_PROXY_NAME))
}

fn algorithm(
    svc: &Service,
    opts: &TranslateOptions,
    problems: &mut Vec<String>,
    key: &ObjectKey,
) -> Algorithm {
    if !opts.algorithm_annotation {
        return opts.default_algorithm;
    }
    let value = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_LB_ALGORITHM));
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => opts.default_algorithm,
        Some("random") => Algorithm::Random,
        Some("maglev") => Algorithm::Maglev,
        Some(other) => {
            problems.push(format!(
                "Service {key}: {ANNOTATION_LB_ALGORITHM} {other:?} is not random or maglev; using {}",
                match opts.default_algorithm {
                    Algorithm::Random => "random",
                    Algorithm::Maglev => "maglev",
                }
            ));
            opts.default_algorithm
        }
    }
}

/// The addresses a service is reached at, with their kind: LoadBalancer ingress IPs first,
/// then external IPs (an address given as both is a LoadBalancer frontend).
fn addresses(svc: &Service) -> Vec<(IpAddr, ServiceKind)> {
    let mut out: Vec<(IpAddr, ServiceKind)> = Vec::new();
    let lb = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    if lb {
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref());
        for i in ingress.into_iter().flatten() {
            if i.ip_mode.as_deref() == Some("Proxy") {
                continue;
            }
            if let Some(a) = i.ip.as_deref().and_then(|s| s.parse().ok()) {
                out.push((a, ServiceKind::LoadBalancer));
            }
        }
    }
    let external = svc.spec.as_ref().and_then(|s| s.external_ips.as_ref());
    for a in external.into_iter().flatten() {
        if let Ok(a) = a.parse::<IpAddr>() {
            out.push((a, ServiceKind::ExternalIp));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|(a, _)| seen.insert(*a));
    out
}

/// An endpoint's state: `None` when it is neither ready nor serving.
fn endpoint_state(
    c: Option<&k8s_openapi::api::discovery::v1::EndpointConditions>,
) -> Option<BackendState> {
    let ready = c.and_then(|c| c.ready).unwrap_or(true);
    let serving = c.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
    if ready && !terminating {
        Some(BackendState::Active)
    } else if serving {
        Some(BackendState::Terminating)
    } else {
        None
    }
}

/// The backends of one service port in one family, deduplicated by address and port (an
/// active copy wins over a terminating one).
fn backends(
    slices: &[&EndpointSlice],
    port_name: &str,
    proto: Protocol,
    ipv6: bool,
    node: &str,
) -> Vec<Backend> {
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    let mut by_key: BTreeMap<(IpAddr, u16), Backend> = BTreeMap::new();
    for s in slices.iter().filter(|s| s.address_type == family) {
        let Some(port) = s.ports.iter().flatten().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or("") == port_name;
            let same_proto = protocol(p.protocol.as_deref()).ok() == Some(proto);
            (same_name && same_proto)
                .then_some(p.port)
                .flatten()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
        }) else {
            continue;
        };
        for e in &s.endpoints {
            let Some(state) = endpoint_state(e.conditions.as_ref()) else {
                continue;
            };
            let local = e.node_name.as_deref() == Some(node);
            for a in &e.addresses {
                let Ok(address) = a.parse::<IpAddr>() else {
                    continue;
                };
                if address.is_ipv6() != ipv6 {
                    continue;
                }
                let b = Backend {
                    address,
                    port,
                    state,
                    local,
                };
                by_key
                    .entry((address, port))
                    .and_modify(|old| {
                        if old.state == BackendState::Terminating {
                            old.state = state;
                        }
                        old.local |= local;
                    })
                    .or_insert(b);
            }
        }
    }
    by_key.into_values().collect()
}

/// kube-proxy's fallback: when no eligible backend is ready, the serving (terminating) ones
/// take new flows rather than none at all.
fn promote_serving(f: &mut Frontend) {
    let eligible = |b: &Backend| f.external_policy == TrafficPolicy::Cluster || b.local;
    let any_active = f
        .backends
        .iter()
        .any(|b| eligible(b) && b.state == BackendState::Active);
    if any_active {
        return;
    }
    let cluster = f.external_policy == TrafficPolicy::Cluster;
    for b in &mut f.backends {
        if cluster || b.local {
            b.state = BackendState::Active;
        }
    }
}

/// The frontends of one service, given its EndpointSlices.
pub fn service_frontends(
    key: &ObjectKey,
    svc: &Service,
    slices: &[&EndpointSlice],
    opts: &TranslateOptions,
) -> ServiceFrontends {
    let mut out = ServiceFrontends::default();
    if other_proxy(svc) {
        return out;
    }
    let addrs = addresses(svc);
    if addrs.is_empty() {
        return out;
    }
    let Some(spec) = svc.spec.as_ref() else {
        return out;
    };
    let algorithm = algorithm(svc, opts, &mut out.problems, key);
    let external_policy = policy(spec.external_traffic_policy.as_deref());
    let internal_policy = policy(spec.internal_traffic_policy.as_deref());
    for sp in spec.ports.iter().flatten() {
        let proto = match protocol(sp.protocol.as_deref()) {
            Ok(p) => p,
            Err(other) => {
                out.problems.push(format!(
                    "Service {key}: port {} is {other}; the dataplane forwards TCP and UDP only",
                    sp.port
                ));
                continue;
            }
        };
        let Some(port) = u16::try_from(sp.port).ok().filter(|p| *p != 0) else {
            out.problems.push(format!(
                "Service {key}: port {} is not a valid port",
                sp.port
            ));
            continue;
        };
        let name = sp.name.as_deref().unwrap_or("");
        for (address, kind) in &addrs {
            let mut f = Frontend::new(*address, port, proto);
            f.service = Some(key.to_string());
            f.kind = *kind;
            f.external_policy = external_policy;
            f.internal_policy = internal_policy;
            f.algorithm = algorithm;
            f.backends = backends(slices, name, proto, address.is_ipv6(), &opts.node);
            promote_serving(&mut f);
            if let Err(e) = f.validate() {
                out.problems.push(format!("Service {key}: {e}"));
                continue;
            }
            out.frontends.insert(f.key, f);
        }
    }
    out
}

/// The order in which services claim a contested frontend: the older first (creation time,
/// then namespace and name), so that every node decides alike.
pub type ServiceOrder = (Option<i64>, ObjectKey);

/// A service's place in [`ServiceOrder`].
pub fn service_order(key: &ObjectKey, svc: &Service) -> ServiceOrder {
    let created = svc
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second());
    (created, key.clone())
}

/// The problem line of a frontend a younger service also claims.
pub fn conflict_problem(frontend: &FrontendKey, loser: &ObjectKey, winner: &ObjectKey) -> String {
    format!(
        "Service {loser}: frontend {frontend} is already served by Service {winner}; not programmed for {loser}"
    )
}

/// The whole translation of a snapshot for this node.
pub fn translate(snapshot: &Snapshot, opts: &TranslateOptions) -> Translation {
    let slices = slices_by_service(snapshot);
    let mut claims: BTreeMap<FrontendKey, Vec<(ServiceOrder, Frontend)>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, svc) in &snapshot.services {
        let empty = Vec::new();
        let sl = slices.get(key).unwrap_or(&empty);
        let sf = service_frontends(key, svc, sl, opts);
        problems.extend(sf.problems);
        let order = service_order(key, svc);
        for (k, f) in sf.frontends {
            claims.entry(k).or_default().push((order.clone(), f));
        }
    }
    let mut desired = DesiredState::new();
    for (k, mut list) in claims {
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut it = list.into_iter();
        if let Some((winner, f)) = it.next() {
            for (loser, _) in it {
                problems.push(conflict_problem(&k, &loser.1, &winner.1));
            }
            desired.insert(f);
        }
    }
    problems.sort();
    Translation { desired, problems }
}
