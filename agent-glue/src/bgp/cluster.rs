//! The operator role's BGP share: conditions on CiliumBGPClusterConfigs and
//! CiliumBGPPeerConfigs, and removing CiliumBGPNodeConfigs of nodes that no ClusterConfig
//! selects any more. Pure ([`desired`]) plus a writer ([`ClusterController`]) that writes only
//! what differs from what the source shows.
//!
//! | object | condition | True when |
//! |---|---|---|
//! | ClusterConfig | `cilium.io/NoMatchingNode` | its `nodeSelector` selects no Node (or cannot be evaluated) |
//! | ClusterConfig | `cilium.io/MissingPeerConfigs` | a `peerConfigRef` names a CiliumBGPPeerConfig that does not exist |
//! | ClusterConfig | `cilium.io/ConflictingClusterConfig` | a node it selects is also selected by an older ClusterConfig (which applies there) |
//! | PeerConfig | `cilium.io/MissingAuthSecret` | its `authSecretRef` Secret (or its key `password`) is missing |
//! | PeerConfig | `lbspeaker.io/MissingBFDProfile` | its `lbspeaker.io/bfd-profile` annotation names a BFDProfile that does not exist (only on peer configs with the annotation) |

use std::collections::{BTreeMap, BTreeSet};

use crds::conditions::{self, Status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

use super::reconcile::{auth_password, cluster_configs_by_age, node_selector, selecting};
use crate::source::{Kind, ObjectKey, Snapshot, StatusError, StatusSink, StatusUpdate};

/// Conditions one object should carry.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredConditions {
    /// The kind (ClusterConfig or PeerConfig).
    pub kind: Kind,
    /// The object.
    pub key: ObjectKey,
    /// Its identity.
    pub meta: ObjectMeta,
    /// The whole list.
    pub conditions: Vec<Condition>,
}

/// What the operator role wants for BGP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterDesired {
    /// Conditions per object.
    pub conditions: Vec<DesiredConditions>,
    /// CiliumBGPNodeConfigs to delete: their node is gone or no ClusterConfig selects it.
    pub stale_node_configs: Vec<String>,
}

fn identity(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        creation_timestamp: meta.creation_timestamp.clone(),
        uid: meta.uid.clone(),
        ..ObjectMeta::default()
    }
}

fn cond(
    type_: &str,
    on: bool,
    reason_on: &str,
    reason_off: &str,
    msg: String,
    now: Timestamp,
) -> Condition {
    let (s, r) = if on {
        (Status::True, reason_on)
    } else {
        (Status::False, reason_off)
    };
    conditions::new(type_, s, r, msg, None, now)
}

/// Computes every condition. `now` stamps conditions whose status changes; unchanged ones keep
/// the time they carry in the snapshot.
pub fn desired(snapshot: &Snapshot, secrets_namespace: &str, now: Timestamp) -> ClusterDesired {
    let mut out = ClusterDesired::default();
    // Which config applies to each node (the oldest selecting it).
    let mut winner: BTreeMap<String, String> = BTreeMap::new();
    for node in snapshot.nodes.values() {
        if let Some(cc) = selecting(snapshot, node).first() {
            winner.insert(
                node.metadata.name.clone().unwrap_or_default(),
                cc.metadata.name.clone().unwrap_or_default(),
            );
        }
    }
    for cc in cluster_configs_by_age(snapshot) {
        let name = cc.metadata.name.clone().unwrap_or_default();
        let mut list: Vec<Condition> = cc
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let sel = node_selector(cc);
        let none = BTreeMap::new();
        let selected: Vec<String> = match &sel {
            Ok(s) => snapshot
                .nodes
                .values()
                .filter(|n| s.matches(n.metadata.labels.as_ref().unwrap_or(&none)))
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        let msg = match &sel {
            Err(e) => format!("nodeSelector cannot be evaluated: {e}"),
            Ok(_) if selected.is_empty() => "nodeSelector selects no node".into(),
            Ok(_) => format!("selects {}", selected.join(", ")),
        };
        conditions::set(
            &mut list,
            cond(
                conditions::NO_MATCHING_NODE,
                selected.is_empty(),
                "NoMatchingNode",
                "MatchingNode",
                msg,
                now,
            ),
        );
        let missing: BTreeSet<String> = cc
            .spec
            .bgp_instances
            .iter()
            .flat_map(|i| i.peers.iter())
            .filter_map(|p| p.peer_config_ref.as_ref())
            .filter(|r| {
                !snapshot
                    .bgp_peer_configs
                    .contains_key(&ObjectKey::cluster(&r.name))
            })
            .map(|r| r.name.clone())
            .collect();
        let msg = if missing.is_empty() {
            "every referenced CiliumBGPPeerConfig exists".to_string()
        } else {
            format!(
                "missing CiliumBGPPeerConfig: {}",
                missing.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        conditions::set(
            &mut list,
            cond(
                conditions::MISSING_PEER_CONFIGS,
                !missing.is_empty(),
                "MissingPeerConfigs",
                "PeerConfigsFound",
                msg,
                now,
            ),
        );
        let conflicts: Vec<String> = selected
            .iter()
            .filter_map(|n| {
                let w = winner.get(n)?;
                (*w != name).then(|| format!("node {n} is taken by CiliumBGPClusterConfig {w}"))
            })
            .collect();
        let msg = if conflicts.is_empty() {
            "no other CiliumBGPClusterConfig selects its nodes".to_string()
        } else {
            conflicts.join("; ")
        };
        conditions::set(
            &mut list,
            cond(
                conditions::CONFLICTING_CLUSTER_CONFIG,
                !conflicts.is_empty(),
                "ConflictingClusterConfig",
                "NoConflict",
                msg,
                now,
            ),
        );
        out.conditions.push(DesiredConditions {
            kind: Kind::BgpClusterConfig,
            key: ObjectKey::cluster(&name),
            meta: identity(&cc.metadata),
            conditions: list,
        });
    }
    for (key, pc) in &snapshot.bgp_peer_configs {
        let mut list: Vec<Condition> = pc
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let (missing, msg) = match &pc.spec.auth_secret_ref {
            None => (false, "no authSecretRef".to_string()),
            Some(s) => match auth_password(snapshot, secrets_namespace, s) {
                Ok(_) => (false, format!("Secret {secrets_namespace}/{s} found")),
                Err(e) => (true, e),
            },
        };
        conditions::set(
            &mut list,
            cond(
                conditions::MISSING_AUTH_SECRET,
                missing,
                "MissingAuthSecret",
                "AuthSecretFound",
                msg,
                now,
            ),
        );
        match crds::bfd::bfd_profile_name(pc) {
            Some(profile) => {
                let missing = !snapshot
                    .bfd_profiles
                    .contains_key(&ObjectKey::cluster(profile));
                let msg = if missing {
                    format!("BFDProfile {profile} does not exist: the peers run without BFD")
                } else {
                    format!("BFDProfile {profile} found")
                };
                conditions::set(
                    &mut list,
                    cond(
                        crds::bfd::MISSING_BFD_PROFILE,
                        missing,
                        "MissingBFDProfile",
                        "BFDProfileFound",
                        msg,
                        now,
                    ),
                );
            }
            // No BFD asked for: no condition of ours (one left from before goes).
            None => list.retain(|c| c.type_ != crds::bfd::MISSING_BFD_PROFILE),
        }
        out.conditions.push(DesiredConditions {
            kind: Kind::BgpPeerConfig,
            key: key.clone(),
            meta: identity(&pc.metadata),
            conditions: list,
        });
    }
    for name in snapshot.bgp_node_configs.keys().map(|k| k.name.clone()) {
        if !winner.contains_key(&name) {
            out.stale_node_configs.push(name);
        }
    }
    out
}

fn shown(snapshot: &Snapshot, kind: Kind, key: &ObjectKey) -> Vec<Condition> {
    match kind {
        Kind::BgpClusterConfig => snapshot
            .bgp_cluster_configs
            .get(key)
            .and_then(|o| o.status.as_ref())
            .map(|s| s.conditions.clone()),
        Kind::BgpPeerConfig => snapshot
            .bgp_peer_configs
            .get(key)
            .and_then(|o| o.status.as_ref())
            .map(|s| s.conditions.clone()),
        _ => None,
    }
    .unwrap_or_default()
}

/// Writes the operator role's BGP status, remembering what it wrote until the source shows it.
#[derive(Debug, Default)]
pub struct ClusterController {
    pending: BTreeMap<(Kind, ObjectKey), Vec<Condition>>,
}

/// What one round did.
#[derive(Debug, Default)]
pub struct ClusterRound {
    /// Writes done.
    pub written: usize,
    /// Writes that failed.
    pub failed: Vec<(String, StatusError)>,
}

impl ClusterController {
    /// A controller with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// One round: compute, write what differs, delete stale records.
    pub async fn round(
        &mut self,
        snapshot: &Snapshot,
        sink: &dyn StatusSink,
        secrets_namespace: &str,
        now: Timestamp,
    ) -> ClusterRound {
        self.pending.retain(|(kind, key), want| {
            snapshot.contains(*kind, key)
                && !conditions::same_ignoring_time(&shown(snapshot, *kind, key), want)
        });
        let d = desired(snapshot, secrets_namespace, now);
        let mut round = ClusterRound::default();
        for c in d.conditions {
            let id = (c.kind, c.key.clone());
            let current = self
                .pending
                .get(&id)
                .cloned()
                .unwrap_or_else(|| shown(snapshot, c.kind, &c.key));
            if conditions::same_ignoring_time(&current, &c.conditions) {
                continue;
            }
            self.pending.insert(id, c.conditions.clone());
            let update = StatusUpdate::Conditions {
                kind: c.kind,
                meta: c.meta,
                conditions: Some(c.conditions),
            };
            match sink.write(&update).await {
                Ok(()) => round.written += 1,
                Err(e) => round.failed.push((format!("{} {}", c.kind, c.key), e)),
            }
        }
        for name in d.stale_node_configs {
            let update = StatusUpdate::BgpNodeConfig {
                name: name.clone(),
                object: None,
            };
            match sink.write(&update).await {
                Ok(()) => round.written += 1,
                Err(e) => round
                    .failed
                    .push((format!("CiliumBGPNodeConfig {name}"), e)),
            }
        }
        for (kind, key) in &snapshot.orphan_statuses {
            if !matches!(kind, Kind::BgpClusterConfig | Kind::BgpPeerConfig) {
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
