//! The runner: elections, backend and responders for a set of desired announcements.
//!
//! The daemon evaluates its policies into [`DesiredAnnouncement`]s (address, services,
//! interfaces, whether this node is eligible) and hands the whole set to
//! [`Runner::set_desired`] whenever anything changes: level-triggered, idempotent. The runner
//! groups addresses into leases ([`LeaseNamer::for_group`]), runs one election task per lease
//! and one responder task per interface, and reports [`Runner::state`] (for
//! `lbspeaker l2 leases`) and [`Runner::counters`] (for metrics).
//!
//! A node is eligible for an address when the daemon says so and at least one of the
//! address's interfaces exists and is up, or went down less than
//! [`RunnerConfig::link_down_grace`] ago: a holder whose links stay down gives the lease up
//! so another node takes over at its next look, while a short flap keeps the lease and is
//! followed by a fresh round of announcements.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::election::{Decision, Elector, Timers, acquired_record};
use crate::lease::{LeaseBackend, LeaseName, LeaseNamer, ServiceKey};
use crate::responder::link::{LinkInfo, Links, watch_links};
use crate::responder::{
    AnnounceConfig, Counters, CountersSnapshot, Held, Table, bump, run_interface,
};

/// How the runner behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// This node's name: the holder identity written into leases.
    pub node: String,
    /// Lease duration, renew deadline, retry period.
    pub timers: Timers,
    /// Announcements after a takeover or a link flap.
    pub announce: AnnounceConfig,
    /// How long an interface may be down before this node stops being eligible on it.
    pub link_down_grace: Duration,
}

impl RunnerConfig {
    /// Cilium's timers, five announcements a second apart, one second of grace for a link.
    pub fn new(node: impl Into<String>) -> RunnerConfig {
        RunnerConfig {
            node: node.into(),
            timers: Timers::default(),
            announce: AnnounceConfig::default(),
            link_down_grace: Duration::from_secs(1),
        }
    }
}

/// One address this node should announce if it wins its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredAnnouncement {
    /// The address (a LoadBalancer ingress IP or an external IP).
    pub address: IpAddr,
    /// The services using it (several when they share it through a sharing key).
    pub services: BTreeSet<ServiceKey>,
    /// The interfaces of this node to answer on (the policy's regular expressions already
    /// matched against [`Runner::links`]).
    pub interfaces: BTreeSet<String>,
    /// Whether this node may hold it: a policy selects the node and the service, and for
    /// `externalTrafficPolicy: Local` the node has a ready local endpoint.
    pub eligible: bool,
}

/// What the runner knows about one address (a row of `lbspeaker l2 leases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnouncementState {
    /// The address.
    pub address: IpAddr,
    /// `namespace/name` of each service using it.
    pub services: Vec<ServiceKey>,
    /// Its lease.
    pub lease: LeaseName,
    /// The holder named by the lease when last read, if any.
    pub holder: Option<String>,
    /// Whether this node answers for it now.
    pub announcing: bool,
    /// Whether this node may hold it (desired eligibility and a usable interface).
    pub eligible: bool,
    /// The interfaces this node answers on (empty unless announcing).
    pub interfaces: Vec<String>,
    /// When the holder acquired the lease.
    pub since: Option<SystemTime>,
}

/// The runner could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// rtnetlink is unavailable.
    #[error("cannot watch network interfaces: {0}")]
    Links(#[source] std::io::Error),
}

/// One address of a lease group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddressSpec {
    pub(crate) interfaces: BTreeSet<String>,
    pub(crate) eligible: bool,
}

/// The addresses elected together under one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSpec {
    pub(crate) lease: LeaseName,
    pub(crate) services: BTreeSet<ServiceKey>,
    pub(crate) addresses: BTreeMap<IpAddr, AddressSpec>,
}

/// Groups desired announcements into leases. The same address listed twice is merged
/// (services and interfaces joined, eligible if either says so); an address without
/// services is skipped.
pub(crate) fn plan(desired: &[DesiredAnnouncement]) -> BTreeMap<LeaseName, GroupSpec> {
    let mut by_address: BTreeMap<IpAddr, (BTreeSet<ServiceKey>, AddressSpec)> = BTreeMap::new();
    for d in desired {
        if d.services.is_empty() {
            warn!(address = %d.address, "desired announcement without a service: skipped");
            continue;
        }
        let e = by_address.entry(d.address).or_insert_with(|| {
            (
                BTreeSet::new(),
                AddressSpec {
                    interfaces: BTreeSet::new(),
                    eligible: false,
                },
            )
        });
        e.0.extend(d.services.iter().cloned());
        e.1.interfaces.extend(d.interfaces.iter().cloned());
        e.1.eligible |= d.eligible;
    }
    let mut by_services: BTreeMap<BTreeSet<ServiceKey>, BTreeMap<IpAddr, AddressSpec>> =
        BTreeMap::new();
    for (addr, (services, spec)) in by_address {
        by_services.entry(services).or_default().insert(addr, spec);
    }
    let namer = LeaseNamer::new(
        by_services
            .keys()
            .filter(|services| services.len() == 1)
            .flatten(),
    );
    let mut out = BTreeMap::new();
    for (services, addresses) in by_services {
        let keys: BTreeSet<IpAddr> = addresses.keys().copied().collect();
        if let Some(lease) = namer.for_group(&services, &keys) {
            out.insert(
                lease.clone(),
                GroupSpec {
                    lease,
                    services,
                    addresses,
                },
            );
        }
    }
    out
}

/// Which addresses of `spec` this node may announce now, on which interfaces, and when that
/// may change on its own (a link's grace running out).
fn usable(
    spec: &GroupSpec,
    links: &BTreeMap<String, LinkInfo>,
    now: Instant,
    grace: Duration,
) -> (BTreeMap<IpAddr, BTreeSet<String>>, Option<Instant>) {
    let mut out = BTreeMap::new();
    let mut next = None::<Instant>;
    for (addr, a) in &spec.addresses {
        if !a.eligible {
            continue;
        }
        let ok = a.interfaces.iter().any(|name| match links.get(name) {
            Some(l) if !l.loopback && l.mac.is_some() => {
                if l.up {
                    true
                } else {
                    let end = l.since + grace;
                    if now < end {
                        next = Some(next.map_or(end, |n| n.min(end)));
                    }
                    now < end
                }
            }
            _ => false,
        });
        if ok {
            out.insert(*addr, a.interfaces.clone());
        }
    }
    (out, next)
}

#[derive(Debug, Clone)]
struct GroupView {
    /// The task that owns this view (a lease withdrawn and desired again gets a new task).
    task: u64,
    spec: GroupSpec,
    holder: Option<String>,
    since: Option<SystemTime>,
    eligible: BTreeSet<IpAddr>,
    answering: BTreeMap<IpAddr, BTreeSet<String>>,
}

struct Shared {
    config: RunnerConfig,
    table: watch::Sender<Table>,
    links: watch::Receiver<Links>,
    counters: Arc<Counters>,
    views: Mutex<BTreeMap<LeaseName, GroupView>>,
    generation: AtomicU64,
    next_task: AtomicU64,
}

impl Shared {
    fn views(&self) -> std::sync::MutexGuard<'_, BTreeMap<LeaseName, GroupView>> {
        self.views.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stop answering for `addrs`, whoever published them.
    fn unpublish_addresses(&self, addrs: &BTreeSet<IpAddr>) {
        if addrs.is_empty() {
            return;
        }
        self.table.send_if_modified(|t| {
            let before = t.len();
            Arc::make_mut(t).retain(|a, _| !addrs.contains(a));
            t.len() != before
        });
    }

    /// Stop answering for what generation `g` published.
    fn unpublish_generation(&self, generation: &mut Option<u64>) {
        let Some(g) = generation.take() else { return };
        self.table.send_if_modified(|t| {
            let before = t.len();
            Arc::make_mut(t).retain(|_, h| h.generation != g);
            t.len() != before
        });
    }

    /// Answer for exactly `answering` under our generation (a new one if we were not
    /// answering yet), keeping only what the latest desired state still allows: checked
    /// under the table's lock, after which `set_desired` (which updates the desired state
    /// before it withdraws) can no longer be overtaken.
    fn publish(
        &self,
        answering: &BTreeMap<IpAddr, BTreeSet<String>>,
        generation: &mut Option<u64>,
        spec: &watch::Receiver<GroupSpec>,
    ) {
        let g =
            *generation.get_or_insert_with(|| self.generation.fetch_add(1, Ordering::Relaxed) + 1);
        self.table.send_if_modified(|t| {
            let closed = spec.has_changed().is_err();
            let latest = spec.borrow();
            let allowed =
                |a: &IpAddr| !closed && latest.addresses.get(a).is_some_and(|s| s.eligible);
            let mut changed = false;
            let stale: Vec<IpAddr> = t
                .iter()
                .filter(|(a, h)| h.generation == g && !(answering.contains_key(a) && allowed(a)))
                .map(|(a, _)| *a)
                .collect();
            for addr in stale {
                Arc::make_mut(t).remove(&addr);
                changed = true;
            }
            for (addr, interfaces) in answering.iter().filter(|(a, _)| allowed(a)) {
                let want = Held {
                    interfaces: interfaces.clone(),
                    generation: g,
                };
                if t.get(addr) != Some(&want) {
                    Arc::make_mut(t).insert(*addr, want);
                    changed = true;
                }
            }
            changed
        });
    }
}

struct GroupHandle {
    spec: watch::Sender<GroupSpec>,
    task: JoinHandle<()>,
}

struct ResponderHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Tasks {
    groups: BTreeMap<LeaseName, GroupHandle>,
    responders: BTreeMap<String, ResponderHandle>,
    retiring: Vec<JoinHandle<()>>,
}

/// Elections and responders for the desired announcements (module documentation).
///
/// Its methods are called from within the tokio runtime it was started in. Dropped without
/// [`shutdown`](Runner::shutdown), its tasks still stop answering and release their leases,
/// in the background.
pub struct Runner<B: LeaseBackend> {
    shared: Arc<Shared>,
    backend: Arc<B>,
    tasks: Mutex<Tasks>,
    link_task: Option<JoinHandle<()>>,
    responders: bool,
}

impl<B: LeaseBackend> std::fmt::Debug for Runner<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("node", &self.shared.config.node)
            .finish_non_exhaustive()
    }
}

impl<B: LeaseBackend> Runner<B> {
    /// Starts watching this network namespace's interfaces. Nothing is announced until
    /// [`set_desired`](Runner::set_desired). Must run inside a tokio runtime.
    pub async fn start(config: RunnerConfig, backend: B) -> Result<Runner<B>, RunnerError> {
        let (links, task) = watch_links().await.map_err(RunnerError::Links)?;
        let mut r = Runner::with_links(config, backend, links, true);
        r.link_task = Some(task);
        Ok(r)
    }

    /// A runner fed interface state by the caller, with or without packet sockets (tests).
    pub(crate) fn with_links(
        config: RunnerConfig,
        backend: B,
        links: watch::Receiver<Links>,
        responders: bool,
    ) -> Runner<B> {
        let (table, _) = watch::channel(Table::default());
        Runner {
            shared: Arc::new(Shared {
                config,
                table,
                links,
                counters: Arc::new(Counters::default()),
                views: Mutex::new(BTreeMap::new()),
                generation: AtomicU64::new(0),
                next_task: AtomicU64::new(0),
            }),
            backend: Arc::new(backend),
            tasks: Mutex::new(Tasks::default()),
            link_task: None,
            responders,
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the desired announcements. Addresses no longer desired, or no longer
    /// eligible, stop being answered before this returns; their leases are released in the
    /// background.
    pub fn set_desired(&self, desired: Vec<DesiredAnnouncement>) {
        let plan = plan(&desired);
        let mut tasks = self.tasks();
        // What may no longer be answered: computed before anything changes.
        let mut withdrawn = BTreeSet::new();
        for (addr, _) in self.shared.table.borrow().iter() {
            let still = plan
                .values()
                .any(|g| g.addresses.get(addr).is_some_and(|a| a.eligible));
            if !still {
                withdrawn.insert(*addr);
            }
        }
        // First the desired state (so no task can publish a withdrawn address after this),
        // then the withdrawal.
        let gone: Vec<LeaseName> = tasks
            .groups
            .keys()
            .filter(|l| !plan.contains_key(*l))
            .cloned()
            .collect();
        for lease in gone {
            if let Some(h) = tasks.groups.remove(&lease) {
                drop(h.spec); // the task sees the channel close, releases and ends
                tasks.retiring.push(h.task);
            }
            self.shared.views().remove(&lease);
        }
        tasks.retiring.retain(|t| !t.is_finished());
        let mut new = Vec::new();
        for (lease, spec) in &plan {
            if let Some(h) = tasks.groups.get(lease) {
                h.spec.send_if_modified(|s| {
                    let changed = s != spec;
                    *s = spec.clone();
                    changed
                });
                if let Some(v) = self.shared.views().get_mut(lease) {
                    v.spec = spec.clone();
                }
            } else {
                new.push((lease.clone(), spec.clone()));
            }
        }
        self.shared.unpublish_addresses(&withdrawn);
        for (lease, spec) in new {
            let id = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
            self.shared.views().insert(
                lease.clone(),
                GroupView {
                    task: id,
                    spec: spec.clone(),
                    holder: None,
                    since: None,
                    eligible: BTreeSet::new(),
                    answering: BTreeMap::new(),
                },
            );
            let (tx, rx) = watch::channel(spec);
            let span = info_span!("l2 lease", lease = %lease);
            let task = tokio::spawn(
                run_group(
                    self.shared.clone(),
                    self.backend.clone(),
                    lease.clone(),
                    id,
                    rx,
                )
                .instrument(span),
            );
            tasks.groups.insert(lease, GroupHandle { spec: tx, task });
        }

        if self.responders {
            let wanted: BTreeSet<String> = plan
                .values()
                .flat_map(|g| {
                    g.addresses
                        .values()
                        .flat_map(|a| a.interfaces.iter().cloned())
                })
                .collect();
            let stale: Vec<String> = tasks
                .responders
                .keys()
                .filter(|n| !wanted.contains(*n))
                .cloned()
                .collect();
            for name in stale {
                if let Some(h) = tasks.responders.remove(&name) {
                    let _ = h.stop.send(true);
                    tasks.retiring.push(h.task);
                }
            }
            for name in wanted {
                if tasks.responders.contains_key(&name) {
                    continue;
                }
                let (stop, stop_rx) = watch::channel(false);
                let task = tokio::spawn(run_interface(
                    name.clone(),
                    self.shared.table.subscribe(),
                    self.shared.links.clone(),
                    stop_rx,
                    self.shared.config.announce,
                    self.shared.counters.clone(),
                ));
                tasks
                    .responders
                    .insert(name, ResponderHandle { stop, task });
            }
        }
    }

    /// One row per desired address, sorted by address.
    pub fn state(&self) -> Vec<AnnouncementState> {
        let views = self.shared.views();
        let mut rows: Vec<AnnouncementState> = views
            .values()
            .flat_map(|v| {
                v.spec.addresses.keys().map(move |addr| {
                    let interfaces: Vec<String> = v
                        .answering
                        .get(addr)
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    AnnouncementState {
                        address: *addr,
                        services: v.spec.services.iter().cloned().collect(),
                        lease: v.spec.lease.clone(),
                        holder: v.holder.clone(),
                        announcing: !interfaces.is_empty(),
                        eligible: v.eligible.contains(addr),
                        interfaces,
                        since: v.since,
                    }
                })
            })
            .collect();
        rows.sort_by_key(|r| r.address);
        rows
    }

    /// The counters.
    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    /// This node's interfaces, for matching a policy's `interfaces` expressions.
    pub fn links(&self) -> Vec<LinkInfo> {
        self.shared.links.borrow().values().cloned().collect()
    }

    /// Interface changes, so the daemon can match its expressions again when links come
    /// and go.
    pub fn subscribe_links(&self) -> watch::Receiver<Links> {
        self.shared.links.clone()
    }

    /// The addresses this node answers for, with their interfaces.
    pub fn answering(&self) -> BTreeMap<IpAddr, BTreeSet<String>> {
        self.shared
            .table
            .borrow()
            .iter()
            .map(|(a, h)| (*a, h.interfaces.clone()))
            .collect()
    }

    /// Ends every task at once, releasing nothing: what SIGKILL does to a process.
    #[cfg(test)]
    pub(crate) fn kill(self) {
        let tasks = std::mem::take(&mut *self.tasks());
        for t in tasks
            .groups
            .into_values()
            .map(|g| g.task)
            .chain(tasks.responders.into_values().map(|r| r.task))
        {
            t.abort();
        }
    }

    /// Stops answering, releases every lease held (waiting up to `timeout` for the backend)
    /// and stops every task.
    pub async fn shutdown(mut self, timeout: Duration) {
        let tasks = std::mem::take(&mut *self.tasks());
        let mut handles = tasks.retiring;
        for (_, g) in tasks.groups {
            drop(g.spec);
            handles.push(g.task);
        }
        for (_, r) in tasks.responders {
            let _ = r.stop.send(true);
            handles.push(r.task);
        }
        let all = futures::future::join_all(handles);
        if tokio::time::timeout(timeout, all).await.is_err() {
            warn!("l2 runner: tasks still running after {timeout:?}");
        }
        if let Some(t) = self.link_task.take() {
            t.abort();
        }
    }
}

/// The election of one lease (module documentation of [`crate::election`]).
async fn run_group<B: LeaseBackend>(
    shared: Arc<Shared>,
    backend: Arc<B>,
    lease: LeaseName,
    task: u64,
    mut spec_rx: watch::Receiver<GroupSpec>,
) {
    let config = &shared.config;
    let me = config.node.as_str();
    let mut e = Elector::new(me, config.timers, Instant::now());
    let mut links = shared.links.clone();
    let mut generation: Option<u64> = None;
    let mut fresh = false;
    let mut read_failing = false;
    loop {
        let spec = spec_rx.borrow_and_update().clone();
        let now = Instant::now();
        if !fresh {
            match backend.get(&lease).await {
                Ok(l) => {
                    e.observe(now, l.as_ref());
                    if read_failing {
                        info!("lease backend reachable again");
                        read_failing = false;
                    }
                }
                Err(err) => {
                    bump(&shared.counters.lease_errors);
                    if !read_failing {
                        warn!(error = %err, "cannot read the lease");
                        read_failing = true;
                    }
                }
            }
        }
        fresh = false;
        let now = Instant::now();
        let (answerable, grace_end) = usable(
            &spec,
            &links.borrow_and_update(),
            now,
            config.link_down_grace,
        );
        let eligible = !answerable.is_empty();
        let other = e
            .lease()
            .and_then(|l| l.record.holder.clone())
            .filter(|h| h != me);
        let holder_gone = match &other {
            Some(h) if eligible && !e.is_leading(now) => {
                backend.holder_alive(h).await == Some(false)
            }
            _ => false,
        };
        let was_leading = e.is_leading(now);
        let decision = e.decide(now, eligible, holder_gone);
        match decision {
            Decision::Acquire | Decision::Renew => {
                let started = Instant::now();
                let previous = e.lease().cloned();
                let record = acquired_record(
                    SystemTime::now(),
                    previous.as_ref().map(|l| &l.record),
                    me,
                    &config.timers,
                );
                let result = match &previous {
                    None => backend.create(&lease, &record).await,
                    Some(l) => backend.update(&lease, &record, &l.resource_version).await,
                };
                match result {
                    Ok(l) => {
                        e.written(started, &l);
                        fresh = true;
                        if was_leading {
                            bump(&shared.counters.leases_renewed);
                        } else {
                            bump(&shared.counters.leases_acquired);
                            info!(holder = me, previous = ?previous.and_then(|p| p.record.holder), gone = holder_gone, transitions = l.record.transitions, "acquired the lease");
                        }
                    }
                    Err(err) if err.is_conflict() => {
                        bump(&shared.counters.lease_conflicts);
                        debug!("lost a race for the lease");
                        e.write_failed(Instant::now());
                    }
                    Err(err) => {
                        bump(&shared.counters.lease_errors);
                        warn!(error = %err, "cannot write the lease");
                        e.write_failed(Instant::now());
                    }
                }
            }
            Decision::Release => {
                shared.unpublish_generation(&mut generation);
                e.stop_leading();
                if let Some(l) = e.lease().filter(|l| l.held_by(me)).cloned() {
                    match backend.release(&l, SystemTime::now()).await {
                        Ok(released) => {
                            e.released(Instant::now(), &released);
                            bump(&shared.counters.leases_released);
                            info!("released the lease (not eligible)");
                        }
                        Err(err) => {
                            bump(if err.is_conflict() {
                                &shared.counters.lease_conflicts
                            } else {
                                &shared.counters.lease_errors
                            });
                            warn!(error = %err, "cannot release the lease");
                            e.write_failed(Instant::now());
                        }
                    }
                }
            }
            Decision::StepDown => {
                shared.unpublish_generation(&mut generation);
                e.stop_leading();
                bump(&shared.counters.leases_lost);
                warn!(holder = ?e.lease().and_then(|l| l.record.holder.clone()), "lost the lease: stopped announcing");
            }
            Decision::Wait { .. } => {}
        }

        let now = Instant::now();
        let leading = e.is_leading(now);
        if leading {
            shared.publish(&answerable, &mut generation, &spec_rx);
        } else {
            shared.unpublish_generation(&mut generation);
        }
        if let Some(v) = shared.views().get_mut(&lease).filter(|v| v.task == task) {
            v.holder = e.lease().and_then(|l| l.record.holder.clone());
            v.since = e
                .lease()
                .filter(|l| l.record.holder.is_some())
                .and_then(|l| l.record.acquire_time);
            v.eligible = answerable.keys().copied().collect();
            v.answering = if leading {
                answerable.clone()
            } else {
                BTreeMap::new()
            };
        }

        let Decision::Wait { until } = e.decide(now, eligible, holder_gone) else {
            if fresh {
                continue;
            }
            // A write failed or a release happened: decide again (the elector rate-limits).
            tokio::task::yield_now().await;
            continue;
        };
        let until = grace_end.map_or(until, |g| until.min(g));
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => {}
            r = spec_rx.changed() => if r.is_err() { break },
            r = links.changed() => if r.is_err() { break },
        }
    }

    // Withdrawn (or shutting down): stop answering, then give the lease back.
    shared.unpublish_generation(&mut generation);
    if e.is_leading(Instant::now())
        && let Some(l) = e.lease().cloned()
    {
        match backend.release(&l, SystemTime::now()).await {
            Ok(_) => {
                bump(&shared.counters.leases_released);
                info!("released the lease (withdrawn)");
            }
            Err(err) => warn!(error = %err, "cannot release the lease"),
        }
    }
}

#[cfg(test)]
mod tests;
