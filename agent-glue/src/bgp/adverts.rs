//! From CiliumBGPAdvertisements to the routes one peer is sent in one family.
//!
//! A peer's family selects advertisements by label; each advertisement lists entries of four
//! types, each giving prefixes and attributes:
//!
//! - `PodCIDR`: the node's own `spec.podCIDRs`.
//! - `Service`: addresses of the services the entry's selector picks (with the pseudo-labels
//!   `io.kubernetes.service.name` / `.namespace`): `LoadBalancerIP` (only `type:
//!   LoadBalancer` with `loadBalancerClass` unset or `io.cilium/bgp-control-plane`),
//!   `ClusterIP`, `ExternalIP`; /32 and /128, or aggregated to the entry's lengths. With
//!   `externalTrafficPolicy: Local`, LoadBalancerIP and ExternalIP routes come only from a
//!   node with a ready endpoint of the service (and are never aggregated); with
//!   `internalTrafficPolicy: Local` the same holds for ClusterIP.
//! - `CiliumPodIPPool`: the pools the selector picks (pseudo-labels `io.cilium.podippool.*`).
//!   Cilium advertises the blocks its multi-pool IPAM allocated to the node, which lbspeaker
//!   does not do; so it advertises the node's `spec.podCIDRs` that lie inside a selected pool's
//!   CIDRs (clusters whose node ranges are carved from the pools), and nothing otherwise.
//! - `Interface`: every address of the named interface as a host route, except loopback-range,
//!   link-local and multicast addresses.
//!
//! Overlapping entries merge per prefix: communities are unioned, the highest local preference
//! wins.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use bgp::speaker::{Route, RouteAttributes};
use bgp::wire::{Community, LargeCommunity};
use crds::bgp::{
    AdvertisementType, BgpAdvertisement, BgpAttributes, CiliumBGPAdvertisement, ServiceAddressType,
    parse_large_community, parse_standard_community,
};
use crds::selector::{Selector, WhenNil, WithPseudoLabels};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};

use super::facts::LocalFacts;
use crate::ipam::translate::{CLASS_BGP, ingress_ips};
use crate::source::{ObjectKey, Snapshot};

/// Label on EndpointSlices naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Attributes collected for one prefix from every entry that gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Standard and well-known communities.
    pub communities: BTreeSet<u32>,
    /// Large communities.
    pub large: BTreeSet<(u32, u32, u32)>,
    /// The highest local preference given.
    pub local_pref: Option<u32>,
}

impl Merged {
    /// Adds another entry's attributes (union, highest local preference).
    pub fn merge(&mut self, other: &Merged) {
        self.communities.extend(other.communities.iter().copied());
        self.large.extend(other.large.iter().copied());
        self.local_pref = match (self.local_pref, other.local_pref) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// As a route of the speaker.
    pub fn route(&self, prefix: IpNet) -> Route {
        Route {
            prefix,
            attributes: RouteAttributes {
                communities: self.communities.iter().map(|c| Community(*c)).collect(),
                large_communities: self
                    .large
                    .iter()
                    .map(|(a, b, c)| LargeCommunity::new(*a, *b, *c))
                    .collect(),
                local_pref: self.local_pref,
                ..RouteAttributes::default()
            },
        }
    }

    /// `lbspeaker bgp route-policies` path actions.
    pub fn actions(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.communities.is_empty() {
            let c: Vec<String> = self
                .communities
                .iter()
                .map(|c| Community(*c).to_string())
                .collect();
            v.push(format!("AddCommunities: [{}]", c.join(" ")));
        }
        if !self.large.is_empty() {
            let c: Vec<String> = self
                .large
                .iter()
                .map(|(a, b, c)| format!("{a}:{b}:{c}"))
                .collect();
            v.push(format!("AddLargeCommunities: [{}]", c.join(" ")));
        }
        if let Some(lp) = self.local_pref {
            v.push(format!("SetLocalPreference: {lp}"));
        }
        v
    }
}

/// The attributes of one entry.
pub fn attributes(a: Option<&BgpAttributes>) -> Merged {
    let mut m = Merged::default();
    let Some(a) = a else { return m };
    if let Some(c) = &a.communities {
        // The patterns were checked when the manifest was read; an entry that still does not
        // parse is left out rather than guessed.
        m.communities.extend(
            c.standard
                .iter()
                .filter_map(|s| parse_standard_community(s)),
        );
        m.communities.extend(c.well_known.iter().map(|w| w.value()));
        m.large
            .extend(c.large.iter().filter_map(|s| parse_large_community(s)));
    }
    m.local_pref = a.local_preference.and_then(|l| u32::try_from(l).ok());
    m
}

/// What the reconcile knows about the node and its world while expanding advertisements.
pub struct Context<'a> {
    /// The snapshot.
    pub snapshot: &'a Snapshot,
    /// This node's name.
    pub node_name: &'a str,
    /// This node's object.
    pub node: &'a Node,
    /// Interfaces and default routes.
    pub facts: &'a LocalFacts,
}

/// One advertisement entry's result for one family.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryRoutes {
    /// The prefixes.
    pub prefixes: BTreeSet<IpNet>,
    /// Their attributes.
    pub attributes: Merged,
}

/// The CiliumBGPAdvertisements a family's `advertisements` selector picks (nil: none), in
/// name order.
pub fn selected_adverts<'a>(
    snapshot: &'a Snapshot,
    selector: &Selector,
) -> Vec<&'a Arc<CiliumBGPAdvertisement>> {
    let none = BTreeMap::new();
    snapshot
        .bgp_advertisements
        .values()
        .filter(|a| selector.matches(a.metadata.labels.as_ref().unwrap_or(&none)))
        .collect()
}

fn family_of(a: &IpAddr) -> bool {
    a.is_ipv6()
}

/// The node's PodCIDRs (`spec.podCIDRs`, else `spec.podCIDR`).
pub fn pod_cidrs(node: &Node) -> Vec<IpNet> {
    let spec = node.spec.as_ref();
    let list: Vec<&String> = match spec.and_then(|s| s.pod_cidrs.as_ref()) {
        Some(v) if !v.is_empty() => v.iter().collect(),
        _ => spec.and_then(|s| s.pod_cidr.as_ref()).into_iter().collect(),
    };
    list.iter()
        .filter_map(|s| s.parse::<IpNet>().ok())
        .map(|n| n.trunc())
        .collect()
}

/// Whether the node has a ready endpoint of the service (EndpointSlices labelled with its
/// name in its namespace; an endpoint without a `ready` condition counts as ready, as the
/// Kubernetes API defines).
pub fn has_ready_local_endpoint(snapshot: &Snapshot, svc: &ObjectKey, node: &str) -> bool {
    snapshot
        .endpoint_slices
        .iter()
        .filter(|(k, s)| {
            k.namespace == svc.namespace
                && s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .is_some_and(|n| *n == svc.name)
        })
        .flat_map(|(_, s)| s.endpoints.iter())
        .any(|e| {
            e.node_name.as_deref() == Some(node)
                && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
        })
}

fn host_route(a: IpAddr) -> IpNet {
    IpNet::from(a)
}

fn aggregate(a: IpAddr, len: Option<i16>) -> IpNet {
    let max = if a.is_ipv4() { 32 } else { 128 };
    let len = len
        .and_then(|l| u8::try_from(l).ok())
        .filter(|l| *l < max)
        .unwrap_or(max);
    IpNet::new(a, len)
        .map(|n| n.trunc())
        .unwrap_or(host_route(a))
}

/// The routes of one service for one entry, in one family.
fn service_prefixes(
    ctx: &Context<'_>,
    key: &ObjectKey,
    svc: &Service,
    entry: &BgpAdvertisement,
    ipv6: bool,
    out: &mut BTreeSet<IpNet>,
) {
    let Some(opts) = &entry.service else { return };
    let Some(spec) = &svc.spec else { return };
    let agg = if ipv6 {
        opts.aggregation_length_ipv6
    } else {
        opts.aggregation_length_ipv4
    };
    let etp_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let itp_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let mut local_cache: Option<bool> = None;
    let mut local = || {
        *local_cache
            .get_or_insert_with(|| has_ready_local_endpoint(ctx.snapshot, key, ctx.node_name))
    };
    for kind in &opts.addresses {
        let (addrs, policy_local): (Vec<IpAddr>, bool) = match kind {
            ServiceAddressType::LoadBalancerIP => {
                let lb = spec.type_.as_deref() == Some("LoadBalancer")
                    && matches!(spec.load_balancer_class.as_deref(), None | Some(CLASS_BGP));
                if !lb {
                    continue;
                }
                (ingress_ips(svc.status.as_ref()), etp_local)
            }
            ServiceAddressType::ExternalIP => (
                spec.external_ips
                    .iter()
                    .flatten()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
                etp_local,
            ),
            ServiceAddressType::ClusterIP => {
                let mut v: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
                if v.is_empty() {
                    v.extend(spec.cluster_ip.iter());
                }
                (v.iter().filter_map(|s| s.parse().ok()).collect(), itp_local)
            }
        };
        for a in addrs.into_iter().filter(|a| family_of(a) == ipv6) {
            if policy_local {
                if local() {
                    out.insert(host_route(a));
                }
            } else {
                out.insert(aggregate(a, agg));
            }
        }
    }
}

/// Whether an interface address is advertised (not loopback-range, link-local or multicast).
fn advertisable(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !(v.is_loopback() || v.is_link_local() || v.is_multicast()),
        IpAddr::V6(v) => {
            !(v.is_loopback() || v.is_multicast() || (v.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Expands one advertisement entry for one family. Problems (bad selectors) are returned as
/// text naming the advertisement and the field.
pub fn expand(
    ctx: &Context<'_>,
    advert: &CiliumBGPAdvertisement,
    index: usize,
    entry: &BgpAdvertisement,
    ipv6: bool,
) -> Result<EntryRoutes, String> {
    let name = advert.metadata.name.as_deref().unwrap_or_default();
    let bad = |e: crds::selector::SelectorError| {
        format!(
            "CiliumBGPAdvertisement {name}: {}",
            e.under(&format!("spec.advertisements[{index}].selector"))
        )
    };
    let mut prefixes = BTreeSet::new();
    match entry.advertisement_type {
        AdvertisementType::PodCIDR => {
            prefixes.extend(
                pod_cidrs(ctx.node)
                    .into_iter()
                    .filter(|p| p.addr().is_ipv6() == ipv6),
            );
        }
        AdvertisementType::Service => {
            let sel = Selector::compile_optional(entry.selector.as_ref(), WhenNil::Nothing)
                .map_err(bad)?;
            for (key, svc) in &ctx.snapshot.services {
                let ns = key.namespace.as_deref().unwrap_or("default");
                let labels = WithPseudoLabels::service(svc.metadata.labels.as_ref(), ns, &key.name);
                if sel.matches(&labels) {
                    service_prefixes(ctx, key, svc, entry, ipv6, &mut prefixes);
                }
            }
        }
        AdvertisementType::CiliumPodIPPool => {
            let sel = Selector::compile_optional(entry.selector.as_ref(), WhenNil::Nothing)
                .map_err(bad)?;
            let node_cidrs = pod_cidrs(ctx.node);
            for (key, pool) in &ctx.snapshot.pod_ip_pools {
                let labels =
                    WithPseudoLabels::pod_ip_pool(pool.metadata.labels.as_ref(), "", &key.name);
                if !sel.matches(&labels) {
                    continue;
                }
                let part = if ipv6 {
                    pool.spec.ipv6.as_ref()
                } else {
                    pool.spec.ipv4.as_ref()
                };
                let pool_cidrs: Vec<IpNet> = part
                    .into_iter()
                    .flat_map(|p| p.cidrs.iter())
                    .filter_map(|c| c.parse().ok())
                    .collect();
                prefixes.extend(
                    node_cidrs
                        .iter()
                        .filter(|n| pool_cidrs.iter().any(|p| p.contains(*n)))
                        .copied(),
                );
            }
        }
        AdvertisementType::Interface => {
            let Some(iface) = &entry.interface else {
                return Ok(EntryRoutes::default());
            };
            prefixes.extend(
                ctx.facts
                    .interfaces
                    .get(&iface.name)
                    .into_iter()
                    .flatten()
                    .map(|n| n.addr())
                    .filter(|a| a.is_ipv6() == ipv6 && advertisable(a))
                    .map(host_route),
            );
        }
    }
    Ok(EntryRoutes {
        prefixes,
        attributes: attributes(entry.attributes.as_ref()),
    })
}

/// Merges entries into one route per prefix.
pub fn merge_entries<'a>(
    entries: impl IntoIterator<Item = &'a EntryRoutes>,
) -> BTreeMap<IpNet, Merged> {
    let mut out: BTreeMap<IpNet, Merged> = BTreeMap::new();
    for e in entries {
        for p in &e.prefixes {
            out.entry(*p).or_default().merge(&e.attributes);
        }
    }
    out
}
