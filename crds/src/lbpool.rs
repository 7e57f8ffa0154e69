//! CiliumLoadBalancerIPPool: the addresses LB-IPAM gives LoadBalancer services.
//!
//! Served as `cilium.io/v2` (stored) and `cilium.io/v2alpha1` (deprecated, same schema);
//! [`v2alpha1::CiliumLoadBalancerIPPool`] converts into the v2 type, which is what the rest of
//! lbspeaker reads.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Errors, Validate};

/// One block of a pool: `cidr`, or `start` with an optional `stop` (no stop = one address).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    /// An IPv4 or IPv6 prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cidr"))]
    pub cidr: Option<String>,
    /// First address of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Last address of a range (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

/// Whether the first and last address of each cidr block may be allocated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AllowFirstLastIps {
    /// The first and last address of each cidr block are allocatable (the default).
    Yes,
    /// They are reserved (network and broadcast), for cidr blocks of more than 2 addresses.
    No,
}

/// Status of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumLoadBalancerIPPoolStatus {
    /// `cilium.io/IPsTotal`, `cilium.io/IPsAvailable`, `cilium.io/IPsUsed` (status Unknown,
    /// exact decimal counts as message) and `cilium.io/PoolConflict`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Both versions have the same spec; the macro writes it once per version module so that each
/// gets its own `CustomResource` root type.
macro_rules! pool_version {
    ($version:literal, $($extra:tt)*) => {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
        use kube::CustomResource;
        use schemars::JsonSchema;
        use serde::{Deserialize, Serialize};

        pub use super::{AllowFirstLastIps, CiliumLoadBalancerIPPoolStatus, IpBlock};

        /// Addresses for LoadBalancer services: blocks, which services may use them, and
        /// whether new allocations are allowed.
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
        #[kube(
            group = "cilium.io",
            version = $version,
            kind = "CiliumLoadBalancerIPPool",
            singular = "ciliumloadbalancerippool",
            plural = "ciliumloadbalancerippools",
            shortname = "ippools",
            shortname = "ippool",
            shortname = "lbippool",
            shortname = "lbippools",
            category = "cilium",
            status = "CiliumLoadBalancerIPPoolStatus",
            derive = "PartialEq",
            derive = "Default",
            printcolumn(name = "Disabled", type_ = "boolean", json_path = ".spec.disabled"),
            printcolumn(
                name = "Conflicting",
                type_ = "string",
                json_path = r#".status.conditions[?(@.type=="cilium.io/PoolConflict")].status"#
            ),
            printcolumn(
                name = "IPs Available",
                type_ = "string",
                json_path = r#".status.conditions[?(@.type=="cilium.io/IPsAvailable")].message"#
            ),
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
            doc = "CiliumLoadBalancerIPPool is a pool of addresses LB-IPAM allocates to Services of type LoadBalancer.",
            $($extra)*
        )]
        #[serde(rename_all = "camelCase")]
        pub struct CiliumLoadBalancerIPPoolSpec {
            /// The address blocks.
            #[serde(default)]
            pub blocks: Vec<IpBlock>,
            /// Services eligible for this pool (with the service pseudo-labels); nil = all.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(schema_with = "crate::schema::label_selector")]
            pub service_selector: Option<LabelSelector>,
            /// `Yes` (default) or `No`: whether first and last addresses of cidr blocks are used.
            #[serde(default, rename = "allowFirstLastIPs", skip_serializing_if = "Option::is_none")]
            pub allow_first_last_ips: Option<AllowFirstLastIps>,
            /// No new allocations from this pool; existing ones are kept.
            #[serde(default)]
            #[schemars(extend("default" = false))]
            pub disabled: bool,
        }

        impl CiliumLoadBalancerIPPoolSpec {
            /// `allowFirstLastIPs`, defaulted to `Yes`.
            pub fn allow_first_last_ips(&self) -> bool {
                self.allow_first_last_ips != Some(AllowFirstLastIps::No)
            }
        }
    };
}

/// `cilium.io/v2`, the stored version.
pub mod v2 {
    pool_version!("v2", storage = true);
}

/// `cilium.io/v2alpha1`, deprecated, converted to v2 on read.
pub mod v2alpha1 {
    pool_version!("v2alpha1", storage = false, deprecated);
}

pub use v2::{CiliumLoadBalancerIPPool, CiliumLoadBalancerIPPoolSpec};

impl From<v2alpha1::CiliumLoadBalancerIPPool> for v2::CiliumLoadBalancerIPPool {
    fn from(old: v2alpha1::CiliumLoadBalancerIPPool) -> Self {
        let s = old.spec;
        v2::CiliumLoadBalancerIPPool {
            metadata: old.metadata,
            spec: v2::CiliumLoadBalancerIPPoolSpec {
                blocks: s.blocks,
                service_selector: s.service_selector,
                allow_first_last_ips: s.allow_first_last_ips,
                disabled: s.disabled,
            },
            status: old.status,
        }
    }
}

/// Pool blocks are deliberately not rejected here: a bad block (unparsable, start after stop,
/// mixed families) makes LB-IPAM mark the pool conflicting and stop allocating from it while
/// its services keep their addresses. Rejecting the object would make the pool vanish and every
/// service in it be re-addressed because of one typo.
impl Validate for CiliumLoadBalancerIPPool {
    fn validate_into(&self, _: &mut Errors) {}
}

/// Shared for callers that want the selector without naming the version.
pub fn service_selector(pool: &CiliumLoadBalancerIPPool) -> Option<&LabelSelector> {
    pool.spec.service_selector.as_ref()
}

/// The conditions of a pool's status, or none.
pub fn conditions(pool: &CiliumLoadBalancerIPPool) -> &[Condition] {
    pool.status
        .as_ref()
        .map_or(&[], |s| s.conditions.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::split_documents;

    #[test]
    fn a_v2alpha1_pool_converts_to_v2_with_every_field() {
        let doc = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\n\
                   metadata: {name: blue}\nspec:\n  disabled: true\n  allowFirstLastIPs: \"No\"\n\
                   \x20 serviceSelector: {matchLabels: {color: blue}}\n\
                   \x20 blocks: [{cidr: 10.0.10.0/24}, {start: 20.0.20.100, stop: 20.0.20.200}]\n";
        let d = split_documents(doc);
        let old: v2alpha1::CiliumLoadBalancerIPPool = d[0].parse().unwrap();
        let new: CiliumLoadBalancerIPPool = old.into();
        assert_eq!(new.metadata.name.as_deref(), Some("blue"));
        assert!(new.spec.disabled);
        assert!(!new.spec.allow_first_last_ips());
        assert_eq!(new.spec.blocks.len(), 2);
        assert_eq!(new.spec.blocks[1].stop.as_deref(), Some("20.0.20.200"));
        assert!(service_selector(&new).is_some());
        assert!(conditions(&new).is_empty());
    }

    #[test]
    fn an_unknown_allow_first_last_value_is_a_parse_error_naming_the_line() {
        let doc = "kind: CiliumLoadBalancerIPPool\nmetadata: {name: x}\nspec:\n  allowFirstLastIPs: maybe\n";
        let e = split_documents(doc)[0]
            .parse::<CiliumLoadBalancerIPPool>()
            .unwrap_err();
        assert!(e.message.contains("line 4"), "{e}");
    }
}
