//! A directory of YAML manifests as the desired world: multi-document files in any layout
//! (subdirectories included, hidden names skipped), re-read when files change, with status
//! kept under `DIR/status/` and merged into the objects served.
//!
//! - A document that does not parse or validate is reported (file, document, line, object,
//!   field, rule) and skipped; if it held an object before, that object's last good version
//!   stays, as a failed `kubectl apply` leaves the stored object alone. Other documents and
//!   files are unaffected.
//! - Objects without `metadata.creationTimestamp` get one when first seen; once status has
//!   been written for them it carries that time, so the age order (which pool is the newer)
//!   survives restarts and is the same in every process.
//! - Several processes may share one directory: each serves the status files the leader
//!   (see [`crate::source::leader`]) writes, so every node sees the addresses LB-IPAM gave.

mod sink;
mod state;

pub use sink::{DirectoryStatus, status_dir, status_path};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Snapshot, Source};
use state::State;

/// How the directory is watched.
#[derive(Debug, Clone)]
pub struct DirectoryOptions {
    /// Changes are read once the directory has been quiet this long.
    pub debounce: Duration,
    /// ... but no later than this after the first change of a burst.
    pub max_delay: Duration,
}

impl Default for DirectoryOptions {
    fn default() -> Self {
        DirectoryOptions {
            debounce: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Why the directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The path is missing or not a directory.
    #[error("{}: {message}", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The first reading of the directory did not complete.
    #[error("reading {}: {message}", path.display())]
    Scan {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Watching for changes failed (inotify limits, ...).
    #[error("watching {}: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What notify said.
        #[source]
        source: notify::Error,
    },
}

/// The running source.
pub struct DirectorySource {
    root: PathBuf,
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for DirectorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorySource")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl DirectorySource {
    /// Reads `dir` completely (the first snapshot is whole) and watches it from then on.
    pub async fn open(dir: impl AsRef<Path>, opts: DirectoryOptions) -> Result<Self, SourceError> {
        let given = dir.as_ref().to_path_buf();
        let root = std::fs::canonicalize(&given).map_err(|e| SourceError::NotADirectory {
            path: given.clone(),
            message: e.to_string(),
        })?;
        if !root.is_dir() {
            return Err(SourceError::NotADirectory {
                path: given,
                message: "not a directory".into(),
            });
        }
        let (ev_tx, ev_rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(move |ev| {
            let _ = ev_tx.send(ev);
        })
        .map_err(|source| SourceError::Watch {
            path: root.clone(),
            source,
        })?;
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|source| SourceError::Watch {
                path: root.clone(),
                source,
            })?;
        let state = Arc::new(Mutex::new(State::new(root.clone())));
        let first = {
            let st = state.clone();
            tokio::task::spawn_blocking(move || {
                let mut s = lock(&st);
                s.full_scan();
                s.snapshot(Timestamp::now())
            })
            .await
            .map_err(|e| SourceError::Scan {
                path: root.clone(),
                message: e.to_string(),
            })?
        };
        log_problems(&first);
        let (tx, _) = watch::channel(Arc::new(first));
        let tx = Arc::new(tx);
        let task = tokio::spawn(watch_loop(
            ev_rx,
            Watched::new(watcher, root.clone()),
            state.clone(),
            tx.clone(),
            opts,
        ));
        tracing::info!(dir = %root.display(), objects = tx.borrow().len(), "reading manifests");
        Ok(DirectorySource {
            root,
            tx,
            state,
            task,
        })
    }

    /// The directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A status writer for the same directory.
    pub fn status_sink(&self) -> DirectoryStatus {
        DirectoryStatus::new(self.root.clone())
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// Reads everything again now and publishes the result.
    pub async fn rescan(&self) {
        let st = self.state.clone();
        if let Ok(snap) = tokio::task::spawn_blocking(move || {
            let mut s = lock(&st);
            s.full_scan();
            s.snapshot(Timestamp::now())
        })
        .await
        {
            self.tx.send_replace(Arc::new(snap));
        }
    }
}

impl Drop for DirectorySource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Source for DirectorySource {
    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

fn log_problems(s: &Snapshot) {
    for p in &s.problems {
        tracing::warn!(problem = %p, "manifest problem");
    }
}

/// Whether an event cannot change what the directory holds: a file opened or read (inotify
/// reports every open, and every process sharing the directory reads the files the others
/// write: reacting to opens would have them re-read each other forever), or only hidden
/// names (the operator lock, the temporary files of atomic writes, which are renamed onto
/// their real names: that rename is reported under the real name).
fn ignorable(ev: &notify::Result<notify::Event>, root: &Path) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    let Ok(ev) = ev else { return false };
    if ev.need_rescan() {
        return false;
    }
    let read_only = matches!(
        ev.kind,
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)
        )
    );
    let hidden = |p: &PathBuf| {
        p.strip_prefix(root).unwrap_or(p).components().any(|c| {
            matches!(c, std::path::Component::Normal(n) if n.to_string_lossy().starts_with('.'))
        })
    };
    read_only || (!ev.paths.is_empty() && ev.paths.iter().all(hidden))
}

/// How often a directory that cannot be read (or a part of it) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The watcher and which directory (device and inode) it watches: a directory deleted, or
/// renamed away with another put in its place, is a new directory to watch.
struct Watched {
    watcher: notify::RecommendedWatcher,
    root: PathBuf,
    id: Option<(u64, u64)>,
}

impl Watched {
    fn new(watcher: notify::RecommendedWatcher, root: PathBuf) -> Self {
        let id = dir_id(&root);
        Watched { watcher, root, id }
    }

    /// Watches the directory at the root path again if it is not the one watched; `true`
    /// when it did (everything must be read again).
    fn rewatch_if_replaced(&mut self) -> bool {
        let Some(now) = dir_id(&self.root) else {
            return false;
        };
        if Some(now) == self.id {
            return false;
        }
        let _ = self.watcher.unwatch(&self.root);
        match self.watcher.watch(&self.root, RecursiveMode::Recursive) {
            Ok(()) => {
                tracing::info!(dir = %self.root.display(), "the manifest directory was replaced; watching the new one");
                self.id = Some(now);
                true
            }
            Err(e) => {
                tracing::warn!(dir = %self.root.display(), error = %e, "cannot watch the manifest directory; retrying");
                false
            }
        }
    }
}

fn dir_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(p)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// Collects change events until the directory is quiet, then re-reads what changed. While
/// the directory (or a part of it) cannot be read, it is read again every [`RETRY`].
async fn watch_loop(
    mut rx: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    mut watched: Watched,
    state: Arc<Mutex<State>>,
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
    opts: DirectoryOptions,
) {
    let root = watched.root.clone();
    let mut degraded = false;
    loop {
        let mut paths: Vec<PathBuf> = Vec::new();
        let mut full = false;
        let first = if degraded {
            match tokio::time::timeout(RETRY, rx.recv()).await {
                Ok(Some(ev)) => Some(ev),
                Ok(None) => return,
                Err(_) => {
                    full = true;
                    None
                }
            }
        } else {
            match rx.recv().await {
                Some(ev) => Some(ev),
                None => return,
            }
        };
        if let Some(first) = first {
            if ignorable(&first, &root) {
                continue;
            }
            let mut take = |ev: notify::Result<notify::Event>, paths: &mut Vec<PathBuf>| {
                if ignorable(&ev, &root) {
                    return;
                }
                match ev {
                    Ok(ev) => {
                        if ev.need_rescan() {
                            full = true;
                        }
                        paths.extend(ev.paths);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watch error; reading the whole directory again");
                        full = true;
                    }
                }
            };
            take(first, &mut paths);
            let deadline = tokio::time::Instant::now() + opts.max_delay;
            loop {
                let quiet = tokio::time::Instant::now() + opts.debounce;
                match tokio::time::timeout_at(quiet.min(deadline), rx.recv()).await {
                    Ok(Some(ev)) => take(ev, &mut paths),
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
        }
        if watched.rewatch_if_replaced() || degraded {
            full = true;
        }
        paths.sort();
        paths.dedup();
        let retry_only = paths.is_empty();
        let st = state.clone();
        let root = root.clone();
        let snap = tokio::task::spawn_blocking(move || {
            let mut s = lock(&st);
            if full {
                s.full_scan();
            } else {
                for p in &paths {
                    if p.starts_with(&root) {
                        s.refresh(p);
                    }
                }
            }
            (s.degraded(), s.snapshot(Timestamp::now()))
        })
        .await;
        if let Ok((still_degraded, snap)) = snap {
            // A retry that finds the same trouble publishes nothing new.
            let same =
                degraded && still_degraded && retry_only && tx.borrow().problems == snap.problems;
            degraded = still_degraded;
            if same {
                continue;
            }
            log_problems(&snap);
            tracing::debug!(
                revision = snap.revision,
                objects = snap.len(),
                "manifests changed"
            );
            tx.send_replace(Arc::new(snap));
        }
    }
}
