//! The decision process of RFC 4271 §9.1 (with RFC 4456's ORIGINATOR_ID and CLUSTER_LIST
//! rules) and ECMP multipath.
//!
//! Phase 1 (degree of preference): locally originated routes first, then LOCAL_PREF for
//! routes from internal peers and the configured default for routes from external peers.
//! Phase 2 keeps the routes of the highest degree and eliminates, in order (§9.1.2.2):
//! (a) longer AS paths, (b) higher ORIGIN, (c) higher MED among routes from the same
//! neighbouring AS, (d) internal routes when an external one remains, (e) interior cost (no
//! IGP here: all equal), (f) higher BGP identifier (ORIGINATOR_ID where present), then longer
//! CLUSTER_LIST, (g) higher peer address. Routes that loop (our AS in the path, our id as
//! originator, our cluster in the cluster list) are not candidates.
//!
//! Multipath: the routes that survive up to (e) are equal cost; without AS-path relax they
//! must also have the best route's very AS path (FRR's and GoBGP's rule). At most
//! `max_paths` are kept, the best first.

use std::net::IpAddr;

use super::attrs::{AttrId, AttrTable, Rank};

/// Path flag: kept from a session that went down under graceful restart.
pub(crate) const STALE: u8 = 1;
/// Path flag: the best path.
pub(crate) const BEST: u8 = 4;
/// Path flag: in the multipath (ECMP) set.
pub(crate) const MULTIPATH: u8 = 8;

/// One path to a prefix: who it came from (peer index, 0 = local) and its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Path {
    pub(crate) attr: AttrId,
    pub(crate) peer: u16,
    pub(crate) flags: u8,
}

impl Path {
    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// What the decision needs to know about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerRank {
    pub(crate) ebgp: bool,
    pub(crate) router_id: u32,
    pub(crate) address: IpAddr,
}

/// Decision settings of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) default_local_pref: u32,
    pub(crate) max_paths: u16,
    pub(crate) multipath_relax: bool,
}

struct Cand {
    i: usize,
    rank: Rank,
    local: bool,
    peer: PeerRank,
}

/// Recomputes the BEST and MULTIPATH flags of `paths`. Returns whether any path's BEST or
/// MULTIPATH flag changed (the caller also counts a replaced best path as a change).
pub(crate) fn select(
    paths: &mut [Path],
    attrs: &AttrTable,
    peer_rank: impl Fn(u16) -> Option<PeerRank>,
    s: &Settings,
) -> bool {
    let usable = |p: &Path| -> Option<PeerRank> {
        if attrs.rank(p.attr).looped {
            return None;
        }
        if p.peer == 0 {
            return Some(PeerRank {
                ebgp: false,
                router_id: 0,
                address: IpAddr::from([0u8; 4]),
            });
        }
        peer_rank(p.peer)
    };
    // The common case, one path: no allocation.
    if let [only] = paths {
        let old = only.flags;
        only.flags &= !(BEST | MULTIPATH);
        if usable(only).is_some() {
            only.flags |= BEST | MULTIPATH;
        }
        return old != only.flags;
    }
    let old: Vec<u8> = paths.iter().map(|p| p.flags & (BEST | MULTIPATH)).collect();
    for p in paths.iter_mut() {
        p.flags &= !(BEST | MULTIPATH);
    }
    let mut cands: Vec<Cand> = Vec::with_capacity(paths.len());
    for (i, p) in paths.iter().enumerate() {
        if let Some(peer) = usable(p) {
            cands.push(Cand {
                i,
                rank: attrs.rank(p.attr),
                local: p.peer == 0,
                peer,
            });
        }
    }
    choose(paths, &mut cands, attrs, s);
    paths
        .iter()
        .zip(old)
        .any(|(p, o)| p.flags & (BEST | MULTIPATH) != o)
}

fn choose(paths: &mut [Path], cands: &mut Vec<Cand>, attrs: &AttrTable, s: &Settings) {
    if cands.is_empty() {
        return;
    }
    let degree = |c: &Cand| -> (bool, u32) {
        let lp = if c.peer.ebgp {
            s.default_local_pref
        } else {
            c.rank.local_pref.unwrap_or(s.default_local_pref)
        };
        (c.local, lp)
    };
    // Phase 1 and steps (a)-(d): eliminate.
    keep_max(cands, degree);
    keep_min(cands, |c| c.rank.as_path_len);
    keep_min(cands, |c| c.rank.origin);
    // (c): per neighbouring AS, keep the lowest MED.
    let meds: Vec<(u32, u32)> = cands
        .iter()
        .map(|c| (c.rank.neighbor_as, c.rank.med))
        .collect();
    cands.retain(|c| {
        let min = meds
            .iter()
            .filter(|(asn, _)| *asn == c.rank.neighbor_as)
            .map(|(_, m)| *m)
            .min()
            .unwrap_or(c.rank.med);
        c.rank.med <= min
    });
    if cands.iter().any(|c| c.peer.ebgp) {
        cands.retain(|c| c.peer.ebgp || c.local);
    }
    // Equal cost from here on: order the rest by (f), cluster list, (g).
    cands.sort_by(|a, b| {
        let id = |c: &Cand| c.rank.originator_id.unwrap_or(c.peer.router_id);
        id(a)
            .cmp(&id(b))
            .then(a.rank.cluster_len.cmp(&b.rank.cluster_len))
            .then(a.peer.address.cmp(&b.peer.address))
            .then(a.i.cmp(&b.i))
    });
    let Some(best) = cands.first() else {
        return;
    };
    let best_i = best.i;
    let best_path = paths.get(best_i).map(|p| p.attr);
    let max = usize::from(s.max_paths.max(1));
    let mut taken = 0;
    for c in cands.iter() {
        if taken >= max {
            break;
        }
        let same = match (best_path, paths.get(c.i)) {
            (Some(b), Some(p)) => {
                s.multipath_relax
                    || b == p.attr
                    || attrs.get(b).path.as_path == attrs.get(p.attr).path.as_path
            }
            _ => false,
        };
        if c.i == best_i || same {
            if let Some(p) = paths.get_mut(c.i) {
                p.flags |= MULTIPATH;
                if c.i == best_i {
                    p.flags |= BEST;
                }
            }
            taken += 1;
        }
    }
}

fn keep_max<T: Ord>(c: &mut Vec<Cand>, f: impl Fn(&Cand) -> T) {
    if let Some(m) = c.iter().map(&f).max() {
        c.retain(|x| f(x) == m);
    }
}

fn keep_min<T: Ord>(c: &mut Vec<Cand>, f: impl Fn(&Cand) -> T) {
    if let Some(m) = c.iter().map(&f).min() {
        c.retain(|x| f(x) == m);
    }
}
