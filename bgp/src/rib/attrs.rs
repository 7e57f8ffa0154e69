//! Interned attribute sets.
//!
//! Every route refers to its attributes by a 4-octet [`AttrId`]: all the prefixes of one
//! UPDATE share one entry, hashed once when the UPDATE arrives, not once per prefix. Entries
//! are reference counted by the RIB (each path, each Adj-RIB-Out entry, each export-cache
//! entry holds one reference) and freed, their slot reused, when the last goes. Beside each
//! entry sits its [`Rank`]: what the decision process compares, extracted once.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Serialize;

use super::prefix::FastHash;
use crate::wire::{NextHop, PathAttributes};

/// A route's attributes: the path attributes (with `next_hop` cleared) and the next hop,
/// whichever attribute carried it (NEXT_HOP or MP_REACH_NLRI). `None`: "ourselves", for a
/// locally originated route without an explicit next hop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Attrs {
    /// Path attributes; `path.next_hop` is always `None` here.
    #[serde(flatten)]
    pub path: PathAttributes,
    /// The next hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<NextHop>,
}

/// Index of an interned [`Attrs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(pub(crate) u32);

/// What the decision process compares, precomputed per attribute set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rank {
    pub(crate) local_pref: Option<u32>,
    pub(crate) as_path_len: u32,
    pub(crate) origin: u8,
    pub(crate) med: u32,
    /// The leftmost AS of the path (the neighbouring AS), 0 for an empty path.
    pub(crate) neighbor_as: u32,
    pub(crate) originator_id: Option<u32>,
    pub(crate) cluster_len: u32,
    /// Our AS in the path, our router id as originator, or our cluster id in the cluster
    /// list: the route must not be used (RFC 4271 §9.1.2, RFC 4456 §8).
    pub(crate) looped: bool,
}

#[derive(Debug)]
struct Slot {
    attrs: Arc<Attrs>,
    refs: u32,
    rank: Rank,
}

/// The interning table of one RIB.
#[derive(Debug)]
pub(crate) struct AttrTable {
    map: HashMap<Arc<Attrs>, u32, FastHash>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    local_as: u32,
    router_id: u32,
    cluster_id: u32,
}

impl AttrTable {
    pub(crate) fn new(local_as: u32, router_id: Ipv4Addr, cluster_id: Ipv4Addr) -> AttrTable {
        AttrTable {
            map: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            local_as,
            router_id: u32::from(router_id),
            cluster_id: u32::from(cluster_id),
        }
    }

    /// The id of `attrs`, with one reference taken for the caller.
    pub(crate) fn intern(&mut self, attrs: Attrs) -> AttrId {
        if let Some(&i) = self.map.get(&attrs) {
            self.retain(AttrId(i));
            return AttrId(i);
        }
        let rank = self.rank_of(&attrs);
        let attrs = Arc::new(attrs);
        let slot = Slot {
            attrs: attrs.clone(),
            refs: 1,
            rank,
        };
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    *s = Some(slot);
                }
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(attrs, i);
        AttrId(i)
    }

    fn rank_of(&self, a: &Attrs) -> Rank {
        let p = &a.path;
        let (as_path_len, neighbor_as, looped_as) = match &p.as_path {
            Some(path) => (
                path.path_len() as u32,
                path.first_as().unwrap_or(0),
                path.contains(self.local_as),
            ),
            None => (0, 0, false),
        };
        let originator_id = p.originator_id.map(u32::from);
        let looped = looped_as
            || originator_id == Some(self.router_id)
            || p.cluster_list
                .iter()
                .any(|c| u32::from(*c) == self.cluster_id);
        Rank {
            local_pref: p.local_pref,
            as_path_len,
            origin: p.origin.map_or(2, |o| o as u8),
            med: p.med.unwrap_or(0),
            neighbor_as,
            originator_id,
            cluster_len: p.cluster_list.len() as u32,
            looped,
        }
    }

    pub(crate) fn retain(&mut self, id: AttrId) {
        if let Some(Some(s)) = self.slots.get_mut(id.0 as usize) {
            s.refs = s.refs.saturating_add(1);
        }
    }

    pub(crate) fn release(&mut self, id: AttrId) {
        let Some(entry) = self.slots.get_mut(id.0 as usize) else {
            return;
        };
        let Some(s) = entry else { return };
        s.refs = s.refs.saturating_sub(1);
        if s.refs == 0 {
            if let Some(s) = entry.take() {
                self.map.remove(&*s.attrs);
            }
            self.free.push(id.0);
        }
    }

    pub(crate) fn get(&self, id: AttrId) -> &Arc<Attrs> {
        static EMPTY: std::sync::OnceLock<Arc<Attrs>> = std::sync::OnceLock::new();
        match self.slots.get(id.0 as usize) {
            Some(Some(s)) => &s.attrs,
            _ => EMPTY.get_or_init(|| Arc::new(Attrs::default())),
        }
    }

    pub(crate) fn rank(&self, id: AttrId) -> Rank {
        match self.slots.get(id.0 as usize) {
            Some(Some(s)) => s.rank,
            _ => Rank {
                local_pref: None,
                as_path_len: u32::MAX,
                origin: 2,
                med: u32::MAX,
                neighbor_as: 0,
                originator_id: None,
                cluster_len: 0,
                looped: true,
            },
        }
    }

    /// Live attribute sets.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(crate) fn refs(&self, id: AttrId) -> u32 {
        match self.slots.get(id.0 as usize) {
            Some(Some(s)) => s.refs,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AsPath, Origin};

    fn table() -> AttrTable {
        AttrTable::new(65001, Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(1, 1, 1, 1))
    }

    fn attrs(asns: &[u32]) -> Attrs {
        Attrs {
            path: PathAttributes::new(Origin::Igp, AsPath::sequence(asns.iter().copied())),
            next_hop: Some(NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1))),
        }
    }

    #[test]
    fn equal_attribute_sets_share_one_entry_until_the_last_reference_goes() {
        let mut t = table();
        let a = t.intern(attrs(&[65000]));
        let b = t.intern(attrs(&[65000]));
        assert_eq!(a, b);
        assert_eq!(t.refs(a), 2);
        assert_eq!(t.len(), 1);
        t.release(a);
        assert_eq!(t.len(), 1);
        t.release(b);
        assert_eq!(t.len(), 0);
        // The slot is reused.
        let c = t.intern(attrs(&[65002]));
        assert_eq!(c, a);
        assert_eq!(t.get(c).path.as_path, Some(AsPath::sequence([65002])));
    }

    #[test]
    fn a_path_through_our_own_as_is_marked_as_a_loop() {
        let mut t = table();
        let ok = t.intern(attrs(&[65000, 65100]));
        let looped = t.intern(attrs(&[65000, 65001]));
        assert!(!t.rank(ok).looped);
        assert!(t.rank(looped).looped);
        assert_eq!(t.rank(ok).as_path_len, 2);
        assert_eq!(t.rank(ok).neighbor_as, 65000);
    }
}
