//! The tokio side of the speaker: the [`Speaker`] handle, its instances (each a [`Rib`], a
//! listener when a local port is configured, and one task per peer), the sockets, and the
//! framer [`codec::BgpCodec`].
//!
//! ```text
//!   Speaker (Clone) ──► Instance "default" ── Rib (std Mutex, never held across .await)
//!        │                 ├─ listener task: accept, match the address, hand over
//!        │                 ├─ peer task "tor" ── Session(s) ── socket
//!        │                 └─ peer task ...
//!        └─ events (broadcast), Loc-RIB subscriptions (coalesced, never lossy)
//! ```

pub mod codec;
pub mod config;
mod peer;
mod transport;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{Instrument as _, debug, info, info_span, warn};

pub use config::{
    GracefulRestartConfig, InstanceConfig, MaxPrefix, PeerConfig, Route, RouteAttributes,
    parse_community, parse_large_community,
};

use crate::fsm::{Restart, State};
use crate::rib::{LOCAL, PeerIdx, Rib, RouteView, SubId};
use crate::wire::notification::cease;
use crate::wire::{Family, NextHop, Notification};
use peer::{Control, PeerTask, Status};
pub use types::{
    BestPathChange, FamilyCounts, PeerEvent, PeerEventKind, PeerState, ResetReason, RibRoute,
    SpeakerError, StopMode,
};

pub(crate) struct PeerHandle {
    idx: PeerIdx,
    config: PeerConfig,
    ctl: mpsc::UnboundedSender<Control>,
    wake: Arc<Notify>,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

pub(crate) struct Instance {
    pub(crate) config: InstanceConfig,
    pub(crate) rib: Mutex<Rib>,
    peers: Mutex<BTreeMap<String, PeerHandle>>,
    subs: Mutex<Vec<(SubId, Arc<Notify>)>>,
    listeners: Mutex<Vec<(Arc<TcpListener>, JoinHandle<()>)>>,
    pub(crate) events: broadcast::Sender<PeerEvent>,
}

impl Instance {
    /// Tells every peer task and Loc-RIB subscriber that the RIB changed.
    pub(crate) fn wake_all(&self) {
        if let Ok(peers) = self.peers.lock() {
            for p in peers.values() {
                p.wake.notify_one();
            }
        }
        if let Ok(subs) = self.subs.lock() {
            for (_, n) in subs.iter() {
                n.notify_one();
            }
        }
    }

    fn peer_names(&self) -> HashMap<PeerIdx, String> {
        self.peers
            .lock()
            .map(|p| p.iter().map(|(n, h)| (h.idx, n.clone())).collect())
            .unwrap_or_default()
    }

    fn set_md5(&self, address: IpAddr, key: Option<&str>) -> Result<(), SpeakerError> {
        let Ok(listeners) = self.listeners.lock() else {
            return Ok(());
        };
        for (l, _) in listeners.iter() {
            let family_matches = l
                .local_addr()
                .is_ok_and(|a| a.is_ipv6() == address.is_ipv6());
            if family_matches {
                match transport::set_md5(l.as_raw_fd(), address, key) {
                    Ok(()) => {}
                    // Removing a key that was never set.
                    Err(_) if key.is_none() => {}
                    Err(source) => return Err(SpeakerError::Md5 { address, source }),
                }
            }
        }
        Ok(())
    }
}

struct Inner {
    instances: Mutex<HashMap<String, Arc<Instance>>>,
    events: broadcast::Sender<PeerEvent>,
}

/// The handle the rest of lbspeaker uses: cheap to clone, every method async and safe to call
/// from any task. It must be used inside a tokio runtime.
#[derive(Clone)]
pub struct Speaker {
    inner: Arc<Inner>,
}

impl Default for Speaker {
    fn default() -> Self {
        Speaker::new()
    }
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker").finish_non_exhaustive()
    }
}

fn view_route(v: RouteView, names: &HashMap<PeerIdx, String>) -> RibRoute {
    let next_hop = v.attrs.next_hop.map(|nh| match nh {
        NextHop::Ipv4(a) => IpAddr::V4(a),
        NextHop::Ipv6 { global, .. } => IpAddr::V6(global),
    });
    RibRoute {
        prefix: v.prefix,
        peer: (v.peer != LOCAL).then(|| names.get(&v.peer).cloned().unwrap_or_default()),
        next_hop,
        attrs: v.attrs,
        best: v.best,
        multipath: v.multipath,
        stale: v.stale,
        eligible: v.eligible,
    }
}

impl Speaker {
    /// A speaker with no instance.
    pub fn new() -> Speaker {
        let (events, _) = broadcast::channel(4096);
        Speaker {
            inner: Arc::new(Inner {
                instances: Mutex::new(HashMap::new()),
                events,
            }),
        }
    }

    fn instance(&self, name: &str) -> Result<Arc<Instance>, SpeakerError> {
        self.inner
            .instances
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
            .ok_or_else(|| SpeakerError::NoInstance(name.to_owned()))
    }

    /// Names of the running instances.
    pub fn instances(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .instances
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Starts an instance (and its listener when `listen_port` is set).
    pub async fn start_instance(&self, config: InstanceConfig) -> Result<(), SpeakerError> {
        config.validate()?;
        if self.instance(&config.name).is_ok() {
            return Err(SpeakerError::InstanceExists(config.name));
        }
        let mut rib = Rib::new(config.rib_config());
        rib.set_table_complete(!config.defer_end_of_rib);
        let listeners = match config.listen_port {
            Some(port) => transport::listen(port, &config.listen_addresses)
                .map_err(|source| SpeakerError::Listen { port, source })?,
            None => Vec::new(),
        };
        let inst = Arc::new(Instance {
            config: config.clone(),
            rib: Mutex::new(rib),
            peers: Mutex::new(BTreeMap::new()),
            subs: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            events: self.inner.events.clone(),
        });
        for l in listeners {
            let l = Arc::new(l);
            let task = tokio::spawn(accept_loop(inst.clone(), l.clone()));
            if let Ok(mut ls) = inst.listeners.lock() {
                ls.push((l, task));
            }
        }
        info!(instance = %config.name, asn = config.local_as.get(), router_id = %config.router_id, listen = ?config.listen_port, "instance started");
        if let Ok(mut m) = self.inner.instances.lock() {
            m.insert(config.name.clone(), inst);
        }
        Ok(())
    }

    /// Stops an instance: every session ends as `mode` says, the listener closes.
    pub async fn stop_instance(&self, name: &str, mode: StopMode) -> Result<(), SpeakerError> {
        let inst = self.instance(name)?;
        if let Ok(mut m) = self.inner.instances.lock() {
            m.remove(name);
        }
        if let Ok(mut ls) = inst.listeners.lock() {
            for (_, task) in ls.drain(..) {
                task.abort();
            }
        }
        let peers: Vec<PeerHandle> = inst
            .peers
            .lock()
            .map(|mut p| std::mem::take(&mut *p).into_values().collect())
            .unwrap_or_default();
        let n = match &mode {
            StopMode::Shutdown { communication } => Some(Notification::cease(
                cease::ADMINISTRATIVE_SHUTDOWN,
                communication.as_deref(),
            )),
            StopMode::GracefulRestart => None,
        };
        let waits: Vec<_> = peers.into_iter().map(|p| stop_peer(p, n.clone())).collect();
        futures::future::join_all(waits).await;
        info!(instance = name, ?mode, "instance stopped");
        Ok(())
    }

    /// Stops every instance.
    pub async fn shutdown(&self, mode: StopMode) {
        for name in self.instances() {
            let _ = self.stop_instance(&name, mode.clone()).await;
        }
    }

    /// Adds a peer; its session starts at once.
    pub async fn add_peer(&self, instance: &str, config: PeerConfig) -> Result<(), SpeakerError> {
        config.validate()?;
        let inst = self.instance(instance)?;
        {
            let peers = inst
                .peers
                .lock()
                .map_err(|_| SpeakerError::NoInstance(instance.into()))?;
            if peers.contains_key(&config.name) {
                return Err(SpeakerError::PeerExists {
                    instance: instance.into(),
                    peer: config.name,
                });
            }
            if let Some((n, _)) = peers
                .iter()
                .find(|(_, p)| p.config.address == config.address)
            {
                return Err(SpeakerError::AddressInUse {
                    instance: instance.into(),
                    address: config.address,
                    peer: n.clone(),
                });
            }
        }
        if let Some(pw) = &config.password {
            inst.set_md5(config.address, Some(pw))?;
        }
        let idx = inst
            .rib
            .lock()
            .map(|mut r| r.add_peer(config.rib_settings()))
            .unwrap_or(0);
        let (tx, rx) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let status = Arc::new(Mutex::new(Status::default()));
        let task = PeerTask::new(
            inst.clone(),
            idx,
            config.clone(),
            rx,
            wake.clone(),
            status.clone(),
        );
        let span = info_span!("peer", instance = %inst.config.name, peer = %config.name, address = %config.address, asn = config.peer_as);
        let handle = tokio::spawn(task.run().instrument(span));
        if let Ok(mut peers) = inst.peers.lock() {
            peers.insert(
                config.name.clone(),
                PeerHandle {
                    idx,
                    config,
                    ctl: tx,
                    wake,
                    status,
                    task: handle,
                },
            );
        }
        Ok(())
    }

    /// Changes a peer. Returns whether its session is reset: changes of what the OPEN or the
    /// transport carries (timers, families, password, addresses ...) reset that session only;
    /// export settings and limits apply in place.
    pub async fn update_peer(
        &self,
        instance: &str,
        config: PeerConfig,
    ) -> Result<bool, SpeakerError> {
        config.validate()?;
        let inst = self.instance(instance)?;
        let (old, ctl) = {
            let peers = inst
                .peers
                .lock()
                .map_err(|_| SpeakerError::NoInstance(instance.into()))?;
            let p = peers
                .get(&config.name)
                .ok_or_else(|| SpeakerError::NoPeer {
                    instance: instance.into(),
                    peer: config.name.clone(),
                })?;
            (p.config.clone(), p.ctl.clone())
        };
        if old == config {
            return Ok(false);
        }
        if old.address != config.address {
            self.remove_peer(instance, &config.name, Some("peer address changed"))
                .await?;
            self.add_peer(instance, config).await?;
            return Ok(true);
        }
        if old.password != config.password {
            inst.set_md5(config.address, config.password.as_deref())?;
        }
        let reset = old.needs_reset(&config);
        if let Ok(mut peers) = inst.peers.lock()
            && let Some(p) = peers.get_mut(&config.name)
        {
            p.config = config.clone();
        }
        let _ = ctl.send(Control::Reconfigure(Box::new(config)));
        Ok(reset)
    }

    /// The configuration a peer runs with now (what [`Speaker::update_peer`] compares with).
    pub async fn peer_config(
        &self,
        instance: &str,
        peer: &str,
    ) -> Result<PeerConfig, SpeakerError> {
        let inst = self.instance(instance)?;
        inst.peers
            .lock()
            .ok()
            .and_then(|p| p.get(peer).map(|h| h.config.clone()))
            .ok_or_else(|| SpeakerError::NoPeer {
                instance: instance.into(),
                peer: peer.into(),
            })
    }

    /// The configuration an instance was started with.
    pub async fn instance_config(&self, instance: &str) -> Result<InstanceConfig, SpeakerError> {
        Ok(self.instance(instance)?.config.clone())
    }

    /// Removes a peer: Cease / Administrative Shutdown with `communication` (RFC 9003), its
    /// routes leave our RIB.
    pub async fn remove_peer(
        &self,
        instance: &str,
        peer: &str,
        communication: Option<&str>,
    ) -> Result<(), SpeakerError> {
        let inst = self.instance(instance)?;
        let handle = inst
            .peers
            .lock()
            .ok()
            .and_then(|mut p| p.remove(peer))
            .ok_or_else(|| SpeakerError::NoPeer {
                instance: instance.into(),
                peer: peer.into(),
            })?;
        let address = handle.config.address;
        let had_password = handle.config.password.is_some();
        let idx = handle.idx;
        stop_peer(
            handle,
            Some(Notification::cease(
                cease::ADMINISTRATIVE_SHUTDOWN,
                communication,
            )),
        )
        .await;
        let changed = inst
            .rib
            .lock()
            .map(|mut r| r.remove_peer(idx))
            .unwrap_or(false);
        if changed {
            inst.wake_all();
        }
        if had_password {
            let _ = inst.set_md5(address, None);
        }
        Ok(())
    }

    /// Forces one session down from outside (BFD, an operator); it comes back by itself.
    pub async fn reset_peer(
        &self,
        instance: &str,
        peer: &str,
        reason: ResetReason,
    ) -> Result<(), SpeakerError> {
        let inst = self.instance(instance)?;
        let ctl = inst
            .peers
            .lock()
            .ok()
            .and_then(|p| p.get(peer).map(|h| h.ctl.clone()))
            .ok_or_else(|| SpeakerError::NoPeer {
                instance: instance.into(),
                peer: peer.into(),
            })?;
        let (n, restart) = match reason {
            ResetReason::BfdDown => (Notification::cease(cease::BFD_DOWN, None), Restart::Damped),
            ResetReason::Administrative(c) => (
                Notification::cease(cease::ADMINISTRATIVE_RESET, c.as_deref()),
                Restart::After(Duration::from_millis(100)),
            ),
            ResetReason::Notification(n) => (n, Restart::Damped),
        };
        let _ = ctl.send(Control::Reset(n, restart));
        Ok(())
    }

    /// Announces (or re-announces with new attributes) routes of ours.
    pub async fn announce(&self, instance: &str, routes: Vec<Route>) -> Result<(), SpeakerError> {
        let inst = self.instance(instance)?;
        let changed = match inst.rib.lock() {
            Ok(mut rib) => routes
                .iter()
                .fold(false, |c, r| rib.announce(r.prefix.trunc(), r.attrs()) | c),
            Err(_) => false,
        };
        if changed {
            inst.wake_all();
        }
        Ok(())
    }

    /// Withdraws routes of ours.
    pub async fn withdraw(&self, instance: &str, prefixes: Vec<IpNet>) -> Result<(), SpeakerError> {
        let inst = self.instance(instance)?;
        let changed = match inst.rib.lock() {
            Ok(mut rib) => prefixes
                .iter()
                .fold(false, |c, p| rib.withdraw(p.trunc()) | c),
            Err(_) => false,
        };
        if changed {
            inst.wake_all();
        }
        Ok(())
    }

    /// Makes `routes` exactly our routes: announces new and changed ones, withdraws the rest
    /// (what a level-triggered reconciler wants).
    pub async fn replace_routes(
        &self,
        instance: &str,
        routes: Vec<Route>,
    ) -> Result<(), SpeakerError> {
        let current: Vec<IpNet> = self
            .local_routes(instance)
            .await?
            .into_iter()
            .map(|r| r.prefix)
            .collect();
        let wanted: std::collections::HashSet<IpNet> =
            routes.iter().map(|r| r.prefix.trunc()).collect();
        let gone: Vec<IpNet> = current
            .into_iter()
            .filter(|p| !wanted.contains(p))
            .collect();
        self.withdraw(instance, gone).await?;
        self.announce(instance, routes).await
    }

    /// Releases End-of-RIB when the instance was started with `defer_end_of_rib`: our table
    /// is complete.
    pub async fn table_complete(&self, instance: &str) -> Result<(), SpeakerError> {
        let inst = self.instance(instance)?;
        if let Ok(mut rib) = inst.rib.lock() {
            rib.set_table_complete(true);
        }
        inst.wake_all();
        Ok(())
    }

    /// Our own routes.
    pub async fn local_routes(&self, instance: &str) -> Result<Vec<RibRoute>, SpeakerError> {
        let inst = self.instance(instance)?;
        let names = inst.peer_names();
        let rib = inst
            .rib
            .lock()
            .map_err(|_| SpeakerError::NoInstance(instance.into()))?;
        let mut v: Vec<RibRoute> = [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
            .into_iter()
            .flat_map(|f| rib.adj_rib_in(LOCAL, f))
            .map(|r| view_route(r, &names))
            .collect();
        v.sort_by_key(|r| r.prefix);
        Ok(v)
    }

    /// The Loc-RIB of a family: every used path, best first per prefix.
    pub async fn loc_rib(
        &self,
        instance: &str,
        family: Family,
    ) -> Result<Vec<RibRoute>, SpeakerError> {
        let inst = self.instance(instance)?;
        let names = inst.peer_names();
        let rib = inst
            .rib
            .lock()
            .map_err(|_| SpeakerError::NoInstance(instance.into()))?;
        Ok(rib
            .loc_rib(family)
            .into_iter()
            .map(|r| view_route(r, &names))
            .collect())
    }

    fn peer_idx(
        &self,
        inst: &Instance,
        instance: &str,
        peer: &str,
    ) -> Result<PeerIdx, SpeakerError> {
        inst.peers
            .lock()
            .ok()
            .and_then(|p| p.get(peer).map(|h| h.idx))
            .ok_or_else(|| SpeakerError::NoPeer {
                instance: instance.into(),
                peer: peer.into(),
            })
    }

    /// What a peer sent us (including unusable and stale paths).
    pub async fn adj_rib_in(
        &self,
        instance: &str,
        peer: &str,
        family: Family,
    ) -> Result<Vec<RibRoute>, SpeakerError> {
        let inst = self.instance(instance)?;
        let idx = self.peer_idx(&inst, instance, peer)?;
        let names = inst.peer_names();
        let rib = inst
            .rib
            .lock()
            .map_err(|_| SpeakerError::NoInstance(instance.into()))?;
        Ok(rib
            .adj_rib_in(idx, family)
            .into_iter()
            .map(|r| view_route(r, &names))
            .collect())
    }

    /// What we sent a peer, as sent.
    pub async fn adj_rib_out(
        &self,
        instance: &str,
        peer: &str,
        family: Family,
    ) -> Result<Vec<RibRoute>, SpeakerError> {
        let inst = self.instance(instance)?;
        let idx = self.peer_idx(&inst, instance, peer)?;
        let rib = inst
            .rib
            .lock()
            .map_err(|_| SpeakerError::NoInstance(instance.into()))?;
        Ok(rib
            .adj_rib_out(idx, family)
            .into_iter()
            .map(|r| view_route(r, &HashMap::new()))
            .map(|mut r| {
                r.peer = None;
                r
            })
            .collect())
    }

    /// Every peer of an instance, by name.
    pub async fn peer_states(&self, instance: &str) -> Result<Vec<PeerState>, SpeakerError> {
        let inst = self.instance(instance)?;
        let peers: Vec<(String, PeerIdx, PeerConfig, Status)> = inst
            .peers
            .lock()
            .map(|p| {
                p.iter()
                    .map(|(n, h)| {
                        let s = h.status.lock().map(|s| s.clone()).unwrap_or_default();
                        (n.clone(), h.idx, h.config.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rib = inst
            .rib
            .lock()
            .map_err(|_| SpeakerError::NoInstance(instance.into()))?;
        Ok(peers
            .into_iter()
            .map(|(name, idx, cfg, s)| {
                let info = s.info.as_ref();
                let families: Vec<Family> = info
                    .map(|i| i.families.iter().collect())
                    .unwrap_or_default();
                let counts = [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
                    .into_iter()
                    .filter(|f| cfg.family_set().contains(*f))
                    .map(|family| FamilyCounts {
                        family,
                        received: rib.received_count(idx, family),
                        stale: rib.stale_count(idx, family),
                        advertised: rib.advertised_count(idx, family),
                    })
                    .collect();
                PeerState {
                    name,
                    address: cfg.address,
                    configured_as: cfg.peer_as,
                    peer_as: info.map(|i| i.peer_as),
                    local_as: inst.config.local_as.get(),
                    state: s.state.unwrap_or(State::Idle),
                    established_since: s.established_at.map(|(t, _)| t),
                    uptime: s.established_at.map(|(_, i)| i.elapsed()),
                    hold_time: info.map(|i| i.hold_time),
                    keepalive: info.map(|i| i.keepalive),
                    families,
                    counts,
                    peer_id: info.map(|i| i.peer_id),
                    local: s.local,
                    remote: s.remote,
                    graceful_restart: info.and_then(|i| i.graceful_restart.clone()),
                    last_error: s.last_error.clone(),
                    flaps: s.flaps,
                    messages_received: s.received,
                    messages_sent: s.sent,
                    out_queue: s.out_queue,
                }
            })
            .collect())
    }

    /// One peer's state.
    pub async fn peer_state(&self, instance: &str, peer: &str) -> Result<PeerState, SpeakerError> {
        self.peer_states(instance)
            .await?
            .into_iter()
            .find(|p| p.name == peer)
            .ok_or_else(|| SpeakerError::NoPeer {
                instance: instance.into(),
                peer: peer.into(),
            })
    }

    /// Peer events of every instance. A receiver that falls more than 4096 events behind
    /// gets `Lagged` and should re-read [`Speaker::peer_states`].
    pub fn subscribe_events(&self) -> broadcast::Receiver<PeerEvent> {
        self.inner.events.subscribe()
    }

    /// Loc-RIB changes of an instance, starting with the whole table. Changes coalesce per
    /// prefix while the subscriber is not reading: nothing is lost, memory stays bounded.
    pub async fn subscribe_best_paths(
        &self,
        instance: &str,
    ) -> Result<BestPathSubscription, SpeakerError> {
        let inst = self.instance(instance)?;
        let id = inst.rib.lock().map(|mut r| r.subscribe()).unwrap_or(0);
        let notify = Arc::new(Notify::new());
        notify.notify_one();
        if let Ok(mut s) = inst.subs.lock() {
            s.push((id, notify.clone()));
        }
        Ok(BestPathSubscription { inst, id, notify })
    }
}

/// A Loc-RIB subscription; dropping it ends it.
pub struct BestPathSubscription {
    inst: Arc<Instance>,
    id: SubId,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for BestPathSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BestPathSubscription")
            .field("id", &self.id)
            .finish()
    }
}

impl BestPathSubscription {
    /// The next changes (up to 4096 prefixes), waiting until there are some.
    pub async fn next_batch(&mut self) -> Vec<BestPathChange> {
        loop {
            let names = self.inst.peer_names();
            let batch = match self.inst.rib.lock() {
                Ok(mut rib) => rib.take_best_changes(self.id, 4096),
                Err(_) => Vec::new(),
            };
            if !batch.is_empty() {
                // There may be more: make the next call return at once.
                self.notify.notify_one();
                return batch
                    .into_iter()
                    .map(|c| BestPathChange {
                        prefix: c.prefix,
                        paths: c.paths.into_iter().map(|p| view_route(p, &names)).collect(),
                    })
                    .collect();
            }
            self.notify.notified().await;
        }
    }
}

impl Drop for BestPathSubscription {
    fn drop(&mut self) {
        if let Ok(mut rib) = self.inst.rib.lock() {
            rib.unsubscribe(self.id);
        }
        if let Ok(mut s) = self.inst.subs.lock() {
            s.retain(|(i, _)| *i != self.id);
        }
    }
}

async fn stop_peer(p: PeerHandle, n: Option<Notification>) {
    let (tx, rx) = oneshot::channel();
    if p.ctl.send(Control::Stop(n, tx)).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut task = p.task;
        if tokio::time::timeout(Duration::from_millis(500), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    })
    .await;
}

async fn accept_loop(inst: Arc<Instance>, l: Arc<TcpListener>) {
    loop {
        let (stream, addr) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let from = transport::canonical(addr.ip());
        let ctl = inst.peers.lock().ok().and_then(|p| {
            p.values()
                .find(|h| h.config.address == from)
                .map(|h| h.ctl.clone())
        });
        match ctl {
            Some(ctl) => {
                let _ = ctl.send(Control::Incoming(stream));
            }
            None => debug!(%from, "connection from an unconfigured address refused"),
        }
    }
}
