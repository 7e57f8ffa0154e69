//! [`KubeSource`]: kube-runtime watchers over every kind lbspeaker reads, publishing the
//! same [`Snapshot`]s as the directory source, so the reconcilers are the same code.
//!
//! - One watcher per kind (cluster-wide; an agent watches only its own Node,
//!   CiliumBGPNodeConfig and CiliumBGPNodeConfigOverride, by field selector), plus one per
//!   Secret that a CiliumBGPPeerConfig's `authSecretRef` names, only in the BGP secrets
//!   namespace: no other Secret is ever read.
//! - A watcher's list is applied only when it is complete (`InitDone`), so a re-list (after a
//!   410, a dropped watch or an outage) swaps the old objects for the new at once and never
//!   shows a half-empty world. A re-list that finds what was there publishes nothing.
//! - During an outage the watchers retry with backoff (0.1 s doubling to 5 s) and the last
//!   snapshot stays in force: the reconcilers see no change, so BGP sessions, routes and the
//!   dataplane stay as they are.
//! - Each object is converted and validated on its own ([`super::convert`]); an invalid one
//!   is reported in `Snapshot::problems` and its last valid version stays in force.
//! - The first snapshot is published once every watcher has listed (`synced`), so LB-IPAM
//!   never allocates from a partial view; later ones after a short debounce.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::Role;
use super::convert::{api_resource, to_object};
use crate::source::{Kind, Object, ObjectKey, Problem, Snapshot, Source};

/// What a source watches.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Whose source (for `lbspeaker status` and the logs).
    pub role: Role,
    /// An agent's node: only its Node, CiliumBGPNodeConfig and override are watched.
    pub node: Option<String>,
    /// The kinds watched (others stay empty in the snapshots).
    pub kinds: BTreeSet<Kind>,
    /// Where `authSecretRef` Secrets are read.
    pub secrets_namespace: String,
    /// How long to wait for more changes before publishing a snapshot.
    pub debounce: Duration,
}

impl SourceOptions {
    /// An agent's view: everything its reconcilers read, its own node only.
    pub fn agent(node: &str, secrets_namespace: &str) -> SourceOptions {
        SourceOptions {
            role: Role::Agent,
            node: Some(node.to_owned()),
            kinds: Kind::ALL.into_iter().collect(),
            secrets_namespace: secrets_namespace.to_owned(),
            debounce: Duration::from_millis(50),
        }
    }

    /// The operator's view: what LB-IPAM, the BGP conditions and the node configs read (no
    /// EndpointSlices, advertisements or pod IP pools).
    pub fn operator(secrets_namespace: &str) -> SourceOptions {
        SourceOptions {
            role: Role::Operator,
            node: None,
            kinds: [
                Kind::BgpClusterConfig,
                Kind::BgpPeerConfig,
                Kind::BgpNodeConfig,
                Kind::BgpNodeConfigOverride,
                Kind::LbIpPool,
                Kind::Service,
                Kind::Node,
                Kind::Secret,
            ]
            .into_iter()
            .collect(),
            secrets_namespace: secrets_namespace.to_owned(),
            debounce: Duration::from_millis(50),
        }
    }
}

/// One watcher's identity: a kind, or one Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum WatchId {
    Kind(Kind),
    Secret(String),
}

#[derive(Debug, Default)]
struct WatchState {
    /// Listed at least once.
    synced: bool,
    /// A list in progress: what it has delivered so far.
    buffer: Option<Vec<Entry>>,
    buffer_problems: BTreeMap<ObjectKey, String>,
    /// Objects that did not convert.
    problems: BTreeMap<ObjectKey, String>,
    /// Why the watch cannot run (its resource is not served), if so.
    missing: Option<String>,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, one per listed object
enum Entry {
    Valid(Object),
    /// Did not convert: keep the version in force, if any.
    Invalid(ObjectKey),
}

#[derive(Debug, Default)]
struct State {
    current: Snapshot,
    watches: BTreeMap<WatchId, WatchState>,
    secret_tasks: BTreeMap<String, JoinHandle<()>>,
    dirty: bool,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
    secrets_namespace: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, t) in std::mem::take(&mut st.secret_tasks) {
            t.abort();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies `$body` to the map of `$kind` in `$snap` (each kind has its own element type).
macro_rules! with_map {
    ($snap:expr, $kind:expr, $m:ident => $body:expr) => {
        match $kind {
            Kind::BgpClusterConfig => {
                let $m = &mut $snap.bgp_cluster_configs;
                $body
            }
            Kind::BgpPeerConfig => {
                let $m = &mut $snap.bgp_peer_configs;
                $body
            }
            Kind::BgpAdvertisement => {
                let $m = &mut $snap.bgp_advertisements;
                $body
            }
            Kind::BgpNodeConfig => {
                let $m = &mut $snap.bgp_node_configs;
                $body
            }
            Kind::BgpNodeConfigOverride => {
                let $m = &mut $snap.bgp_node_config_overrides;
                $body
            }
            Kind::LbIpPool => {
                let $m = &mut $snap.lb_ip_pools;
                $body
            }
            Kind::L2AnnouncementPolicy => {
                let $m = &mut $snap.l2_announcement_policies;
                $body
            }
            Kind::PodIpPool => {
                let $m = &mut $snap.pod_ip_pools;
                $body
            }
            Kind::Service => {
                let $m = &mut $snap.services;
                $body
            }
            Kind::EndpointSlice => {
                let $m = &mut $snap.endpoint_slices;
                $body
            }
            Kind::Node => {
                let $m = &mut $snap.nodes;
                $body
            }
            Kind::Secret => {
                let $m = &mut $snap.secrets;
                $body
            }
        }
    };
}

/// The stored resourceVersion of an object (`Some(None)`: stored without one).
fn version_of(snap: &mut Snapshot, kind: Kind, key: &ObjectKey) -> Option<Option<String>> {
    with_map!(snap, kind, m => m.get(key).map(|o| o.metadata.resource_version.clone()))
}

fn remove(snap: &mut Snapshot, kind: Kind, key: &ObjectKey) -> bool {
    with_map!(snap, kind, m => m.remove(key).is_some())
}

fn keys(snap: &mut Snapshot, kind: Kind) -> Vec<ObjectKey> {
    with_map!(snap, kind, m => m.keys().cloned().collect())
}

fn put(snap: &mut Snapshot, obj: Object) {
    let key = obj.key();
    match obj {
        Object::BgpClusterConfig(o) => drop(snap.bgp_cluster_configs.insert(key, Arc::new(o))),
        Object::BgpPeerConfig(o) => drop(snap.bgp_peer_configs.insert(key, Arc::new(o))),
        Object::BgpAdvertisement(o) => drop(snap.bgp_advertisements.insert(key, Arc::new(o))),
        Object::BgpNodeConfig(o) => drop(snap.bgp_node_configs.insert(key, Arc::new(o))),
        Object::BgpNodeConfigOverride(o) => {
            drop(snap.bgp_node_config_overrides.insert(key, Arc::new(o)))
        }
        Object::LbIpPool(o) => drop(snap.lb_ip_pools.insert(key, Arc::new(o))),
        Object::L2AnnouncementPolicy(o) => {
            drop(snap.l2_announcement_policies.insert(key, Arc::new(o)))
        }
        Object::PodIpPool(o) => drop(snap.pod_ip_pools.insert(key, Arc::new(o))),
        Object::Service(o) => drop(snap.services.insert(key, Arc::new(o))),
        Object::EndpointSlice(o) => drop(snap.endpoint_slices.insert(key, Arc::new(o))),
        Object::Node(o) => drop(snap.nodes.insert(key, Arc::new(o))),
        Object::Secret(o) => drop(snap.secrets.insert(key, Arc::new(o))),
    }
}

fn key_of(kind: Kind, obj: &DynamicObject) -> ObjectKey {
    let name = obj.metadata.name.clone().unwrap_or_default();
    if kind.namespaced() {
        ObjectKey::namespaced(
            obj.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name,
        )
    } else {
        ObjectKey::cluster(name)
    }
}

fn convert(kind: Kind, obj: DynamicObject) -> (Entry, Option<(ObjectKey, String)>) {
    let key = key_of(kind, &obj);
    match to_object(kind, obj) {
        Ok(o) => (Entry::Valid(o), None),
        Err(e) => (Entry::Invalid(key.clone()), Some((key, e))),
    }
}

impl State {
    fn watch(&mut self, id: &WatchId) -> &mut WatchState {
        self.watches.entry(id.clone()).or_default()
    }

    /// The keys a watch is responsible for in the current snapshot.
    fn covered(&mut self, id: &WatchId, kind: Kind, secrets_namespace: &str) -> Vec<ObjectKey> {
        match id {
            WatchId::Kind(_) => keys(&mut self.current, kind),
            WatchId::Secret(name) => {
                let k = ObjectKey::namespaced(secrets_namespace, name);
                if version_of(&mut self.current, kind, &k).is_some() {
                    vec![k]
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn apply(&mut self, id: &WatchId, kind: Kind, ev: watcher::Event<DynamicObject>, ns: &str) {
        match ev {
            watcher::Event::Init => {
                let w = self.watch(id);
                w.buffer = Some(Vec::new());
                w.buffer_problems.clear();
            }
            watcher::Event::InitApply(obj) => {
                let (entry, problem) = convert(kind, obj);
                let w = self.watch(id);
                if let Some((k, e)) = problem {
                    w.buffer_problems.insert(k, e);
                }
                w.buffer.get_or_insert_with(Vec::new).push(entry);
            }
            watcher::Event::InitDone => self.swap(id, kind, ns),
            watcher::Event::Apply(obj) => {
                let (entry, problem) = convert(kind, obj);
                match entry {
                    Entry::Valid(o) => {
                        let key = o.key();
                        let rv = o.meta().resource_version.clone();
                        if version_of(&mut self.current, kind, &key) != Some(rv) {
                            put(&mut self.current, o);
                            self.dirty = true;
                        }
                        if self.watch(id).problems.remove(&key).is_some() {
                            self.dirty = true;
                        }
                    }
                    Entry::Invalid(_) => {
                        if let Some((k, e)) = problem {
                            let w = self.watch(id);
                            if w.problems.get(&k) != Some(&e) {
                                tracing::warn!(object = %k, problem = %e, "invalid object from the API server: keeping the previous version");
                                w.problems.insert(k, e);
                                self.dirty = true;
                            }
                        }
                    }
                }
            }
            watcher::Event::Delete(obj) => {
                let key = key_of(kind, &obj);
                let removed = remove(&mut self.current, kind, &key);
                let had_problem = self.watch(id).problems.remove(&key).is_some();
                self.dirty |= removed || had_problem;
            }
        }
    }

    /// A complete list: replace what the watch covers, if anything differs.
    fn swap(&mut self, id: &WatchId, kind: Kind, ns: &str) {
        let w = self.watch(id);
        let entries = w.buffer.take().unwrap_or_default();
        let problems = std::mem::take(&mut w.buffer_problems);
        w.synced = true;
        w.missing = None;
        if w.problems != problems {
            w.problems = problems;
            self.dirty = true;
        }
        let old: BTreeMap<ObjectKey, Option<String>> = self
            .covered(id, kind, ns)
            .into_iter()
            .filter_map(|k| version_of(&mut self.current, kind, &k).map(|v| (k, v)))
            .collect();
        let mut new: BTreeMap<ObjectKey, Option<String>> = BTreeMap::new();
        let mut objects = Vec::new();
        for e in entries {
            match e {
                Entry::Valid(o) => {
                    new.insert(o.key(), o.meta().resource_version.clone());
                    objects.push(o);
                }
                Entry::Invalid(k) => {
                    if let Some(v) = old.get(&k) {
                        new.insert(k, v.clone());
                    }
                }
            }
        }
        if old == new {
            return;
        }
        for k in old.keys().filter(|k| !new.contains_key(*k)) {
            remove(&mut self.current, kind, k);
        }
        for o in objects {
            if old.get(&o.key()) != Some(&o.meta().resource_version) {
                put(&mut self.current, o);
            }
        }
        self.dirty = true;
    }
}

/// Kubernetes as a [`Source`]. Dropping it stops every watcher.
pub struct KubeSource {
    rx: watch::Receiver<Arc<Snapshot>>,
    describe: String,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("describe", &self.describe)
            .finish()
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KubeSource {
    /// Starts the watchers (inside tokio). The first snapshot comes once all have listed.
    pub fn start(client: kube::Client, opts: SourceOptions) -> KubeSource {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            secrets_namespace: opts.secrets_namespace.clone(),
        });
        let mut tasks = Vec::new();
        for kind in opts.kinds.iter().copied().filter(|k| *k != Kind::Secret) {
            let ar = api_resource(kind);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let mut config = watcher::Config::default();
            if let (Some(node), Kind::Node | Kind::BgpNodeConfig | Kind::BgpNodeConfigOverride) =
                (&opts.node, kind)
            {
                config = config.fields(&format!("metadata.name={node}"));
            }
            let id = WatchId::Kind(kind);
            shared.lock().watch(&id);
            tasks.push(tokio::spawn(run_watch(
                shared.clone(),
                id,
                kind,
                api,
                config,
            )));
        }
        tasks.push(tokio::spawn(assemble(
            shared,
            tx,
            client,
            opts.kinds.contains(&Kind::Secret),
            opts.debounce,
        )));
        let describe = match &opts.node {
            Some(n) => format!("kubernetes ({}, node {n})", opts.role.name()),
            None => format!("kubernetes ({})", opts.role.name()),
        };
        KubeSource {
            rx,
            describe,
            tasks,
        }
    }
}

impl Source for KubeSource {
    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// One watcher: events into the shared state, errors retried with backoff.
async fn run_watch(
    shared: Arc<Shared>,
    id: WatchId,
    kind: Kind,
    api: Api<DynamicObject>,
    config: watcher::Config,
) {
    let mut stream = watcher::watcher(api, config).boxed();
    let mut failures = 0u32;
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                if failures > 0 {
                    tracing::info!(watch = ?id, "watching again after {failures} failures");
                }
                failures = 0;
                let done = matches!(
                    ev,
                    watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)
                );
                shared
                    .lock()
                    .apply(&id, kind, ev, &shared.secrets_namespace);
                if done {
                    shared.notify.notify_one();
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(watch = ?id, failures, error = %e, "watching the API server failed; retrying");
                } else {
                    tracing::debug!(watch = ?id, failures, error = %e, "watch retry failed");
                }
                if let watcher::Error::InitialListFailed(kube::Error::Api(s)) = &e
                    && s.code == 404
                    && matches!(id, WatchId::Kind(_))
                {
                    let why = format!(
                        "{kind} ({}) is not served by the API server: is its CustomResourceDefinition installed?",
                        kind.plural()
                    );
                    let mut st = shared.lock();
                    if st.watch(&id).missing.as_ref() != Some(&why) {
                        // Served nothing: an empty, complete list, and the reason.
                        st.watch(&id).buffer = Some(Vec::new());
                        st.swap(&id, kind, &shared.secrets_namespace);
                        st.watch(&id).missing = Some(why);
                        st.dirty = true;
                        drop(st);
                        shared.notify.notify_one();
                    }
                }
                tokio::time::sleep(super::backoff(failures, Duration::from_secs(5))).await;
            }
        }
    }
}

/// The Secrets the peer configs reference.
fn referenced_secrets(snap: &Snapshot) -> BTreeSet<String> {
    snap.bgp_peer_configs
        .values()
        .filter_map(|p| p.spec.auth_secret_ref.clone())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Starts and stops the per-Secret watchers to match the references.
fn sync_secret_watches(shared: &Arc<Shared>, st: &mut State, client: &kube::Client) {
    let want = referenced_secrets(&st.current);
    let have: BTreeSet<String> = st.secret_tasks.keys().cloned().collect();
    for gone in have.difference(&want) {
        if let Some(t) = st.secret_tasks.remove(gone) {
            t.abort();
        }
        st.watches.remove(&WatchId::Secret(gone.clone()));
        let k = ObjectKey::namespaced(&shared.secrets_namespace, gone);
        if remove(&mut st.current, Kind::Secret, &k) {
            st.dirty = true;
        }
    }
    for new in want.difference(&have) {
        let id = WatchId::Secret(new.clone());
        st.watch(&id);
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &shared.secrets_namespace,
            &api_resource(Kind::Secret),
        );
        let config = watcher::Config::default().fields(&format!("metadata.name={new}"));
        let task = tokio::spawn(run_watch(shared.clone(), id, Kind::Secret, api, config));
        st.secret_tasks.insert(new.clone(), task);
    }
}

/// Publishes a snapshot after changes settle, once everything has been listed.
async fn assemble(
    shared: Arc<Shared>,
    tx: watch::Sender<Arc<Snapshot>>,
    client: kube::Client,
    secrets: bool,
    debounce: Duration,
) {
    let mut revision = 0u64;
    let mut published = false;
    loop {
        shared.notify.notified().await;
        tokio::time::sleep(debounce).await;
        let snap = {
            let mut st = shared.lock();
            if secrets
                && st
                    .watches
                    .get(&WatchId::Kind(Kind::BgpPeerConfig))
                    .is_some_and(|w| w.synced)
            {
                sync_secret_watches(&shared, &mut st, &client);
            }
            let synced = st.watches.values().all(|w| w.synced);
            if (!published && !synced) || (published && !st.dirty) {
                continue;
            }
            st.dirty = false;
            revision += 1;
            let mut snap = st.current.clone();
            snap.revision = revision;
            snap.synced = true;
            snap.problems = st
                .watches
                .values()
                .flat_map(|w| {
                    w.missing
                        .iter()
                        .cloned()
                        .chain(w.problems.values().cloned())
                })
                .map(|message| Problem {
                    origin: "kubernetes".into(),
                    message,
                })
                .collect();
            snap
        };
        if !published {
            tracing::info!(objects = snap.len(), "the API server's objects are listed");
        }
        published = true;
        tx.send_replace(Arc::new(snap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "spec": {"type": "LoadBalancer"}
        }))
        .unwrap()
    }

    fn bad_peer(rv: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumBGPPeerConfig",
            "metadata": {"name": "p", "resourceVersion": rv},
            "spec": {"timers": {"holdTimeSeconds": 9}}
        }))
        .unwrap()
    }

    fn good_peer(rv: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumBGPPeerConfig",
            "metadata": {"name": "p", "resourceVersion": rv},
            "spec": {"timers": {"holdTimeSeconds": 90}}
        }))
        .unwrap()
    }

    const SVC: WatchId = WatchId::Kind(Kind::Service);

    fn list(st: &mut State, id: &WatchId, kind: Kind, objs: Vec<DynamicObject>) {
        st.apply(id, kind, watcher::Event::Init, "kube-system");
        for o in objs {
            st.apply(id, kind, watcher::Event::InitApply(o), "kube-system");
        }
        st.apply(id, kind, watcher::Event::InitDone, "kube-system");
    }

    #[test]
    fn a_relist_that_finds_the_same_objects_changes_nothing() {
        let mut st = State::default();
        list(
            &mut st,
            &SVC,
            Kind::Service,
            vec![svc("a", "1"), svc("b", "2")],
        );
        assert!(st.dirty && st.current.services.len() == 2);
        st.dirty = false;
        let before = st.current.services[&ObjectKey::namespaced("default", "a")].clone();
        list(
            &mut st,
            &SVC,
            Kind::Service,
            vec![svc("a", "1"), svc("b", "2")],
        );
        assert!(!st.dirty);
        assert!(Arc::ptr_eq(
            &before,
            &st.current.services[&ObjectKey::namespaced("default", "a")]
        ));
        // The same event again (a watch resumed from an older version) is no change either.
        st.apply(
            &SVC,
            Kind::Service,
            watcher::Event::Apply(svc("a", "1")),
            "",
        );
        assert!(!st.dirty);
    }

    #[test]
    fn a_list_replaces_the_old_objects_only_when_it_is_complete() {
        let mut st = State::default();
        list(
            &mut st,
            &SVC,
            Kind::Service,
            vec![svc("a", "1"), svc("b", "2")],
        );
        st.apply(&SVC, Kind::Service, watcher::Event::Init, "");
        st.apply(
            &SVC,
            Kind::Service,
            watcher::Event::InitApply(svc("c", "5")),
            "",
        );
        assert_eq!(st.current.services.len(), 2, "nothing changes mid-list");
        st.apply(&SVC, Kind::Service, watcher::Event::InitDone, "");
        let names: Vec<_> = st.current.services.keys().map(|k| k.name.clone()).collect();
        assert_eq!(names, ["c"], "a and b were deleted while nobody watched");
    }

    #[test]
    fn an_invalid_update_keeps_the_previous_version_and_is_reported() {
        let id = WatchId::Kind(Kind::BgpPeerConfig);
        let mut st = State::default();
        list(&mut st, &id, Kind::BgpPeerConfig, vec![good_peer("1")]);
        st.dirty = false;
        st.apply(
            &id,
            Kind::BgpPeerConfig,
            watcher::Event::Apply(bad_peer("2")),
            "",
        );
        assert!(st.dirty);
        let p = &st.current.bgp_peer_configs[&ObjectKey::cluster("p")];
        assert_eq!(p.metadata.resource_version.as_deref(), Some("1"));
        assert_eq!(st.watches[&id].problems.len(), 1);
        // A re-list that still finds it invalid keeps it too; a fixed one clears the problem.
        st.dirty = false;
        list(&mut st, &id, Kind::BgpPeerConfig, vec![bad_peer("2")]);
        assert!(!st.dirty && st.current.bgp_peer_configs.len() == 1);
        st.apply(
            &id,
            Kind::BgpPeerConfig,
            watcher::Event::Apply(good_peer("3")),
            "",
        );
        assert!(st.watches[&id].problems.is_empty());
        let p = &st.current.bgp_peer_configs[&ObjectKey::cluster("p")];
        assert_eq!(p.metadata.resource_version.as_deref(), Some("3"));
    }

    #[test]
    fn a_secret_watch_covers_only_its_secret() {
        let secret = |name: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "kube-system", "resourceVersion": "1"},
                "data": {"password": "eA=="}
            }))
            .unwrap()
        };
        let mut st = State::default();
        let a = WatchId::Secret("a".into());
        let b = WatchId::Secret("b".into());
        list(&mut st, &a, Kind::Secret, vec![secret("a")]);
        list(&mut st, &b, Kind::Secret, vec![secret("b")]);
        list(&mut st, &a, Kind::Secret, vec![]);
        let names: Vec<_> = st.current.secrets.keys().map(|k| k.name.clone()).collect();
        assert_eq!(names, ["b"]);
    }
}
