//! Leases in memory, shared by clones: for tests of code that takes a [`LeaseBackend`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{
    LEASE_PREFIX, Lease, LeaseBackend, LeaseError, LeaseName, LeaseRecord, ResourceVersion,
};

#[derive(Debug, Default)]
struct State {
    leases: BTreeMap<LeaseName, Lease>,
    revision: u64,
    failing: bool,
    alive: BTreeMap<String, bool>,
}

/// An in-memory backend; clones share the same leases, like processes sharing a directory.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Makes every call fail as an outage would (for tests of renew deadlines).
    pub fn set_failing(&self, failing: bool) {
        self.with(|s| s.failing = failing);
    }

    /// What [`LeaseBackend::holder_alive`] answers for `node`.
    pub fn set_alive(&self, node: &str, alive: bool) {
        self.with(|s| s.alive.insert(node.to_owned(), alive));
    }

    fn outage(s: &State) -> Result<(), LeaseError> {
        if s.failing {
            Err(LeaseError::Backend("simulated outage".into()))
        } else {
            Ok(())
        }
    }

    fn put(s: &mut State, name: &LeaseName, record: &LeaseRecord) -> Lease {
        s.revision += 1;
        let lease = Lease {
            name: name.clone(),
            record: record.clone(),
            resource_version: ResourceVersion(s.revision.to_string()),
        };
        s.leases.insert(name.clone(), lease.clone());
        lease
    }
}

impl LeaseBackend for MemoryBackend {
    async fn get(&self, name: &LeaseName) -> Result<Option<Lease>, LeaseError> {
        self.with(|s| {
            Self::outage(s)?;
            Ok(s.leases.get(name).cloned())
        })
    }

    async fn create(&self, name: &LeaseName, record: &LeaseRecord) -> Result<Lease, LeaseError> {
        self.with(|s| {
            Self::outage(s)?;
            if s.leases.contains_key(name) {
                return Err(LeaseError::Conflict { name: name.clone() });
            }
            Ok(Self::put(s, name, record))
        })
    }

    async fn update(
        &self,
        name: &LeaseName,
        record: &LeaseRecord,
        version: &ResourceVersion,
    ) -> Result<Lease, LeaseError> {
        self.with(|s| {
            Self::outage(s)?;
            match s.leases.get(name) {
                None => Err(LeaseError::NotFound { name: name.clone() }),
                Some(l) if &l.resource_version != version => {
                    Err(LeaseError::Conflict { name: name.clone() })
                }
                Some(_) => Ok(Self::put(s, name, record)),
            }
        })
    }

    async fn delete(&self, name: &LeaseName, version: &ResourceVersion) -> Result<(), LeaseError> {
        self.with(|s| {
            Self::outage(s)?;
            match s.leases.get(name) {
                None => Err(LeaseError::NotFound { name: name.clone() }),
                Some(l) if &l.resource_version != version => {
                    Err(LeaseError::Conflict { name: name.clone() })
                }
                Some(_) => {
                    s.leases.remove(name);
                    Ok(())
                }
            }
        })
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        self.with(|s| {
            Self::outage(s)?;
            Ok(s.leases
                .values()
                .filter(|l| l.name.as_str().starts_with(LEASE_PREFIX))
                .cloned()
                .collect())
        })
    }

    async fn holder_alive(&self, holder: &str) -> Option<bool> {
        self.with(|s| s.alive.get(holder).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::{Timers, acquired_record};
    use std::time::SystemTime;

    #[tokio::test]
    async fn clones_share_leases_and_writes_are_conditional() {
        let a = MemoryBackend::new();
        let b = a.clone();
        let name = LeaseName::new("cilium-l2announce-default-web").unwrap();
        let r = acquired_record(SystemTime::now(), None, "node1", &Timers::default());
        let l = a.create(&name, &r).await.unwrap();
        assert!(b.create(&name, &r).await.unwrap_err().is_conflict());
        let l2 = b.update(&name, &r, &l.resource_version).await.unwrap();
        assert!(
            a.update(&name, &r, &l.resource_version)
                .await
                .unwrap_err()
                .is_conflict()
        );
        assert_eq!(a.list().await.unwrap(), vec![l2.clone()]);
        a.set_failing(true);
        assert!(matches!(b.get(&name).await, Err(LeaseError::Backend(_))));
        a.set_failing(false);
        assert_eq!(b.holder_alive("node1").await, None);
        a.set_alive("node1", false);
        assert_eq!(b.holder_alive("node1").await, Some(false));
        b.delete(&name, &l2.resource_version).await.unwrap();
        assert_eq!(a.get(&name).await.unwrap(), None);
    }
}
