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

    fn apply(&self, update: &StatusUpdate) -> Result<(), StatusError> {
        let path = status_path(&self.root, update.kind(), &update.key())?;
        match Self::render(update)? {
            Some(text) => {
                // Directories are made below the manifest directory, never the manifest
                // directory itself: one renamed away must not come back empty, holding
                // only status (every process would then see every object deleted).
                if !self.root.is_dir() {
                    return Err(StatusError::Io {
                        path: self.root.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "the manifest directory is gone",
                        ),
                    });
                }
                write_atomic(&path, text.as_bytes())
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StatusError::Io { path, source }),
            },
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
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write-then-rename: the file is either the old one or the whole new one.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StatusError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StatusError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
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
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(data).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Ok(d) = std::fs::File::open(dir) {
        // Make the rename itself durable; a failure here loses nothing already visible.
        let _ = d.sync_all();
    }
    result
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
}
