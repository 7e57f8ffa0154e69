//! The task that keeps the kernel's table in line with an instance's Loc-RIB.
//!
//! ```text
//!  Speaker::subscribe_best_paths ─► best (accepted prefixes, their multipath next hops) ─┐
//!  Speaker::subscribe_events (End-of-RIB, peer addresses) ─► startup hold               │
//!  kernel notifications (routes and addresses not ours) ─┐                               │
//!  resync timer ─────────────────────────────────────────┴─► reconcile: view ─► desired ─┴─►
//!                                                             diff ─► apply ops (netlink)
//! ```
//!
//! Level-triggered: every reconcile reads the kernel and diffs, so a route deleted by hand,
//! a next hop whose interface went down or a restart all converge the same way. Changes are
//! coalesced for 20 ms before a reconcile.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::FibError;
use super::config::FibConfig;
use super::netlink::{Kernel, NetlinkKernel};
use super::plan::{self, BgpNextHop, NextHop, Op, Unresolved};
use crate::fsm::State;
use crate::speaker::{BestPathChange, BestPathSubscription, PeerEventKind, Speaker};
use crate::wire::{Family, NextHop as BgpNextHopAttr};

/// How long changes are coalesced before the kernel is touched.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// What to do with our routes when the installer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cleanup {
    /// Delete every route of ours (a normal shutdown).
    RemoveAll,
    /// Leave them (a graceful restart: forwarding goes on, the next start adopts them).
    Keep,
}

/// One route of ours as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hops.
    pub next_hops: Vec<NextHop>,
}

/// What the installer did and sees.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FibStatus {
    /// The instance.
    pub instance: String,
    /// Our table, protocol and metric.
    pub table: u32,
    /// Protocol number.
    pub protocol: u8,
    /// Metric.
    pub metric: u32,
    /// Our routes in the kernel after the last reconcile.
    pub routes: Vec<InstalledRoute>,
    /// Accepted prefixes of the Loc-RIB (installed, conflicting or unresolved).
    pub wanted: usize,
    /// Destinations held by a route that is not ours at our table and metric.
    pub conflicts: Vec<IpNet>,
    /// Prefixes whose next hops do not resolve.
    pub unresolved: BTreeMap<IpNet, Unresolved>,
    /// The startup hold is over (routes of ours no longer wanted are removed).
    pub converged: bool,
    /// Routes of ours found at start.
    pub found_at_start: usize,
    /// Of those, adopted: wanted again and found exactly in place (not rewritten).
    pub adopted: usize,
    /// Reconciles so far.
    pub reconciles: u64,
    /// Kernel operations so far.
    pub added: u64,
    /// Replacements so far.
    pub replaced: u64,
    /// Deletions so far.
    pub deleted: u64,
    /// The last error, if the last reconcile had one.
    pub last_error: Option<String>,
}

enum Command {
    Status(oneshot::Sender<FibStatus>),
    Sync(oneshot::Sender<FibStatus>),
    Stop(Cleanup, oneshot::Sender<Result<FibStatus, FibError>>),
}

/// The handle of a running installer.
#[derive(Debug)]
pub struct FibInstaller {
    cmd: mpsc::UnboundedSender<Command>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl FibInstaller {
    /// Installs `instance`'s received best paths into the kernel of this network namespace.
    pub async fn start(
        speaker: &Speaker,
        instance: &str,
        config: FibConfig,
    ) -> Result<FibInstaller, FibError> {
        config.validate()?;
        let kernel = NetlinkKernel::open(config.protocol)?;
        FibInstaller::start_with(speaker, instance, config, kernel).await
    }

    /// The same with another [`Kernel`] (a fake in tests).
    pub async fn start_with<K: Kernel>(
        speaker: &Speaker,
        instance: &str,
        config: FibConfig,
        mut kernel: K,
    ) -> Result<FibInstaller, FibError> {
        config.validate()?;
        // Events first, so that no End-of-RIB between the two subscriptions is missed.
        let events = speaker.subscribe_events();
        let best = speaker.subscribe_best_paths(instance).await?;
        let view = kernel.view().await?;
        let from_before: BTreeSet<IpNet> = view
            .routes
            .iter()
            .filter(|r| plan::is_ours(r, &config))
            .map(|r| r.dst)
            .collect();
        let found = from_before.len();
        if found > 0 {
            info!(
                instance,
                found, "routes of ours from before: kept until the table converges"
            );
        }
        let changes = kernel.changes();
        let (cmd, rx) = mpsc::unbounded_channel();
        let task = Task {
            status: FibStatus {
                instance: instance.to_owned(),
                table: config.table,
                protocol: config.protocol,
                metric: config.metric,
                converged: found == 0,
                found_at_start: found,
                ..FibStatus::default()
            },
            hold_until: Instant::now() + config.startup_hold,
            kernel,
            cfg: config,
            instance: instance.to_owned(),
            speaker: speaker.clone(),
            best: BTreeMap::new(),
            end_of_rib: BTreeMap::new(),
            from_before,
        };
        let span = info_span!("fib", instance);
        let handle = tokio::spawn(task.run(best, events, changes, rx).instrument(span));
        Ok(FibInstaller {
            cmd,
            task: std::sync::Mutex::new(Some(handle)),
        })
    }

    /// What the installer did and sees.
    pub async fn status(&self) -> Result<FibStatus, FibError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Status(tx))
            .map_err(|_| FibError::Stopped)?;
        rx.await.map_err(|_| FibError::Stopped)
    }

    /// Reconciles now and returns the status after it.
    pub async fn sync(&self) -> Result<FibStatus, FibError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Sync(tx))
            .map_err(|_| FibError::Stopped)?;
        rx.await.map_err(|_| FibError::Stopped)
    }

    /// Stops, first removing every route of ours or leaving them (see [`Cleanup`]).
    pub async fn stop(&self, cleanup: Cleanup) -> Result<FibStatus, FibError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Stop(cleanup, tx))
            .map_err(|_| FibError::Stopped)?;
        let r = rx.await.map_err(|_| FibError::Stopped)?;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
        r
    }
}

impl Drop for FibInstaller {
    fn drop(&mut self) {
        // Without stop(): end the task, leaving the kernel as it is (as a crash would).
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

struct Task<K> {
    kernel: K,
    cfg: FibConfig,
    instance: String,
    speaker: Speaker,
    /// Accepted prefixes whose best path was received, with their multipath next hops.
    best: BTreeMap<IpNet, Vec<BgpNextHop>>,
    /// Families each peer sent End-of-RIB for since we started.
    end_of_rib: BTreeMap<String, BTreeSet<Family>>,
    hold_until: Instant,
    status: FibStatus,
    /// Routes of ours found at start, not yet adopted, rewritten or removed.
    from_before: BTreeSet<IpNet>,
}

fn ours(view: &plan::KernelView, cfg: &FibConfig) -> Vec<InstalledRoute> {
    view.routes
        .iter()
        .filter(|r| plan::is_ours(r, cfg))
        .map(|r| InstalledRoute {
            dst: r.dst,
            next_hops: r.next_hops.clone(),
        })
        .collect()
}

async fn next_change(rx: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

impl<K: Kernel> Task<K> {
    async fn run(
        mut self,
        mut best: BestPathSubscription,
        mut events: broadcast::Receiver<crate::speaker::PeerEvent>,
        mut changes: Option<mpsc::UnboundedReceiver<()>>,
        mut rx: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut dirty: Option<Instant> = Some(Instant::now());
        let mut events_open = true;
        let mut resync = Instant::now() + self.cfg.resync_interval;
        loop {
            let hold = (!self.status.converged).then_some(self.hold_until);
            let wake = [dirty.map(|d| d + DEBOUNCE), Some(resync), hold]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(resync);
            tokio::select! {
                c = rx.recv() => match c {
                    Some(Command::Status(r)) => { let _ = r.send(self.status.clone()); }
                    Some(Command::Sync(r)) => {
                        self.reconcile().await;
                        dirty = None;
                        let _ = r.send(self.status.clone());
                    }
                    Some(Command::Stop(cleanup, r)) => {
                        let _ = r.send(self.stop(cleanup).await);
                        return;
                    }
                    None => return,
                },
                batch = best.next_batch() => {
                    self.apply_changes(batch).await;
                    dirty.get_or_insert_with(Instant::now);
                }
                e = events.recv(), if events_open => {
                    if matches!(e, Err(broadcast::error::RecvError::Closed)) {
                        events_open = false;
                    } else if self.peer_event(e).await {
                        dirty.get_or_insert_with(Instant::now);
                    }
                }
                Some(()) = next_change(&mut changes) => {
                    dirty.get_or_insert_with(Instant::now);
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if !self.status.converged && now >= self.hold_until {
                        info!("startup hold over");
                        self.status.converged = true;
                    }
                    if now >= resync {
                        resync = now + self.cfg.resync_interval;
                    }
                    self.reconcile().await;
                    dirty = None;
                }
            }
        }
    }

    /// Records an event; returns whether a reconcile is due (the startup hold ended).
    async fn peer_event(
        &mut self,
        e: Result<crate::speaker::PeerEvent, broadcast::error::RecvError>,
    ) -> bool {
        let e = match e {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => return self.check_converged().await,
            Err(broadcast::error::RecvError::Closed) => return false,
        };
        if e.instance != self.instance || self.status.converged {
            return false;
        }
        match e.kind {
            PeerEventKind::EndOfRib { family } => {
                self.end_of_rib.entry(e.peer).or_default().insert(family);
                self.check_converged().await
            }
            PeerEventKind::Established { .. } => self.check_converged().await,
            _ => false,
        }
    }

    /// The table has converged when every peer of the instance is Established and sent
    /// End-of-RIB for every family it negotiated.
    async fn check_converged(&mut self) -> bool {
        let Ok(peers) = self.speaker.peer_states(&self.instance).await else {
            return false;
        };
        let done = !peers.is_empty()
            && peers.iter().all(|p| {
                p.state == State::Established
                    && self
                        .end_of_rib
                        .get(&p.name)
                        .is_some_and(|got| p.families.iter().all(|f| got.contains(f)))
            });
        if done {
            info!("every peer sent End-of-RIB: the table has converged");
            self.status.converged = true;
        }
        done
    }

    async fn apply_changes(&mut self, batch: Vec<BestPathChange>) {
        let names: BTreeMap<String, IpAddr> = match self.speaker.peer_states(&self.instance).await {
            Ok(p) => p.into_iter().map(|p| (p.name, p.address)).collect(),
            Err(_) => BTreeMap::new(),
        };
        for c in batch {
            let received_best = c.paths.first().is_some_and(|p| p.peer.is_some());
            if !received_best || !self.cfg.accepts(&c.prefix) {
                self.best.remove(&c.prefix);
                continue;
            }
            let hops: Vec<BgpNextHop> = c
                .paths
                .iter()
                .filter(|p| p.peer.is_some())
                .filter_map(|p| {
                    let peer = p.peer.as_ref().and_then(|n| names.get(n)).copied();
                    match p.attrs.next_hop.as_ref()? {
                        BgpNextHopAttr::Ipv4(a) => Some(BgpNextHop {
                            address: IpAddr::V4(*a),
                            link_local: None,
                            peer,
                        }),
                        BgpNextHopAttr::Ipv6 { global, link_local } => Some(BgpNextHop {
                            address: IpAddr::V6(*global),
                            link_local: *link_local,
                            peer,
                        }),
                    }
                })
                .collect();
            if hops.is_empty() {
                self.best.remove(&c.prefix);
            } else {
                self.best.insert(c.prefix, hops);
            }
        }
    }

    async fn reconcile(&mut self) {
        let view = match self.kernel.view().await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot read the kernel's routes");
                self.status.last_error = Some(e.to_string());
                return;
            }
        };
        let (want, unresolved) = plan::desired(&self.best, &view, &self.cfg);
        let p = plan::diff(&want, &view, &self.cfg, !self.status.converged);
        for dst in &p.in_place {
            if self.from_before.remove(dst) {
                self.status.adopted += 1;
            }
        }
        for op in &p.ops {
            let dst = match op {
                Op::Add(d) | Op::Replace(d) => d.dst,
                Op::Delete(r) => r.dst,
            };
            self.from_before.remove(&dst);
        }
        let mut errors = Vec::new();
        let mut conflicts = p.conflicts.clone();
        for op in &p.ops {
            match self.kernel.apply(op, &self.cfg).await {
                Ok(()) => match op {
                    Op::Add(d) => {
                        self.status.added += 1;
                        debug!(dst = %d.dst, hops = d.next_hops.len(), "route added");
                    }
                    Op::Replace(d) => {
                        self.status.replaced += 1;
                        debug!(dst = %d.dst, hops = d.next_hops.len(), "route replaced");
                    }
                    Op::Delete(r) => {
                        self.status.deleted += 1;
                        debug!(dst = %r.dst, "route deleted");
                    }
                },
                // Someone else's route appeared at our key between the read and the write.
                Err(FibError::Exists(dst)) => conflicts.push(dst),
                // Already gone (the kernel flushed it with its interface): fine.
                Err(FibError::Gone(_)) if matches!(op, Op::Delete(_)) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !p.ops.is_empty() || !conflicts.is_empty() {
            info!(
                ops = p.ops.len(),
                in_place = p.in_place.len(),
                conflicts = conflicts.len(),
                unresolved = unresolved.len(),
                kept = p.kept,
                "kernel routes reconciled"
            );
        }
        if conflicts.len() > self.status.conflicts.len() {
            warn!(
                ?conflicts,
                "routes not ours hold destinations we would install: left alone"
            );
        }
        self.status.reconciles += 1;
        self.status.wanted = want.len() + unresolved.len();
        self.status.conflicts = conflicts;
        self.status.unresolved = unresolved;
        self.status.last_error = (!errors.is_empty()).then(|| errors.join("; "));
        self.status.routes = if p.ops.is_empty() {
            ours(&view, &self.cfg)
        } else {
            // Read back what the kernel made of it.
            match self.kernel.view().await {
                Ok(v) => ours(&v, &self.cfg),
                Err(_) => Vec::new(),
            }
        };
    }

    async fn stop(&mut self, cleanup: Cleanup) -> Result<FibStatus, FibError> {
        if cleanup == Cleanup::Keep {
            info!(
                routes = self.status.routes.len(),
                "stopping; our routes stay in the kernel"
            );
            return Ok(self.status.clone());
        }
        let view = self.kernel.view().await?;
        let mut first_error = None;
        let mut n = 0;
        for r in view
            .routes
            .into_iter()
            .filter(|r| plan::is_ours(r, &self.cfg))
        {
            match self.kernel.apply(&Op::Delete(r), &self.cfg).await {
                Ok(()) => n += 1,
                Err(FibError::Gone(_)) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.status.deleted += n;
        self.status.routes.clear();
        info!(removed = n, "stopping; our routes removed from the kernel");
        match first_error {
            Some(e) => Err(e),
            None => Ok(self.status.clone()),
        }
    }
}
