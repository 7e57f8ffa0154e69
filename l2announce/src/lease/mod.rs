//! Leases: the record an election writes (shaped like a Kubernetes `coordination.k8s.io/v1`
//! Lease), the [`LeaseBackend`] trait with optimistic concurrency on a resource version, and
//! the backends: [`FileBackend`] (several processes on one machine sharing a directory, for
//! `lbspeaker run`) and [`MemoryBackend`] (one process, for tests). A Kubernetes backend
//! implements the same trait in the daemon's crate, which is the only one that knows
//! Kubernetes.

mod file;
mod memory;
mod name;

use std::future::Future;
use std::time::{Duration, SystemTime};

pub use file::FileBackend;
pub use memory::MemoryBackend;
pub use name::{LEASE_PREFIX, LeaseName, LeaseNamer, NameError, ServiceKey};

/// What a lease says, field for field a Kubernetes `LeaseSpec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `holderIdentity`: the node name of the holder; `None` when free (released).
    pub holder: Option<String>,
    /// `leaseDurationSeconds`: how long after the last renewal others must wait before they
    /// may take the lease. A Kubernetes backend rounds it up to whole seconds.
    pub duration: Duration,
    /// `acquireTime`: when the current holder took it.
    pub acquire_time: Option<SystemTime>,
    /// `renewTime`: when the holder last renewed it.
    pub renew_time: Option<SystemTime>,
    /// `leaseTransitions`: how many times the holder changed.
    pub transitions: u32,
}

/// An opaque version: changes on every write; writes name the version they replace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceVersion(pub String);

impl std::fmt::Display for ResourceVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lease as stored: name, record and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Its name.
    pub name: LeaseName,
    /// What it says.
    pub record: LeaseRecord,
    /// The version a write must name to replace it.
    pub resource_version: ResourceVersion,
}

impl Lease {
    /// Whether the lease names `node` as its holder.
    pub fn held_by(&self, node: &str) -> bool {
        self.record.holder.as_deref() == Some(node)
    }
}

/// What a backend can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The lease changed (or was created) since the version the write named: somebody else
    /// wrote first. Read again and decide again.
    #[error("lease {name}: conflict, it changed since it was read")]
    Conflict {
        /// The lease.
        name: LeaseName,
    },
    /// The lease does not exist (update or delete of a missing lease).
    #[error("lease {name}: not found")]
    NotFound {
        /// The lease.
        name: LeaseName,
    },
    /// Reading or writing the backing store failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A stored lease does not decode.
    #[error("lease {name}: stored record is corrupt: {message}")]
    Corrupt {
        /// The lease.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Another backend's failure (an API server's answer, for example).
    #[error("lease backend: {0}")]
    Backend(String),
}

impl LeaseError {
    /// Whether this is an optimistic-concurrency conflict (not an outage).
    pub fn is_conflict(&self) -> bool {
        matches!(self, LeaseError::Conflict { .. })
    }
}

/// Where leases live. Every write is conditional: `create` fails with
/// [`LeaseError::Conflict`] if the lease exists, `update` and `delete` if the stored version
/// is not the one named, so two candidates that read the same version cannot both win.
///
/// Implementations: [`FileBackend`], [`MemoryBackend`]; a Kubernetes Lease backend in the
/// daemon (get, create, replace with `metadata.resourceVersion`, delete with a precondition,
/// list by prefix).
pub trait LeaseBackend: Send + Sync + 'static {
    /// The lease, or `None` when there is none.
    fn get(
        &self,
        name: &LeaseName,
    ) -> impl Future<Output = Result<Option<Lease>, LeaseError>> + Send;

    /// Creates a lease; [`LeaseError::Conflict`] when it already exists.
    fn create(
        &self,
        name: &LeaseName,
        record: &LeaseRecord,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Replaces the record if the lease is still at `version`.
    fn update(
        &self,
        name: &LeaseName,
        record: &LeaseRecord,
        version: &ResourceVersion,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Deletes the lease if it is still at `version` (garbage collection of leases no
    /// announcement uses any more; one process, the operator, should do it).
    fn delete(
        &self,
        name: &LeaseName,
        version: &ResourceVersion,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Every lease of this backend whose name starts with [`LEASE_PREFIX`].
    fn list(&self) -> impl Future<Output = Result<Vec<Lease>, LeaseError>> + Send;

    /// Gives up a lease we hold, as client-go's `ReleaseOnCancel` does: holder cleared,
    /// duration one second, so the others take it at their next look instead of waiting for
    /// it to expire.
    fn release(
        &self,
        lease: &Lease,
        now: SystemTime,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send {
        async move {
            let record = crate::election::released_record(now, &lease.record);
            self.update(&lease.name, &record, &lease.resource_version)
                .await
        }
    }

    /// Whether the process of node `holder` still runs, if the backend can know:
    /// `Some(false)` lets candidates take its leases without waiting for them to expire.
    /// Only a backend on one machine can tell ([`FileBackend`]); the default says nothing.
    fn holder_alive(&self, holder: &str) -> impl Future<Output = Option<bool>> + Send {
        let _ = holder;
        async { None }
    }
}
