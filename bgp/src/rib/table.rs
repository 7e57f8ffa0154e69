//! One family's routes: per prefix, the paths received from each peer (the Adj-RIBs-In,
//! stored together) with the Loc-RIB's choice marked on them, plus each peer's Adj-RIB-Out and
//! each subscriber's pending changes.
//!
//! A prefix with one path (the common case) stores it inline; only prefixes with several paths
//! own a vector. Any change of best path or multipath set marks the prefix dirty for every
//! Adj-RIB-Out and subscriber; what goes out is worked out when it is sent, so a prefix that
//! changes a thousand times while a peer is not reading costs one entry, not a thousand.

use std::collections::{HashMap, HashSet};

use super::adj_out::AdjOut;
use super::attrs::{AttrId, AttrTable};
use super::decision::{self, BEST, MULTIPATH, Path, PeerRank, STALE, Settings};
use super::prefix::{FastHash, Key};

/// The paths of one prefix.
#[derive(Debug, Clone)]
pub(crate) enum Paths {
    One(Path),
    /// A boxed slice, not a boxed `Vec`: one allocation of exactly the paths, where a
    /// `Box<Vec>` took two (the `Vec` and its buffer), about 32 octets more for every prefix
    /// heard from two peers (workload 3 of the benchmarks: 1.2 M of them). Paths are added
    /// and removed seldom and there are few, so copying the slice then costs nothing.
    Many(Box<[Path]>),
}

impl Paths {
    pub(crate) fn as_slice(&self) -> &[Path] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Path] {
        match self {
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(v) => v,
        }
    }

    fn position(&self, peer: u16) -> Option<usize> {
        self.as_slice().iter().position(|p| p.peer == peer)
    }

    fn push(&mut self, path: Path) {
        match self {
            Paths::One(p) => *self = Paths::Many(Box::new([*p, path])),
            Paths::Many(v) => {
                let mut all = Vec::with_capacity(v.len() + 1);
                all.extend_from_slice(v);
                all.push(path);
                *v = all.into_boxed_slice();
            }
        }
    }

    /// Removes the path at `i`; `None` when it was the last one.
    fn remove(self, i: usize) -> (Option<Paths>, Option<Path>) {
        match self {
            Paths::One(p) if i == 0 => (None, Some(p)),
            one @ Paths::One(_) => (Some(one), None),
            Paths::Many(v) => {
                if i >= v.len() {
                    return (Some(Paths::Many(v)), None);
                }
                let mut v = v.into_vec();
                let gone = v.swap_remove(i);
                let rest = match v.len() {
                    0 => None,
                    1 => v.pop().map(Paths::One),
                    _ => Some(Paths::Many(v.into_boxed_slice())),
                };
                (rest, Some(gone))
            }
        }
    }

    /// The best path, if any.
    pub(crate) fn best(&self) -> Option<&Path> {
        self.as_slice().iter().find(|p| p.has(BEST))
    }
}

/// Pending work of one subscriber or Adj-RIB-Out: prefixes to look at again.
#[derive(Debug)]
pub(crate) struct Dirty<K: Key> {
    /// Prefixes to process, in no particular order (a full-table pass, or drained `set`).
    pub(crate) work: Vec<K>,
    /// Prefixes marked since; deduplicated.
    pub(crate) set: HashSet<K, FastHash>,
}

impl<K: Key> Default for Dirty<K> {
    fn default() -> Self {
        Dirty {
            work: Vec::new(),
            set: HashSet::default(),
        }
    }
}

impl<K: Key> Dirty<K> {
    pub(crate) fn mark(&mut self, k: K) {
        self.set.insert(k);
    }

    /// Moves the marked prefixes to the work list, ordered by `key` (so that prefixes sharing
    /// attributes are processed, and packed, together).
    pub(crate) fn refill_sorted<T: Ord>(&mut self, key: impl Fn(&K) -> T) {
        if self.work.is_empty() && !self.set.is_empty() {
            let mut v: Vec<(T, K)> = self.set.drain().map(|k| (key(&k), k)).collect();
            // Popped from the end: reverse order.
            v.sort_unstable_by(|a, b| b.0.cmp(&a.0));
            self.work = v.into_iter().map(|(_, k)| k).collect();
        }
    }

    /// The next prefix to process.
    pub(crate) fn next(&mut self) -> Option<K> {
        if self.work.is_empty() && !self.set.is_empty() {
            self.work.extend(self.set.drain());
        }
        self.work.pop()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.work.is_empty() && self.set.is_empty()
    }
}

/// The routes of one family.
#[derive(Debug)]
pub(crate) struct Fam<K: Key> {
    pub(crate) routes: HashMap<K, Paths, FastHash>,
    pub(crate) out: Vec<Option<AdjOut<K>>>,
    pub(crate) subs: Vec<Option<Dirty<K>>>,
    /// Paths per peer (the size of each Adj-RIB-In).
    pub(crate) received: Vec<u32>,
    /// Stale paths per peer.
    pub(crate) stale: Vec<u32>,
}

impl<K: Key> Default for Fam<K> {
    fn default() -> Self {
        Fam {
            routes: HashMap::default(),
            out: Vec::new(),
            subs: Vec::new(),
            received: Vec::new(),
            stale: Vec::new(),
        }
    }
}

fn bump(v: &mut Vec<u32>, i: u16, up: bool) {
    let i = usize::from(i);
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    if let Some(c) = v.get_mut(i) {
        *c = if up {
            c.saturating_add(1)
        } else {
            c.saturating_sub(1)
        };
    }
}

/// What the decision needs besides the table.
pub(crate) struct Ctx<'a, F: Fn(u16) -> Option<PeerRank>> {
    pub(crate) attrs: &'a mut AttrTable,
    pub(crate) rank: F,
    pub(crate) settings: &'a Settings,
}

impl<K: Key> Fam<K> {
    pub(crate) fn count(v: &[u32], peer: u16) -> u32 {
        v.get(usize::from(peer)).copied().unwrap_or(0)
    }

    fn mark(&mut self, k: K) {
        for o in self.out.iter_mut().flatten() {
            o.pending.mark(k);
        }
        for d in self.subs.iter_mut().flatten() {
            d.mark(k);
        }
    }

    /// Adds or replaces `peer`'s path to `k` (taking a reference on `attr`). Returns whether
    /// the Loc-RIB changed.
    pub(crate) fn upsert<F: Fn(u16) -> Option<PeerRank>>(
        &mut self,
        k: K,
        peer: u16,
        attr: AttrId,
        ctx: &mut Ctx<'_, F>,
    ) -> bool {
        ctx.attrs.retain(attr);
        let new = Path {
            attr,
            peer,
            flags: 0,
        };
        let mut replaced_chosen = false;
        let mut added = false;
        let mut unstaled = false;
        let paths = match self.routes.get_mut(&k) {
            Some(paths) => {
                match paths.position(peer) {
                    Some(i) => {
                        if let Some(p) = paths.as_mut_slice().get_mut(i) {
                            if p.attr == attr && !p.has(STALE) {
                                // Same path again: nothing changes.
                                ctx.attrs.release(attr);
                                return false;
                            }
                            replaced_chosen = p.has(BEST) || p.has(MULTIPATH);
                            unstaled = p.has(STALE);
                            let old = p.attr;
                            p.attr = attr;
                            p.flags &= !STALE;
                            ctx.attrs.release(old);
                        }
                    }
                    None => {
                        paths.push(new);
                        added = true;
                    }
                }
                paths
            }
            None => {
                added = true;
                self.routes.entry(k).or_insert(Paths::One(new))
            }
        };
        let changed = decision::select(paths.as_mut_slice(), ctx.attrs, &ctx.rank, ctx.settings);
        if added {
            bump(&mut self.received, peer, true);
        }
        if unstaled {
            bump(&mut self.stale, peer, false);
        }
        let changed = changed || replaced_chosen;
        if changed {
            self.mark(k);
        }
        changed
    }

    /// Removes `peer`'s path to `k`. Returns whether the Loc-RIB changed.
    pub(crate) fn remove<F: Fn(u16) -> Option<PeerRank>>(
        &mut self,
        k: K,
        peer: u16,
        ctx: &mut Ctx<'_, F>,
    ) -> bool {
        let Some(paths) = self.routes.remove(&k) else {
            return false;
        };
        let Some(i) = paths.position(peer) else {
            self.routes.insert(k, paths);
            return false;
        };
        let (rest, gone) = paths.remove(i);
        let mut changed = false;
        if let Some(g) = gone {
            ctx.attrs.release(g.attr);
            bump(&mut self.received, peer, false);
            if g.has(STALE) {
                bump(&mut self.stale, peer, false);
            }
            changed = g.has(BEST) || g.has(MULTIPATH);
        }
        if let Some(mut rest) = rest {
            changed |= decision::select(rest.as_mut_slice(), ctx.attrs, &ctx.rank, ctx.settings);
            self.routes.insert(k, rest);
        }
        if changed {
            self.mark(k);
        }
        changed
    }

    /// Prefixes with a path from `peer` (only stale ones when `stale_only`).
    pub(crate) fn keys_of(&self, peer: u16, stale_only: bool) -> Vec<K> {
        self.routes
            .iter()
            .filter(|(_, p)| {
                p.as_slice()
                    .iter()
                    .any(|x| x.peer == peer && (!stale_only || x.has(STALE)))
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Marks every path from `peer` stale; returns how many.
    pub(crate) fn mark_stale(&mut self, peer: u16) -> u32 {
        let mut n = 0;
        for paths in self.routes.values_mut() {
            for p in paths.as_mut_slice() {
                if p.peer == peer && !p.has(STALE) {
                    p.flags |= STALE;
                    n += 1;
                }
            }
        }
        let i = usize::from(peer);
        if self.stale.len() <= i {
            self.stale.resize(i + 1, 0);
        }
        if let Some(c) = self.stale.get_mut(i) {
            *c = c.saturating_add(n);
        }
        n
    }
}
