//! Condition types lbspeaker sets in `status.conditions`, named exactly as Cilium names them so
//! that dashboards and `kubectl wait --for=condition=...` keep working, and a helper to build
//! and update them the way `meta.SetStatusCondition` does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Service: whether LB-IPAM gave the service what it asked for.
pub const IPAM_REQUEST_SATISFIED: &str = "cilium.io/IPAMRequestSatisfied";
/// Pool: total number of addresses (status Unknown, the exact decimal count in the message).
pub const IPS_TOTAL: &str = "cilium.io/IPsTotal";
/// Pool: addresses still free.
pub const IPS_AVAILABLE: &str = "cilium.io/IPsAvailable";
/// Pool: addresses given to services.
pub const IPS_USED: &str = "cilium.io/IPsUsed";
/// Pool: overlaps another pool or itself (True with the ranges named, or False).
pub const POOL_CONFLICT: &str = "cilium.io/PoolConflict";
/// Pool or L2 policy: the `serviceSelector` cannot be evaluated.
pub const BAD_SERVICE_SELECTOR: &str = "io.cilium/bad-service-selector";
/// L2 policy: the `nodeSelector` cannot be evaluated.
pub const BAD_NODE_SELECTOR: &str = "io.cilium/bad-node-selector";
/// L2 policy: an `interfaces[]` entry is not a valid regular expression.
pub const BAD_INTERFACE_REGEX: &str = "io.cilium/bad-interface-regex";
/// ClusterConfig: its nodeSelector matches no node.
pub const NO_MATCHING_NODE: &str = "cilium.io/NoMatchingNode";
/// ClusterConfig: a peerConfigRef names a CiliumBGPPeerConfig that does not exist.
pub const MISSING_PEER_CONFIGS: &str = "cilium.io/MissingPeerConfigs";
/// ClusterConfig: another ClusterConfig selects one of its nodes.
pub const CONFLICTING_CLUSTER_CONFIG: &str = "cilium.io/ConflictingClusterConfig";
/// PeerConfig: the `authSecretRef` Secret does not exist.
pub const MISSING_AUTH_SECRET: &str = "cilium.io/MissingAuthSecret";
/// NodeConfig: the agent failed to apply it.
pub const BGP_RECONCILE_ERROR: &str = "cilium.io/BGPReconcileError";

/// `status` of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"` (Cilium uses it for the counting conditions of pools).
    Unknown,
}

impl Status {
    /// The string Kubernetes stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Builds a condition stamped `now`.
pub fn new(
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time: Time(now),
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Puts `new` into `conditions`, replacing the condition of the same type. The
/// `lastTransitionTime` of the old one is kept when the status did not change, so that
/// rewriting an unchanged condition changes nothing (and reconciles stay idempotent).
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// Whether two condition lists say the same, ignoring transition times.
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            find(b, &x.type_).is_some_and(|y| {
                x.status == y.status
                    && x.reason == y.reason
                    && x.message == y.message
                    && x.observed_generation == y.observed_generation
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn setting_an_unchanged_status_keeps_the_transition_time() {
        let mut list = vec![new(POOL_CONFLICT, Status::False, "a", "", None, at(10))];
        set(
            &mut list,
            new(POOL_CONFLICT, Status::False, "b", "m", None, at(20)),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time.0, at(10));
        assert_eq!(list[0].reason, "b");
        set(
            &mut list,
            new(POOL_CONFLICT, Status::True, "c", "", None, at(30)),
        );
        assert_eq!(list[0].last_transition_time.0, at(30));
    }

    #[test]
    fn comparison_ignores_times_and_order() {
        let a = vec![
            new(IPS_TOTAL, Status::Unknown, "noreason", "5", None, at(1)),
            new(IPS_USED, Status::Unknown, "noreason", "0", None, at(1)),
        ];
        let b = vec![
            new(IPS_USED, Status::Unknown, "noreason", "0", None, at(9)),
            new(IPS_TOTAL, Status::Unknown, "noreason", "5", None, at(9)),
        ];
        assert!(same_ignoring_time(&a, &b));
        let c = vec![new(IPS_USED, Status::Unknown, "noreason", "1", None, at(9))];
        assert!(!same_ignoring_time(&a, &c));
    }
}
