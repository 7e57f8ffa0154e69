//! [`KubeSink`]: the [`StatusSink`] on an API server.
//!
//! | update | request | field manager |
//! |---|---|---|
//! | Service status | `PATCH /api/v1/namespaces/NS/services/NAME/status`, server-side apply, `force` | `lbspeaker-operator` |
//! | conditions of a pool, ClusterConfig, PeerConfig, L2 policy | `PATCH /apis/cilium.io/VERSION/PLURAL/NAME/status`, server-side apply, `force` | `lbspeaker-operator` |
//! | a node's CiliumBGPNodeConfig (agent) | `PATCH /apis/cilium.io/v2/ciliumbgpnodeconfigs/NODE/status`, server-side apply, `force`: the status only | `lbspeaker-agent` |
//! | a stale CiliumBGPNodeConfig (operator) | `DELETE /apis/cilium.io/v2/ciliumbgpnodeconfigs/NODE`, `preconditions.uid` | |
//!
//! - **No write when nothing changed.** Each update is compared with the object as the source
//!   last saw it (condition transition times ignored); an update that changes nothing sends
//!   nothing, so a restart or a re-list on a big cluster writes nothing at all.
//! - **Preconditions.** Every apply carries the object's `metadata.uid`: a status computed for
//!   an object that has since been deleted and created again is refused (409) and dropped,
//!   never applied to the new object. Status of an object that is gone (404) is dropped too.
//! - **Retries.** Conflicts (409), throttling (429), server errors (5xx) and lost connections
//!   are retried at once with backoff (0.1 s doubling, four attempts); what still fails is an
//!   error, and the reconciler keeps the update and tries again in its next round.
//! - Server-side apply owns exactly the fields sent, so fields other controllers own (other
//!   Service conditions, other ingress writers' fields) are kept, and a field we stop sending
//!   (an address released) is removed.
//! - **Events** for transitions ([`super::events`]).

use std::sync::Arc;

use crds::bgp::{CiliumBGPNodeConfig, CiliumBGPNodeConfigStatus};
use crds::conditions;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ObjectReference, Service, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::convert::api_resource;
use super::events::{EventPublisher, EventSpec, EventType};
use super::{AGENT_MANAGER, OPERATOR_MANAGER};
use crate::source::{Kind, ObjectKey, Snapshot, StatusError, StatusSink, StatusUpdate};

/// Attempts per write before the reconciler is told it failed.
const ATTEMPTS: u32 = 4;

/// Status onto an API server.
pub struct KubeSink {
    client: kube::Client,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    operator: bool,
    events: Option<EventPublisher>,
}

impl std::fmt::Debug for KubeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSink")
            .field("operator", &self.operator)
            .finish()
    }
}

/// How a write ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent and accepted.
    Written,
    /// Nothing to send: the object already says so.
    Unchanged,
    /// The object is gone or was replaced: nothing to do.
    Gone,
}

impl KubeSink {
    /// A sink comparing against `snapshots` (the source's). `operator`: this process runs the
    /// operator role, which deletes stale CiliumBGPNodeConfigs (an agent never deletes one).
    pub fn new(
        client: kube::Client,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        operator: bool,
        events: Option<EventPublisher>,
    ) -> KubeSink {
        KubeSink {
            client,
            snapshots,
            operator,
            events,
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    fn event(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if let Some(p) = &self.events {
            p.publish(EventSpec {
                regarding,
                type_,
                reason: reason.into(),
                action: action.into(),
                note,
            });
        }
    }

    /// Writes one update and says how it ended.
    pub async fn apply(&self, update: &StatusUpdate) -> Result<Outcome, StatusError> {
        match update {
            StatusUpdate::Service {
                meta,
                status: Some(st),
            } => self.service(meta, st).await,
            // The API server deletes status with its object: nothing to do.
            StatusUpdate::Service { status: None, .. }
            | StatusUpdate::Conditions {
                conditions: None, ..
            } => Ok(Outcome::Unchanged),
            StatusUpdate::Conditions {
                kind,
                meta,
                conditions: Some(c),
            } => self.conditions(*kind, meta, c).await,
            StatusUpdate::BgpNodeConfig {
                name,
                object: Some(o),
            } => self.node_status(name, o).await,
            StatusUpdate::BgpNodeConfig { name, object: None } => {
                if self.operator {
                    self.delete_node_config(name).await
                } else {
                    Ok(Outcome::Unchanged)
                }
            }
        }
    }

    async fn service(&self, meta: &ObjectMeta, st: &ServiceStatus) -> Result<Outcome, StatusError> {
        let key = ObjectKey::namespaced(
            meta.namespace.clone().unwrap_or_else(|| "default".into()),
            meta.name.clone().unwrap_or_default(),
        );
        let snap = self.snapshot();
        let Some(cur) = snap.services.get(&key) else {
            return Ok(Outcome::Gone);
        };
        if same_service_status(cur.status.as_ref(), st) {
            return Ok(Outcome::Unchanged);
        }
        let ns = key.namespace.clone().unwrap_or_default();
        let uid = cur.metadata.uid.clone().or_else(|| meta.uid.clone());
        let mut status = serde_json::to_value(st).map_err(|e| encode(Kind::Service, &key, e))?;
        if status.get("loadBalancer").is_none() {
            status["loadBalancer"] = json!({});
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": identity(&key.name, Some(&ns), uid.as_deref()),
            "status": status,
        });
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &ns, &api_resource(Kind::Service));
        let pp = PatchParams::apply(OPERATOR_MANAGER).force();
        let object = format!("Service {key}");
        let out = retrying(&object, || async {
            api.patch_status(&key.name, &pp, &Patch::Apply(&body))
                .await
                .map(drop)
        })
        .await?;
        if out == Outcome::Written {
            self.service_events(cur, st, &key, uid);
        }
        Ok(out)
    }

    fn service_events(
        &self,
        cur: &Service,
        st: &ServiceStatus,
        key: &ObjectKey,
        uid: Option<String>,
    ) {
        let r = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(key.name.clone()),
            namespace: key.namespace.clone(),
            uid,
            ..ObjectReference::default()
        };
        let before = ingress(cur.status.as_ref());
        let after = ingress(Some(st));
        let cond = |s: Option<&ServiceStatus>| {
            s.and_then(|s| s.conditions.as_deref())
                .and_then(|c| conditions::find(c, conditions::IPAM_REQUEST_SATISFIED))
                .cloned()
        };
        let message = cond(Some(st)).map(|c| c.message).unwrap_or_default();
        match (before.is_empty(), after.is_empty()) {
            (true, false) => self.event(
                r.clone(),
                EventType::Normal,
                "AddressAssigned",
                "Allocate",
                message.clone(),
            ),
            (false, true) => self.event(
                r.clone(),
                EventType::Normal,
                "AddressReleased",
                "Release",
                before.join(", "),
            ),
            (false, false) if before != after => self.event(
                r.clone(),
                EventType::Normal,
                "AddressChanged",
                "Allocate",
                format!("{} -> {}", before.join(", "), after.join(", ")),
            ),
            _ => {}
        }
        if let Some(c) = cond(Some(st))
            && c.status == "False"
            && cond(cur.status.as_ref()).is_none_or(|o| o.status != "False" || o.reason != c.reason)
        {
            self.event(
                r,
                EventType::Warning,
                "AddressNotAssigned",
                "Allocate",
                format!("{}: {}", c.reason, c.message),
            );
        }
    }

    async fn conditions(
        &self,
        kind: Kind,
        meta: &ObjectMeta,
        want: &[Condition],
    ) -> Result<Outcome, StatusError> {
        let key = ObjectKey::cluster(meta.name.clone().unwrap_or_default());
        let snap = self.snapshot();
        let Some((shown, uid)) = shown_conditions(&snap, kind, &key) else {
            return Ok(Outcome::Gone);
        };
        if conditions::same_ignoring_time(&shown, want) {
            return Ok(Outcome::Unchanged);
        }
        let uid = uid.or_else(|| meta.uid.clone());
        let body = json!({
            "apiVersion": kind.api_version(),
            "kind": kind.name(),
            "metadata": identity(&key.name, None, uid.as_deref()),
            "status": {"conditions": want},
        });
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &api_resource(kind));
        let pp = PatchParams::apply(OPERATOR_MANAGER).force();
        let object = format!("{kind} {key}");
        let out = retrying(&object, || async {
            api.patch_status(&key.name, &pp, &Patch::Apply(&body))
                .await
                .map(drop)
        })
        .await?;
        if out == Outcome::Written {
            for c in want
                .iter()
                .filter(|c| c.status == "True" && is_problem(&c.type_))
            {
                let was = conditions::find(&shown, &c.type_);
                if was.is_none_or(|w| w.status != "True" || w.message != c.message) {
                    let reason = c.type_.rsplit('/').next().unwrap_or(&c.type_);
                    self.event(
                        ObjectReference {
                            api_version: Some(kind.api_version().into()),
                            kind: Some(kind.name().into()),
                            name: Some(key.name.clone()),
                            uid: uid.clone(),
                            ..ObjectReference::default()
                        },
                        EventType::Warning,
                        reason,
                        "Reconcile",
                        c.message.clone(),
                    );
                }
            }
        }
        Ok(out)
    }

    async fn node_status(
        &self,
        name: &str,
        o: &CiliumBGPNodeConfig,
    ) -> Result<Outcome, StatusError> {
        let key = ObjectKey::cluster(name);
        let snap = self.snapshot();
        // The operator creates the object; until it has, there is nothing to write to (the
        // agent writes again when the source shows it).
        let Some(cur) = snap.bgp_node_configs.get(&key) else {
            return Ok(Outcome::Gone);
        };
        let want = o.status.clone().unwrap_or_default();
        if same_node_status(cur.status.as_ref(), &want) {
            return Ok(Outcome::Unchanged);
        }
        let uid = cur.metadata.uid.clone();
        let body = json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumBGPNodeConfig",
            "metadata": identity(name, None, uid.as_deref()),
            "status": want,
        });
        let api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &api_resource(Kind::BgpNodeConfig));
        let pp = PatchParams::apply(AGENT_MANAGER).force();
        let object = format!("CiliumBGPNodeConfig {name}");
        let out = retrying(&object, || async {
            api.patch_status(name, &pp, &Patch::Apply(&body))
                .await
                .map(drop)
        })
        .await?;
        if out == Outcome::Written {
            self.peer_events(cur, &want, name, uid);
        }
        Ok(out)
    }

    fn peer_events(
        &self,
        cur: &CiliumBGPNodeConfig,
        want: &CiliumBGPNodeConfigStatus,
        name: &str,
        uid: Option<String>,
    ) {
        let r = ObjectReference {
            api_version: Some("cilium.io/v2".into()),
            kind: Some("CiliumBGPNodeConfig".into()),
            name: Some(name.to_owned()),
            uid,
            ..ObjectReference::default()
        };
        let state = |s: Option<&CiliumBGPNodeConfigStatus>, inst: &str, peer: &str| {
            s?.bgp_instances
                .iter()
                .find(|i| i.name == inst)?
                .peers
                .iter()
                .find(|p| p.name == peer)?
                .peering_state
                .clone()
        };
        for i in &want.bgp_instances {
            for p in &i.peers {
                let was = state(cur.status.as_ref(), &i.name, &p.name);
                let is = p.peering_state.clone();
                let up = |s: &Option<String>| s.as_deref() == Some("established");
                let what = format!(
                    "instance {} peer {} ({}, AS {})",
                    i.name,
                    p.name,
                    p.peer_address,
                    p.peer_asn.unwrap_or_default()
                );
                if up(&is) && !up(&was) {
                    self.event(
                        r.clone(),
                        EventType::Normal,
                        "BGPSessionEstablished",
                        "Peer",
                        format!("{what}: established"),
                    );
                } else if up(&was) && !up(&is) {
                    self.event(
                        r.clone(),
                        EventType::Warning,
                        "BGPSessionDown",
                        "Peer",
                        format!("{what}: {}", is.as_deref().unwrap_or("removed")),
                    );
                }
            }
        }
    }

    async fn delete_node_config(&self, name: &str) -> Result<Outcome, StatusError> {
        let snap = self.snapshot();
        let Some(cur) = snap.bgp_node_configs.get(&ObjectKey::cluster(name)) else {
            return Ok(Outcome::Gone);
        };
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: cur.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &api_resource(Kind::BgpNodeConfig));
        let object = format!("CiliumBGPNodeConfig {name}");
        let out = retrying(&object, || async { api.delete(name, &dp).await.map(drop) }).await?;
        if out == Outcome::Written {
            tracing::info!(node = %name, "CiliumBGPNodeConfig deleted: no CiliumBGPClusterConfig selects the node");
        }
        Ok(out)
    }
}

impl StatusSink for KubeSink {
    fn write<'a>(&'a self, update: &'a StatusUpdate) -> BoxFuture<'a, Result<(), StatusError>> {
        Box::pin(async move { self.apply(update).await.map(drop) })
    }
}

/// `metadata` of an apply: name, namespace and the uid precondition.
fn identity(name: &str, namespace: Option<&str>, uid: Option<&str>) -> Value {
    let mut m = json!({"name": name});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    if let Some(uid) = uid {
        m["uid"] = json!(uid);
    }
    m
}

fn encode(kind: Kind, key: &ObjectKey, e: serde_json::Error) -> StatusError {
    StatusError::Encode {
        kind,
        key: key.clone(),
        message: e.to_string(),
    }
}

/// Sends `op` until it succeeds, needs no retry, or [`ATTEMPTS`] are used up.
async fn retrying<F, Fut>(object: &str, mut op: F) -> Result<Outcome, StatusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<()>>,
{
    let mut attempt = 0u32;
    loop {
        let err = match op().await {
            Ok(()) => return Ok(Outcome::Written),
            Err(e) => e,
        };
        if let kube::Error::Api(s) = &err {
            if s.code == 404 {
                tracing::debug!(object, "gone: status dropped");
                return Ok(Outcome::Gone);
            }
            if s.code == 409 && s.message.contains("Precondition failed: UID") {
                tracing::debug!(object, "replaced since it was read: status dropped");
                return Ok(Outcome::Gone);
            }
        }
        if let kube::Error::SerdeError(e) = &err {
            // The server took the write; only its answer did not decode.
            tracing::debug!(object, error = %e, "written; the answer did not decode");
            return Ok(Outcome::Written);
        }
        let retry = match &err {
            kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500..=599),
            _ => true,
        };
        attempt += 1;
        if !retry || attempt >= ATTEMPTS {
            return Err(StatusError::Api {
                object: object.to_owned(),
                message: err.to_string(),
            });
        }
        tracing::debug!(object, attempt, error = %err, "status write failed; retrying");
        tokio::time::sleep(super::backoff(
            attempt - 1,
            std::time::Duration::from_secs(1),
        ))
        .await;
    }
}

fn ingress(s: Option<&ServiceStatus>) -> Vec<String> {
    s.and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|x| x.ip.clone().or_else(|| x.hostname.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether two Service statuses say the same (ingress exactly, conditions ignoring times).
pub fn same_service_status(a: Option<&ServiceStatus>, b: &ServiceStatus) -> bool {
    let empty = ServiceStatus::default();
    let a = a.unwrap_or(&empty);
    let ing = |s: &ServiceStatus| {
        s.load_balancer
            .as_ref()
            .and_then(|l| l.ingress.clone())
            .unwrap_or_default()
    };
    ing(a) == ing(b)
        && conditions::same_ignoring_time(
            a.conditions.as_deref().unwrap_or_default(),
            b.conditions.as_deref().unwrap_or_default(),
        )
}

fn same_node_status(a: Option<&CiliumBGPNodeConfigStatus>, b: &CiliumBGPNodeConfigStatus) -> bool {
    let mut a = a.cloned().unwrap_or_default();
    let mut b = b.clone();
    let ca = std::mem::take(&mut a.conditions);
    let cb = std::mem::take(&mut b.conditions);
    a == b && conditions::same_ignoring_time(&ca, &cb)
}

/// The conditions and uid of a stored object with conditions-only status.
fn shown_conditions(
    snap: &Snapshot,
    kind: Kind,
    key: &ObjectKey,
) -> Option<(Vec<Condition>, Option<String>)> {
    fn of<T>(
        m: &crate::source::Objects<T>,
        key: &ObjectKey,
        f: impl Fn(&T) -> (Vec<Condition>, Option<String>),
    ) -> Option<(Vec<Condition>, Option<String>)> {
        m.get(key).map(|o| f(o))
    }
    match kind {
        Kind::LbIpPool => of(&snap.lb_ip_pools, key, |p| {
            (crds::lbpool::conditions(p).to_vec(), p.metadata.uid.clone())
        }),
        Kind::BgpClusterConfig => of(&snap.bgp_cluster_configs, key, |p| {
            (
                p.status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default(),
                p.metadata.uid.clone(),
            )
        }),
        Kind::BgpPeerConfig => of(&snap.bgp_peer_configs, key, |p| {
            (
                p.status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default(),
                p.metadata.uid.clone(),
            )
        }),
        Kind::L2AnnouncementPolicy => of(&snap.l2_announcement_policies, key, |p| {
            (
                p.status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default(),
                p.metadata.uid.clone(),
            )
        }),
        _ => None,
    }
}

/// Conditions whose turning True deserves a Warning event.
fn is_problem(type_: &str) -> bool {
    [
        conditions::POOL_CONFLICT,
        conditions::BAD_SERVICE_SELECTOR,
        conditions::BAD_NODE_SELECTOR,
        conditions::BAD_INTERFACE_REGEX,
        conditions::NO_MATCHING_NODE,
        conditions::MISSING_PEER_CONFIGS,
        conditions::CONFLICTING_CLUSTER_CONFIG,
        conditions::MISSING_AUTH_SECRET,
    ]
    .contains(&type_)
}
