//! The read side of the RIB: the Loc-RIB, Adj-RIBs-In and -Out as views, counts, and the
//! Loc-RIB subscribers (each with its own queue of changed prefixes, so a slow reader costs one
//! entry per changed prefix, never a backlog of events).

use super::decision::{self, BEST, MULTIPATH, STALE};
use super::table::{Dirty, Fam};
use super::{BestChange, Key, PeerIdx, Rib, RouteView, SubId, V4, V6, adj_out, attrs};
use crate::wire::Family;
use ipnet::IpNet;

impl Rib {
    /// Paths in a peer's Adj-RIB-In.
    pub fn received_count(&self, idx: PeerIdx, family: Family) -> u32 {
        match family {
            Family::IPV4_UNICAST => Fam::<V4>::count(&self.v4.received, idx),
            Family::IPV6_UNICAST => Fam::<V6>::count(&self.v6.received, idx),
            _ => 0,
        }
    }

    /// Prefixes in a peer's Adj-RIB-Out.
    pub fn advertised_count(&self, idx: PeerIdx, family: Family) -> u32 {
        let i = usize::from(idx);
        let n = match family {
            Family::IPV4_UNICAST => self
                .v4
                .out
                .get(i)
                .and_then(|o| o.as_ref())
                .map(|o| o.advertised.len()),
            Family::IPV6_UNICAST => self
                .v6
                .out
                .get(i)
                .and_then(|o| o.as_ref())
                .map(|o| o.advertised.len()),
            _ => None,
        };
        n.unwrap_or(0) as u32
    }

    /// Prefixes in the Loc-RIB of a family.
    pub fn len(&self, family: Family) -> usize {
        match family {
            Family::IPV4_UNICAST => self.v4.routes.len(),
            Family::IPV6_UNICAST => self.v6.routes.len(),
            _ => 0,
        }
    }

    /// Whether both families are empty.
    pub fn is_empty(&self) -> bool {
        self.v4.routes.is_empty() && self.v6.routes.is_empty()
    }

    /// Distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.attrs.len()
    }

    /// The Loc-RIB: every prefix with its used paths (best first), sorted by prefix.
    pub fn loc_rib(&self, family: Family) -> Vec<RouteView> {
        let mut v = self.collect(family, |p| p.flags & (BEST | MULTIPATH) != 0);
        v.sort_by_key(|a| (a.prefix, !a.best, a.peer));
        v
    }

    /// A peer's Adj-RIB-In (0: our own routes), sorted by prefix.
    pub fn adj_rib_in(&self, idx: PeerIdx, family: Family) -> Vec<RouteView> {
        let mut v = self.collect(family, |p| p.peer == idx);
        v.sort_by_key(|r| r.prefix);
        v
    }

    fn collect(&self, family: Family, keep: impl Fn(&decision::Path) -> bool) -> Vec<RouteView> {
        match family {
            Family::IPV4_UNICAST => views(&self.v4, &self.attrs, &keep),
            Family::IPV6_UNICAST => views(&self.v6, &self.attrs, &keep),
            _ => Vec::new(),
        }
    }

    /// A peer's Adj-RIB-Out: what it was sent, as sent, sorted by prefix.
    pub fn adj_rib_out(&self, idx: PeerIdx, family: Family) -> Vec<RouteView> {
        let i = usize::from(idx);
        let mut v: Vec<RouteView> = match family {
            Family::IPV4_UNICAST => out_views(self.v4.out.get(i), &self.attrs, idx),
            Family::IPV6_UNICAST => out_views(self.v6.out.get(i), &self.attrs, idx),
            _ => Vec::new(),
        };
        v.sort_by_key(|r| r.prefix);
        v
    }

    /// A new Loc-RIB subscriber; its first changes are the whole table.
    pub fn subscribe(&mut self) -> SubId {
        let id = match self.subs.iter().position(|s| !*s) {
            Some(i) => i,
            None => {
                self.subs.push(false);
                self.subs.len() - 1
            }
        };
        if let Some(s) = self.subs.get_mut(id) {
            *s = true;
        }
        sub_install(&mut self.v4, id);
        sub_install(&mut self.v6, id);
        id
    }

    /// Ends a subscription.
    pub fn unsubscribe(&mut self, id: SubId) {
        if let Some(s) = self.subs.get_mut(id) {
            *s = false;
        }
        if let Some(d) = self.v4.subs.get_mut(id) {
            *d = None;
        }
        if let Some(d) = self.v6.subs.get_mut(id) {
            *d = None;
        }
    }

    /// Whether a subscriber has changes waiting.
    pub fn has_best_changes(&self, id: SubId) -> bool {
        let p4 = self
            .v4
            .subs
            .get(id)
            .and_then(|d| d.as_ref())
            .is_some_and(|d| !d.is_empty());
        let p6 = self
            .v6
            .subs
            .get(id)
            .and_then(|d| d.as_ref())
            .is_some_and(|d| !d.is_empty());
        p4 || p6
    }

    /// Up to `max` changed prefixes (both families) with their paths now.
    pub fn take_best_changes(&mut self, id: SubId, max: usize) -> Vec<BestChange> {
        let mut out = Vec::new();
        take_changes(&mut self.v4, &self.attrs, id, max, &mut out);
        let left = max.saturating_sub(out.len());
        take_changes(&mut self.v6, &self.attrs, id, left, &mut out);
        out
    }
}

pub(super) fn sub_install<K: Key>(fam: &mut Fam<K>, id: SubId) {
    if fam.subs.len() <= id {
        fam.subs.resize_with(id + 1, || None);
    }
    if let Some(slot) = fam.subs.get_mut(id) {
        *slot = Some(Dirty {
            work: fam.routes.keys().copied().collect(),
            ..Dirty::default()
        });
    }
}

fn view(k: IpNet, p: &decision::Path, attrs: &attrs::AttrTable) -> RouteView {
    RouteView {
        prefix: k,
        peer: p.peer,
        attrs: attrs.get(p.attr).clone(),
        best: p.has(BEST),
        multipath: p.has(MULTIPATH),
        stale: p.has(STALE),
        eligible: !attrs.rank(p.attr).looped,
    }
}

fn views<K: Key>(
    fam: &Fam<K>,
    attrs: &attrs::AttrTable,
    keep: &dyn Fn(&decision::Path) -> bool,
) -> Vec<RouteView> {
    let mut out = Vec::new();
    for (k, paths) in &fam.routes {
        for p in paths.as_slice() {
            if keep(p) {
                out.push(view(k.net(), p, attrs));
            }
        }
    }
    out
}

fn out_views<K: Key>(
    o: Option<&Option<adj_out::AdjOut<K>>>,
    attrs: &attrs::AttrTable,
    idx: PeerIdx,
) -> Vec<RouteView> {
    let Some(Some(o)) = o else { return Vec::new() };
    o.advertised
        .iter()
        .map(|(k, a)| RouteView {
            prefix: k.net(),
            peer: idx,
            attrs: attrs.get(*a).clone(),
            best: true,
            multipath: true,
            stale: false,
            eligible: true,
        })
        .collect()
}

fn take_changes<K: Key>(
    fam: &mut Fam<K>,
    attrs: &attrs::AttrTable,
    id: SubId,
    max: usize,
    out: &mut Vec<BestChange>,
) {
    let Some(Some(d)) = fam.subs.get_mut(id) else {
        return;
    };
    let mut n = 0;
    while n < max {
        let Some(k) = d.next() else { break };
        n += 1;
        let mut paths: Vec<RouteView> = fam
            .routes
            .get(&k)
            .map(|p| {
                p.as_slice()
                    .iter()
                    .filter(|x| x.has(MULTIPATH))
                    .map(|x| view(k.net(), x, attrs))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort_by_key(|p| !p.best);
        out.push(BestChange {
            prefix: k.net(),
            paths,
        });
    }
}
