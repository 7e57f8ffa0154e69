//! What the directory source knows: every manifest file's documents (with the last good
//! version of each object), every status file, and how they become a snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crds::bgp::CiliumBGPNodeConfig;
use crds::manifest::split_documents;
use k8s_openapi::api::core::v1::ServiceStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::source::object::identify;
use crate::source::status::{ConditionsOnly, Record, StatusPayload};
use crate::source::{Kind, Object, ObjectKey, Snapshot, SnapshotBuilder, parse_document};

/// Directories nested deeper than this are not read (symlink loops).
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone)]
struct Doc {
    /// The object the document holds, or the last good version of it when the document is
    /// now invalid.
    object: Option<Object>,
    /// Why the document is not used as written.
    problem: Option<String>,
    /// Which object the document declares, when that can be told.
    ident: Option<(Kind, ObjectKey)>,
}

#[derive(Debug, Clone, Default)]
struct ManifestFile {
    docs: Vec<Doc>,
    /// The file could not be read at all (its previous documents are kept).
    error: Option<String>,
}

#[derive(Debug, Clone)]
struct StatusFile {
    result: Result<(Kind, ObjectKey, StatusPayload, Option<Time>), String>,
    /// The file could not be read this time (`result` is what was read before).
    error: Option<String>,
}

/// The source's memory.
#[derive(Debug)]
pub(crate) struct State {
    root: PathBuf,
    manifests: BTreeMap<PathBuf, ManifestFile>,
    statuses: BTreeMap<PathBuf, StatusFile>,
    /// When this process first saw objects without `metadata.creationTimestamp`.
    first_seen: HashMap<(Kind, ObjectKey), Timestamp>,
    revision: u64,
    /// Why the directory itself cannot be read now (renamed away, deleted, no permission):
    /// everything read before is kept, as a Kubernetes agent keeps its caches while the API
    /// server is unreachable. An unreadable directory is not an empty one.
    unavailable: Option<String>,
    /// Directories below it that cannot be read, and why; what was read under them is kept.
    unreadable: BTreeMap<PathBuf, String>,
}

impl State {
    pub fn new(root: PathBuf) -> Self {
        State {
            root,
            manifests: BTreeMap::new(),
            statuses: BTreeMap::new(),
            first_seen: HashMap::new(),
            revision: 0,
            unavailable: None,
            unreadable: BTreeMap::new(),
        }
    }

    /// Whether part of the directory could not be read: the watcher retries until it can
    /// (an event may never come, e.g. for a directory deleted and made again).
    pub fn degraded(&self) -> bool {
        self.unavailable.is_some() || !self.unreadable.is_empty()
    }

    fn status_root(&self) -> PathBuf {
        self.root.join("status")
    }

    /// Re-reads everything.
    pub fn full_scan(&mut self) {
        self.refresh(&self.root.clone());
    }

    /// Re-reads what is at or below `path` (a file or a directory, present or gone). Nothing
    /// is forgotten while the directory itself cannot be read, nor what lies under a
    /// directory that cannot be read: only a file or directory that is gone is a deletion.
    pub fn refresh(&mut self, path: &Path) {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return;
        };
        if rel
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        {
            return;
        }
        if let Err(e) = std::fs::read_dir(&self.root) {
            if self.unavailable.is_none() {
                tracing::error!(dir = %self.root.display(), error = %e, "the manifest directory cannot be read; keeping everything read before");
            }
            self.unavailable = Some(format!(
                "the manifest directory cannot be read ({e}); keeping everything read before"
            ));
            return;
        }
        if self.unavailable.take().is_some() {
            tracing::info!(dir = %self.root.display(), "the manifest directory can be read again");
        }
        let status_root = self.status_root();
        let in_status = path.starts_with(&status_root);
        // Set aside what was under `path`; what still exists is read again below. A range
        // of the ordered maps, not a scan: the operator's status writes for 10,000 services
        // are 10,000 refreshes, and a scan of every status file for each was quadratic.
        let mut old_manifests = if in_status {
            BTreeMap::new()
        } else {
            take_under(&mut self.manifests, path)
        };
        let mut old_statuses = take_under(&mut self.statuses, path);
        take_under(&mut self.unreadable, path);
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        collect_yaml(
            path,
            &status_root,
            in_status,
            0,
            &mut files,
            &mut unreadable,
        );
        for f in files {
            if f.starts_with(&status_root) {
                let entry = read_status(&f, old_statuses.remove(&f));
                self.statuses.insert(f, entry);
            } else {
                let old = old_manifests.remove(&f);
                let entry = read_manifest(&f, old);
                self.manifests.insert(f, entry);
            }
        }
        // What lies under a directory that cannot be read is kept as it was.
        let hidden_by = |p: &Path| {
            unreadable
                .iter()
                .any(|(d, _): &(PathBuf, String)| p.starts_with(d))
        };
        for (k, v) in old_manifests {
            if hidden_by(&k) {
                self.manifests.insert(k, v);
            }
        }
        for (k, v) in old_statuses {
            if hidden_by(&k) {
                self.statuses.insert(k, v);
            }
        }
        for (d, e) in unreadable {
            if !self.unreadable.contains_key(&d) {
                tracing::warn!(dir = %d.display(), error = %e, "a manifest directory cannot be read; keeping what was read under it");
            }
            self.unreadable.insert(d, e);
        }
    }

    fn origin(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }

    /// The snapshot of what is known now.
    pub fn snapshot(&mut self, now: Timestamp) -> Snapshot {
        // Kubernetes stores creation times to the second; so do status files.
        let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
        self.revision += 1;
        let mut b = SnapshotBuilder::new();
        let mut unknown_failures = false;
        let mut failed_idents: BTreeSet<(Kind, ObjectKey)> = BTreeSet::new();
        if let Some(e) = &self.unavailable {
            b.problem(".", e.clone());
            unknown_failures = true;
        }
        for (d, e) in &self.unreadable {
            b.problem(
                self.origin(d),
                format!("cannot read this directory ({e}); keeping what was read under it"),
            );
            unknown_failures = true;
        }
        for (path, f) in &self.manifests {
            let origin = self.origin(path);
            if let Some(e) = &f.error {
                b.problem(&origin, e.clone());
                unknown_failures = true;
            }
            for d in &f.docs {
                if let Some(p) = &d.problem {
                    b.problem(&origin, p.clone());
                    match &d.ident {
                        Some(id) => {
                            failed_idents.insert(id.clone());
                        }
                        None => unknown_failures = true,
                    }
                }
                if let Some(o) = &d.object {
                    b.add(o.clone(), &origin);
                }
            }
        }
        for (path, s) in &self.statuses {
            let origin = self.origin(path);
            if let Some(e) = &s.error {
                b.problem(&origin, e.clone());
            }
            match &s.result {
                Err(e) => b.problem(&origin, e.clone()),
                Ok((kind, key, payload, created)) => {
                    if let Some(obj) = b.get_mut(*kind, key) {
                        obj.set_status(payload);
                        if obj.meta().creation_timestamp.is_none() {
                            obj.meta_mut().creation_timestamp = created.clone();
                        }
                    } else if let StatusPayload::BgpNodeConfig(n) = payload {
                        // Written by the operator role: the status file is the object.
                        b.add(Object::BgpNodeConfig((**n).clone()), &origin);
                    } else if !unknown_failures && !failed_idents.contains(&(*kind, key.clone())) {
                        b.orphan(*kind, key.clone());
                    }
                }
            }
        }
        if unknown_failures {
            // A document that cannot even be identified may hold any object: claim no orphans.
            b.clear_orphans();
        }
        let mut seen = HashMap::new();
        for obj in b.objects_mut() {
            if obj.meta().creation_timestamp.is_none() {
                let id = (obj.kind(), obj.key());
                let t = *self.first_seen.get(&id).unwrap_or(&now);
                obj.meta_mut().creation_timestamp = Some(Time(t));
                seen.insert(id, t);
            }
        }
        self.first_seen = seen;
        b.build(self.revision)
    }
}

/// Every `.yaml`/`.yml` file at or below `path`, skipping hidden names and, outside the status
/// area, the `status/` directory itself. Directories that exist but cannot be read go to
/// `unreadable` with the reason.
fn collect_yaml(
    path: &Path,
    status_root: &Path,
    in_status: bool,
    depth: usize,
    out: &mut Vec<PathBuf>,
    unreadable: &mut Vec<(PathBuf, String)>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            unreadable.push((path.to_path_buf(), e.to_string()));
            return;
        }
    };
    if meta.is_dir() {
        if !in_status && path == status_root {
            // Status is read as status, never as manifests.
            collect_yaml(path, status_root, true, depth, out, unreadable);
            return;
        }
        let rd = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                unreadable.push((path.to_path_buf(), e.to_string()));
                return;
            }
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            let hidden = e
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !hidden {
                let st = in_status || e == status_root;
                collect_yaml(&e, status_root, st, depth + 1, out, unreadable);
            }
        }
    } else if meta.is_file() && path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
        out.push(path.to_path_buf());
    }
}

fn read_manifest(path: &Path, old: Option<ManifestFile>) -> ManifestFile {
    let old_docs = old.map(|o| o.docs).unwrap_or_default();
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                return ManifestFile {
                    docs: old_docs,
                    error: Some("not UTF-8 text; keeping what was read before".into()),
                };
            }
        },
        Err(e) => {
            return ManifestFile {
                docs: old_docs,
                error: Some(format!("cannot read: {e}; keeping what was read before")),
            };
        }
    };
    let mut docs = Vec::new();
    for (i, d) in split_documents(&text).iter().enumerate() {
        match parse_document(d) {
            Ok(object) => docs.push(Doc {
                ident: object.as_ref().map(|o| (o.kind(), o.key())),
                object,
                problem: None,
            }),
            Err(msg) => {
                let ident = identify(d);
                // The last good version: the same object if the document says which, else
                // whatever this position held.
                let previous = match &ident {
                    Some(id) => old_docs.iter().find(|o| o.ident.as_ref() == Some(id)),
                    None => old_docs.get(i),
                }
                .and_then(|o| o.object.clone());
                let problem = if previous.is_some() {
                    format!("{msg}; keeping the previous version")
                } else {
                    format!("{msg}; skipped")
                };
                docs.push(Doc {
                    object: previous,
                    problem: Some(problem),
                    ident,
                });
            }
        }
    }
    ManifestFile { docs, error: None }
}

/// A status file that cannot be read (as opposed to one that is gone, or holds nonsense)
/// keeps what was read from it before: a Service must not lose its address because its
/// status file could not be opened for a moment.
fn read_status(path: &Path, old: Option<StatusFile>) -> StatusFile {
    match std::fs::read_to_string(path) {
        Ok(text) => StatusFile {
            result: parse_status(&text),
            error: None,
        },
        Err(e) => match old {
            Some(StatusFile { result: Ok(r), .. }) => StatusFile {
                result: Ok(r),
                error: Some(format!("cannot read: {e}; keeping what was read before")),
            },
            _ => StatusFile {
                result: Err(format!("cannot read: {e}")),
                error: None,
            },
        },
    }
}

fn parse_status(text: &str) -> Result<(Kind, ObjectKey, StatusPayload, Option<Time>), String> {
    let docs = split_documents(text);
    let doc = match docs.as_slice() {
        [d] => d,
        _ => return Err("a status file holds exactly one document".into()),
    };
    let tm = doc.type_meta().map_err(|e| e.to_string())?;
    let kind = Kind::of(&tm)
        .ok_or_else(|| format!("{} {} is not a kind with status", tm.api_version, tm.kind))?;
    let key_of = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| ObjectKey {
        namespace: kind
            .namespaced()
            .then(|| meta.namespace.clone().unwrap_or_else(|| "default".into())),
        name: meta.name.clone().unwrap_or_default(),
    };
    match kind {
        Kind::Service => {
            let r: Record<ServiceStatus> = doc.parse().map_err(|e| e.to_string())?;
            let key = key_of(&r.metadata);
            Ok((
                kind,
                key,
                StatusPayload::Service(r.status),
                r.metadata.creation_timestamp,
            ))
        }
        Kind::LbIpPool
        | Kind::BgpClusterConfig
        | Kind::BgpPeerConfig
        | Kind::L2AnnouncementPolicy => {
            let r: Record<ConditionsOnly> = doc.parse().map_err(|e| e.to_string())?;
            let key = key_of(&r.metadata);
            Ok((
                kind,
                key,
                StatusPayload::Conditions(r.status.map(|s| s.conditions)),
                r.metadata.creation_timestamp,
            ))
        }
        Kind::BgpNodeConfig => {
            let o: CiliumBGPNodeConfig = doc.parse().map_err(|e| e.to_string())?;
            let key = key_of(&o.metadata);
            let created = o.metadata.creation_timestamp.clone();
            Ok((
                kind,
                key,
                StatusPayload::BgpNodeConfig(Box::new(o)),
                created,
            ))
        }
        other => Err(format!("{other} has no status lbspeaker writes")),
    }
}

/// Removes and returns the entries at `path` and under it. Paths order by components, so
/// `path`'s descendants follow it directly (`a/b`, `a/b/c`, … before `a/b0`).
fn take_under<V>(map: &mut BTreeMap<PathBuf, V>, path: &Path) -> BTreeMap<PathBuf, V> {
    let keys: Vec<PathBuf> = map
        .range::<Path, _>((std::ops::Bound::Included(path), std::ops::Bound::Unbounded))
        .map(|(k, _)| k)
        .take_while(|k| k.starts_with(path))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|k| map.remove(&k).map(|v| (k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_under_takes_the_path_and_its_descendants_and_nothing_else() {
        let mut m: BTreeMap<PathBuf, u8> = [
            "d/a", "d/b", "d/b/c", "d/b/c/e", "d/b0", "d/b.yaml", "d/bc", "d/c", "e",
        ]
        .into_iter()
        .map(|p| (PathBuf::from(p), 0))
        .collect();
        let taken: Vec<PathBuf> = take_under(&mut m, Path::new("d/b")).into_keys().collect();
        assert_eq!(
            taken,
            ["d/b", "d/b/c", "d/b/c/e"].map(PathBuf::from).to_vec()
        );
        let left: Vec<&str> = m.keys().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(left, ["d/a", "d/b.yaml", "d/b0", "d/bc", "d/c", "e"]);
        // A file: itself only; nothing there: nothing.
        assert_eq!(take_under(&mut m, Path::new("d/bc")).len(), 1);
        assert!(take_under(&mut m, Path::new("d/x")).is_empty());
    }
}
