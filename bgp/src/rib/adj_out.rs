//! Adj-RIB-Out of one peer and family: what was advertised, what must be looked at again, and
//! how it becomes as few UPDATEs as fit.
//!
//! When a session comes up every prefix of the table is queued (then End-of-RIB); after that,
//! the Loc-RIB marks prefixes whose choice changed. [`AdjOut::take`] works through the queue a
//! batch at a time: for each prefix it exports the current best path for this peer (the
//! result cached per source attribute set), compares with what the peer has, and groups the
//! announcements by outgoing attribute set, so a batch of thousands of prefixes that share
//! attributes goes out as a handful of UPDATEs, withdrawals packed alongside.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use super::LOCAL;
use super::attrs::{AttrId, AttrTable};
use super::export::{self, Local, Source, Target};
use super::policy::ExportPolicy;
use super::prefix::{FastHash, Key};
use super::table::{Dirty, Paths};
use crate::wire::{
    Announce, EncodeContext, EncodeError, Message, Nlri, RouteRefresh, RouteRefreshSubtype, Update,
    pack_updates,
};

/// The export cache's source index for our routes sent with a peer's policy attributes.
const POLICY: u16 = u16::MAX;

/// Export-cache entries kept before the cache is cleared.
const CACHE_MAX: usize = 1 << 16;

#[derive(Debug)]
pub(crate) struct AdjOut<K: Key> {
    pub(crate) advertised: HashMap<K, AttrId, FastHash>,
    pub(crate) pending: Dirty<K>,
    /// Re-send prefixes even when unchanged (a route refresh pass).
    force: bool,
    /// End-of-RIB is owed once the initial pass is done.
    pub(crate) eor_due: bool,
    /// Enhanced route refresh markers owed.
    borr_due: bool,
    eorr_due: bool,
    /// (source attribute set, source peer) -> outgoing attribute set, or not exported.
    cache: HashMap<(AttrId, u16), Option<AttrId>, FastHash>,
}

/// How to look up a path's source.
pub(crate) type SourceOf<'a> = &'a dyn Fn(u16) -> Source;

impl<K: Key> AdjOut<K> {
    /// A new Adj-RIB-Out that will send every prefix of `routes`, then End-of-RIB.
    pub(crate) fn new(routes: &HashMap<K, Paths, FastHash>) -> AdjOut<K> {
        let pending = Dirty {
            work: by_attributes(routes, routes.keys().copied()),
            ..Dirty::default()
        };
        AdjOut {
            advertised: HashMap::default(),
            pending,
            force: false,
            eor_due: true,
            borr_due: false,
            eorr_due: false,
            cache: HashMap::default(),
        }
    }

    /// Queues every prefix to be looked at again; only those whose outcome differs from what
    /// the peer has are sent (export settings or policy changed).
    pub(crate) fn requeue(&mut self, routes: &HashMap<K, Paths, FastHash>) {
        self.pending.work.extend(routes.keys().copied());
        self.pending.work.extend(
            self.advertised
                .keys()
                .filter(|k| !routes.contains_key(k))
                .copied(),
        );
    }

    /// Queues everything again (ROUTE-REFRESH), with BoRR/EoRR around it when `enhanced`.
    pub(crate) fn refresh(&mut self, routes: &HashMap<K, Paths, FastHash>, enhanced: bool) {
        self.requeue(routes);
        self.force = true;
        if enhanced {
            self.borr_due = true;
            self.eorr_due = true;
        }
    }

    /// Whether anything is owed to the peer.
    pub(crate) fn has_work(&self, table_complete: bool) -> bool {
        !self.pending.is_empty()
            || (self.eor_due && table_complete)
            || self.borr_due
            || self.eorr_due
    }

    /// Releases every reference held.
    pub(crate) fn clear(&mut self, attrs: &mut AttrTable) {
        for (_, a) in self.advertised.drain() {
            attrs.release(a);
        }
        self.clear_cache(attrs);
        self.pending = Dirty::default();
    }

    fn clear_cache(&mut self, attrs: &mut AttrTable) {
        for ((src, _), out) in self.cache.drain() {
            attrs.release(src);
            if let Some(o) = out {
                attrs.release(o);
            }
        }
    }

    fn exported(
        &mut self,
        src_attr: AttrId,
        src_peer: u16,
        attrs: &mut AttrTable,
        source: SourceOf<'_>,
        target: &Target,
        local: &Local,
    ) -> Option<AttrId> {
        if let Some(hit) = self.cache.get(&(src_attr, src_peer)) {
            return *hit;
        }
        if self.cache.len() >= CACHE_MAX {
            self.clear_cache(attrs);
        }
        let a = attrs.get(src_attr).clone();
        // Attributes a peer's export policy gives are for that peer to act on (NO_EXPORT,
        // NO_ADVERTISE tell it what to do next), not a reason to keep the route from it.
        let (src, for_receiver) = if src_peer == POLICY {
            (source(LOCAL), true)
        } else {
            (source(src_peer), false)
        };
        let out = export::export(&a, &src, target, K::FAMILY, local, for_receiver)
            .map(|o| attrs.intern(o));
        attrs.retain(src_attr);
        self.cache.insert((src_attr, src_peer), out);
        out
    }

    /// Works through up to `budget` queued prefixes and returns the UPDATEs (and markers) to
    /// send, encoded for `ctx`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn take(
        &mut self,
        routes: &HashMap<K, Paths, FastHash>,
        attrs: &mut AttrTable,
        source: SourceOf<'_>,
        target: &Target,
        local: &Local,
        ctx: &EncodeContext,
        policy: &ExportPolicy,
        budget: usize,
        table_complete: bool,
    ) -> Result<Vec<Bytes>, EncodeError> {
        let mut out = Vec::new();
        if self.borr_due {
            self.borr_due = false;
            out.push(encode(
                &Message::RouteRefresh(RouteRefresh {
                    family: K::FAMILY,
                    subtype: RouteRefreshSubtype::BeginningOfRouteRefresh,
                }),
                ctx,
            )?);
        }
        let mut buckets: HashMap<AttrId, Vec<Nlri>, FastHash> = HashMap::default();
        let mut order: Vec<AttrId> = Vec::new();
        let mut withdrawn: Vec<Nlri> = Vec::new();
        let mut n = 0;
        self.pending.refill_sorted(|k| best_attr(routes, k));
        while n < budget {
            let Some(k) = self.pending.next() else { break };
            n += 1;
            let desired = routes
                .get(&k)
                .and_then(|p| p.best().copied())
                .and_then(|best| {
                    if best.peer != LOCAL {
                        return if policy.learned {
                            self.exported(best.attr, best.peer, attrs, source, target, local)
                        } else {
                            None
                        };
                    }
                    match policy.local_route(&k.net())? {
                        None => self.exported(best.attr, LOCAL, attrs, source, target, local),
                        Some(a) => {
                            // The peer's own attributes for this prefix of ours: interned so
                            // the export cache serves every prefix that shares them.
                            let id = attrs.intern(a.clone());
                            let out = self.exported(id, POLICY, attrs, source, target, local);
                            attrs.release(id);
                            out
                        }
                    }
                });
            let current = self.advertised.get(&k).copied();
            if desired == current && !self.force {
                continue;
            }
            match desired {
                Some(o) => {
                    if current != Some(o) {
                        attrs.retain(o);
                        if let Some(c) = self.advertised.insert(k, o) {
                            attrs.release(c);
                        }
                    }
                    let list = buckets.entry(o).or_insert_with(|| {
                        order.push(o);
                        Vec::new()
                    });
                    list.push(k.nlri());
                }
                None => {
                    if let Some(c) = self.advertised.remove(&k) {
                        attrs.release(c);
                        withdrawn.push(k.nlri());
                    }
                }
            }
        }
        let mut withdrawals = Some(withdrawn);
        for o in order {
            let Some(nlri) = buckets.get(&o) else {
                continue;
            };
            let a = attrs.get(o).clone();
            let Some(next_hop) = a.next_hop else { continue };
            let w = withdrawals.take().unwrap_or_default();
            out.extend(pack_updates(
                ctx,
                K::FAMILY,
                Some(Announce {
                    attributes: &a.path,
                    next_hop,
                    nlri,
                }),
                &w,
            )?);
        }
        if let Some(w) = withdrawals
            && !w.is_empty()
        {
            out.extend(pack_updates(ctx, K::FAMILY, None, &w)?);
        }
        if self.pending.is_empty() {
            self.force = false;
            if self.eor_due && table_complete {
                self.eor_due = false;
                out.push(encode(
                    &Message::Update(Update::end_of_rib(K::FAMILY)),
                    ctx,
                )?);
            }
            if self.eorr_due {
                self.eorr_due = false;
                out.push(encode(
                    &Message::RouteRefresh(RouteRefresh {
                        family: K::FAMILY,
                        subtype: RouteRefreshSubtype::EndOfRouteRefresh,
                    }),
                    ctx,
                )?);
            }
        }
        Ok(out)
    }
}

/// The best path's attribute set of a prefix (withdrawn ones first).
fn best_attr<K: Key>(routes: &HashMap<K, Paths, FastHash>, k: &K) -> Option<AttrId> {
    routes.get(k).and_then(|p| p.best().map(|b| b.attr))
}

/// Prefixes in the order they are popped: grouped by best-path attribute set, so a batch
/// packs into few UPDATEs.
fn by_attributes<K: Key>(
    routes: &HashMap<K, Paths, FastHash>,
    keys: impl Iterator<Item = K>,
) -> Vec<K> {
    let mut v: Vec<(Option<AttrId>, K)> = keys.map(|k| (best_attr(routes, &k), k)).collect();
    v.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
    v.into_iter().map(|(_, k)| k).collect()
}

fn encode(m: &Message, ctx: &EncodeContext) -> Result<Bytes, EncodeError> {
    let mut b = BytesMut::new();
    m.encode(ctx, &mut b)?;
    Ok(b.freeze())
}
