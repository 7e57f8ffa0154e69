//! The pure half of FIB installation: the kernel routes we want, from the Loc-RIB's best paths
//! and the kernel's own routes (for next-hop resolution), and the operations that turn what
//! the kernel holds into that.
//!
//! Next-hop resolution: a BGP next hop is looked up (longest match) among the kernel's
//! unicast routes of the main table that are **not ours** — connected, static, other
//! daemons'. A connected route (no gateway) means the next hop is on that link: install
//! `via NEXT-HOP dev LINK`. A route through gateways means it is not: install via those
//! gateways and links (the recursion ends there, since the kernel accepts a gateway only where
//! it is on-link). Never through a default route unless asked, never through our own routes
//! (no resolution loops), never toward one of our own addresses. An IPv6 link-local next hop
//! is on the link the session with its peer runs over.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;
use serde::Serialize;

use super::config::{FibConfig, MAIN_TABLE};

/// One next hop of a kernel route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NextHop {
    /// The gateway; `None` for a device route (the destination is on the link).
    pub gateway: Option<IpAddr>,
    /// The output interface.
    pub ifindex: u32,
}

/// The kind of a kernel route, as far as we care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteKind {
    /// Forwarding.
    Unicast,
    /// An address of this host.
    Local,
    /// Blackhole, unreachable, broadcast, multicast ...
    Other,
}

/// One kernel route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelRoute {
    /// Destination.
    pub dst: IpNet,
    /// Table.
    pub table: u32,
    /// Protocol number.
    pub protocol: u8,
    /// Metric (priority).
    pub metric: u32,
    /// Kind.
    pub kind: RouteKind,
    /// Next hops (several for multipath).
    pub next_hops: Vec<NextHop>,
}

impl KernelRoute {
    fn hops(&self) -> BTreeSet<NextHop> {
        self.next_hops.iter().copied().collect()
    }
}

/// What the kernel holds that planning needs: every route, and our addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelView {
    /// Routes of every table and protocol.
    pub routes: Vec<KernelRoute>,
    /// Addresses of this host.
    pub local_addresses: BTreeSet<IpAddr>,
}

/// One path of a prefix's multipath set, as resolution needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct BgpNextHop {
    /// The BGP next hop (for IPv6 the global one when there is one).
    pub address: IpAddr,
    /// The IPv6 link-local next hop, when the peer sent one.
    pub link_local: Option<Ipv6Addr>,
    /// The address of the peer the path came from (to find the link of a link-local next
    /// hop).
    pub peer: Option<IpAddr>,
}

/// A route we want in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hops, every one with a gateway.
    pub next_hops: BTreeSet<NextHop>,
}

/// Why a prefix is not installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum Unresolved {
    /// No route (but perhaps a default route) leads to any of its next hops.
    NoRoute {
        /// The next hops tried.
        next_hops: Vec<IpAddr>,
    },
    /// Its next hop is an address of this host.
    NextHopIsLocal {
        /// That address.
        next_hop: IpAddr,
    },
}

/// An operation on the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum Op {
    /// Create (no route of that destination and metric in the table).
    Add(DesiredRoute),
    /// Change the next hops of a route of ours.
    Replace(DesiredRoute),
    /// Remove a route of ours.
    Delete(KernelRoute),
}

/// The result of planning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// What to do: additions and changes, then deletions.
    pub ops: Vec<Op>,
    /// Wanted routes already in place exactly (adopted when found at start).
    pub in_place: Vec<IpNet>,
    /// Wanted destinations held at our metric by a route that is not ours: left alone.
    pub conflicts: Vec<IpNet>,
    /// Prefixes that could not be resolved.
    pub unresolved: BTreeMap<IpNet, Unresolved>,
    /// Routes of ours kept although unwanted (during the startup hold).
    pub kept: usize,
}

/// Routes usable for resolution, longest prefixes first.
struct Resolver<'a> {
    routes: Vec<&'a KernelRoute>,
    local: &'a BTreeSet<IpAddr>,
    via_default: bool,
}

impl<'a> Resolver<'a> {
    fn new(view: &'a KernelView, cfg: &FibConfig) -> Resolver<'a> {
        let mut routes: Vec<&KernelRoute> = view
            .routes
            .iter()
            .filter(|r| r.table == MAIN_TABLE && r.kind == RouteKind::Unicast)
            .filter(|r| r.protocol != cfg.protocol)
            .filter(|r| !r.next_hops.is_empty())
            .collect();
        // Longest prefix first; among equals, the lowest metric (what the kernel uses).
        routes.sort_by(|a, b| {
            b.dst
                .prefix_len()
                .cmp(&a.dst.prefix_len())
                .then(a.metric.cmp(&b.metric))
        });
        Resolver {
            routes,
            local: &view.local_addresses,
            via_default: cfg.resolve_via_default,
        }
    }

    /// The link (interface) of the connected route covering `addr`.
    fn link_of(&self, addr: IpAddr) -> Option<u32> {
        self.routes
            .iter()
            .find(|r| r.dst.contains(&addr) && r.next_hops.iter().all(|h| h.gateway.is_none()))
            .and_then(|r| r.next_hops.first().map(|h| h.ifindex))
    }

    fn resolve(&self, hop: &BgpNextHop) -> Result<BTreeSet<NextHop>, Unresolved> {
        if let Some(ll) = hop.link_local
            && let Some(ifindex) = hop.peer.and_then(|p| self.link_of(p))
            && (hop.address.is_unspecified() || is_link_local(hop.address))
        {
            return Ok(BTreeSet::from([NextHop {
                gateway: Some(IpAddr::V6(ll)),
                ifindex,
            }]));
        }
        let addr = hop.address;
        if self.local.contains(&addr) {
            return Err(Unresolved::NextHopIsLocal { next_hop: addr });
        }
        let found = self
            .routes
            .iter()
            .find(|r| r.dst.contains(&addr) && (self.via_default || r.dst.prefix_len() != 0));
        let Some(route) = found else {
            return Err(Unresolved::NoRoute {
                next_hops: vec![addr],
            });
        };
        Ok(route
            .next_hops
            .iter()
            .map(|h| NextHop {
                // On the link: the next hop itself is the gateway.
                gateway: Some(h.gateway.unwrap_or(addr)),
                ifindex: h.ifindex,
            })
            .collect())
    }
}

fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

/// The routes we want: every accepted prefix whose next hops resolve.
pub fn desired(
    best: &BTreeMap<IpNet, Vec<BgpNextHop>>,
    view: &KernelView,
    cfg: &FibConfig,
) -> (BTreeMap<IpNet, DesiredRoute>, BTreeMap<IpNet, Unresolved>) {
    let resolver = Resolver::new(view, cfg);
    let mut want = BTreeMap::new();
    let mut unresolved = BTreeMap::new();
    for (dst, hops) in best {
        if !cfg.accepts(dst) || hops.is_empty() {
            continue;
        }
        let mut next_hops = BTreeSet::new();
        let mut last_err = None;
        for h in hops {
            match resolver.resolve(h) {
                Ok(set) => next_hops.extend(set),
                Err(e) => last_err = Some(e),
            }
        }
        if next_hops.is_empty() {
            let err = match last_err {
                Some(Unresolved::NoRoute { .. }) | None => Unresolved::NoRoute {
                    next_hops: hops.iter().map(|h| h.address).collect(),
                },
                Some(e) => e,
            };
            unresolved.insert(*dst, err);
        } else {
            want.insert(
                *dst,
                DesiredRoute {
                    dst: *dst,
                    next_hops,
                },
            );
        }
    }
    (want, unresolved)
}

/// Whether a kernel route is ours: our protocol in our table.
pub fn is_ours(r: &KernelRoute, cfg: &FibConfig) -> bool {
    r.protocol == cfg.protocol && r.table == cfg.table
}

/// The operations that make our routes in the kernel exactly `want`. With `keep_unwanted`
/// (the startup hold) routes of ours that are not wanted stay.
pub fn diff(
    want: &BTreeMap<IpNet, DesiredRoute>,
    view: &KernelView,
    cfg: &FibConfig,
    keep_unwanted: bool,
) -> Plan {
    let mut plan = Plan::default();
    let mut ours: BTreeMap<IpNet, Vec<&KernelRoute>> = BTreeMap::new();
    let mut foreign_at_metric: BTreeSet<IpNet> = BTreeSet::new();
    for r in &view.routes {
        if is_ours(r, cfg) {
            ours.entry(r.dst).or_default().push(r);
        } else if r.table == cfg.table && r.metric == cfg.metric {
            foreign_at_metric.insert(r.dst);
        }
    }
    let mut deletes = Vec::new();
    let mut changes = Vec::new();
    for (dst, d) in want {
        let mine = ours.remove(dst).unwrap_or_default();
        // One of ours at our metric is the one to keep; every other of ours goes.
        let (at_metric, others): (Vec<&KernelRoute>, Vec<&KernelRoute>) =
            mine.into_iter().partition(|r| r.metric == cfg.metric);
        let mut at_metric = at_metric.into_iter();
        match at_metric.next() {
            Some(r) if r.kind == RouteKind::Unicast && r.hops() == d.next_hops => {
                plan.in_place.push(*dst);
            }
            Some(_) => changes.push(Op::Replace(d.clone())),
            None if foreign_at_metric.contains(dst) => plan.conflicts.push(*dst),
            None => changes.push(Op::Add(d.clone())),
        }
        deletes.extend(at_metric.chain(others).map(|r| Op::Delete(r.clone())));
    }
    for (_, rest) in ours {
        if keep_unwanted {
            plan.kept += rest.len();
        } else {
            deletes.extend(rest.into_iter().map(|r| Op::Delete(r.clone())));
        }
    }
    // Make before break: additions and changes first.
    plan.ops = changes;
    plan.ops.extend(deletes);
    plan
}
