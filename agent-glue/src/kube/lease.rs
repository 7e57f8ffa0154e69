//! [`KubeLeaseBackend`]: `l2announce`'s [`LeaseBackend`] over `coordination.k8s.io/v1`
//! Leases, for L2 announcements (one Lease per announced address, Cilium's names) and the
//! operator's leader election.
//!
//! - **Reads cost nothing.** One watcher lists and watches the Leases of the lease namespace
//!   and keeps them in memory; `get` and `list` answer from it. Elections look at their leases
//!   every retry period, so with a GET per look a node would send `leases / retry period`
//!   requests per second just to learn nothing changed.
//! - **Writes are conditional.** `create` is a POST (409 → [`LeaseError::Conflict`]);
//!   `update` a PUT carrying the `metadata.resourceVersion` it read (409 → `Conflict`, 404 →
//!   `NotFound`); `delete` a DELETE with a resourceVersion precondition. Two candidates that
//!   read the same version can never both win.
//! - **Our own writes are seen at once.** The watcher may not have delivered a write yet when
//!   the election looks again; the backend remembers what it wrote and answers with that until
//!   the watcher shows that version or a later one (a renewal must not be refused as a
//!   conflict because the cache lagged).
//! - `leaseDurationSeconds` is rounded up to whole seconds; times are `MicroTime`s.
//!
//! Until the first list is complete `get` fails (rather than say "no lease" and make every
//! node try to create it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease as KLease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::watcher;
use l2announce::lease::LEASE_PREFIX;
use l2announce::{Lease, LeaseBackend, LeaseError, LeaseName, LeaseRecord, ResourceVersion};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Label on the Leases lbspeaker creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "lbspeaker");

/// What we wrote, and every version it replaced (`None`: no lease), which the cache may
/// still show while the watcher lags.
#[derive(Debug, Clone)]
struct Written {
    replaced: BTreeSet<Option<String>>,
    lease: Option<KLease>,
}

#[derive(Debug, Default)]
struct Cache {
    leases: BTreeMap<String, KLease>,
    buffer: Option<BTreeMap<String, KLease>>,
    written: BTreeMap<String, Written>,
}

impl Cache {
    /// What a reader should see for `name`: our write, until the watcher catches up with it.
    fn view(&mut self, name: &str) -> Option<KLease> {
        let cached = self.leases.get(name);
        if let Some(w) = self.written.get(name) {
            let cached_rv = cached.and_then(|l| l.metadata.resource_version.clone());
            if w.replaced.contains(&cached_rv) {
                return w.lease.clone();
            }
            self.written.remove(name);
        }
        self.leases.get(name).cloned()
    }
}

struct Inner {
    api: Api<KLease>,
    namespace: String,
    field_manager: String,
    cache: Arc<Mutex<Cache>>,
    synced: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Leases in one namespace of an API server. Clones share the watcher and the cache.
#[derive(Clone)]
pub struct KubeLeaseBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KubeLeaseBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLeaseBackend")
            .field("namespace", &self.inner.namespace)
            .finish()
    }
}

impl KubeLeaseBackend {
    /// Starts watching the Leases of `namespace` (inside tokio); writes carry `field_manager`.
    pub fn start(client: kube::Client, namespace: &str, field_manager: &str) -> KubeLeaseBackend {
        let api: Api<KLease> = Api::namespaced(client, namespace);
        let (synced_tx, synced) = watch::channel(false);
        let cache = Arc::new(Mutex::new(Cache::default()));
        let stream = watcher::watcher(api.clone(), watcher::Config::default());
        let (c, ns) = (cache.clone(), namespace.to_owned());
        let task = tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut failures = 0u32;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => {
                        failures = 0;
                        if c.lock().unwrap_or_else(|e| e.into_inner()).apply(ev) {
                            synced_tx.send_replace(true);
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(20) {
                            tracing::warn!(namespace = %ns, failures, error = %e, "watching Leases failed; retrying");
                        }
                        tokio::time::sleep(super::backoff(failures, Duration::from_secs(5))).await;
                    }
                }
            }
        });
        KubeLeaseBackend {
            inner: Arc::new(Inner {
                api,
                namespace: namespace.to_owned(),
                field_manager: field_manager.to_owned(),
                cache,
                synced,
                task,
            }),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Waits until the Leases have been listed once (at most `timeout`).
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.synced.clone();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.inner.cache()
    }

    async fn ready(&self) -> Result<(), LeaseError> {
        if self.wait_synced(Duration::from_secs(2)).await {
            Ok(())
        } else {
            Err(LeaseError::Backend(format!(
                "the Leases of namespace {} are not listed yet",
                self.inner.namespace
            )))
        }
    }

    fn remember(&self, name: &str, before: Option<String>, lease: Option<KLease>) {
        let mut c = self.cache();
        let mut replaced = c
            .written
            .remove(name)
            .map(|w| w.replaced)
            .unwrap_or_default();
        replaced.insert(before);
        c.written
            .insert(name.to_owned(), Written { replaced, lease });
    }

    /// The metadata a write starts from: the stored object's (labels, annotations and owners
    /// of others are kept), or a fresh one of ours.
    fn base(&self, name: &LeaseName) -> ObjectMeta {
        let mut c = self.cache();
        match c.view(name.as_str()) {
            Some(l) => ObjectMeta {
                managed_fields: None,
                ..l.metadata
            },
            None => ObjectMeta {
                name: Some(name.as_str().to_owned()),
                namespace: Some(self.inner.namespace.clone()),
                labels: Some([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())].into()),
                ..ObjectMeta::default()
            },
        }
    }

    fn params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.inner.field_manager.clone()),
            ..PostParams::default()
        }
    }
}

impl Inner {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Cache {
    /// Applies a watcher event; `true` once a list is complete.
    fn apply(&mut self, ev: watcher::Event<KLease>) -> bool {
        let name = |l: &KLease| l.metadata.name.clone().unwrap_or_default();
        match ev {
            watcher::Event::Init => self.buffer = Some(BTreeMap::new()),
            watcher::Event::InitApply(l) => {
                self.buffer
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&l), l);
            }
            watcher::Event::InitDone => {
                self.leases = self.buffer.take().unwrap_or_default();
                return true;
            }
            watcher::Event::Apply(l) => {
                self.leases.insert(name(&l), l);
            }
            watcher::Event::Delete(l) => {
                self.leases.remove(&name(&l));
            }
        }
        false
    }
}

fn micro(t: Option<SystemTime>) -> Option<MicroTime> {
    let t = t?;
    Timestamp::try_from(l2announce::election::micros(t))
        .ok()
        .map(MicroTime)
}

fn system(t: Option<&MicroTime>) -> Option<SystemTime> {
    t.map(|m| SystemTime::from(m.0))
}

/// A record as a Lease spec.
pub fn to_spec(r: &LeaseRecord) -> LeaseSpec {
    let secs = r.duration.as_secs() + u64::from(r.duration.subsec_nanos() > 0);
    LeaseSpec {
        holder_identity: r.holder.clone(),
        lease_duration_seconds: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
        acquire_time: micro(r.acquire_time),
        renew_time: micro(r.renew_time),
        lease_transitions: Some(i32::try_from(r.transitions).unwrap_or(i32::MAX)),
        ..LeaseSpec::default()
    }
}

/// A stored Lease as `l2announce` sees it; `None` when its name is not a valid lease name.
pub fn from_lease(l: &KLease) -> Option<Lease> {
    let name = LeaseName::new(l.metadata.name.clone()?).ok()?;
    let spec = l.spec.clone().unwrap_or_default();
    Some(Lease {
        name,
        record: LeaseRecord {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            ),
            acquire_time: system(spec.acquire_time.as_ref()),
            renew_time: system(spec.renew_time.as_ref()),
            transitions: u32::try_from(spec.lease_transitions.unwrap_or(0)).unwrap_or(0),
        },
        resource_version: ResourceVersion(l.metadata.resource_version.clone().unwrap_or_default()),
    })
}

fn backend_error(what: &str, name: &LeaseName, e: kube::Error) -> LeaseError {
    LeaseError::Backend(format!("{what} Lease {name}: {e}"))
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl LeaseBackend for KubeLeaseBackend {
    async fn get(&self, name: &LeaseName) -> Result<Option<Lease>, LeaseError> {
        self.ready().await?;
        Ok(self
            .cache()
            .view(name.as_str())
            .as_ref()
            .and_then(from_lease))
    }

    async fn create(&self, name: &LeaseName, record: &LeaseRecord) -> Result<Lease, LeaseError> {
        let before = self
            .cache()
            .view(name.as_str())
            .and_then(|l| l.metadata.resource_version);
        let lease = KLease {
            metadata: ObjectMeta {
                resource_version: None,
                ..self.base(name)
            },
            spec: Some(to_spec(record)),
        };
        match self.inner.api.create(&self.params(), &lease).await {
            Ok(l) => {
                self.remember(name.as_str(), before, Some(l.clone()));
                from_lease(&l).ok_or_else(|| LeaseError::Backend(format!("Lease {name}: no name")))
            }
            Err(e) if code(&e) == Some(409) => Err(LeaseError::Conflict { name: name.clone() }),
            Err(e) => Err(backend_error("creating", name, e)),
        }
    }

    async fn update(
        &self,
        name: &LeaseName,
        record: &LeaseRecord,
        version: &ResourceVersion,
    ) -> Result<Lease, LeaseError> {
        let lease = KLease {
            metadata: ObjectMeta {
                resource_version: Some(version.0.clone()),
                ..self.base(name)
            },
            spec: Some(to_spec(record)),
        };
        match self
            .inner
            .api
            .replace(name.as_str(), &self.params(), &lease)
            .await
        {
            Ok(l) => {
                self.remember(name.as_str(), Some(version.0.clone()), Some(l.clone()));
                from_lease(&l).ok_or_else(|| LeaseError::Backend(format!("Lease {name}: no name")))
            }
            Err(e) if code(&e) == Some(409) => Err(LeaseError::Conflict { name: name.clone() }),
            Err(e) if code(&e) == Some(404) => Err(LeaseError::NotFound { name: name.clone() }),
            Err(e) => Err(backend_error("updating", name, e)),
        }
    }

    async fn delete(&self, name: &LeaseName, version: &ResourceVersion) -> Result<(), LeaseError> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(version.0.clone()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.inner.api.delete(name.as_str(), &dp).await {
            Ok(_) => {
                self.remember(name.as_str(), Some(version.0.clone()), None);
                Ok(())
            }
            Err(e) if code(&e) == Some(409) => Err(LeaseError::Conflict { name: name.clone() }),
            Err(e) if code(&e) == Some(404) => Err(LeaseError::NotFound { name: name.clone() }),
            Err(e) => Err(backend_error("deleting", name, e)),
        }
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        self.ready().await?;
        let mut c = self.cache();
        let names: Vec<String> = c
            .leases
            .keys()
            .chain(c.written.keys())
            .filter(|n| n.starts_with(LEASE_PREFIX))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(names
            .iter()
            .filter_map(|n| c.view(n))
            .filter_map(|l| from_lease(&l))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, rv: &str, holder: &str) -> KLease {
        KLease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn our_write_is_seen_until_the_watcher_shows_it_or_something_newer() {
        let mut c = Cache::default();
        c.leases.insert("l".into(), lease("l", "5", "a"));
        c.written.insert(
            "l".into(),
            Written {
                replaced: [Some("4".to_string()), Some("5".to_string())].into(),
                lease: Some(lease("l", "6", "b")),
            },
        );
        let holder = |c: &mut Cache| c.view("l").and_then(|l| l.spec?.holder_identity);
        assert_eq!(holder(&mut c).as_deref(), Some("b"), "the cache lags");
        c.leases.insert("l".into(), lease("l", "4", "a"));
        assert_eq!(
            holder(&mut c).as_deref(),
            Some("b"),
            "even two writes behind"
        );
        c.leases.insert("l".into(), lease("l", "7", "c"));
        assert_eq!(holder(&mut c).as_deref(), Some("c"), "a newer version wins");
        assert!(c.written.is_empty());
        c.written.insert(
            "l".into(),
            Written {
                replaced: [Some("7".to_string())].into(),
                lease: None,
            },
        );
        assert!(c.view("l").is_none(), "our deletion");
    }

    #[test]
    fn records_round_trip_through_lease_specs_with_durations_rounded_up() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let r = LeaseRecord {
            holder: Some("node1".into()),
            duration: Duration::from_millis(1500),
            acquire_time: Some(t),
            renew_time: Some(t + Duration::from_secs(2)),
            transitions: 3,
        };
        let spec = to_spec(&r);
        assert_eq!(spec.lease_duration_seconds, Some(2));
        let l = from_lease(&KLease {
            metadata: ObjectMeta {
                name: Some("cilium-l2announce-default-web".into()),
                resource_version: Some("9".into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        })
        .unwrap();
        assert_eq!(l.record.acquire_time, r.acquire_time);
        assert_eq!(l.record.renew_time, r.renew_time);
        assert_eq!(l.record.duration, Duration::from_secs(2));
        assert_eq!(
            (l.record.transitions, l.resource_version.0.as_str()),
            (3, "9")
        );
    }
}
