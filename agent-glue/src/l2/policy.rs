//! CiliumL2AnnouncementPolicies evaluated for one node: a pure function from a snapshot, the
//! node's name and its interfaces to the announcements `l2announce::Runner` runs.
//!
//! The rules, as Cilium's L2 announcer applies them (`pkg/l2announcer`):
//!
//! - A policy applies when its three parts can be evaluated: `nodeSelector` and
//!   `serviceSelector` (nil = every node / every service; services also match the
//!   pseudo-labels `io.kubernetes.service.name` and `.namespace`) and `interfaces` (regular
//!   expressions, matched anywhere in the name as Go's `MatchString` does; nil or empty = every
//!   interface). A part that cannot be evaluated puts the policy out of force and is reported
//!   ([`CompiledPolicy::errors`], the operator role's conditions).
//! - A service is announced only if its `loadBalancerClass` is unset or
//!   `io.cilium/l2-announcer`; its `status.loadBalancer.ingress` addresses (for `type:
//!   LoadBalancer`) when the policy has `loadBalancerIPs: true`, its `spec.externalIPs` when it
//!   has `externalIPs: true` (both default false).
//! - Policies selecting the same service merge: the node may answer for an address when any
//!   of them selects the node, on the union of their interfaces.
//! - `externalTrafficPolicy: Local`: only a node with a ready endpoint of the service
//!   ([`has_ready_local_endpoint`], the BGP reconciler's rule) may answer, so the node that
//!   answers ARP can deliver the traffic (Cilium 27800).
//!
//! Every address any policy announces is in the result, with `eligible: false` where this node
//! may not answer, so that every node hands the runner the same set and derives the same lease
//! names (`l2announce::LeaseNamer`). Addresses shared by several services (an LB-IPAM sharing
//! key) are one entry with every service, hence one lease and one responder.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crds::conditions;
use crds::l2::CiliumL2AnnouncementPolicy;
use crds::selector::{Selector, WhenNil, WithPseudoLabels};
use k8s_openapi::api::core::v1::Service;
use l2announce::{DesiredAnnouncement, ServiceKey};
use regex::Regex;

use crate::bgp::adverts::has_ready_local_endpoint;
use crate::ipam::translate::{CLASS_L2, ingress_ips};
use crate::source::{ObjectKey, Snapshot};

/// One interface of the node, as far as policies care.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interface {
    /// Its name (`eth1`).
    pub name: String,
    /// The loopback device: never announced on.
    pub loopback: bool,
    /// It has an Ethernet-like MAC (only those can answer ARP or neighbour solicitations).
    pub ethernet: bool,
}

impl From<&l2announce::LinkInfo> for Interface {
    fn from(l: &l2announce::LinkInfo) -> Self {
        Interface {
            name: l.name.clone(),
            loopback: l.loopback,
            ethernet: l.mac.is_some(),
        }
    }
}

/// A policy's `interfaces`, compiled.
#[derive(Debug, Clone)]
pub enum InterfaceMatch {
    /// nil or empty: every non-loopback Ethernet interface.
    All,
    /// Any of these expressions matches somewhere in the name.
    Any(Vec<Regex>),
}

/// A policy with its selectors and expressions compiled; each part keeps its error.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The policy's name.
    pub name: String,
    /// `spec.nodeSelector`, or why it cannot be evaluated.
    pub node_selector: Result<Selector, String>,
    /// `spec.serviceSelector`, or why it cannot be evaluated.
    pub service_selector: Result<Selector, String>,
    /// `spec.interfaces`, or the first expression that does not compile.
    pub interfaces: Result<InterfaceMatch, String>,
    /// `spec.loadBalancerIPs` (default false).
    pub load_balancer_ips: bool,
    /// `spec.externalIPs` (default false).
    pub external_ips: bool,
}

/// A regular expression's error on one line (the regex crate's is a multi-line drawing).
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .filter_map(|l| l.trim().strip_prefix("error: "))
            .next()
            .unwrap_or("invalid syntax")
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled size exceeds the limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

impl CompiledPolicy {
    /// Compiles a policy.
    pub fn compile(policy: &CiliumL2AnnouncementPolicy) -> CompiledPolicy {
        let spec = &policy.spec;
        let selector = |s, field: &str| {
            Selector::compile_optional(s, WhenNil::Everything).map_err(|e| e.under(field))
        };
        let interfaces = match spec.interfaces.as_deref() {
            None | Some([]) => Ok(InterfaceMatch::All),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Regex::new(p).map_err(|e| {
                        format!(
                            "spec.interfaces[{i}] ({p:?}) is not a valid regular expression: {}",
                            regex_error(&e)
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(InterfaceMatch::Any),
        };
        CompiledPolicy {
            name: policy.metadata.name.clone().unwrap_or_default(),
            node_selector: selector(spec.node_selector.as_ref(), "spec.nodeSelector"),
            service_selector: selector(spec.service_selector.as_ref(), "spec.serviceSelector"),
            interfaces,
            load_balancer_ips: spec.load_balancer_ips(),
            external_ips: spec.external_ips(),
        }
    }

    /// The three conditions this policy reports, with the error each part has (if any).
    pub fn errors(&self) -> [(&'static str, Option<&str>); 3] {
        fn err<T>(r: &Result<T, String>) -> Option<&str> {
            r.as_ref().err().map(String::as_str)
        }
        [
            (
                conditions::BAD_SERVICE_SELECTOR,
                err(&self.service_selector),
            ),
            (conditions::BAD_NODE_SELECTOR, err(&self.node_selector)),
            (conditions::BAD_INTERFACE_REGEX, err(&self.interfaces)),
        ]
    }

    /// The interfaces of `interfaces` this policy selects (never loopback, only Ethernet).
    pub fn matching<'a>(&self, interfaces: &'a [Interface]) -> Vec<&'a str> {
        let Ok(m) = &self.interfaces else {
            return Vec::new();
        };
        interfaces
            .iter()
            .filter(|i| !i.loopback && i.ethernet)
            .filter(|i| match m {
                InterfaceMatch::All => true,
                InterfaceMatch::Any(res) => res.iter().any(|r| r.is_match(&i.name)),
            })
            .map(|i| i.name.as_str())
            .collect()
    }
}

/// Every policy of the snapshot, compiled, in name order.
pub fn compile_all(snapshot: &Snapshot) -> Vec<CompiledPolicy> {
    snapshot
        .l2_announcement_policies
        .values()
        .map(|p| CompiledPolicy::compile(p))
        .collect()
}

/// What the policies ask of this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// One entry per announced address, sorted by address.
    pub announcements: Vec<DesiredAnnouncement>,
    /// Policies out of force and other problems, one line each.
    pub problems: Vec<String>,
}

/// The addresses a policy announces for a service.
fn addresses(policy: &CompiledPolicy, svc: &Service) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    let Some(spec) = &svc.spec else { return out };
    if policy.load_balancer_ips && spec.type_.as_deref() == Some("LoadBalancer") {
        out.extend(ingress_ips(svc.status.as_ref()));
    }
    if policy.external_ips {
        out.extend(
            spec.external_ips
                .iter()
                .flatten()
                .filter_map(|a| a.trim().parse::<IpAddr>().ok()),
        );
    }
    out
}

#[derive(Default)]
struct Entry {
    services: BTreeSet<ServiceKey>,
    interfaces: BTreeSet<String>,
}

/// Evaluates every policy for node `node` with these interfaces (module documentation).
pub fn evaluate(snapshot: &Snapshot, node: &str, interfaces: &[Interface]) -> Evaluation {
    let mut problems = Vec::new();
    let policies = compile_all(snapshot);
    for p in &policies {
        for (_, e) in p.errors() {
            if let Some(e) = e {
                problems.push(format!(
                    "CiliumL2AnnouncementPolicy {}: {e}; the policy is not in force",
                    p.name
                ));
            }
        }
    }
    let in_force: Vec<&CompiledPolicy> = policies
        .iter()
        .filter(|p| p.errors().iter().all(|(_, e)| e.is_none()))
        .collect();
    let node_labels = snapshot
        .nodes
        .get(&ObjectKey::cluster(node))
        .map(|n| n.metadata.labels.clone().unwrap_or_default());
    if node_labels.is_none() && !in_force.is_empty() {
        problems.push(format!(
            "L2 announcements: there is no Node {node}, so no policy selects this node"
        ));
    }
    // Which in-force policies select this node, with the interfaces each gives.
    let here: Vec<Option<Vec<&str>>> = in_force
        .iter()
        .map(|p| {
            let labels = node_labels.as_ref()?;
            let selects = p.node_selector.as_ref().is_ok_and(|s| s.matches(labels));
            selects.then(|| p.matching(interfaces))
        })
        .collect();

    let mut by_address: BTreeMap<IpAddr, Entry> = BTreeMap::new();
    for (key, svc) in &snapshot.services {
        let class = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_deref());
        if !matches!(class, None | Some(CLASS_L2)) {
            continue;
        }
        let ns = key.namespace.as_deref().unwrap_or("default");
        let labels = WithPseudoLabels::service(svc.metadata.labels.as_ref(), ns, &key.name);
        let local = svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        let mut local_ok: Option<bool> = None;
        let mut service_key: Option<ServiceKey> = None;
        for (p, here) in in_force.iter().zip(&here) {
            if !p
                .service_selector
                .as_ref()
                .is_ok_and(|s| s.matches(&labels))
            {
                continue;
            }
            let addrs = addresses(p, svc);
            if addrs.is_empty() {
                continue;
            }
            let sk = match &service_key {
                Some(k) => k.clone(),
                None => match ServiceKey::new(ns, &key.name) {
                    Ok(k) => {
                        service_key = Some(k.clone());
                        k
                    }
                    Err(e) => {
                        problems.push(format!("Service {key}: {e}; not announced"));
                        break;
                    }
                },
            };
            let ifaces: &[&str] = match here {
                Some(list)
                    if !local
                        || *local_ok.get_or_insert_with(|| {
                            has_ready_local_endpoint(snapshot, key, node)
                        }) =>
                {
                    list
                }
                _ => &[],
            };
            for a in addrs {
                let e = by_address.entry(a).or_default();
                e.services.insert(sk.clone());
                e.interfaces.extend(ifaces.iter().map(|s| (*s).to_owned()));
            }
        }
    }
    let announcements = by_address
        .into_iter()
        .map(|(address, e)| DesiredAnnouncement {
            address,
            eligible: !e.interfaces.is_empty(),
            services: e.services,
            interfaces: e.interfaces,
        })
        .collect();
    Evaluation {
        announcements,
        problems,
    }
}
