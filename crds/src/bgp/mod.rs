//! The BGP Control Plane v2 resources (`cilium.io/v2`, all cluster-scoped).
//!
//! `v2alpha1` manifests of these kinds (Cilium 1.16) have the same fields apart from the ones
//! v2 dropped, and parse into these types too; the generated CRDs serve `v2` only.

mod advert;
mod cluster;
mod node;
mod peer;

pub use advert::*;
pub use cluster::*;
pub use node::*;
pub use peer::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::Errors;

/// How a peer's address is found when `peerAddress` is not given.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpAutoDiscovery {
    /// `DefaultGateway` or `Unnumbered`.
    pub mode: AutoDiscoveryMode,
    /// With `DefaultGateway`: which family's default route to follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_gateway: Option<DefaultGateway>,
}

/// Auto-discovery modes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AutoDiscoveryMode {
    /// The gateway of the node's default route is the peer.
    DefaultGateway,
    /// The peer is reached at its IPv6 link-local address on the default route's interface.
    Unnumbered,
}

/// The default route to follow.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultGateway {
    /// `ipv4` or `ipv6`.
    pub address_family: AddressFamily,
}

/// An IP address family as the BGP resources spell it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// A reference from a peer to its CiliumBGPPeerConfig.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerConfigReference {
    /// The API group; default `cilium.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "cilium.io"))]
    pub group: Option<String>,
    /// The kind; default `CiliumBGPPeerConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "CiliumBGPPeerConfig"))]
    pub kind: Option<String>,
    /// The CiliumBGPPeerConfig's name.
    pub name: String,
}

impl PeerConfigReference {
    /// The group, defaulted.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(crate::GROUP)
    }

    /// The kind, defaulted.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("CiliumBGPPeerConfig")
    }
}

/// The checks shared by cluster and node peers.
pub(crate) fn validate_peer_address(
    e: &mut Errors,
    path: &str,
    address: Option<&str>,
    auto: Option<&BgpAutoDiscovery>,
) {
    if let Some(a) = address {
        e.ip(format_args!("{path}.peerAddress"), a);
    }
    match auto {
        None if address.is_none() => e.push(
            path.to_string(),
            None,
            "must set one of peerAddress or autoDiscovery",
        ),
        Some(d) if d.mode == AutoDiscoveryMode::DefaultGateway && d.default_gateway.is_none() => e
            .push(
                format!("{path}.autoDiscovery.defaultGateway"),
                None,
                "must be set when mode is DefaultGateway",
            ),
        _ => {}
    }
}

/// `x-kubernetes-list-type: map` keyed by `name`, as Cilium's lists of instances and peers are.
pub(crate) fn list_map_by_name(schema: &mut schemars::Schema) {
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["name"]),
    );
}
