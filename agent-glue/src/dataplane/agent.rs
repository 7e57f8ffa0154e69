//! Loading the dataplane (or the mode without one), attaching it, and the reconciler's loop:
//! each snapshot goes through the [`Translator`] and only what changed reaches the maps
//! (`Dataplane::upsert` / `remove`); the first pass, and the pass after a failed map update,
//! is a full level-triggered `Dataplane::sync` (after a restart that adopted pinned maps it
//! performs no operation). Map work runs on tokio's blocking pool.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ebpf::{Attachment, Dataplane, DataplaneConfig, GcReport, ListView, LoadError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::incremental::Translator;
use super::{DataplaneOptions, Mode, TranslateOptions, snat_addresses, uplinks};
use crate::bgp::facts::LocalFacts;
use crate::source::{ObjectKey, Snapshot};

/// Why `lbspeaker run` cannot start with the dataplane it was told to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The dataplane flags do not make a valid configuration.
    #[error("invalid dataplane settings: {0}")]
    Config(#[from] ebpf::ConfigError),
    /// `--dataplane on` and the programs or maps cannot be loaded.
    #[error(
        "the eBPF dataplane cannot be loaded (--dataplane on): {0}\n(with --dataplane best-effort lbspeaker runs without it instead; --dataplane off never loads it)"
    )]
    Load(LoadError),
    /// The loading thread failed.
    #[error("loading the eBPF dataplane: {0}")]
    Task(String),
}

/// One interface the dataplane should be attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceView {
    /// Its name.
    pub name: String,
    /// `uplink` or `backend`.
    pub role: String,
    /// Whether the programs are attached now.
    pub attached: bool,
    /// Why not, when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last change applied to the maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyView {
    /// The snapshot revision it brought the maps to.
    pub revision: u64,
    /// A full level-triggered sync (true) or upserts and removals of what changed.
    pub full: bool,
    /// Frontends upserted (or, for a full sync, programmed in all).
    pub frontends: usize,
    /// Frontends removed.
    pub removed: usize,
    /// Services translated again.
    pub services_translated: usize,
    /// Map updates and deletions done.
    pub updates: u64,
    /// Map deletions.
    pub deletes: u64,
    /// Time from the snapshot to the maps updated, in microseconds.
    pub elapsed_us: u64,
}

/// What the reconciler shows the API, `lbspeaker status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneView {
    /// The mode asked for.
    pub mode: Mode,
    /// Whether the maps are the kernel's (false: off, or best-effort that could not load).
    pub kernel: bool,
    /// Why the dataplane is not in the kernel although asked for (best-effort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_loaded: Option<String>,
    /// The bpffs root.
    pub bpffs_root: PathBuf,
    /// Interfaces and their attachment.
    pub interfaces: Vec<InterfaceView>,
    /// SNAT source addresses in use.
    pub snat_v4: Option<Ipv4Addr>,
    /// SNAT source address for IPv6.
    pub snat_v6: Option<Ipv6Addr>,
    /// Frontends programmed.
    pub frontends: usize,
    /// The first full sync is done.
    pub ready: bool,
    /// Passes that changed the maps.
    pub applies: u64,
    /// Map updates since start.
    pub updates_total: u64,
    /// Map deletions since start (conntrack GC included).
    pub deletes_total: u64,
    /// Failed map updates since start.
    pub failures_total: u64,
    /// The last pass that changed something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_apply: Option<ApplyView>,
    /// GC passes since start.
    pub gc_runs: u64,
    /// Conntrack entries GC deleted since start.
    pub gc_deleted_total: u64,
    /// The last GC pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_gc: Option<GcReport>,
    /// Problems: services that cannot be translated, frontends not programmed, attachments
    /// that failed, the load error.
    pub problems: Vec<String>,
}

/// `GET /v1/lb/list`: the table and whether it is the kernel's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbListView {
    /// The mode asked for.
    pub mode: Mode,
    /// Whether these are the kernel's maps.
    pub kernel: bool,
    /// Said when the table is not forwarding anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The frontends and their slots.
    #[serde(flatten)]
    pub list: ListView,
}

struct Inner {
    dp: Dataplane,
    translator: Translator,
    /// The next pass must be a full sync (first pass, or a map update failed).
    full_needed: bool,
    /// Frontends the last full sync could not program.
    rejected: Vec<String>,
}

/// The reconciler's shared state: what the API reads while the loop runs.
#[derive(Clone)]
pub struct DataplaneHandle {
    inner: Arc<Mutex<Inner>>,
    /// The latest view.
    pub view: watch::Receiver<DataplaneView>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic in a map call leaves consistent data behind (the next pass re-reads the maps).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn blocking<T: Send + 'static>(
    inner: &Arc<Mutex<Inner>>,
    f: impl FnOnce(&mut Inner) -> T + Send + 'static,
) -> Result<T, String> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&mut lock(&inner)))
        .await
        .map_err(|e| format!("dataplane task failed: {e}"))
}

impl DataplaneHandle {
    /// `lb list` of what the maps hold.
    pub async fn list(&self) -> Result<LbListView, String> {
        let v = self.view.borrow().clone();
        let list = blocking(&self.inner, |i| i.dp.list().map_err(|e| e.to_string())).await??;
        let note = match (v.kernel, v.mode) {
            (true, _) => None,
            (false, Mode::Off) => Some(
                "the dataplane is off (--dataplane off): this is what it would program; nothing forwards".into(),
            ),
            (false, _) => Some(format!(
                "the dataplane could not be loaded ({}): this is what it would program; nothing forwards",
                v.not_loaded.as_deref().unwrap_or("see lbspeaker status")
            )),
        };
        Ok(LbListView {
            mode: v.mode,
            kernel: v.kernel,
            note,
            list,
        })
    }

    /// The programs' packet counters (empty without a kernel dataplane).
    pub async fn counters(&self) -> Vec<(&'static str, u64)> {
        blocking(&self.inner, |i| i.dp.stats().unwrap_or_default())
            .await
            .unwrap_or_default()
    }
}

fn config(opts: &DataplaneOptions, snat: (Option<Ipv4Addr>, Option<Ipv6Addr>)) -> DataplaneConfig {
    DataplaneConfig {
        bpffs_root: opts.bpffs_root.clone(),
        sizes: opts.sizes,
        maglev_m: opts.maglev_m,
        snat_v4: snat.0,
        snat_v6: snat.1,
        ..DataplaneConfig::default()
    }
}

fn links_left(root: &std::path::Path) -> usize {
    std::fs::read_dir(root.join("links"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Loads the dataplane as `opts.mode` says (on `node`'s addresses in `snapshot`) and starts
/// the reconciler on `snapshots` until `stop` turns true. `--dataplane on` fails here when
/// loading fails; attachments that fail are retried and reported, never fatal.
pub async fn start(
    opts: DataplaneOptions,
    node: String,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stop: watch::Receiver<bool>,
) -> Result<(DataplaneHandle, tokio::task::JoinHandle<()>), StartError> {
    let snap = snapshots.borrow().clone();
    let node_obj = snap.nodes.get(&ObjectKey::cluster(&node)).cloned();
    let snat = snat_addresses(&opts, node_obj.as_deref());
    let cfg = config(&opts, snat);
    cfg.validate()?;
    let mut problems = Vec::new();
    let mut not_loaded = None;
    let dp = match opts.mode {
        Mode::Off => {
            let left = links_left(&opts.bpffs_root);
            if left > 0 {
                problems.push(format!(
                    "--dataplane off, but {left} link(s) an earlier run pinned under {} still forward with the maps as they were; stop lbspeaker and remove that directory (rm -r {}) to detach them",
                    opts.bpffs_root.join("links").display(),
                    opts.bpffs_root.display()
                ));
            }
            Dataplane::without_kernel(cfg)
        }
        Mode::On | Mode::BestEffort => {
            let c = cfg.clone();
            let loaded = tokio::task::spawn_blocking(move || Dataplane::load(c))
                .await
                .map_err(|e| StartError::Task(e.to_string()))?;
            match (loaded, opts.mode) {
                (Ok(dp), _) => dp,
                (Err(e), Mode::On) => return Err(StartError::Load(e)),
                (Err(e), _) => {
                    tracing::error!(error = %e, "the eBPF dataplane cannot be loaded; running without it (--dataplane best-effort)");
                    not_loaded = Some(e.to_string());
                    problems.push(format!(
                        "dataplane not loaded (--dataplane best-effort): {e}"
                    ));
                    Dataplane::without_kernel(cfg)
                }
            }
        }
    };
    let kernel = dp.is_kernel();
    let topts = TranslateOptions {
        node: node.clone(),
        default_algorithm: opts.algorithm,
        algorithm_annotation: opts.algorithm_annotation,
    };
    let inner = Arc::new(Mutex::new(Inner {
        dp,
        translator: Translator::new(topts),
        full_needed: true,
        rejected: Vec::new(),
    }));
    let (tx, rx) = watch::channel(DataplaneView {
        mode: opts.mode,
        kernel,
        not_loaded,
        bpffs_root: opts.bpffs_root.clone(),
        snat_v4: snat.0,
        snat_v6: snat.1,
        problems: problems.clone(),
        ..DataplaneView::default()
    });
    tracing::info!(mode = %opts.mode, kernel, root = %opts.bpffs_root.display(), snat_v4 = ?snat.0, snat_v6 = ?snat.1, "dataplane started");
    let handle = DataplaneHandle {
        inner: inner.clone(),
        view: rx,
    };
    let state = Loop {
        inner,
        opts,
        node,
        view: tx,
        fixed_problems: problems,
        pass_problems: Vec::new(),
        attach_problems: Vec::new(),
        attached: BTreeMap::new(),
        others_detached: false,
        snat,
    };
    let task = tokio::spawn(state.run(snapshots, stop));
    Ok((handle, task))
}

/// An attachment this process made: the interface index it had (a new index means the
/// interface was made again and the link went with the old one).
#[derive(Debug, Clone)]
enum Attached {
    Yes(u32),
    No(String),
}

struct Loop {
    inner: Arc<Mutex<Inner>>,
    opts: DataplaneOptions,
    node: String,
    view: watch::Sender<DataplaneView>,
    /// Problems known at start (the load error, pins left in off mode).
    fixed_problems: Vec<String>,
    /// Problems of the last pass.
    pass_problems: Vec<String>,
    /// Problems of the attachments.
    attach_problems: Vec<String>,
    /// (interface, role) → state.
    attached: BTreeMap<(String, &'static str), Attached>,
    others_detached: bool,
    snat: (Option<Ipv4Addr>, Option<Ipv6Addr>),
}

fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

impl Loop {
    async fn run(
        mut self,
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut gc_tick = tokio::time::interval(self.opts.gc_interval);
        gc_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        gc_tick.tick().await;
        let mut facts_tick = tokio::time::interval(self.opts.facts_interval);
        facts_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        facts_tick.tick().await;
        let mut dirty = true;
        let mut retry = false;
        let mut snap = snapshots.borrow_and_update().clone();
        loop {
            if *stop.borrow() {
                break;
            }
            if dirty {
                dirty = false;
                snap = snapshots.borrow_and_update().clone();
                // A source that has not seen everything yet (Kubernetes before its first
                // list) would make the maps drop what it has not read: wait for it.
                if snap.synced {
                    retry = !self.apply(&snap).await;
                    self.attach(&snap).await;
                }
            }
            tokio::select! {
                r = snapshots.changed() => {
                    if r.is_err() { break }
                    dirty = true;
                }
                _ = gc_tick.tick() => self.gc().await,
                _ = facts_tick.tick() => self.attach(&snap).await,
                _ = tokio::time::sleep(self.opts.retry), if retry => dirty = true,
                r = stop.changed() => if r.is_err() { break },
            }
        }
        // The maps and links stay pinned: forwarding goes on while lbspeaker is away, and the
        // next run adopts them.
        tracing::info!("dataplane reconciler stopped (maps and links stay pinned)");
    }

    /// One pass; false when a map update failed (retried).
    async fn apply(&mut self, snap: &Arc<Snapshot>) -> bool {
        let started = Instant::now();
        let node = snap.nodes.get(&ObjectKey::cluster(&self.node)).cloned();
        let snat = snat_addresses(&self.opts, node.as_deref());
        let snat_changed = snat != self.snat;
        let s = snap.clone();
        let span = tracing::info_span!("dataplane-reconcile", revision = snap.revision);
        let result = blocking(&self.inner, move |i| {
            let _g = span.enter();
            let mut problems = Vec::new();
            if snat_changed && let Err(e) = i.dp.set_snat_addresses(snat.0, snat.1) {
                problems.push(format!("setting the SNAT addresses: {e}"));
            }
            let before = i.dp.op_counts();
            let delta = i.translator.update(&s);
            let full = i.full_needed || (!i.rejected.is_empty() && !delta.is_empty());
            let mut ok = true;
            let (mut frontends, mut removed) = (delta.upsert.len(), delta.remove.len());
            if full {
                match i.dp.sync(i.translator.desired()) {
                    Ok(r) => {
                        i.full_needed = false;
                        i.rejected = r.rejected.iter().map(ToString::to_string).collect();
                        frontends = r.frontends;
                        removed = 0;
                    }
                    Err(e) => {
                        problems.push(format!("updating the dataplane maps: {e}"));
                        ok = false;
                    }
                }
            } else {
                for k in &delta.remove {
                    if let Err(e) = i.dp.remove(k) {
                        problems.push(format!("removing {k}: {e}"));
                        ok = false;
                        break;
                    }
                }
                if ok {
                    for f in &delta.upsert {
                        match i.dp.upsert(f) {
                            Ok(_) => {}
                            Err(ebpf::SyncError::Plan(e)) => {
                                tracing::warn!(error = %e, "frontend not programmed");
                                i.rejected.push(e.to_string());
                            }
                            Err(e) => {
                                problems.push(format!("updating {}: {e}", f.key));
                                ok = false;
                                break;
                            }
                        }
                    }
                }
                if !ok {
                    i.full_needed = true;
                }
            }
            let after = i.dp.op_counts();
            let mut all = i.translator.problems();
            all.extend(i.rejected.iter().cloned());
            all.extend(problems);
            let apply = ApplyView {
                revision: s.revision,
                full,
                frontends,
                removed,
                services_translated: delta.services_translated,
                updates: after.updates - before.updates,
                deletes: after.deletes - before.deletes,
                elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            };
            (
                ok,
                apply,
                all,
                i.translator.desired().frontends.len(),
                after,
            )
        })
        .await;
        let (ok, apply, problems, count, totals) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "dataplane pass failed");
                return false;
            }
        };
        if ok {
            self.snat = snat;
        }
        let changed = apply.updates + apply.deletes > 0;
        if changed {
            tracing::info!(
                revision = apply.revision,
                full = apply.full,
                upserted = apply.frontends,
                removed = apply.removed,
                updates = apply.updates,
                deletes = apply.deletes,
                elapsed_us = apply.elapsed_us,
                "dataplane maps updated"
            );
        }
        self.pass_problems = problems;
        self.view.send_modify(|v| {
            v.frontends = count;
            if ok && apply.full {
                v.ready = true;
            }
            v.snat_v4 = snat.0;
            v.snat_v6 = snat.1;
            v.updates_total = totals.updates;
            v.deletes_total = totals.deletes;
            if !ok {
                v.failures_total += 1;
            }
            if changed || v.last_apply.is_none() {
                v.applies += u64::from(changed);
                v.last_apply = Some(apply.clone());
            }
        });
        self.publish_problems();
        ok
    }

    /// Publishes every problem (start, last pass, attachments), logging the new ones.
    fn publish_problems(&self) {
        let mut all = self.fixed_problems.clone();
        all.extend(self.pass_problems.iter().cloned());
        all.extend(self.attach_problems.iter().cloned());
        self.view.send_if_modified(|v| {
            if v.problems == all {
                return false;
            }
            for p in all.iter().filter(|p| !v.problems.contains(p)) {
                tracing::warn!(problem = %p, "dataplane problem");
            }
            v.problems = all;
            true
        });
    }

    /// Attaches to every wanted interface not attached yet (or made again since).
    async fn attach(&mut self, snap: &Arc<Snapshot>) {
        let kernel = self.view.borrow().kernel;
        let node = snap.nodes.get(&ObjectKey::cluster(&self.node)).cloned();
        let facts = LocalFacts::gather();
        let mut wanted: Vec<(String, &'static str)> = uplinks(&self.opts, node.as_deref(), &facts)
            .into_iter()
            .map(|n| (n, "uplink"))
            .collect();
        wanted.extend(
            self.opts
                .backend_interfaces
                .iter()
                .map(|n| (n.clone(), "backend")),
        );
        let mut missing_uplink = None;
        if wanted.iter().all(|(_, r)| *r != "uplink") {
            missing_uplink = Some(match node.as_deref() {
                None => format!(
                    "no uplink to attach to: Node {} is not in the manifests and --dataplane-interfaces is not given",
                    self.node
                ),
                Some(n) => format!(
                    "no uplink to attach to: no interface holds the InternalIP of Node {} ({}); pass --dataplane-interfaces",
                    self.node,
                    super::internal_ips(n)
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let mut changed = false;
        for (name, role) in &wanted {
            let now = ifindex(name);
            let current = self.attached.get(&(name.clone(), *role));
            let due = match (current, now) {
                (Some(Attached::Yes(i)), Some(n)) => *i != n,
                // Without a loaded dataplane there is nothing to retry.
                (Some(Attached::No(_)), _) if !kernel => false,
                _ => true,
            };
            if !due {
                continue;
            }
            let before = match current {
                Some(Attached::No(e)) => Some(e.clone()),
                _ => None,
            };
            let state = if !kernel {
                Attached::No("the dataplane is not loaded".into())
            } else if let Some(idx) = now {
                let a = if *role == "uplink" {
                    Attachment::uplink(name.clone())
                } else {
                    Attachment::backend_facing(name.clone())
                };
                match blocking(&self.inner, move |i| {
                    i.dp.attach(&a).map_err(|e| e.to_string())
                })
                .await
                {
                    Ok(Ok(())) => Attached::Yes(idx),
                    Ok(Err(e)) | Err(e) => Attached::No(e),
                }
            } else {
                Attached::No(format!("interface {name} not found"))
            };
            match &state {
                // Said once per new reason, not at every retry.
                Attached::No(e) if kernel && before.as_ref() != Some(e) => {
                    tracing::warn!(interface = %name, role, error = %e, "dataplane not attached; retrying every few seconds");
                }
                Attached::No(_) => {}
                Attached::Yes(_) => {}
            }
            changed |= !matches!((&state, &before), (Attached::No(e), Some(b)) if e == b);
            self.attached.insert((name.clone(), *role), state);
        }
        let all_attached = !wanted.is_empty()
            && wanted.iter().all(|(n, r)| {
                matches!(self.attached.get(&(n.clone(), *r)), Some(Attached::Yes(_)))
            });
        if kernel && all_attached && missing_uplink.is_none() && !self.others_detached {
            self.others_detached = true;
            match blocking(&self.inner, |i| i.dp.detach_others()).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(links = n, "detached links of interfaces no longer wanted")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot remove stale links"),
                Err(e) => tracing::warn!(error = %e, "cannot remove stale links"),
            }
        }
        if !changed && missing_uplink.is_none() && self.attach_problems.is_empty() {
            return;
        }
        let interfaces: Vec<InterfaceView> = wanted
            .iter()
            .map(|(n, r)| {
                let a = self.attached.get(&(n.clone(), *r));
                InterfaceView {
                    name: n.clone(),
                    role: (*r).to_owned(),
                    attached: matches!(a, Some(Attached::Yes(_))),
                    error: match a {
                        Some(Attached::No(e)) if kernel => Some(e.clone()),
                        _ => None,
                    },
                }
            })
            .collect();
        // Interfaces no longer wanted are forgotten (their links go with detach_others at
        // the next start).
        self.attached
            .retain(|(n, r), _| wanted.iter().any(|(wn, wr)| wn == n && wr == r));
        self.attach_problems = if kernel {
            self.attached
                .iter()
                .filter_map(|((name, role), a)| match a {
                    Attached::No(e) => {
                        Some(format!("dataplane not attached to {name} ({role}): {e}"))
                    }
                    Attached::Yes(_) => None,
                })
                .chain(missing_uplink)
                .collect()
        } else {
            Vec::new()
        };
        self.view.send_if_modified(|v| {
            if v.interfaces == interfaces {
                return false;
            }
            v.interfaces = interfaces;
            true
        });
        self.publish_problems();
    }

    async fn gc(&mut self) {
        let r = blocking(&self.inner, |i| i.dp.gc().map_err(|e| e.to_string())).await;
        match r {
            Ok(Ok(report)) => {
                let totals = blocking(&self.inner, |i| i.dp.op_counts()).await.ok();
                if report.deleted > 0 || report.backends_released > 0 {
                    tracing::info!(
                        deleted = report.deleted,
                        kept = report.flows_kept,
                        released = report.backends_released,
                        "conntrack GC"
                    );
                }
                self.view.send_modify(|v| {
                    v.gc_runs += 1;
                    v.gc_deleted_total += report.deleted as u64;
                    if let Some(t) = totals {
                        v.updates_total = t.updates;
                        v.deletes_total = t.deletes;
                    }
                    v.last_gc = Some(report);
                });
            }
            Ok(Err(e)) | Err(e) => {
                tracing::warn!(error = %e, "conntrack GC failed; retrying at the next interval")
            }
        }
    }
}
