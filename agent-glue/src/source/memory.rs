//! An in-memory store for tests: objects applied and deleted by hand, status written into
//! the objects (as an API server would), a new snapshot after every change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crds::manifest::split_documents;
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

use super::status::{StatusError, StatusPayload, StatusSink, StatusUpdate};
use super::{Kind, Object, ObjectKey, Snapshot, SnapshotBuilder, Source, parse_document};

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<(Kind, ObjectKey), Object>,
    revision: u64,
    /// Creation times handed out, one second apart from 2024-01-01, so that tests see a
    /// stable "older first" order.
    clock: i64,
    write_failure: Option<String>,
    writes: u64,
}

/// The store. Cloning gives another handle to the same store.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Arc::new(Snapshot {
            synced: true,
            ..Snapshot::default()
        }));
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner::default())),
            tx: Arc::new(tx),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces an object. Like an API server: the status of an existing object is
    /// kept (status is written through the sink), a creation time is given when missing.
    pub fn apply(&self, mut obj: Object) {
        let mut inner = self.lock();
        let id = (obj.kind(), obj.key());
        if let Some(old) = inner.objects.get(&id) {
            let created = old.meta().creation_timestamp.clone();
            let status = status_of(old);
            obj.meta_mut().creation_timestamp = created;
            if let Some(st) = status {
                obj.set_status(&st);
            }
        } else if obj.meta().creation_timestamp.is_none() {
            inner.clock += 1;
            let t = Timestamp::from_second(1_704_067_200 + inner.clock).unwrap_or_default();
            obj.meta_mut().creation_timestamp = Some(Time(t));
        }
        inner.objects.insert(id, obj);
        self.publish(inner);
    }

    /// Applies every document of a YAML text; returns the problems (documents are applied
    /// independently).
    pub fn apply_yaml(&self, text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for doc in split_documents(text) {
            match parse_document(&doc) {
                Ok(Some(obj)) => self.apply(obj),
                Ok(None) => {}
                Err(e) => problems.push(e),
            }
        }
        problems
    }

    /// Deletes an object (and with it its status).
    pub fn delete(&self, kind: Kind, key: &ObjectKey) {
        let mut inner = self.lock();
        inner.objects.remove(&(kind, key.clone()));
        self.publish(inner);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// Makes every status write fail with `message` (disk full, API server down), or
    /// succeed again with `None`.
    pub fn fail_writes(&self, message: Option<&str>) {
        self.lock().write_failure = message.map(String::from);
    }

    /// Status writes that succeeded so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    fn publish(&self, mut inner: MutexGuard<'_, Inner>) {
        inner.revision += 1;
        let mut b = SnapshotBuilder::new();
        for obj in inner.objects.values() {
            b.add(obj.clone(), "memory");
        }
        let snap = Arc::new(b.build(inner.revision));
        drop(inner);
        self.tx.send_replace(snap);
    }
}

fn status_of(obj: &Object) -> Option<StatusPayload> {
    Some(match obj {
        Object::Service(s) => StatusPayload::Service(s.status.clone()),
        Object::LbIpPool(p) => StatusPayload::Conditions(p.status.clone().map(|s| s.conditions)),
        Object::BgpClusterConfig(p) => {
            StatusPayload::Conditions(p.status.clone().map(|s| s.conditions))
        }
        Object::BgpPeerConfig(p) => {
            StatusPayload::Conditions(p.status.clone().map(|s| s.conditions))
        }
        Object::L2AnnouncementPolicy(p) => {
            StatusPayload::Conditions(p.status.clone().map(|s| s.conditions))
        }
        Object::BgpNodeConfig(n) => StatusPayload::BgpNodeConfig(Box::new(n.clone())),
        _ => return None,
    })
}

impl Source for MemoryStore {
    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}

impl StatusSink for MemoryStore {
    fn write<'a>(&'a self, update: &'a StatusUpdate) -> BoxFuture<'a, Result<(), StatusError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            if let Some(msg) = &inner.write_failure {
                return Err(StatusError::Io {
                    path: "memory".into(),
                    source: std::io::Error::other(msg.clone()),
                });
            }
            let id = (update.kind(), update.key());
            match (update, update.payload()) {
                (
                    StatusUpdate::BgpNodeConfig {
                        object: Some(o), ..
                    },
                    _,
                ) => {
                    inner.objects.insert(id, Object::BgpNodeConfig(o.clone()));
                }
                (StatusUpdate::BgpNodeConfig { object: None, .. }, _) => {
                    inner.objects.remove(&id);
                }
                (StatusUpdate::Service { .. }, None) => {
                    if let Some(o) = inner.objects.get_mut(&id) {
                        o.set_status(&StatusPayload::Service(None));
                    }
                }
                (StatusUpdate::Conditions { .. }, None) => {
                    if let Some(o) = inner.objects.get_mut(&id) {
                        o.set_status(&StatusPayload::Conditions(None));
                    }
                }
                (_, Some(p)) => {
                    // Status of an object that does not exist is dropped, as an API server
                    // answers 404.
                    if let Some(o) = inner.objects.get_mut(&id) {
                        o.set_status(&p);
                    }
                }
            }
            inner.writes += 1;
            self.publish(inner);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

    const SVC: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer}\n";

    #[tokio::test]
    async fn applied_objects_appear_in_the_next_snapshot_with_a_creation_time() {
        let store = MemoryStore::new();
        let mut rx = store.subscribe();
        assert!(store.apply_yaml(SVC).is_empty());
        rx.changed().await.unwrap();
        let snap = rx.borrow().clone();
        let svc = &snap.services[&ObjectKey::namespaced("default", "web")];
        assert!(svc.metadata.creation_timestamp.is_some());
        assert!(snap.synced);
    }

    #[tokio::test]
    async fn status_survives_a_re_apply_of_the_spec_like_an_api_server() {
        let store = MemoryStore::new();
        store.apply_yaml(SVC);
        let key = ObjectKey::namespaced("default", "web");
        let meta = store.snapshot().services[&key].metadata.clone();
        let status = ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some("10.0.0.1".into()),
                    ..Default::default()
                }]),
            }),
            conditions: None,
        };
        store
            .write(&StatusUpdate::Service {
                meta: meta.clone(),
                status: Some(status.clone()),
            })
            .await
            .unwrap();
        store.apply_yaml(SVC);
        let snap = store.snapshot();
        assert_eq!(snap.services[&key].status.as_ref(), Some(&status));
        assert_eq!(
            snap.services[&key].metadata.creation_timestamp,
            meta.creation_timestamp
        );
        store.delete(Kind::Service, &key);
        assert!(store.snapshot().services.is_empty());
    }

    #[tokio::test]
    async fn failing_writes_report_an_error_and_change_nothing() {
        let store = MemoryStore::new();
        store.apply_yaml(SVC);
        store.fail_writes(Some("disk full"));
        let meta = store
            .snapshot()
            .services
            .values()
            .next()
            .unwrap()
            .metadata
            .clone();
        let err = store
            .write(&StatusUpdate::Service {
                meta,
                status: Some(ServiceStatus::default()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "memory: disk full");
        assert_eq!(store.writes(), 0);
        assert!(
            store
                .snapshot()
                .services
                .values()
                .next()
                .unwrap()
                .status
                .is_none()
        );
    }
}
