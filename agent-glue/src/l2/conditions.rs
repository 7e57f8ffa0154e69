//! The operator role's L2 share: the status conditions of CiliumL2AnnouncementPolicies.
//!
//! | condition | True when |
//! |---|---|
//! | `io.cilium/bad-service-selector` | `spec.serviceSelector` cannot be evaluated |
//! | `io.cilium/bad-node-selector` | `spec.nodeSelector` cannot be evaluated |
//! | `io.cilium/bad-interface-regex` | an entry of `spec.interfaces` is not a regular expression |
//!
//! As Cilium writes them: reason `error`, the error as message, `observedGeneration` the
//! policy's generation; a condition is added only when its part has an error, and once present
//! it stays, turned `False` with an empty message when the error is fixed. A policy that never
//! had an error has no status at all. Cilium's agents each write these from every node; here the
//! operator-role leader writes them once, and only what differs from what the source shows
//! (so an unchanged policy's status is never rewritten).

use std::collections::BTreeMap;
use std::sync::Arc;

use crds::conditions::{self, Status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::policy::CompiledPolicy;
use crate::bgp::cluster::DesiredConditions;
use crate::daemon::{LeaderRound, RoundFuture, leader_rounds};
use crate::source::{Kind, ObjectKey, Snapshot, StatusError, StatusSink, StatusUpdate};

/// Cilium's reason for all three conditions, True or False.
pub const REASON: &str = "error";

fn shown(snapshot: &Snapshot, key: &ObjectKey) -> Vec<Condition> {
    snapshot
        .l2_announcement_policies
        .get(key)
        .and_then(|p| p.status.as_ref())
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// The conditions every policy should carry (only those whose list changes, or that have one
/// at all). `now` stamps conditions whose status changes.
pub fn desired(snapshot: &Snapshot, now: Timestamp) -> Vec<DesiredConditions> {
    let mut out = Vec::new();
    for (key, policy) in &snapshot.l2_announcement_policies {
        let compiled = CompiledPolicy::compile(policy);
        let mut list = shown(snapshot, key);
        for (type_, error) in compiled.errors() {
            if error.is_none() && conditions::find(&list, type_).is_none() {
                continue;
            }
            let status = if error.is_some() {
                Status::True
            } else {
                Status::False
            };
            conditions::set(
                &mut list,
                conditions::new(
                    type_,
                    status,
                    REASON,
                    error.unwrap_or_default(),
                    policy.metadata.generation,
                    now,
                ),
            );
        }
        if list.is_empty() {
            continue;
        }
        out.push(DesiredConditions {
            kind: Kind::L2AnnouncementPolicy,
            key: key.clone(),
            meta: ObjectMeta {
                name: policy.metadata.name.clone(),
                creation_timestamp: policy.metadata.creation_timestamp.clone(),
                uid: policy.metadata.uid.clone(),
                ..ObjectMeta::default()
            },
            conditions: list,
        });
    }
    out
}

/// Writes the policies' conditions, remembering what it wrote until the source shows it.
#[derive(Debug, Default)]
pub struct PolicyConditions {
    pending: BTreeMap<ObjectKey, Vec<Condition>>,
}

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Writes done.
    pub written: usize,
    /// Writes that failed, with the object.
    pub failed: Vec<(String, StatusError)>,
}

impl PolicyConditions {
    /// Nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// One round: compute, write what differs, delete the status of policies that are gone.
    pub async fn round(
        &mut self,
        snapshot: &Snapshot,
        sink: &dyn StatusSink,
        now: Timestamp,
    ) -> Round {
        self.pending.retain(|key, want| {
            snapshot.l2_announcement_policies.contains_key(key)
                && !conditions::same_ignoring_time(&shown(snapshot, key), want)
        });
        let mut round = Round::default();
        for c in desired(snapshot, now) {
            let current = self
                .pending
                .get(&c.key)
                .cloned()
                .unwrap_or_else(|| shown(snapshot, &c.key));
            if conditions::same_ignoring_time(&current, &c.conditions) {
                continue;
            }
            self.pending.insert(c.key.clone(), c.conditions.clone());
            let update = StatusUpdate::Conditions {
                kind: Kind::L2AnnouncementPolicy,
                meta: c.meta,
                conditions: Some(c.conditions),
            };
            match sink.write(&update).await {
                Ok(()) => round.written += 1,
                Err(e) => {
                    self.pending.remove(&c.key);
                    round
                        .failed
                        .push((format!("CiliumL2AnnouncementPolicy {}", c.key), e));
                }
            }
        }
        for (kind, key) in &snapshot.orphan_statuses {
            if *kind != Kind::L2AnnouncementPolicy {
                continue;
            }
            let update = StatusUpdate::Conditions {
                kind: *kind,
                meta: ObjectMeta {
                    name: Some(key.name.clone()),
                    ..ObjectMeta::default()
                },
                conditions: None,
            };
            match sink.write(&update).await {
                Ok(()) => round.written += 1,
                Err(e) => round.failed.push((format!("{kind} {key}"), e)),
            }
        }
        round
    }
}

/// Runs [`PolicyConditions`] while this process leads, on every snapshot (and every 2 s while
/// a write fails); problems go to `problems`.
pub async fn run(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    leading: watch::Receiver<bool>,
    sink: Arc<dyn StatusSink>,
    problems: watch::Sender<Vec<String>>,
) {
    struct L2 {
        ctl: PolicyConditions,
        sink: Arc<dyn StatusSink>,
    }
    impl LeaderRound for L2 {
        fn round<'a>(&'a mut self, snap: &'a Snapshot) -> RoundFuture<'a> {
            Box::pin(async move {
                let span = tracing::info_span!("l2-conditions", revision = snap.revision);
                let r = self
                    .ctl
                    .round(snap, self.sink.as_ref(), Timestamp::now())
                    .instrument(span)
                    .await;
                r.failed.iter().map(|(o, e)| format!("{o}: {e}")).collect()
            })
        }
    }
    let l2 = L2 {
        ctl: PolicyConditions::new(),
        sink,
    };
    leader_rounds(snapshots, leading, &problems, "L2 policy", l2).await;
}
