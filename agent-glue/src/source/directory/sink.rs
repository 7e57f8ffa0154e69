//! Status written under `DIR/status/`, one file per object, as YAML a person can read:
//! `status/services/<namespace>/<name>.yaml`, `status/<plural>/<name>.yaml` for the
//! cluster-scoped kinds. Files are written to a temporary name and renamed, so a reader never
//! sees half a file; every process sharing the directory reads them back into its snapshot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;

use crate::source::status::{
    ConditionsOnly, Record, StatusError, StatusSink, StatusUpdate, identity,
};
use crate::source::{Kind, ObjectKey};

/// The status directory inside a manifest directory.
pub fn status_dir(root: &Path) -> PathBuf {
    root.join("status")
}

/// The file holding the status of `kind`/`key`.
pub fn status_path(root: &Path, kind: Kind, key: &ObjectKey) -> Result<PathBuf, StatusError> {
    let ok = |s: &str| {
        !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']) && !s.starts_with('.')
    };
    let invalid = || StatusError::InvalidName {
        kind,
        key: key.clone(),
    };
    let mut p = status_dir(root).join(kind.plural());
    if let Some(ns) = &key.namespace {
        if !ok(ns) {
            return Err(invalid());
        }
        p.push(ns);
    }
    if !ok(&key.name) {
        return Err(invalid());
    }
    p.push(format!("{}.yaml", key.name));
    Ok(p)
}

/// Writes status files into a manifest directory.
#[derive(Debug, Clone)]
pub struct DirectoryStatus {
    root: PathBuf,
}

impl DirectoryStatus {
    /// A writer for the manifest directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirectoryStatus { root: root.into() }
    }

    /// The text of the status file for `update`, or `None` for a deletion.
    pub fn render(update: &StatusUpdate) -> Result<Option<String>, StatusError> {
        let kind = update.kind();
        let key = update.key();
        let encode = |e: serde_saphyr::SerializeError| StatusError::Encode {
            kind,
            key: key.clone(),
            message: e.to_string(),
        };
        let body = match update {
            StatusUpdate::Service { status: None, .. }
            | StatusUpdate::Conditions {
                conditions: None, ..
            }
            | StatusUpdate::BgpNodeConfig { object: None, .. } => return Ok(None),
            StatusUpdate::Service {
                meta,
                status: Some(status),
            } => serde_saphyr::to_string(&Record {
                api_version: kind.api_version().into(),
                kind: kind.name().into(),
                metadata: identity(meta, kind),
                status: Some(status.clone()),
            })
            .map_err(encode)?,
            StatusUpdate::Conditions {
                meta,
                conditions: Some(conditions),
                ..
            } => serde_saphyr::to_string(&Record {
                api_version: kind.api_version().into(),
                kind: kind.name().into(),
                metadata: identity(meta, kind),
                status: Some(ConditionsOnly {
                    conditions: conditions.clone(),
                }),
            })
            .map_err(encode)?,
            StatusUpdate::BgpNodeConfig {
                object: Some(o), ..
            } => serde_saphyr::to_string(o).map_err(encode)?,
        };
        Ok(Some(format!(
            "# Written by lbspeaker: status of {kind} {key}. It is read back on restart;\n\
             # edits are overwritten.\n{body}"
        )))
    }

    /// Why nothing is written when the manifest directory itself is not there.
    fn root_gone(&self) -> StatusError {
        StatusError::Io {
            path: self.root.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the manifest directory is gone",
            ),
        }
    }

    fn apply(&self, update: &StatusUpdate) -> Result<(), StatusError> {
        let path = status_path(&self.root, update.kind(), &update.key())?;
        match Self::render(update)? {
            Some(text) => {
                // Directories are made below the manifest directory, never the manifest
                // directory itself: one renamed away must not come back empty, holding
                // only status (every process would then see every object deleted).
                if !self.root.is_dir() {
                    return Err(self.root_gone());
                }
                write_atomic(&path, text.as_bytes())
            }
            None => remove_status(path),
        }
    }
}

impl StatusSink for DirectoryStatus {
    fn write<'a>(&'a self, update: &'a StatusUpdate) -> BoxFuture<'a, Result<(), StatusError>> {
        Box::pin(async move {
            let this = self.clone();
            let update = update.clone();
            match tokio::task::spawn_blocking(move || this.apply(&update)).await {
                Ok(r) => r,
                Err(e) => Err(StatusError::Io {
                    path: status_dir(&self.root),
                    source: std::io::Error::other(e.to_string()),
                }),
            }
        })
    }

    fn write_all<'a>(
        &'a self,
        updates: &'a [StatusUpdate],
    ) -> BoxFuture<'a, Vec<Result<(), StatusError>>> {
        Box::pin(async move {
            let this = self.clone();
            let batch = updates.to_vec();
            match tokio::task::spawn_blocking(move || this.apply_all(&batch)).await {
                Ok(r) => r,
                Err(e) => updates
                    .iter()
                    .map(|_| {
                        Err(StatusError::Io {
                            path: status_dir(&self.root),
                            source: std::io::Error::other(e.to_string()),
                        })
                    })
                    .collect(),
            }
        })
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StatusError + use<> {
    let path = path.to_path_buf();
    move |source| StatusError::Io { path, source }
}

/// Writes `data` to a temporary name beside `path` (made with its directories), not yet
/// synced; returns that name. Nothing is left behind on failure.
fn write_temporary(path: &Path, data: &[u8], sync: bool) -> Result<PathBuf, StatusError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
        if sync {
            f.sync_all().map_err(io_err(&tmp))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Removes a status file; one already gone is fine.
fn remove_status(path: PathBuf) -> Result<(), StatusError> {
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StatusError::Io { path, source }),
    }
}

/// Renames a synced temporary file into place.
fn commit(tmp: &Path, path: &Path) -> Result<(), StatusError> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        io_err(path)(e)
    })
}

/// Makes renames in `dir` durable; a failure here loses nothing already visible.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write-then-rename: the file is either the old one or the whole new one.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StatusError> {
    let tmp = write_temporary(path, data, true)?;
    commit(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// What one update of a batch does to the directory.
enum Step {
    Write(PathBuf, String),
    Remove(PathBuf),
}

impl DirectoryStatus {
    /// Applies a batch with the guarantees of [`write_atomic`] for each file but one
    /// filesystem sync for all of them: every new file is written under its temporary name,
    /// then `syncfs` makes them all durable, then each is renamed into place and each
    /// directory touched is synced once. LB-IPAM's first round over 10,000 Services wrote
    /// 10,000 files with an fsync each, most of the daemon's time (docs/BENCHMARKS.md).
    fn apply_all(&self, updates: &[StatusUpdate]) -> Vec<Result<(), StatusError>> {
        let mut out: Vec<Option<Result<(), StatusError>>> = Vec::with_capacity(updates.len());
        let mut steps: Vec<(usize, Step)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, u) in updates.iter().enumerate() {
            let step = status_path(&self.root, u.kind(), &u.key()).and_then(|path| {
                Ok(match Self::render(u)? {
                    Some(text) => Step::Write(path, text),
                    None => Step::Remove(path),
                })
            });
            match step {
                Ok(step) => {
                    let path = match &step {
                        Step::Write(p, _) | Step::Remove(p) => p.clone(),
                    };
                    if !seen.insert(path) {
                        // The same file twice: the order matters, so one by one.
                        return updates.iter().map(|u| self.apply(u)).collect();
                    }
                    steps.push((i, step));
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let writes = steps.iter().any(|(_, s)| matches!(s, Step::Write(..)));
        if writes && !self.root.is_dir() {
            for (i, s) in &steps {
                if matches!(s, Step::Write(..)) {
                    out[*i] = Some(Err(self.root_gone()));
                }
            }
        }
        let mut written: Vec<(usize, PathBuf, PathBuf)> = Vec::new();
        for (i, step) in steps {
            if out[i].is_some() {
                continue;
            }
            match step {
                Step::Write(path, text) => match write_temporary(&path, text.as_bytes(), false) {
                    Ok(tmp) => written.push((i, tmp, path)),
                    Err(e) => out[i] = Some(Err(e)),
                },
                Step::Remove(path) => out[i] = Some(remove_status(path)),
            }
        }
        if !written.is_empty() {
            let synced = std::fs::File::open(status_dir(&self.root))
                .or_else(|_| std::fs::File::open(&self.root))
                .and_then(|d| nix::unistd::syncfs(&d).map_err(std::io::Error::from));
            if synced.is_err() {
                // Without syncfs, each file on its own.
                written.retain(|(i, tmp, _)| {
                    match std::fs::File::open(tmp).and_then(|f| f.sync_all()) {
                        Ok(()) => true,
                        Err(e) => {
                            let _ = std::fs::remove_file(tmp);
                            out[*i] = Some(Err(io_err(tmp)(e)));
                            false
                        }
                    }
                });
            }
            let mut dirs = std::collections::BTreeSet::new();
            for (i, tmp, path) in written {
                let r = commit(&tmp, &path);
                if r.is_ok() {
                    dirs.insert(path.parent().unwrap_or(Path::new(".")).to_path_buf());
                }
                out[i] = Some(r);
            }
            for d in dirs {
                sync_dir(&d);
            }
        }
        out.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_paths_follow_kind_namespace_and_name_and_refuse_odd_names() {
        let root = Path::new("/m");
        assert_eq!(
            status_path(
                root,
                Kind::Service,
                &ObjectKey::namespaced("default", "webpod")
            )
            .unwrap(),
            Path::new("/m/status/services/default/webpod.yaml")
        );
        assert_eq!(
            status_path(root, Kind::LbIpPool, &ObjectKey::cluster("cilium-pool")).unwrap(),
            Path::new("/m/status/ciliumloadbalancerippools/cilium-pool.yaml")
        );
        for bad in ["..", "a/b", "", ".hidden"] {
            assert!(
                status_path(root, Kind::LbIpPool, &ObjectKey::cluster(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(status_path(root, Kind::Service, &ObjectKey::namespaced("..", "x")).is_err());
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file_and_fail_clearly() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/c.yaml");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        // A file where a directory must be: a clear error naming the path.
        std::fs::write(d.path().join("blocked"), b"").unwrap();
        let e = write_atomic(&d.path().join("blocked/x.yaml"), b"x").unwrap_err();
        assert!(e.to_string().contains("blocked"), "{e}");
    }

    fn pool(name: &str, present: bool) -> StatusUpdate {
        StatusUpdate::Conditions {
            kind: Kind::LbIpPool,
            meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            conditions: present.then(Vec::new),
        }
    }

    #[test]
    fn a_batch_writes_every_file_removes_what_goes_and_reports_each_outcome() {
        let d = tempfile::tempdir().unwrap();
        let sink = DirectoryStatus::new(d.path());
        let dir = d.path().join("status/ciliumloadbalancerippools");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("old.yaml"), b"x").unwrap();
        let batch = [
            pool("a", true),
            pool("bad/name", true),
            pool("old", false),
            pool("b", true),
            pool("never-there", false),
        ];
        let r = sink.apply_all(&batch);
        assert_eq!(r.len(), 5);
        assert!(
            r[0].is_ok() && r[2].is_ok() && r[3].is_ok() && r[4].is_ok(),
            "{r:?}"
        );
        assert!(
            matches!(r[1], Err(StatusError::InvalidName { .. })),
            "{r:?}"
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Written, nothing temporary left, the old one gone.
        assert_eq!(names, ["a.yaml", "b.yaml"]);
        let a = std::fs::read_to_string(dir.join("a.yaml")).unwrap();
        assert!(
            a.contains("kind: CiliumLoadBalancerIPPool") && a.contains("name: a"),
            "{a}"
        );
        // The same file twice in one batch: applied in order, one by one.
        let r = sink.apply_all(&[pool("c", true), pool("c", false)]);
        assert!(r.iter().all(Result::is_ok), "{r:?}");
        assert!(!dir.join("c.yaml").exists());
    }

    #[test]
    fn a_batch_into_a_directory_that_is_gone_fails_each_write_and_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("manifests");
        let sink = DirectoryStatus::new(&root);
        let r = sink.apply_all(&[pool("a", true), pool("b", false)]);
        assert!(
            matches!(&r[0], Err(e) if e.to_string().contains("the manifest directory is gone")),
            "{r:?}"
        );
        assert!(r[1].is_ok(), "{r:?}");
        assert!(!root.exists());
    }
}
