//! Writing status back: Service ingress and conditions, pool and other resource conditions,
//! per-node CiliumBGPNodeConfigs. A [`StatusSink`] takes one [`StatusUpdate`] at a time; the
//! directory sink writes `DIR/status/...` files, the memory store updates its objects, the
//! Kubernetes sink (later) patches the status subresource.

use std::path::PathBuf;

use crds::bgp::CiliumBGPNodeConfig;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ServiceStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::object::{Kind, ObjectKey};

/// One status write.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum StatusUpdate {
    /// A Service's `status` (`loadBalancer.ingress` and conditions). `None` deletes the
    /// record (the Service is gone).
    Service {
        /// Name, namespace and creation time of the Service.
        meta: ObjectMeta,
        /// The whole new status.
        status: Option<ServiceStatus>,
    },
    /// `status.conditions` of a `cilium.io` object whose status is only conditions (pools,
    /// cluster and peer configs, L2 policies). `None` deletes the record.
    Conditions {
        /// The object's kind.
        kind: Kind,
        /// Name and creation time of the object.
        meta: ObjectMeta,
        /// The whole new list.
        conditions: Option<Vec<Condition>>,
    },
    /// A whole CiliumBGPNodeConfig, spec and status, written by the operator role (`name` =
    /// the node). `None` deletes it.
    BgpNodeConfig {
        /// The node's name.
        name: String,
        /// The object.
        object: Option<CiliumBGPNodeConfig>,
    },
}

impl StatusUpdate {
    /// The kind written.
    pub fn kind(&self) -> Kind {
        match self {
            StatusUpdate::Service { .. } => Kind::Service,
            StatusUpdate::Conditions { kind, .. } => *kind,
            StatusUpdate::BgpNodeConfig { .. } => Kind::BgpNodeConfig,
        }
    }

    /// The object written.
    pub fn key(&self) -> ObjectKey {
        match self {
            StatusUpdate::Service { meta, .. } => ObjectKey::namespaced(
                meta.namespace.clone().unwrap_or_else(|| "default".into()),
                meta.name.clone().unwrap_or_default(),
            ),
            StatusUpdate::Conditions { meta, .. } => {
                ObjectKey::cluster(meta.name.clone().unwrap_or_default())
            }
            StatusUpdate::BgpNodeConfig { name, .. } => ObjectKey::cluster(name.clone()),
        }
    }

    /// What is stored, or `None` for a deletion.
    pub(crate) fn payload(&self) -> Option<StatusPayload> {
        match self {
            StatusUpdate::Service { status, .. } => {
                status.clone().map(|s| StatusPayload::Service(Some(s)))
            }
            StatusUpdate::Conditions { conditions, .. } => conditions
                .clone()
                .map(|c| StatusPayload::Conditions(Some(c))),
            StatusUpdate::BgpNodeConfig { object, .. } => object
                .clone()
                .map(|o| StatusPayload::BgpNodeConfig(Box::new(o))),
        }
    }
}

/// The status part of an object, by shape.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusPayload {
    /// A Service's status.
    Service(Option<ServiceStatus>),
    /// Conditions only.
    Conditions(Option<Vec<Condition>>),
    /// A whole CiliumBGPNodeConfig (the operator writes spec and status).
    BgpNodeConfig(Box<CiliumBGPNodeConfig>),
}

/// Why a status write failed. Nothing is lost: the caller keeps what it wanted to write and
/// tries again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// Reading or writing a file failed (disk full, read-only, not a directory, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The status could not be serialised.
    #[error("encoding status of {kind} {key}: {message}")]
    Encode {
        /// Kind.
        kind: Kind,
        /// Object.
        key: ObjectKey,
        /// What failed.
        message: String,
    },
    /// The API server refused the write, or could not be reached (after retries).
    #[error("{object}: {message}")]
    Api {
        /// `Service default/web`, `CiliumBGPNodeConfig node1`.
        object: String,
        /// What the server (or the connection) said.
        message: String,
    },
    /// The name cannot be a file name (contains `/`, is empty, `.` or `..`).
    #[error("{kind} {key}: name cannot be stored")]
    InvalidName {
        /// Kind.
        kind: Kind,
        /// Object.
        key: ObjectKey,
    },
}

/// Where status goes.
pub trait StatusSink: Send + Sync {
    /// Writes one update; on success a later snapshot of the source shows it.
    fn write<'a>(&'a self, update: &'a StatusUpdate) -> BoxFuture<'a, Result<(), StatusError>>;

    /// Writes several updates of different objects, with one outcome each, in order. By
    /// default one by one; a sink that can make a batch durable at once does (the
    /// directory: one filesystem sync for every file instead of one per file).
    fn write_all<'a>(
        &'a self,
        updates: &'a [StatusUpdate],
    ) -> BoxFuture<'a, Vec<Result<(), StatusError>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(updates.len());
            for u in updates {
                out.push(self.write(u).await);
            }
            out
        })
    }
}

/// A status file's contents: the object's identity and its status, nothing of its spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<S>,
}

/// `status:` of the kinds whose status is only conditions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ConditionsOnly {
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Only the identity of an object, for status records.
pub(crate) fn identity(meta: &ObjectMeta, kind: Kind) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        namespace: if kind.namespaced() {
            meta.namespace.clone()
        } else {
            None
        },
        creation_timestamp: meta.creation_timestamp.clone(),
        uid: meta.uid.clone(),
        ..ObjectMeta::default()
    }
}
