//! Leases as files in a directory shared by several processes on one machine (the nodes of
//! `lbspeaker run`): the same optimistic concurrency as Kubernetes, made from `flock` and
//! `rename`.
//!
//! ```text
//! DIR/cilium-l2announce-default-webpod.json   one lease, shaped like a Kubernetes Lease
//! DIR/.lock                                   flock(LOCK_EX) around every write
//! DIR/.revision                               the last resourceVersion handed out
//! DIR/.nodes/node1.alive                      flock(LOCK_SH) held by node1's process
//! ```
//!
//! A write takes the directory lock, checks that the lease is still at the version the
//! caller read, writes the new lease to a temporary file and renames it over the old one, so
//! readers (which take no lock) see the old or the new lease, never half of one. Versions
//! come from one counter for the whole directory, so a lease deleted and created again never
//! repeats a version. Every process that opens the backend as a node holds a shared lock on
//! its `.alive` file for as long as it runs; the kernel drops it when the process dies, even
//! by SIGKILL, which is how [`LeaseBackend::holder_alive`] can say a holder is gone.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{
    LEASE_PREFIX, Lease, LeaseBackend, LeaseError, LeaseName, LeaseRecord, ResourceVersion,
};

/// Leases in a directory (module documentation).
#[derive(Debug, Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Whether `holder_alive` consults the `.alive` locks.
    liveness: bool,
    /// Our own `.alive` lock, held for the life of the backend.
    _alive: Option<Flock<File>>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LeaseError {
    let context = context.into();
    move |source| LeaseError::Io { context, source }
}

fn errno(context: String) -> impl FnOnce((File, Errno)) -> LeaseError {
    move |(_, e)| LeaseError::Io {
        context,
        source: e.into(),
    }
}

/// A Kubernetes `coordination.k8s.io/v1` Lease, as much of it as the file needs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseFile {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    resource_version: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder_identity: Option<String>,
    /// Seconds, fractional when the duration is not whole (millisecond precision).
    lease_duration_seconds: serde_json::Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acquire_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renew_time: Option<String>,
    #[serde(default)]
    lease_transitions: u32,
}

fn format_time(t: SystemTime) -> Result<String, String> {
    let ts = jiff::Timestamp::try_from(t).map_err(|e| e.to_string())?;
    Ok(ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string())
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    let ts: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| format!("{s:?}: {e}"))?;
    Ok(SystemTime::from(ts))
}

fn duration_number(d: Duration) -> serde_json::Number {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        serde_json::Number::from(d.as_secs())
    } else {
        serde_json::Number::from_f64(ms as f64 / 1000.0).unwrap_or_else(|| d.as_secs().into())
    }
}

fn number_duration(n: &serde_json::Number) -> Result<Duration, String> {
    let secs = n.as_f64().ok_or("leaseDurationSeconds is not a number")?;
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("leaseDurationSeconds {secs} out of range"));
    }
    Ok(Duration::from_millis((secs * 1000.0).round() as u64))
}

impl LeaseFile {
    fn new(lease: &Lease) -> Result<LeaseFile, LeaseError> {
        let corrupt = |message| LeaseError::Corrupt {
            name: lease.name.to_string(),
            message,
        };
        let r = &lease.record;
        Ok(LeaseFile {
            api_version: "coordination.k8s.io/v1".into(),
            kind: "Lease".into(),
            metadata: Metadata {
                name: lease.name.to_string(),
                resource_version: lease.resource_version.0.clone(),
            },
            spec: Spec {
                holder_identity: r.holder.clone(),
                lease_duration_seconds: duration_number(r.duration),
                acquire_time: r
                    .acquire_time
                    .map(format_time)
                    .transpose()
                    .map_err(corrupt)?,
                renew_time: r.renew_time.map(format_time).transpose().map_err(corrupt)?,
                lease_transitions: r.transitions,
            },
        })
    }

    fn into_lease(self, file_name: &str) -> Result<Lease, LeaseError> {
        let corrupt = |message: String| LeaseError::Corrupt {
            name: file_name.to_owned(),
            message,
        };
        let name = LeaseName::new(self.metadata.name).map_err(|e| corrupt(e.to_string()))?;
        if format!("{name}.json") != file_name {
            return Err(corrupt(format!("names lease {name}")));
        }
        let s = self.spec;
        Ok(Lease {
            name,
            record: LeaseRecord {
                holder: s.holder_identity.filter(|h| !h.is_empty()),
                duration: number_duration(&s.lease_duration_seconds).map_err(corrupt)?,
                acquire_time: s
                    .acquire_time
                    .as_deref()
                    .map(parse_time)
                    .transpose()
                    .map_err(corrupt)?,
                renew_time: s
                    .renew_time
                    .as_deref()
                    .map(parse_time)
                    .transpose()
                    .map_err(corrupt)?,
                transitions: s.lease_transitions,
            },
            resource_version: ResourceVersion(self.metadata.resource_version),
        })
    }
}

/// Node names are Kubernetes object names; anything else gets no liveness file.
fn valid_node(node: &str) -> bool {
    LeaseName::new(node).is_ok()
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileBackend {
    /// Leases in `dir` (created if missing). With `node`, this process says it runs that
    /// node for as long as the backend lives (the `.alive` lock), so other processes can
    /// tell when it is gone.
    pub fn open(dir: impl Into<PathBuf>, node: Option<&str>) -> Result<FileBackend, LeaseError> {
        let dir = dir.into();
        let nodes = dir.join(".nodes");
        std::fs::create_dir_all(&nodes)
            .map_err(io(format!("cannot create {}", nodes.display())))?;
        let alive = match node {
            Some(node) if valid_node(node) => {
                let path = nodes.join(format!("{node}.alive"));
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(io(format!("cannot open {}", path.display())))?;
                Some(
                    Flock::lock(f, FlockArg::LockShared)
                        .map_err(errno(format!("cannot lock {}", path.display())))?,
                )
            }
            _ => None,
        };
        Ok(FileBackend {
            inner: Arc::new(Inner {
                dir,
                liveness: true,
                _alive: alive,
            }),
        })
    }

    /// The same backend with [`LeaseBackend::holder_alive`] answering nothing, so candidates
    /// wait for leases to expire as they must with a Kubernetes backend (for comparisons).
    pub fn without_liveness(self) -> FileBackend {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            dir: shared.dir.clone(),
            liveness: false,
            _alive: None,
        });
        FileBackend {
            inner: Arc::new(Inner {
                liveness: false,
                ..inner
            }),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn path(&self, name: &LeaseName) -> PathBuf {
        self.inner.dir.join(format!("{name}.json"))
    }

    fn lock(&self) -> Result<Flock<File>, LeaseError> {
        let path = self.inner.dir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("cannot open {}", path.display())))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(errno(format!("cannot lock {}", path.display())))
    }

    fn read(&self, name: &LeaseName) -> Result<Option<Lease>, LeaseError> {
        let path = self.path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
        };
        let file_name = format!("{name}.json");
        let parsed: LeaseFile = serde_json::from_str(&text).map_err(|e| LeaseError::Corrupt {
            name: file_name.clone(),
            message: e.to_string(),
        })?;
        parsed.into_lease(&file_name).map(Some)
    }

    /// Writes `contents` to `path` through a temporary file and a rename.
    fn replace(&self, path: &Path, contents: &[u8]) -> Result<(), LeaseError> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .inner
            .dir
            .join(format!(".tmp-{}-{n}", std::process::id()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(contents)?;
            f.sync_data()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io(format!("cannot write {}", path.display())))
    }

    /// The next resource version (under the lock).
    fn next_version(&self) -> Result<ResourceVersion, LeaseError> {
        let path = self.inner.dir.join(".revision");
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_string(&mut text)
                    .map_err(io(format!("cannot read {}", path.display())))?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("cannot read {}", path.display()))(e)),
        }
        let last: u64 = if text.trim().is_empty() {
            0
        } else {
            text.trim().parse().map_err(|_| LeaseError::Corrupt {
                name: ".revision".into(),
                message: format!("{:?} is not a number", text.trim()),
            })?
        };
        let next = last + 1;
        self.replace(&path, next.to_string().as_bytes())?;
        Ok(ResourceVersion(next.to_string()))
    }

    fn write(&self, name: &LeaseName, record: &LeaseRecord) -> Result<Lease, LeaseError> {
        let lease = Lease {
            name: name.clone(),
            record: record.clone(),
            resource_version: self.next_version()?,
        };
        let mut text = serde_json::to_vec_pretty(&LeaseFile::new(&lease)?).map_err(|e| {
            LeaseError::Corrupt {
                name: name.to_string(),
                message: e.to_string(),
            }
        })?;
        text.push(b'\n');
        self.replace(&self.path(name), &text)?;
        Ok(lease)
    }

    /// [`LeaseBackend::get`], blocking.
    pub fn get_blocking(&self, name: &LeaseName) -> Result<Option<Lease>, LeaseError> {
        self.read(name)
    }

    /// [`LeaseBackend::create`], blocking.
    pub fn create_blocking(
        &self,
        name: &LeaseName,
        record: &LeaseRecord,
    ) -> Result<Lease, LeaseError> {
        let _lock = self.lock()?;
        if self.path(name).exists() {
            return Err(LeaseError::Conflict { name: name.clone() });
        }
        self.write(name, record)
    }

    /// [`LeaseBackend::update`], blocking.
    pub fn update_blocking(
        &self,
        name: &LeaseName,
        record: &LeaseRecord,
        version: &ResourceVersion,
    ) -> Result<Lease, LeaseError> {
        let _lock = self.lock()?;
        match self.read(name)? {
            None => Err(LeaseError::NotFound { name: name.clone() }),
            Some(l) if &l.resource_version != version => {
                Err(LeaseError::Conflict { name: name.clone() })
            }
            Some(_) => self.write(name, record),
        }
    }

    /// [`LeaseBackend::delete`], blocking.
    pub fn delete_blocking(
        &self,
        name: &LeaseName,
        version: &ResourceVersion,
    ) -> Result<(), LeaseError> {
        let _lock = self.lock()?;
        match self.read(name)? {
            None => Err(LeaseError::NotFound { name: name.clone() }),
            Some(l) if &l.resource_version != version => {
                Err(LeaseError::Conflict { name: name.clone() })
            }
            Some(_) => {
                let path = self.path(name);
                std::fs::remove_file(&path).map_err(io(format!("cannot remove {}", path.display())))
            }
        }
    }

    /// [`LeaseBackend::list`], blocking. A corrupt file is skipped with a warning, so one bad
    /// file does not hide the others.
    pub fn list_blocking(&self) -> Result<Vec<Lease>, LeaseError> {
        let dir = &self.inner.dir;
        let entries =
            std::fs::read_dir(dir).map_err(io(format!("cannot list {}", dir.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(format!("cannot list {}", dir.display())))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = file_name.strip_suffix(".json") else {
                continue;
            };
            if !stem.starts_with(LEASE_PREFIX) {
                continue;
            }
            let Ok(name) = LeaseName::new(stem) else {
                continue;
            };
            match self.read(&name) {
                Ok(Some(l)) => out.push(l),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping lease file"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// [`LeaseBackend::holder_alive`], blocking.
    pub fn holder_alive_blocking(&self, holder: &str) -> Option<bool> {
        if !self.inner.liveness || !valid_node(holder) {
            return None;
        }
        let path = self
            .inner
            .dir
            .join(".nodes")
            .join(format!("{holder}.alive"));
        let f = File::open(&path).ok()?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            // Nobody holds it: the process that did is gone. Dropping the lock releases it.
            Ok(_lock) => Some(false),
            Err((_, Errno::EWOULDBLOCK)) => Some(true),
            Err(_) => None,
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(FileBackend) -> Result<T, LeaseError> + Send + 'static,
    ) -> Result<T, LeaseError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me))
            .await
            .map_err(|e| LeaseError::Backend(format!("file backend task failed: {e}")))?
    }
}

impl LeaseBackend for FileBackend {
    async fn get(&self, name: &LeaseName) -> Result<Option<Lease>, LeaseError> {
        let name = name.clone();
        self.blocking(move |b| b.get_blocking(&name)).await
    }

    async fn create(&self, name: &LeaseName, record: &LeaseRecord) -> Result<Lease, LeaseError> {
        let (name, record) = (name.clone(), record.clone());
        self.blocking(move |b| b.create_blocking(&name, &record))
            .await
    }

    async fn update(
        &self,
        name: &LeaseName,
        record: &LeaseRecord,
        version: &ResourceVersion,
    ) -> Result<Lease, LeaseError> {
        let (name, record, version) = (name.clone(), record.clone(), version.clone());
        self.blocking(move |b| b.update_blocking(&name, &record, &version))
            .await
    }

    async fn delete(&self, name: &LeaseName, version: &ResourceVersion) -> Result<(), LeaseError> {
        let (name, version) = (name.clone(), version.clone());
        self.blocking(move |b| b.delete_blocking(&name, &version))
            .await
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        self.blocking(|b| b.list_blocking()).await
    }

    async fn holder_alive(&self, holder: &str) -> Option<bool> {
        let holder = holder.to_owned();
        self.blocking(move |b| Ok(b.holder_alive_blocking(&holder)))
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests;
