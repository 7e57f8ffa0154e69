//! The differential map sync, as pure logic: [`Programmer`] holds a mirror of what the maps
//! hold and turns a desired state (or one frontend's change) into the fewest map operations
//! ([`Op`]), in an order that never lets the programs see a half-written frontend:
//!
//! 1. new or changed backends;
//! 2. changed backend slots and Maglev entries;
//! 3. the frontend (slot 0: counts and flags);
//! 4. slots beyond the new counts, removed frontends, reverse-NAT entries.
//!
//! Slots keep their backends across changes (a removed backend's slot takes the last one),
//! so one change costs a handful of operations whatever the number of services. A backend
//! no frontend lists any more is not deleted: it *drains* — established flows keep reaching
//! it — until conntrack GC finds no flow left on it ([`Programmer::release_drained`]).
//!
//! After a restart, [`Programmer::adopt`] rebuilds the mirror from the pinned maps, so the
//! first sync of an unchanged desired state is a no-op and flows are not disturbed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::maglev;
use crate::maps::{
    BackendVal, LbAddr, Protocol, RevNatVal, SCOPE_EXT, SCOPE_INT, SvcKey, SvcVal, backend_flags,
    svc_flags,
};
use crate::model::{
    Algorithm, BackendKey, BackendState, DesiredState, Frontend, FrontendKey, ModelError,
    ServiceKind, TrafficPolicy,
};
use crate::store::MapsSnapshot;

/// One map operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Create or update a backend.
    PutBackend(u32, BackendVal),
    /// Delete a backend.
    DelBackend(u32),
    /// Create or update a frontend (slot 0) or a backend slot.
    PutSvc(SvcKey, SvcVal),
    /// Delete a frontend or a slot.
    DelSvc(SvcKey),
    /// Create or update a reverse-NAT entry.
    PutRevNat(u16, RevNatVal),
    /// Delete a reverse-NAT entry.
    DelRevNat(u16),
    /// Set one Maglev table entry (index into `lb_maglev`, backend id).
    PutMaglev(u32, u32),
}

/// Sizes the programmer allocates within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maglev table size (prime).
    pub maglev_m: u32,
    /// How many Maglev tables `lb_maglev` holds.
    pub maglev_tables: u16,
}

/// Why a frontend could not be programmed (the others still are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The frontend is not representable.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// Every id of a kind is in use.
    #[error("frontend {frontend}: no free {what} (raise the map size)")]
    Exhausted {
        /// The frontend.
        frontend: FrontendKey,
        /// "reverse-NAT id", "Maglev table", "backend id".
        what: &'static str,
    },
}

type BackendIdent = (LbAddr, u16, u8);

/// A fast hasher for the mirror's tables (the FxHash mix): their keys come from the cluster's
/// own configuration, not from the network, so collision attacks are not a concern, and a
/// level-triggered sync of 27,000 frontends looks each of them up.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

#[derive(Debug, Clone)]
struct BackendEntry {
    id: u32,
    val: BackendVal,
    refs: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct ScopeState {
    head: SvcVal,
    active: Vec<u32>,
    terminating: Vec<u32>,
    /// The table as written, when the frontend uses Maglev.
    maglev: Option<Vec<u32>>,
}

impl ScopeState {
    fn slots(&self) -> impl Iterator<Item = &u32> {
        self.active.iter().chain(&self.terminating)
    }
}

#[derive(Debug, Clone)]
struct Programmed {
    rev_nat_id: u16,
    /// By scope ([`SCOPE_EXT`], [`SCOPE_INT`]).
    scopes: BTreeMap<u8, ScopeState>,
    /// Backend ids this frontend holds a reference on.
    refs: Vec<u32>,
    /// The frontend as last programmed (None after adoption).
    last: Option<Frontend>,
}

/// The mirror of the maps and the allocator of ids, slots and tables.
#[derive(Debug, Clone)]
pub struct Programmer {
    limits: Limits,
    frontends: FxMap<FrontendKey, Programmed>,
    backends: FxMap<BackendIdent, BackendEntry>,
    by_id: FxMap<u32, BackendIdent>,
    draining: BTreeSet<u32>,
    next_backend_id: u32,
    rev_nat_used: HashSet<u16>,
    next_rev_nat: u16,
    maglev_used: BTreeSet<u16>,
    /// Deletes found necessary by adoption, done with the next plan.
    garbage: Vec<Op>,
}

fn svc_key(k: &FrontendKey, scope: u8, slot: u16) -> SvcKey {
    SvcKey::new(
        LbAddr::from(k.address),
        k.port,
        k.protocol.number(),
        scope,
        slot,
    )
}

/// Keeps `old`'s order for what stays, puts newcomers (in `target` order) into the slots of
/// those that left, fills remaining holes with the last element and appends the remaining
/// newcomers: the fewest slot writes for a change.
fn stable_update(old: &[u32], target: &[u32]) -> Vec<u32> {
    let keep: HashSet<u32> = target.iter().copied().collect();
    let had: HashSet<u32> = old.iter().copied().collect();
    let mut newcomers = target.iter().filter(|id| !had.contains(id)).copied();
    let mut v = old.to_vec();
    for slot in v.iter_mut() {
        if !keep.contains(slot)
            && let Some(n) = newcomers.next()
        {
            *slot = n;
        }
    }
    let mut i = 0;
    while i < v.len() {
        if keep.contains(&v[i]) {
            i += 1;
        } else {
            v.swap_remove(i);
        }
    }
    v.extend(newcomers);
    v
}

fn kind_flag(kind: ServiceKind) -> u16 {
    match kind {
        ServiceKind::LoadBalancer => svc_flags::LOADBALANCER,
        ServiceKind::ExternalIp => svc_flags::EXTERNAL_IP,
        ServiceKind::ClusterIp => svc_flags::CLUSTER_IP,
    }
}

impl Programmer {
    /// An empty mirror (empty maps).
    pub fn new(limits: Limits) -> Programmer {
        Programmer {
            limits,
            frontends: FxMap::default(),
            backends: FxMap::default(),
            by_id: FxMap::default(),
            draining: BTreeSet::new(),
            next_backend_id: 1,
            rev_nat_used: HashSet::new(),
            next_rev_nat: 1,
            maglev_used: BTreeSet::new(),
            garbage: Vec::new(),
        }
    }

    /// The limits it allocates within.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many frontends are programmed.
    pub fn frontend_count(&self) -> usize {
        self.frontends.len()
    }

    /// Backends no frontend lists, kept for their established flows.
    pub fn draining(&self) -> impl Iterator<Item = u32> + '_ {
        self.draining.iter().copied()
    }

    /// The operations that make the maps hold `desired`, and the frontends that could not be
    /// programmed (the rest are).
    pub fn plan(&mut self, desired: &DesiredState) -> (Vec<Op>, Vec<PlanError>) {
        let mut ops = std::mem::take(&mut self.garbage);
        let mut errors = Vec::new();
        let before = self.frontends.len();
        let mut existing = 0;
        let mut retry = Vec::new();
        for f in desired.frontends.values() {
            match self.plan_frontend(f, &mut ops) {
                Ok(true) => existing += 1,
                Ok(false) => {}
                // Tables a removal below frees may be what it needs.
                Err(PlanError::Exhausted { .. }) => retry.push(f),
                Err(e) => {
                    existing += usize::from(self.frontends.contains_key(&f.key));
                    errors.push(e);
                }
            }
        }
        // Removals, looked for only when some programmed frontend is not desired any more.
        if existing < before {
            let gone: Vec<FrontendKey> = self
                .frontends
                .keys()
                .filter(|k| !desired.frontends.contains_key(k))
                .copied()
                .collect();
            for k in gone {
                self.plan_removal(&k, &mut ops);
            }
        }
        for f in retry {
            if let Err(e) = self.plan_frontend(f, &mut ops) {
                errors.push(e);
            }
        }
        (ops, errors)
    }

    /// The operations for one frontend added or changed.
    pub fn plan_upsert(&mut self, f: &Frontend) -> Result<Vec<Op>, PlanError> {
        let mut ops = std::mem::take(&mut self.garbage);
        if let Err(e) = self.plan_frontend(f, &mut ops) {
            // Nothing of this frontend was planned; the adoption deletes still are due.
            self.garbage = ops;
            return Err(e);
        }
        Ok(ops)
    }

    /// The operations for one frontend removed.
    pub fn plan_remove(&mut self, key: &FrontendKey) -> Vec<Op> {
        let mut ops = std::mem::take(&mut self.garbage);
        self.plan_removal(key, &mut ops);
        ops
    }

    fn alloc_backend_id(&mut self, frontend: FrontendKey) -> Result<u32, PlanError> {
        for _ in 0..1024 {
            let id = self.next_backend_id;
            self.next_backend_id = self.next_backend_id.checked_add(1).unwrap_or(1);
            if id != 0 && !self.by_id.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(PlanError::Exhausted {
            frontend,
            what: "backend id",
        })
    }

    /// Round-robin, so an id is reused only after the others: replies of a removed
    /// frontend's last flows never take a new frontend's address.
    fn alloc_rev_nat(&mut self, frontend: FrontendKey) -> Result<u16, PlanError> {
        for _ in 0..=u16::MAX {
            let id = self.next_rev_nat;
            self.next_rev_nat = self.next_rev_nat.checked_add(1).unwrap_or(1);
            if id != 0 && self.rev_nat_used.insert(id) {
                return Ok(id);
            }
        }
        Err(PlanError::Exhausted {
            frontend,
            what: "reverse-NAT id",
        })
    }

    fn alloc_maglev(&mut self, frontend: FrontendKey) -> Result<u16, PlanError> {
        let slot = (0..self.limits.maglev_tables)
            .find(|s| !self.maglev_used.contains(s))
            .ok_or(PlanError::Exhausted {
                frontend,
                what: "Maglev table",
            })?;
        self.maglev_used.insert(slot);
        Ok(slot)
    }

    fn add_ref(&mut self, id: u32) {
        if let Some(e) = self.by_id.get(&id).and_then(|i| self.backends.get_mut(i)) {
            e.refs += 1;
            self.draining.remove(&id);
        }
    }

    fn drop_ref(&mut self, id: u32) {
        if let Some(e) = self.by_id.get(&id).and_then(|i| self.backends.get_mut(i)) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                self.draining.insert(id);
            }
        }
    }

    /// Plans one frontend; `Ok(true)` when it was programmed before.
    fn plan_frontend(&mut self, f: &Frontend, ops: &mut Vec<Op>) -> Result<bool, PlanError> {
        let old = self.frontends.get(&f.key);
        if old.and_then(|p| p.last.as_ref()) == Some(f) {
            return Ok(true);
        }
        let existed = old.is_some();
        f.validate()?;
        let proto = f.key.protocol.number();
        // Check what can run out before any operation is planned.
        if f.algorithm == Algorithm::Maglev {
            let scopes = if f.external_policy != f.internal_policy {
                2
            } else {
                1
            };
            let have = old.map_or(0, |p| {
                p.scopes
                    .values()
                    .filter(|s| s.head.flags & svc_flags::MAGLEV != 0 && s.maglev.is_some())
                    .count()
            });
            let free = usize::from(self.limits.maglev_tables) - self.maglev_used.len();
            if scopes > have + free {
                return Err(PlanError::Exhausted {
                    frontend: f.key,
                    what: "Maglev table",
                });
            }
        }

        // Allocate what a new frontend needs before touching anything.
        let rev_nat_id = match old {
            Some(p) => p.rev_nat_id,
            None => {
                let id = self.alloc_rev_nat(f.key)?;
                ops.push(Op::PutRevNat(
                    id,
                    RevNatVal::new(LbAddr::from(f.key.address), f.key.port),
                ));
                id
            }
        };
        let old = self.frontends.get(&f.key).cloned();

        // 1. Backends: one entry per (address, port, protocol), shared between frontends.
        let mut chosen: BTreeMap<BackendKey, (u32, &crate::model::Backend)> = BTreeMap::new();
        for b in &f.backends {
            let ident = (LbAddr::from(b.address), b.port, proto);
            let mut flags = 0;
            if b.local {
                flags |= backend_flags::LOCAL;
            }
            if b.state == BackendState::Terminating {
                flags |= backend_flags::TERMINATING;
            }
            let val = BackendVal::new(ident.0, b.port, proto, flags);
            let id = match self.backends.get_mut(&ident) {
                Some(e) => {
                    if e.val != val {
                        e.val = val;
                        ops.push(Op::PutBackend(e.id, val));
                    }
                    e.id
                }
                None => {
                    let id = match self.alloc_backend_id(f.key) {
                        Ok(id) => id,
                        Err(e) => {
                            if old.is_none() {
                                self.rev_nat_used.remove(&rev_nat_id);
                            }
                            return Err(e);
                        }
                    };
                    self.backends
                        .insert(ident, BackendEntry { id, val, refs: 0 });
                    self.by_id.insert(id, ident);
                    self.draining.insert(id);
                    ops.push(Op::PutBackend(id, val));
                    id
                }
            };
            chosen.insert(b.key(), (id, b));
        }

        // 2/3/4. Slots, tables and the frontend, per scope.
        let two = f.external_policy != f.internal_policy;
        let mut flags = kind_flag(f.kind);
        if f.external_policy == TrafficPolicy::Local {
            flags |= svc_flags::LOCAL;
        }
        if f.internal_policy == TrafficPolicy::Local {
            flags |= svc_flags::INT_LOCAL;
        }
        if two {
            flags |= svc_flags::TWO_SCOPES;
        }
        if f.algorithm == Algorithm::Maglev {
            flags |= svc_flags::MAGLEV;
        }
        let mut scopes_wanted = vec![(SCOPE_EXT, f.external_policy)];
        if two {
            scopes_wanted.push((SCOPE_INT, f.internal_policy));
        }
        let mut new_scopes = BTreeMap::new();
        let mut deferred = Vec::new();
        for (scope, policy) in scopes_wanted {
            let prev = old
                .as_ref()
                .and_then(|p| p.scopes.get(&scope))
                .cloned()
                .unwrap_or_default();
            let eligible = chosen
                .iter()
                .filter(|(_, (_, b))| policy == TrafficPolicy::Cluster || b.local);
            let (mut act, mut term) = (Vec::new(), Vec::new());
            let mut act_keys = Vec::new();
            for (k, (id, b)) in eligible {
                match b.state {
                    BackendState::Active => {
                        act.push(*id);
                        act_keys.push((*k, *id));
                    }
                    BackendState::Terminating => term.push(*id),
                }
            }
            act = stable_update(&prev.active, &act);
            term = stable_update(&prev.terminating, &term);

            let mut head = SvcVal {
                backend_id: 0,
                count: act.len() as u16,
                rev_nat_id,
                flags,
                qcount: term.len() as u16,
                maglev_slot: 0,
                pad: 0,
            };
            let mut table = None;
            if f.algorithm == Algorithm::Maglev {
                let had = prev.head.flags & svc_flags::MAGLEV != 0 && prev.maglev.is_some();
                let slot = if had {
                    prev.head.maglev_slot
                } else {
                    match self.alloc_maglev(f.key) {
                        Ok(s) => s,
                        Err(e) => {
                            if old.is_none() {
                                self.rev_nat_used.remove(&rev_nat_id);
                            }
                            return Err(e);
                        }
                    }
                };
                head.maglev_slot = slot;
                let m = self.limits.maglev_m;
                let t = maglev::table(&act_keys, m);
                let base = u32::from(slot) * m;
                let prev_t = if had { prev.maglev.as_deref() } else { None };
                if t.is_empty() {
                    // No active backend: the frontend drops new flows before the table.
                    table = prev_t.map(<[u32]>::to_vec).or(Some(Vec::new()));
                } else {
                    for (i, id) in t.iter().enumerate() {
                        if prev_t.and_then(|p| p.get(i)) != Some(id) {
                            ops.push(Op::PutMaglev(base + i as u32, *id));
                        }
                    }
                    table = Some(t);
                }
            } else if prev.head.flags & svc_flags::MAGLEV != 0 {
                self.maglev_used.remove(&prev.head.maglev_slot);
            }

            let new_slots: Vec<u32> = act.iter().chain(&term).copied().collect();
            let old_slots: Vec<u32> = prev.slots().copied().collect();
            for (i, id) in new_slots.iter().enumerate() {
                if old_slots.get(i) != Some(id) {
                    ops.push(Op::PutSvc(
                        svc_key(&f.key, scope, i as u16 + 1),
                        SvcVal {
                            backend_id: *id,
                            ..SvcVal::default()
                        },
                    ));
                }
            }
            if prev.head != head {
                ops.push(Op::PutSvc(svc_key(&f.key, scope, 0), head));
            }
            for i in new_slots.len()..old_slots.len() {
                deferred.push(Op::DelSvc(svc_key(&f.key, scope, i as u16 + 1)));
            }
            new_scopes.insert(
                scope,
                ScopeState {
                    head,
                    active: act,
                    terminating: term,
                    maglev: table,
                },
            );
        }
        ops.extend(deferred);
        // A scope no longer wanted (two scopes became one): frontend first, then slots.
        if let Some(p) = &old {
            for (scope, st) in &p.scopes {
                if !new_scopes.contains_key(scope) {
                    Self::delete_scope(&f.key, *scope, st, ops);
                    if st.head.flags & svc_flags::MAGLEV != 0 {
                        self.maglev_used.remove(&st.head.maglev_slot);
                    }
                }
            }
        }

        let refs: Vec<u32> = chosen
            .values()
            .map(|(id, _)| *id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in &refs {
            self.add_ref(*id);
        }
        if let Some(p) = &old {
            for id in &p.refs {
                self.drop_ref(*id);
            }
        }
        self.frontends.insert(
            f.key,
            Programmed {
                rev_nat_id,
                scopes: new_scopes,
                refs,
                last: Some(f.clone()),
            },
        );
        Ok(existed)
    }

    fn delete_scope(key: &FrontendKey, scope: u8, st: &ScopeState, ops: &mut Vec<Op>) {
        ops.push(Op::DelSvc(svc_key(key, scope, 0)));
        for i in 0..st.slots().count() {
            ops.push(Op::DelSvc(svc_key(key, scope, i as u16 + 1)));
        }
    }

    fn plan_removal(&mut self, key: &FrontendKey, ops: &mut Vec<Op>) {
        let Some(p) = self.frontends.remove(key) else {
            return;
        };
        for (scope, st) in &p.scopes {
            Self::delete_scope(key, *scope, st, ops);
            if st.head.flags & svc_flags::MAGLEV != 0 {
                self.maglev_used.remove(&st.head.maglev_slot);
            }
        }
        ops.push(Op::DelRevNat(p.rev_nat_id));
        self.rev_nat_used.remove(&p.rev_nat_id);
        for id in &p.refs {
            self.drop_ref(*id);
        }
    }

    /// Deletes the draining backends that no flow uses any more (`in_use`: the backend ids
    /// conntrack still refers to).
    pub fn release_drained(&mut self, in_use: &HashSet<u32>) -> Vec<Op> {
        let free: Vec<u32> = self
            .draining
            .iter()
            .filter(|id| !in_use.contains(id))
            .copied()
            .collect();
        let mut ops = Vec::new();
        for id in free {
            self.draining.remove(&id);
            if let Some(ident) = self.by_id.remove(&id) {
                self.backends.remove(&ident);
            }
            ops.push(Op::DelBackend(id));
        }
        ops
    }

    /// Rebuilds the mirror from what the maps hold (after a restart), reading Maglev tables
    /// through `maglev_table(slot)`. Entries that belong to nothing are deleted by the next
    /// plan.
    pub fn adopt(
        limits: Limits,
        snap: &MapsSnapshot,
        mut maglev_table: impl FnMut(u16) -> Option<Vec<u32>>,
    ) -> Programmer {
        let mut p = Programmer::new(limits);
        for (id, val) in &snap.backends {
            let ident = (val.addr, val.port(), val.proto);
            p.backends.insert(
                ident,
                BackendEntry {
                    id: *id,
                    val: *val,
                    refs: 0,
                },
            );
            p.by_id.insert(*id, ident);
            p.next_backend_id = p.next_backend_id.max(id.saturating_add(1));
        }
        // Group the service entries: (frontend key, scope) -> slot -> value.
        type Groups = BTreeMap<(LbAddr, u16, u8), BTreeMap<u8, BTreeMap<u16, SvcVal>>>;
        let mut groups: Groups = BTreeMap::new();
        for (k, v) in &snap.services {
            groups
                .entry((k.addr, k.port(), k.proto))
                .or_default()
                .entry(k.scope)
                .or_default()
                .insert(k.slot, *v);
        }
        let rev_nats: HashMap<u16, RevNatVal> = snap.rev_nat.iter().copied().collect();
        let mut rev_nat_seen = HashSet::new();
        for ((addr, port, proto), scopes) in groups {
            let protocol = Protocol::from_number(proto);
            let mut programmed = BTreeMap::new();
            let mut refs = BTreeSet::new();
            let mut rev_nat_id = None;
            for (scope, slots) in scopes {
                let key = SvcKey::new(addr, port, proto, scope, 0);
                let Some(head) = slots.get(&0).copied().filter(|_| protocol.is_some()) else {
                    for slot in slots.keys() {
                        p.garbage.push(Op::DelSvc(key.with_slot(*slot)));
                    }
                    continue;
                };
                let n = head.count.saturating_add(head.qcount);
                let mut list = Vec::new();
                for slot in 1..=n {
                    match slots.get(&slot) {
                        Some(v) => list.push(v.backend_id),
                        None => break,
                    }
                }
                for slot in slots.keys() {
                    if *slot > list.len() as u16 {
                        p.garbage.push(Op::DelSvc(key.with_slot(*slot)));
                    }
                }
                let count = usize::from(head.count).min(list.len());
                let terminating = list.split_off(count);
                refs.extend(list.iter().chain(&terminating).copied());
                let maglev = if head.flags & svc_flags::MAGLEV != 0 {
                    p.maglev_used.insert(head.maglev_slot);
                    maglev_table(head.maglev_slot)
                } else {
                    None
                };
                rev_nat_id.get_or_insert(head.rev_nat_id);
                programmed.insert(
                    scope,
                    ScopeState {
                        head,
                        active: list,
                        terminating,
                        maglev,
                    },
                );
            }
            let (Some(protocol), Some(rev_nat_id)) = (protocol, rev_nat_id) else {
                continue;
            };
            if !rev_nats.contains_key(&rev_nat_id) {
                // Replies cannot be translated without it: rewrite it on the next plan.
                p.garbage
                    .push(Op::PutRevNat(rev_nat_id, RevNatVal::new(addr, port)));
            }
            rev_nat_seen.insert(rev_nat_id);
            p.rev_nat_used.insert(rev_nat_id);
            p.next_rev_nat = p.next_rev_nat.max(rev_nat_id.checked_add(1).unwrap_or(1));
            let refs: Vec<u32> = refs.into_iter().collect();
            for id in &refs {
                if let Some(e) = p.by_id.get(id).and_then(|i| p.backends.get_mut(i)) {
                    e.refs += 1;
                }
            }
            p.frontends.insert(
                FrontendKey {
                    address: addr.ip(),
                    port,
                    protocol,
                },
                Programmed {
                    rev_nat_id,
                    scopes: programmed,
                    refs,
                    last: None,
                },
            );
        }
        for (id, _) in &snap.rev_nat {
            if !rev_nat_seen.contains(id) {
                p.garbage.push(Op::DelRevNat(*id));
            }
        }
        for e in p.backends.values() {
            if e.refs == 0 {
                p.draining.insert(e.id);
            }
        }
        p
    }
}

#[cfg(test)]
mod tests;
