//! CiliumPodIPPool (`cilium.io/v2alpha1`): multi-pool IPAM pools, which BGP can advertise
//! (`advertisementType: CiliumPodIPPool`).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Errors, Validate};

/// CIDRs from which nodes get pod address blocks of `maskSize`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cilium.io",
    version = "v2alpha1",
    kind = "CiliumPodIPPool",
    shortname = "cpip",
    category = "cilium",
    derive = "PartialEq",
    derive = "Default",
    doc = "CiliumPodIPPool defines an IP pool for multi-pool IPAM."
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumPodIPPoolSpec {
    /// IPv4 part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<PoolFamily>,
    /// IPv6 part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<PoolFamily>,
}

/// The CIDRs of one family and the size of the blocks handed to nodes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolFamily {
    /// The pool's CIDRs (at least one).
    #[schemars(length(min = 1))]
    pub cidrs: Vec<String>,
    /// Prefix length of each node's block (1..32 for IPv4, 1..128 for IPv6).
    #[schemars(range(min = 1, max = 128))]
    pub mask_size: u8,
}

impl Validate for CiliumPodIPPool {
    fn validate_into(&self, e: &mut Errors) {
        for (fam, part, bits) in [
            ("ipv4", &self.spec.ipv4, 32u8),
            ("ipv6", &self.spec.ipv6, 128),
        ] {
            let Some(part) = part else { continue };
            if part.cidrs.is_empty() {
                e.push(
                    format!("spec.{fam}.cidrs"),
                    None,
                    "must list at least one CIDR",
                );
            }
            for (i, c) in part.cidrs.iter().enumerate() {
                let ok = match c.parse::<ipnet::IpNet>() {
                    Ok(ipnet::IpNet::V4(_)) => bits == 32,
                    Ok(ipnet::IpNet::V6(_)) => bits == 128,
                    Err(_) => false,
                };
                if !ok {
                    e.push(
                        format!("spec.{fam}.cidrs[{i}]"),
                        Some(format!("{c:?}")),
                        format!(
                            "must be an {} CIDR",
                            if bits == 32 { "IPv4" } else { "IPv6" }
                        ),
                    );
                }
            }
            e.range(
                format_args!("spec.{fam}.maskSize"),
                Some(part.mask_size),
                1,
                bits,
            );
        }
    }
}
