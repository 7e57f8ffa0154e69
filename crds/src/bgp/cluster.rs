//! CiliumBGPClusterConfig: BGP instances and peers for the nodes a selector picks.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BgpAutoDiscovery, PeerConfigReference, list_map_by_name, validate_peer_address};
use crate::validate::{Errors, Validate};

/// BGP instances (virtual routers) and their peers, applied to every node `nodeSelector` picks.
/// Only one ClusterConfig may select a node.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cilium.io",
    version = "v2",
    kind = "CiliumBGPClusterConfig",
    shortname = "cbgpcluster",
    category = "cilium",
    category = "ciliumbgp",
    status = "CiliumBGPClusterConfigStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "CiliumBGPClusterConfig defines BGP instances and peers for the nodes its nodeSelector selects."
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPClusterConfigSpec {
    /// Nodes this configuration applies to; nil = every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub node_selector: Option<LabelSelector>,
    /// The BGP instances, 1 to 16, keyed by name.
    #[schemars(length(min = 1, max = 16), transform = list_map_by_name)]
    pub bgp_instances: Vec<CiliumBGPInstance>,
}

/// One BGP instance (virtual router).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPInstance {
    /// Unique within the config.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// The local AS, 1..4294967295 (4-octet AS numbers supported).
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub local_asn: Option<i64>,
    /// Port to listen on; unset = do not listen, only dial out from an ephemeral port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub local_port: Option<i32>,
    /// The peers, keyed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = list_map_by_name)]
    pub peers: Vec<CiliumBGPPeer>,
}

/// One peer of an instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPPeer {
    /// Unique within the instance.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// IPv4 or IPv6 address of the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// The peer's AS; 0 (the default) accepts whatever AS the peer announces.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295_i64), extend("default" = 0))]
    pub peer_asn: Option<i64>,
    /// Find the peer address instead of configuring it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_discovery: Option<BgpAutoDiscovery>,
    /// The CiliumBGPPeerConfig with this peer's settings; unset = defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_config_ref: Option<PeerConfigReference>,
}

impl CiliumBGPPeer {
    /// `peerASN`, defaulted (0 = any).
    pub fn peer_asn(&self) -> i64 {
        self.peer_asn.unwrap_or(0)
    }
}

/// Status: conditions only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPClusterConfigStatus {
    /// `cilium.io/NoMatchingNode`, `cilium.io/MissingPeerConfigs`,
    /// `cilium.io/ConflictingClusterConfig`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for CiliumBGPClusterConfig {
    fn validate_into(&self, e: &mut Errors) {
        let n = self.spec.bgp_instances.len();
        if !(1..=16).contains(&n) {
            e.push(
                "spec.bgpInstances",
                Some(format!("{n} instances")),
                "must have between 1 and 16 instances",
            );
        }
        e.unique_names(
            "spec.bgpInstances",
            "name",
            self.spec.bgp_instances.iter().map(|i| i.name.as_str()),
        );
        for (i, inst) in self.spec.bgp_instances.iter().enumerate() {
            let p = format!("spec.bgpInstances[{i}]");
            e.length(format_args!("{p}.name"), &inst.name, 1, 255);
            e.range(format_args!("{p}.localASN"), inst.local_asn, 1, 4294967295);
            e.range(format_args!("{p}.localPort"), inst.local_port, 1, 65535);
            e.unique_names(
                format_args!("{p}.peers"),
                "name",
                inst.peers.iter().map(|x| x.name.as_str()),
            );
            for (j, peer) in inst.peers.iter().enumerate() {
                let pp = format!("{p}.peers[{j}]");
                e.length(format_args!("{pp}.name"), &peer.name, 1, 255);
                e.range(format_args!("{pp}.peerASN"), peer.peer_asn, 0, 4294967295);
                validate_peer_address(
                    e,
                    &pp,
                    peer.peer_address.as_deref(),
                    peer.auto_discovery.as_ref(),
                );
                if let Some(r) = &peer.peer_config_ref {
                    e.length(format_args!("{pp}.peerConfigRef.name"), &r.name, 1, 253);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::{AutoDiscoveryMode, BgpAutoDiscovery};

    fn config(instances: Vec<CiliumBGPInstance>) -> CiliumBGPClusterConfig {
        CiliumBGPClusterConfig::new(
            "cilium-bgp",
            CiliumBGPClusterConfigSpec {
                node_selector: None,
                bgp_instances: instances,
            },
        )
    }

    fn instance(name: &str, peers: Vec<CiliumBGPPeer>) -> CiliumBGPInstance {
        CiliumBGPInstance {
            name: name.into(),
            local_asn: Some(65001),
            local_port: None,
            peers,
        }
    }

    fn peer(name: &str, address: Option<&str>) -> CiliumBGPPeer {
        CiliumBGPPeer {
            name: name.into(),
            peer_address: address.map(String::from),
            peer_asn: None,
            auto_discovery: None,
            peer_config_ref: None,
        }
    }

    #[test]
    fn no_instances_or_more_than_sixteen_are_rejected() {
        assert!(config(vec![]).validate().is_err());
        let many = (0..17)
            .map(|i| instance(&format!("i{i}"), vec![]))
            .collect();
        let e = config(many).validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "CiliumBGPClusterConfig cilium-bgp: spec.bgpInstances (17 instances) must have between 1 and 16 instances"
        );
    }

    #[test]
    fn peers_need_a_valid_address_or_discovery_and_unique_names() {
        let c = config(vec![instance(
            "i",
            vec![
                peer("tor", Some("192.168.10.300")),
                peer("tor", None),
                CiliumBGPPeer {
                    auto_discovery: Some(BgpAutoDiscovery {
                        mode: AutoDiscoveryMode::DefaultGateway,
                        default_gateway: None,
                    }),
                    peer_asn: Some(4294967296),
                    ..peer("gw", None)
                },
            ],
        )]);
        let lines: Vec<String> = c
            .validate()
            .unwrap_err()
            .to_string()
            .lines()
            .map(String::from)
            .collect();
        let p = "CiliumBGPClusterConfig cilium-bgp: spec.bgpInstances[0].peers";
        assert_eq!(
            lines,
            [
                format!("{p}[1].name (tor) must be unique: an earlier entry has the same name"),
                format!("{p}[0].peerAddress (\"192.168.10.300\") must be an IPv4 or IPv6 address"),
                format!("{p}[1] must set one of peerAddress or autoDiscovery"),
                format!("{p}[2].peerASN (4294967296) must be between 0 and 4294967295"),
                format!(
                    "{p}[2].autoDiscovery.defaultGateway must be set when mode is DefaultGateway"
                ),
            ]
        );
    }

    #[test]
    fn asn_and_port_ranges_are_enforced() {
        let mut i = instance("i", vec![peer("p", Some("fd00::1"))]);
        i.local_asn = Some(0);
        i.local_port = Some(70000);
        let e = config(vec![i]).validate().unwrap_err();
        assert_eq!(e.errors.len(), 2);
        assert_eq!(e.errors[0].path, "spec.bgpInstances[0].localASN");
        assert_eq!(e.errors[1].path, "spec.bgpInstances[0].localPort");
    }
}
