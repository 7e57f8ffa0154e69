//! The RIBs of one speaker instance (RFC 4271 §3.2, §9): Adj-RIB-In per peer and family, the
//! Loc-RIB with the full decision process and ECMP, Adj-RIB-Out per peer with the export
//! rules and update packing. Pure: no I/O, no clock.
//!
//! ```text
//!  UPDATE from peer ─► apply_update ─► paths per prefix (Adj-RIBs-In, stored together)
//!                                        │ decision process (§9.1) marks BEST / MULTIPATH
//!  announce/withdraw ─► local paths ─────┤
//!                                        ├─► dirty prefixes per peer ─► take_updates ─► UPDATEs
//!                                        └─► dirty prefixes per subscriber ─► take_best_changes
//! ```
//!
//! Attribute sets are interned ([`Attrs`], one entry per distinct set, hashed once per UPDATE);
//! prefixes are compact keys ([`prefix::V4`], [`prefix::V6`]); a prefix with one path stores it
//! inline. Paths of a session that went down under graceful restart are kept, marked stale,
//! until [`Rib::sweep_stale`]. Indices: peer 0 is the instance itself (local routes).

mod adj_out;
pub mod attrs;
mod decision;
mod export;
mod policy;
pub mod prefix;
mod read;
mod table;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;
use ipnet::IpNet;
use serde::Serialize;

pub use attrs::{AttrId, Attrs};
pub use policy::ExportPolicy;
pub use prefix::{Key, V4, V6};

use decision::{PeerRank, Settings};
use export::{Local, Source, Target};
use table::{Ctx, Fam};

use crate::wire::{
    EncodeContext, EncodeError, Family, FamilySet, NextHop, Nlri, PathAttributes, Update,
};

/// Index of a peer in a [`Rib`]; 0 is the instance itself.
pub type PeerIdx = u16;
/// The index of locally originated routes.
pub const LOCAL: PeerIdx = 0;

/// Instance-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RibConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Cluster id for route reflection (the router id when `None`).
    pub cluster_id: Option<Ipv4Addr>,
    /// LOCAL_PREF of routes from external peers and of our routes without one.
    pub default_local_pref: u32,
    /// Equal-cost paths kept per prefix (1: no ECMP).
    pub max_paths: u16,
    /// Paths of equal AS-path length but different AS paths are equal cost.
    pub multipath_relax: bool,
}

impl RibConfig {
    /// Defaults: LOCAL_PREF 100, no ECMP.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> RibConfig {
        RibConfig {
            local_as,
            router_id,
            cluster_id: None,
            default_local_pref: 100,
            max_paths: 1,
            multipath_relax: false,
        }
    }
}

/// What the RIB needs to know about a configured peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerSettings {
    /// The peer's address (the last tie-breaker).
    pub address: IpAddr,
    /// The peer is a route-reflector client.
    pub rr_client: bool,
    /// Set ourselves as next hop toward this internal peer.
    pub next_hop_self: bool,
    /// Largest number of prefixes accepted per family (IPv4, IPv6).
    pub max_prefixes: [Option<u32>; 2],
    /// What the peer is sent.
    pub export: ExportPolicy,
}

impl PeerSettings {
    /// Settings for a peer at `address` with no limits and the default export (everything).
    pub fn new(address: IpAddr) -> PeerSettings {
        PeerSettings {
            address,
            rr_client: false,
            next_hop_self: false,
            max_prefixes: [None, None],
            export: ExportPolicy::default(),
        }
    }
}

/// What an Established session tells the RIB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerSession {
    /// External session.
    pub ebgp: bool,
    /// The peer's AS.
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// Families negotiated (only IPv4 and IPv6 unicast are routed).
    pub families: FamilySet,
    /// How to encode UPDATEs for the peer.
    pub encode: EncodeContext,
    /// Our IPv4 next hop toward the peer.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop toward the peer (global, link-local).
    pub next_hop_v6: Option<(Ipv6Addr, Option<Ipv6Addr>)>,
    /// The session runs over IPv6.
    pub ipv6_session: bool,
}

/// What an UPDATE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The Loc-RIB changed.
    pub changed: bool,
    /// It was the End-of-RIB of this family.
    pub end_of_rib: Option<Family>,
    /// A max-prefix limit was passed: (family, limit).
    pub max_prefix: Option<(Family, u32)>,
    /// Prefixes of families this RIB does not route (ignored).
    pub ignored: usize,
}

/// One path as the read API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteView {
    /// The prefix.
    pub prefix: IpNet,
    /// Who it came from (0: ourselves).
    pub peer: PeerIdx,
    /// Its attributes (for an Adj-RIB-Out, as sent).
    pub attrs: Arc<Attrs>,
    /// The best path.
    pub best: bool,
    /// In the multipath set.
    pub multipath: bool,
    /// Kept stale under graceful restart.
    pub stale: bool,
    /// Usable (no AS loop, no reflection loop).
    pub eligible: bool,
}

/// A Loc-RIB change for a subscriber: the prefix and its multipath set now, best first
/// (empty: no route any more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BestChange {
    /// The prefix.
    pub prefix: IpNet,
    /// The paths now used, best first.
    pub paths: Vec<RouteView>,
}

/// Index of a Loc-RIB subscriber.
pub type SubId = usize;

#[derive(Debug)]
struct PeerEntry {
    settings: PeerSettings,
    session: Option<PeerSession>,
    /// Kept after the session goes so stale paths still rank.
    rank: Option<PeerRank>,
    target: Option<Target>,
}

/// The RIBs of one instance.
#[derive(Debug)]
pub struct Rib {
    config: RibConfig,
    settings: Settings,
    local: Local,
    attrs: attrs::AttrTable,
    peers: Vec<Option<PeerEntry>>,
    v4: Fam<V4>,
    v6: Fam<V6>,
    subs: Vec<bool>,
    table_complete: bool,
}

/// Runs `$body` with `$fam` bound to the family table of `$family` (and `K` to its key type).
macro_rules! with_fam {
    ($self:ident, $family:expr, |$fam:ident, $k:ident| $body:expr, $default:expr) => {
        match $family {
            Family::IPV4_UNICAST => {
                let $fam = &mut $self.v4;
                type $k = V4;
                $body
            }
            Family::IPV6_UNICAST => {
                let $fam = &mut $self.v6;
                type $k = V6;
                $body
            }
            _ => $default,
        }
    };
}

/// The routed families.
const FAMILIES: [Family; 2] = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];

fn fam_index(f: Family) -> Option<usize> {
    match f {
        Family::IPV4_UNICAST => Some(0),
        Family::IPV6_UNICAST => Some(1),
        _ => None,
    }
}

impl Rib {
    /// An empty RIB.
    pub fn new(config: RibConfig) -> Rib {
        let cluster = config.cluster_id.unwrap_or(config.router_id);
        Rib {
            settings: Settings {
                default_local_pref: config.default_local_pref,
                max_paths: config.max_paths,
                multipath_relax: config.multipath_relax,
            },
            local: Local {
                asn: config.local_as,
                router_id: config.router_id,
                cluster_id: cluster,
                default_local_pref: config.default_local_pref,
            },
            attrs: attrs::AttrTable::new(config.local_as, config.router_id, cluster),
            peers: vec![None],
            v4: Fam::default(),
            v6: Fam::default(),
            subs: Vec::new(),
            table_complete: true,
            config,
        }
    }

    /// The instance settings.
    pub fn config(&self) -> &RibConfig {
        &self.config
    }

    /// Registers a peer (its session down).
    pub fn add_peer(&mut self, settings: PeerSettings) -> PeerIdx {
        let entry = PeerEntry {
            settings,
            session: None,
            rank: None,
            target: None,
        };
        let free = self
            .peers
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, p)| p.is_none())
            .map(|(i, _)| i);
        let i = match free {
            Some(i) => {
                if let Some(slot) = self.peers.get_mut(i) {
                    *slot = Some(entry);
                }
                i
            }
            None => {
                self.peers.push(Some(entry));
                self.peers.len() - 1
            }
        };
        PeerIdx::try_from(i).unwrap_or(PeerIdx::MAX)
    }

    /// Changes a peer's settings; an Established peer gets its Adj-RIB-Out re-examined in place
    /// (only prefixes whose outcome changed are sent).
    pub fn update_peer_settings(&mut self, idx: PeerIdx, settings: PeerSettings) {
        let Some(Some(p)) = self.peers.get_mut(usize::from(idx)) else {
            return;
        };
        p.settings = settings;
        if let Some(s) = p.session.clone() {
            p.target = Some(target_of(idx, &p.settings, &s));
            for f in FAMILIES {
                self.resend(idx, f);
            }
        }
    }

    fn resend(&mut self, idx: PeerIdx, family: Family) {
        let Rib { v4, v6, attrs, .. } = self;
        match family {
            Family::IPV4_UNICAST => resend_fam(v4, attrs, idx),
            Family::IPV6_UNICAST => resend_fam(v6, attrs, idx),
            _ => {}
        }
    }

    /// Removes a peer and its routes. Returns whether the Loc-RIB changed.
    pub fn remove_peer(&mut self, idx: PeerIdx) -> bool {
        if idx == LOCAL {
            return false;
        }
        let changed = self.peer_down(idx, FamilySet::EMPTY);
        let mut changed2 = false;
        for f in FAMILIES {
            changed2 |= self.sweep_stale(idx, f) > 0;
        }
        if let Some(slot) = self.peers.get_mut(usize::from(idx)) {
            *slot = None;
        }
        changed || changed2
    }

    /// The session with a peer is Established: its Adj-RIB-Out starts with the whole table.
    pub fn peer_up(&mut self, idx: PeerIdx, session: PeerSession) {
        let Some(Some(p)) = self.peers.get_mut(usize::from(idx)) else {
            return;
        };
        p.rank = Some(PeerRank {
            ebgp: session.ebgp,
            router_id: u32::from(session.router_id),
            address: p.settings.address,
        });
        p.target = Some(target_of(idx, &p.settings, &session));
        let families = session.families;
        p.session = Some(session);
        let Rib { v4, v6, attrs, .. } = self;
        if families.contains(Family::IPV4_UNICAST) {
            install_out(v4, attrs, idx);
        }
        if families.contains(Family::IPV6_UNICAST) {
            install_out(v6, attrs, idx);
        }
    }

    /// The session went down. Paths of the families in `keep_stale` are kept and marked stale
    /// (graceful restart); the others are removed. Returns whether the Loc-RIB changed.
    pub fn peer_down(&mut self, idx: PeerIdx, keep_stale: FamilySet) -> bool {
        let Some(Some(p)) = self.peers.get_mut(usize::from(idx)) else {
            return false;
        };
        p.session = None;
        p.target = None;
        let mut changed = false;
        for f in FAMILIES {
            let keep = keep_stale.contains(f);
            changed |= self.down_family(idx, f, keep);
        }
        changed
    }

    fn down_family(&mut self, idx: PeerIdx, family: Family, keep: bool) -> bool {
        let Rib {
            v4,
            v6,
            attrs,
            peers,
            settings,
            ..
        } = self;
        let rank = |i: u16| rank_of(peers, i);
        let mut ctx = Ctx {
            attrs,
            rank,
            settings,
        };
        match family {
            Family::IPV4_UNICAST => down_fam(v4, &mut ctx, idx, keep),
            Family::IPV6_UNICAST => down_fam(v6, &mut ctx, idx, keep),
            _ => false,
        }
    }

    /// Removes the stale paths of a peer in one family (End-of-RIB received, or the restart
    /// timer ran out). Returns how many were removed.
    pub fn sweep_stale(&mut self, idx: PeerIdx, family: Family) -> usize {
        let Rib {
            v4,
            v6,
            attrs,
            peers,
            settings,
            ..
        } = self;
        let rank = |i: u16| rank_of(peers, i);
        let mut ctx = Ctx {
            attrs,
            rank,
            settings,
        };
        match family {
            Family::IPV4_UNICAST => sweep_fam(v4, &mut ctx, idx),
            Family::IPV6_UNICAST => sweep_fam(v6, &mut ctx, idx),
            _ => 0,
        }
    }

    /// Marks a peer's paths of one family stale (an enhanced route refresh began).
    pub fn mark_stale(&mut self, idx: PeerIdx, family: Family) -> u32 {
        match family {
            Family::IPV4_UNICAST => self.v4.mark_stale(idx),
            Family::IPV6_UNICAST => self.v6.mark_stale(idx),
            _ => 0,
        }
    }

    /// Stale paths of a peer in a family.
    pub fn stale_count(&self, idx: PeerIdx, family: Family) -> u32 {
        match family {
            Family::IPV4_UNICAST => Fam::<V4>::count(&self.v4.stale, idx),
            Family::IPV6_UNICAST => Fam::<V6>::count(&self.v6.stale, idx),
            _ => 0,
        }
    }

    /// Applies an UPDATE received from an Established peer.
    pub fn apply_update(&mut self, idx: PeerIdx, u: &Update) -> UpdateOutcome {
        let mut out = UpdateOutcome::default();
        let Some(Some(peer)) = self.peers.get(usize::from(idx)) else {
            return out;
        };
        let Some(session) = peer.session.clone() else {
            return out;
        };
        let limits = peer.settings.max_prefixes;
        if let Some(f) = u.end_of_rib_family() {
            out.end_of_rib = Some(f);
            return out;
        }
        for (family, nlri) in u.withdrawn_routes() {
            if !self.withdraw_path(idx, family, &nlri.prefix, &mut out) {
                out.ignored += 1;
            }
        }
        // An external peer's path must start with its AS (RFC 4271 §6.3); otherwise the
        // UPDATE is treated as a withdrawal (RFC 7606 §3).
        let first_as_ok = !session.ebgp
            || u.attributes
                .effective_as_path()
                .and_then(|p| p.first_as())
                .is_some_and(|a| a == session.peer_as);
        if !u.nlri.is_empty() {
            let attrs = normalize(
                &u.attributes,
                u.attributes.next_hop.map(NextHop::Ipv4),
                session.ebgp,
            );
            self.announce_paths(
                idx,
                Family::IPV4_UNICAST,
                attrs,
                &u.nlri,
                first_as_ok && !u.is_treat_as_withdraw(),
                &mut out,
            );
        }
        if let Some(mp) = &u.mp_reach
            && !mp.nlri.is_empty()
        {
            let attrs = normalize(&u.attributes, Some(mp.next_hop), session.ebgp);
            self.announce_paths(
                idx,
                mp.family,
                attrs,
                &mp.nlri,
                first_as_ok && !u.is_treat_as_withdraw(),
                &mut out,
            );
        }
        for f in FAMILIES {
            let Some(limit) = fam_index(f).and_then(|i| limits.get(i).copied().flatten()) else {
                continue;
            };
            let n = match f {
                Family::IPV4_UNICAST => Fam::<V4>::count(&self.v4.received, idx),
                _ => Fam::<V6>::count(&self.v6.received, idx),
            };
            if n > limit && out.max_prefix.is_none() {
                out.max_prefix = Some((f, limit));
            }
        }
        out
    }

    fn withdraw_path(
        &mut self,
        idx: PeerIdx,
        family: Family,
        prefix: &IpNet,
        out: &mut UpdateOutcome,
    ) -> bool {
        let Rib {
            v4,
            v6,
            attrs,
            peers,
            settings,
            ..
        } = self;
        let rank = |i: u16| rank_of(peers, i);
        let mut ctx = Ctx {
            attrs,
            rank,
            settings,
        };
        match family {
            Family::IPV4_UNICAST => match V4::from_net(prefix) {
                Some(k) => {
                    out.changed |= v4.remove(k, idx, &mut ctx);
                    true
                }
                None => false,
            },
            Family::IPV6_UNICAST => match V6::from_net(prefix) {
                Some(k) => {
                    out.changed |= v6.remove(k, idx, &mut ctx);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn announce_paths(
        &mut self,
        idx: PeerIdx,
        family: Family,
        a: Attrs,
        nlri: &[Nlri],
        ok: bool,
        out: &mut UpdateOutcome,
    ) {
        if !matches!(family, Family::IPV4_UNICAST | Family::IPV6_UNICAST) {
            out.ignored += nlri.len();
            return;
        }
        if !ok {
            for n in nlri {
                self.withdraw_path(idx, family, &n.prefix, out);
            }
            return;
        }
        let Rib {
            v4,
            v6,
            attrs,
            peers,
            settings,
            ..
        } = self;
        let id = attrs.intern(a);
        let rank = |i: u16| rank_of(peers, i);
        let mut ctx = Ctx {
            attrs,
            rank,
            settings,
        };
        for n in nlri {
            match family {
                Family::IPV4_UNICAST => match V4::from_net(&n.prefix) {
                    Some(k) => out.changed |= v4.upsert(k, idx, id, &mut ctx),
                    None => out.ignored += 1,
                },
                _ => match V6::from_net(&n.prefix) {
                    Some(k) => out.changed |= v6.upsert(k, idx, id, &mut ctx),
                    None => out.ignored += 1,
                },
            }
        }
        ctx.attrs.release(id);
    }

    /// Originates (or re-announces with new attributes) a route of ours. The attributes'
    /// `next_hop` says which next hop to advertise (`None`: our address toward each peer).
    /// Returns whether the Loc-RIB changed; `false` for a prefix of an unrouted family.
    pub fn announce(&mut self, prefix: IpNet, attrs: Attrs) -> bool {
        let family = family_of(&prefix);
        let mut out = UpdateOutcome::default();
        let mut a = attrs;
        a.path.next_hop = None;
        self.announce_paths(LOCAL, family, a, &[Nlri::new(prefix)], true, &mut out);
        out.changed
    }

    /// Withdraws a route of ours. Returns whether the Loc-RIB changed.
    pub fn withdraw(&mut self, prefix: IpNet) -> bool {
        let mut out = UpdateOutcome::default();
        self.withdraw_path(LOCAL, family_of(&prefix), &prefix, &mut out);
        out.changed
    }

    /// Says whether our own table is complete; until it is, End-of-RIB is held back (so that a
    /// peer keeping our routes stale after our restart does not sweep them too early).
    pub fn set_table_complete(&mut self, complete: bool) {
        self.table_complete = complete;
    }

    /// Whether End-of-RIB may be sent.
    pub fn table_complete(&self) -> bool {
        self.table_complete
    }

    /// Whether a peer has anything to send.
    pub fn has_pending(&self, idx: PeerIdx) -> bool {
        let i = usize::from(idx);
        let c = self.table_complete;
        self.v4
            .out
            .get(i)
            .and_then(|o| o.as_ref())
            .is_some_and(|o| o.has_work(c))
            || self
                .v6
                .out
                .get(i)
                .and_then(|o| o.as_ref())
                .is_some_and(|o| o.has_work(c))
    }

    /// Up to `budget` prefixes per family worth of UPDATEs for a peer, encoded.
    pub fn take_updates(&mut self, idx: PeerIdx, budget: usize) -> Result<Vec<Bytes>, EncodeError> {
        let Some(Some(p)) = self.peers.get(usize::from(idx)) else {
            return Ok(Vec::new());
        };
        let (Some(target), Some(session)) = (p.target, p.session.as_ref()) else {
            return Ok(Vec::new());
        };
        let ctx = session.encode;
        let policy = p.settings.export.clone();
        let Rib {
            v4,
            v6,
            attrs,
            peers,
            local,
            table_complete,
            ..
        } = self;
        let source = |i: u16| source_of(peers, i, local);
        let mut out = Vec::new();
        let i = usize::from(idx);
        if let Some(Some(o)) = v4.out.get_mut(i) {
            out.extend(o.take(
                &v4.routes,
                attrs,
                &source,
                &target,
                local,
                &ctx,
                &policy,
                budget,
                *table_complete,
            )?);
        }
        if let Some(Some(o)) = v6.out.get_mut(i) {
            out.extend(o.take(
                &v6.routes,
                attrs,
                &source,
                &target,
                local,
                &ctx,
                &policy,
                budget,
                *table_complete,
            )?);
        }
        Ok(out)
    }

    /// The peer asked for our routes again (ROUTE-REFRESH).
    pub fn route_refresh(&mut self, idx: PeerIdx, family: Family, enhanced: bool) {
        let i = usize::from(idx);
        with_fam!(
            self,
            family,
            |fam, _K| {
                if let Some(Some(o)) = fam.out.get_mut(i) {
                    o.refresh(&fam.routes, enhanced);
                }
            },
            ()
        )
    }
}

fn family_of(prefix: &IpNet) -> Family {
    match prefix {
        IpNet::V4(_) => Family::IPV4_UNICAST,
        IpNet::V6(_) => Family::IPV6_UNICAST,
    }
}

/// Attributes as received, in the form the RIB keeps: the real AS path and aggregator
/// (AS4_PATH merged, RFC 6793), no NEXT_HOP inside, and from external peers no LOCAL_PREF,
/// ORIGINATOR_ID or CLUSTER_LIST (RFC 4271 §5.1.5, RFC 4456 §8).
fn normalize(p: &PathAttributes, next_hop: Option<NextHop>, ebgp: bool) -> Attrs {
    let mut path = p.clone();
    if path.as4_path.is_some() {
        path.as_path = p.effective_as_path();
        path.as4_path = None;
    }
    if path.as4_aggregator.is_some() {
        path.aggregator = p.effective_aggregator();
        path.as4_aggregator = None;
    }
    path.next_hop = None;
    if ebgp {
        path.local_pref = None;
        path.originator_id = None;
        path.cluster_list.clear();
    }
    Attrs { path, next_hop }
}

fn rank_of(peers: &[Option<PeerEntry>], i: u16) -> Option<PeerRank> {
    peers
        .get(usize::from(i))
        .and_then(|p| p.as_ref())
        .and_then(|p| p.rank)
}

fn source_of(peers: &[Option<PeerEntry>], i: u16, local: &Local) -> Source {
    let p = peers.get(usize::from(i)).and_then(|p| p.as_ref());
    Source {
        peer: i,
        ebgp: p.and_then(|p| p.rank).is_some_and(|r| r.ebgp),
        rr_client: p.is_some_and(|p| p.settings.rr_client),
        router_id: p
            .and_then(|p| p.rank)
            .map_or(local.router_id, |r| Ipv4Addr::from(r.router_id)),
    }
}

fn target_of(idx: PeerIdx, settings: &PeerSettings, s: &PeerSession) -> Target {
    Target {
        peer: idx,
        ebgp: s.ebgp,
        peer_as: s.peer_as,
        rr_client: settings.rr_client,
        next_hop_self: settings.next_hop_self,
        nh4: s.next_hop_v4,
        nh6: s.next_hop_v6,
        ext_nh_v4: s.encode.extended_next_hop.contains(Family::IPV4_UNICAST),
        ipv6_session: s.ipv6_session,
    }
}

fn install_out<K: Key>(fam: &mut Fam<K>, attrs: &mut attrs::AttrTable, idx: PeerIdx) {
    let i = usize::from(idx);
    if fam.out.len() <= i {
        fam.out.resize_with(i + 1, || None);
    }
    if let Some(slot) = fam.out.get_mut(i) {
        if let Some(mut old) = slot.take() {
            old.clear(attrs);
        }
        *slot = Some(adj_out::AdjOut::new(&fam.routes));
    }
}

fn resend_fam<K: Key>(fam: &mut Fam<K>, attrs: &mut attrs::AttrTable, idx: PeerIdx) {
    if let Some(Some(o)) = fam.out.get_mut(usize::from(idx)) {
        // Drop the export cache (the rules changed) and look at every prefix again.
        let advertised: Vec<(K, AttrId)> = o.advertised.iter().map(|(k, a)| (*k, *a)).collect();
        let eor = o.eor_due;
        // Take the new references before `clear` drops the old ones, so that no set the peer
        // holds is freed (and re-interned under another id, which would re-send it).
        for (_, a) in &advertised {
            attrs.retain(*a);
        }
        o.clear(attrs);
        for (k, a) in advertised {
            o.advertised.insert(k, a);
        }
        o.eor_due = eor;
        o.requeue(&fam.routes);
    }
}

fn down_fam<K: Key, F: Fn(u16) -> Option<PeerRank>>(
    fam: &mut Fam<K>,
    ctx: &mut Ctx<'_, F>,
    idx: PeerIdx,
    keep: bool,
) -> bool {
    if let Some(Some(mut o)) = fam.out.get_mut(usize::from(idx)).map(Option::take) {
        o.clear(ctx.attrs);
    }
    if keep {
        fam.mark_stale(idx);
        return false;
    }
    let mut changed = false;
    for k in fam.keys_of(idx, false) {
        changed |= fam.remove(k, idx, ctx);
    }
    changed
}

fn sweep_fam<K: Key, F: Fn(u16) -> Option<PeerRank>>(
    fam: &mut Fam<K>,
    ctx: &mut Ctx<'_, F>,
    idx: PeerIdx,
) -> usize {
    if Fam::<K>::count(&fam.stale, idx) == 0 {
        return 0;
    }
    let keys = fam.keys_of(idx, true);
    let n = keys.len();
    for k in keys {
        fam.remove(k, idx, ctx);
    }
    n
}
