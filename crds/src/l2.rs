//! CiliumL2AnnouncementPolicy (`cilium.io/v2alpha1`): which nodes answer ARP/NDP for which
//! service addresses, on which interfaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Errors, Validate};

/// Services (by `serviceSelector`) announced on L2 by nodes (by `nodeSelector`) on interfaces
/// matching `interfaces`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cilium.io",
    version = "v2alpha1",
    kind = "CiliumL2AnnouncementPolicy",
    shortname = "l2announcement",
    category = "cilium",
    status = "CiliumL2AnnouncementPolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "CiliumL2AnnouncementPolicy defines which nodes announce which service addresses on L2 (ARP/NDP)."
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumL2AnnouncementPolicySpec {
    /// Nodes that may announce; nil = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub node_selector: Option<LabelSelector>,
    /// Services announced (class unset or `io.cilium/l2-announcer`); nil = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub service_selector: Option<LabelSelector>,
    /// Announce `status.loadBalancer.ingress` addresses (default false).
    #[serde(
        default,
        rename = "loadBalancerIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ips: Option<bool>,
    /// Announce `spec.externalIPs` (default false).
    #[serde(
        default,
        rename = "externalIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_ips: Option<bool>,
    /// Regular expressions over interface names; nil = every interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
}

impl CiliumL2AnnouncementPolicySpec {
    /// `loadBalancerIPs`, defaulted.
    pub fn load_balancer_ips(&self) -> bool {
        self.load_balancer_ips.unwrap_or(false)
    }
    /// `externalIPs`, defaulted.
    pub fn external_ips(&self) -> bool {
        self.external_ips.unwrap_or(false)
    }
}

/// Status: conditions only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumL2AnnouncementPolicyStatus {
    /// `io.cilium/bad-service-selector`, `io.cilium/bad-node-selector`,
    /// `io.cilium/bad-interface-regex`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Selectors and interface patterns are reported by the L2 reconciler as conditions (as Cilium
/// does), not rejected: nothing here makes the object unusable as a whole.
impl Validate for CiliumL2AnnouncementPolicy {
    fn validate_into(&self, _: &mut Errors) {}
}
