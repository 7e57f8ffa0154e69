//! Where map operations go: the kernel's pinned maps ([`crate::kernel::KernelMaps`]) or, in
//! the mode without a dataplane and in tests, plain memory ([`MemoryMaps`]). Both count what
//! they do, so "one change costs N operations" can be checked and reported.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::maps::{BackendVal, CtKey, CtVal, RevNatVal, SvcKey, SvcVal};
use crate::plan::Op;

/// The contents of the service maps (not conntrack): what `lb list` shows and what adoption
/// after a restart reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapsSnapshot {
    /// `lb_services`, sorted by key.
    pub services: Vec<(SvcKey, SvcVal)>,
    /// `lb_backends`, sorted by id.
    pub backends: Vec<(u32, BackendVal)>,
    /// `lb_rev_nat`, sorted by id.
    pub rev_nat: Vec<(u16, RevNatVal)>,
}

/// Operation counts, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// Updates (backends, slots, frontends, reverse NAT, Maglev entries).
    pub updates: u64,
    /// Deletes.
    pub deletes: u64,
}

impl OpCounts {
    /// Updates and deletes.
    pub fn total(&self) -> u64 {
        self.updates + self.deletes
    }
}

/// A map failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A map is full.
    #[error(
        "map {map} is full ({max_entries} entries): raise its size in the dataplane configuration"
    )]
    Full {
        /// The map.
        map: &'static str,
        /// Its size.
        max_entries: u32,
    },
    /// Any other failure of a map operation.
    #[error("{op} on map {map}: {message}")]
    Map {
        /// The map.
        map: &'static str,
        /// What was done.
        op: &'static str,
        /// The error.
        message: String,
    },
}

/// A place that holds the dataplane's maps.
pub trait MapStore {
    /// Applies operations in order; stops at the first failure.
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError>;
    /// The service maps' contents.
    fn snapshot(&self) -> Result<MapsSnapshot, StoreError>;
    /// A Maglev table region (`m` entries from `slot * m`).
    fn maglev_table(&self, slot: u16, m: u32) -> Result<Vec<u32>, StoreError>;
    /// Every conntrack entry (TCP and other).
    fn conntrack(&self) -> Result<Vec<(CtKey, CtVal)>, StoreError>;
    /// Deletes conntrack entries; an entry already gone is not an error. Returns how many
    /// were deleted.
    fn delete_conntrack(&mut self, keys: &[CtKey]) -> Result<usize, StoreError>;
    /// What has been done so far.
    fn counts(&self) -> OpCounts;
}

/// The maps in memory: the mode without a dataplane, and tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryMaps {
    /// `lb_services`.
    pub services: BTreeMap<SvcKey, SvcVal>,
    /// `lb_backends`.
    pub backends: BTreeMap<u32, BackendVal>,
    /// `lb_rev_nat`.
    pub rev_nat: BTreeMap<u16, RevNatVal>,
    /// `lb_maglev` (sparse).
    pub maglev: BTreeMap<u32, u32>,
    /// `lb_ct` and `lb_ct_any` together.
    pub conntrack: BTreeMap<CtKey, CtVal>,
    counts: OpCounts,
}

impl MemoryMaps {
    /// Empty maps.
    pub fn new() -> MemoryMaps {
        MemoryMaps::default()
    }
}

impl MapStore for MemoryMaps {
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        for op in ops {
            match *op {
                Op::PutBackend(id, v) => {
                    self.backends.insert(id, v);
                }
                Op::DelBackend(id) => {
                    self.backends.remove(&id);
                }
                Op::PutSvc(k, v) => {
                    self.services.insert(k, v);
                }
                Op::DelSvc(k) => {
                    self.services.remove(&k);
                }
                Op::PutRevNat(id, v) => {
                    self.rev_nat.insert(id, v);
                }
                Op::DelRevNat(id) => {
                    self.rev_nat.remove(&id);
                }
                Op::PutMaglev(i, id) => {
                    self.maglev.insert(i, id);
                }
            }
            count(&mut self.counts, op);
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<MapsSnapshot, StoreError> {
        Ok(MapsSnapshot {
            services: self.services.iter().map(|(k, v)| (*k, *v)).collect(),
            backends: self.backends.iter().map(|(k, v)| (*k, *v)).collect(),
            rev_nat: self.rev_nat.iter().map(|(k, v)| (*k, *v)).collect(),
        })
    }

    fn maglev_table(&self, slot: u16, m: u32) -> Result<Vec<u32>, StoreError> {
        let base = u32::from(slot) * m;
        Ok((base..base + m)
            .map(|i| self.maglev.get(&i).copied().unwrap_or(0))
            .collect())
    }

    fn conntrack(&self) -> Result<Vec<(CtKey, CtVal)>, StoreError> {
        Ok(self.conntrack.iter().map(|(k, v)| (*k, *v)).collect())
    }

    fn delete_conntrack(&mut self, keys: &[CtKey]) -> Result<usize, StoreError> {
        let n = keys
            .iter()
            .filter(|k| self.conntrack.remove(k).is_some())
            .count();
        self.counts.deletes += n as u64;
        Ok(n)
    }

    fn counts(&self) -> OpCounts {
        self.counts
    }
}

/// Adds one operation to the counts.
pub(crate) fn count(c: &mut OpCounts, op: &Op) {
    match op {
        Op::DelBackend(_) | Op::DelSvc(_) | Op::DelRevNat(_) => c.deletes += 1,
        _ => c.updates += 1,
    }
}
