//! CiliumBGPNodeConfig (one per node, written by the operator role: the instances and peers
//! resolved for that node, and the node's BGP state as status) and CiliumBGPNodeConfigOverride
//! (per-node settings a user adds: router ID, local port and AS, local addresses).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BgpAutoDiscovery, PeerConfigReference, list_map_by_name, validate_peer_address};
use crate::validate::{Errors, Validate};

/// The BGP configuration of one node (the object's name is the node's name).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cilium.io",
    version = "v2",
    kind = "CiliumBGPNodeConfig",
    shortname = "cbgpnode",
    category = "cilium",
    category = "ciliumbgp",
    status = "CiliumBGPNodeConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "CiliumBGPNodeConfig is the BGP configuration of one node, named after it, written by the operator."
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodeConfigSpec {
    /// The node's BGP instances.
    #[schemars(length(min = 1, max = 16), transform = list_map_by_name)]
    pub bgp_instances: Vec<CiliumBGPNodeInstance>,
}

/// One instance on one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodeInstance {
    /// The instance name (from the ClusterConfig).
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Local AS.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub local_asn: Option<i64>,
    /// Listening port; unset = do not listen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub local_port: Option<i32>,
    /// Router ID (from an override); unset = the node's IPv4 address.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "ipv4"))]
    pub router_id: Option<String>,
    /// Peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = list_map_by_name)]
    pub peers: Vec<CiliumBGPNodePeer>,
}

/// One peer of a node's instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodePeer {
    /// Peer name.
    pub name: String,
    /// Peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// Peer AS (0 = any).
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295_i64))]
    pub peer_asn: Option<i64>,
    /// Address discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_discovery: Option<BgpAutoDiscovery>,
    /// Local address of the session (from an override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    /// Peer settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_config_ref: Option<PeerConfigReference>,
}

/// What the node's agent reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodeConfigStatus {
    /// Per instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_instances: Vec<CiliumBGPNodeInstanceStatus>,
    /// `cilium.io/BGPReconcileError`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// State of one instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodeInstanceStatus {
    /// Instance name.
    pub name: String,
    /// Local AS.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    pub local_asn: Option<i64>,
    /// Per peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<CiliumBGPNodePeerStatus>,
}

/// State of one session.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodePeerStatus {
    /// Peer name.
    pub name: String,
    /// Peer address.
    pub peer_address: String,
    /// Peer AS (as announced once established).
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<i64>,
    /// `idle`, `connect`, `active`, `opensent`, `openconfirm` or `established`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peering_state: Option<String>,
    /// When the session was established (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_time: Option<String>,
    /// Negotiated timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers: Option<CiliumBGPTimersState>,
    /// Routes per family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_count: Vec<BgpFamilyRouteCount>,
}

/// Timers in use on a session.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPTimersState {
    /// Negotiated hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_hold_time_seconds: Option<i32>,
    /// Keepalive interval in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_keepalive_seconds: Option<i32>,
}

/// Received and advertised route counts of one family.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpFamilyRouteCount {
    /// `ipv4` or `ipv6`.
    pub afi: String,
    /// `unicast`.
    pub safi: String,
    /// Routes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<i32>,
    /// Routes advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised: Option<i32>,
}

/// Per-node overrides (the object's name is the node's name).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cilium.io",
    version = "v2",
    kind = "CiliumBGPNodeConfigOverride",
    shortname = "cbgpnodeoverride",
    category = "cilium",
    category = "ciliumbgp",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "CiliumBGPNodeConfigOverride overrides node-local BGP settings of the node it is named after."
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodeConfigOverrideSpec {
    /// Per-instance overrides.
    #[schemars(transform = list_map_by_name)]
    pub bgp_instances: Vec<CiliumBGPNodeConfigInstanceOverride>,
}

/// Overrides of one instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodeConfigInstanceOverride {
    /// The instance (as named in the ClusterConfig).
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Router ID for this node.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "ipv4"))]
    pub router_id: Option<String>,
    /// Listening port for this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub local_port: Option<i32>,
    /// Local AS for this node.
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub local_asn: Option<i64>,
    /// Per-peer overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = list_map_by_name)]
    pub peers: Vec<CiliumBGPNodeConfigPeerOverride>,
}

/// Overrides of one peer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPNodeConfigPeerOverride {
    /// The peer (as named in the ClusterConfig).
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Local address to use for the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
}

fn validate_instance_common(
    e: &mut Errors,
    p: &str,
    name: &str,
    asn: Option<i64>,
    port: Option<i32>,
    router_id: Option<&str>,
) {
    e.length(format_args!("{p}.name"), name, 1, 255);
    e.range(format_args!("{p}.localASN"), asn, 1, 4294967295);
    e.range(format_args!("{p}.localPort"), port, 1, 65535);
    if let Some(r) = router_id {
        e.ipv4(format_args!("{p}.routerID"), r);
    }
}

impl Validate for CiliumBGPNodeConfig {
    fn validate_into(&self, e: &mut Errors) {
        e.unique_names(
            "spec.bgpInstances",
            "name",
            self.spec.bgp_instances.iter().map(|i| i.name.as_str()),
        );
        for (i, inst) in self.spec.bgp_instances.iter().enumerate() {
            let p = format!("spec.bgpInstances[{i}]");
            validate_instance_common(
                e,
                &p,
                &inst.name,
                inst.local_asn,
                inst.local_port,
                inst.router_id.as_deref(),
            );
            for (j, peer) in inst.peers.iter().enumerate() {
                let pp = format!("{p}.peers[{j}]");
                e.range(format_args!("{pp}.peerASN"), peer.peer_asn, 0, 4294967295);
                validate_peer_address(
                    e,
                    &pp,
                    peer.peer_address.as_deref(),
                    peer.auto_discovery.as_ref(),
                );
                if let Some(a) = &peer.local_address {
                    e.ip(format_args!("{pp}.localAddress"), a);
                }
            }
        }
    }
}

impl Validate for CiliumBGPNodeConfigOverride {
    fn validate_into(&self, e: &mut Errors) {
        e.unique_names(
            "spec.bgpInstances",
            "name",
            self.spec.bgp_instances.iter().map(|i| i.name.as_str()),
        );
        for (i, inst) in self.spec.bgp_instances.iter().enumerate() {
            let p = format!("spec.bgpInstances[{i}]");
            validate_instance_common(
                e,
                &p,
                &inst.name,
                inst.local_asn,
                inst.local_port,
                inst.router_id.as_deref(),
            );
            e.unique_names(
                format_args!("{p}.peers"),
                "name",
                inst.peers.iter().map(|x| x.name.as_str()),
            );
            for (j, peer) in inst.peers.iter().enumerate() {
                if let Some(a) = &peer.local_address {
                    e.ip(format_args!("{p}.peers[{j}].localAddress"), a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_router_ids_must_be_ipv4() {
        let o = CiliumBGPNodeConfigOverride::new(
            "node1",
            CiliumBGPNodeConfigOverrideSpec {
                bgp_instances: vec![CiliumBGPNodeConfigInstanceOverride {
                    name: "instance-65001".into(),
                    router_id: Some("fd00::1".into()),
                    peers: vec![CiliumBGPNodeConfigPeerOverride {
                        name: "tor".into(),
                        local_address: Some("10.0.0.300".into()),
                    }],
                    ..Default::default()
                }],
            },
        );
        let e = o.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "CiliumBGPNodeConfigOverride node1: spec.bgpInstances[0].routerID (\"fd00::1\") must be an IPv4 address\n\
             CiliumBGPNodeConfigOverride node1: spec.bgpInstances[0].peers[0].localAddress (\"10.0.0.300\") must be an IPv4 or IPv6 address"
        );
    }
}
