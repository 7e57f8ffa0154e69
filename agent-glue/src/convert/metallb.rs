//! The MetalLB resources `lbspeaker convert metallb` reads (metallb.io v1beta1 / v1beta2), with
//! only the fields that have a meaning for the conversion. Every other field is kept in `other`
//! so the converter can say it was not carried over instead of dropping it silently.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::Value;

/// `metadata` as far as the conversion needs it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    /// The object's name.
    #[serde(default)]
    pub name: String,
    /// Its namespace (MetalLB objects live in `metallb-system`).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Fields of a spec this converter does not know.
pub type Other = BTreeMap<String, Value>;

/// `IPAddressPool` (metallb.io/v1beta1).
#[derive(Debug, Clone, Deserialize)]
pub struct IpAddressPool {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: IpAddressPoolSpec,
}

/// `IPAddressPool.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddressPoolSpec {
    /// CIDRs (`10.0.0.0/24`) and ranges (`10.0.0.1-10.0.0.9`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Whether services get addresses from the pool without asking for it (default true).
    #[serde(default)]
    pub auto_assign: Option<bool>,
    /// Skip `.0` and `.255` addresses.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: Option<bool>,
    /// Which services may use the pool.
    #[serde(default)]
    pub service_allocation: Option<ServiceAllocation>,
    /// Anything else.
    #[serde(flatten)]
    pub other: Other,
}

/// `IPAddressPool.spec.serviceAllocation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Order among pools.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Namespaces whose services may use the pool.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespace label selectors.
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Service label selectors (any of them).
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// A reference to a Secret.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecretRef {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `BGPPeer` (metallb.io/v1beta2, v1beta1 alike for these fields).
#[derive(Debug, Clone, Deserialize)]
pub struct BgpPeer {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: BgpPeerSpec,
}

/// `BGPPeer.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// Local AS.
    #[serde(default, rename = "myASN")]
    pub my_asn: Option<i64>,
    /// The peer's AS.
    #[serde(default, rename = "peerASN")]
    pub peer_asn: Option<i64>,
    /// `internal` or `external` instead of a number.
    #[serde(default, rename = "dynamicASN")]
    pub dynamic_asn: Option<String>,
    /// The peer's address.
    #[serde(default)]
    pub peer_address: Option<String>,
    /// Our source address.
    #[serde(default)]
    pub source_address: Option<String>,
    /// The peer's port.
    #[serde(default)]
    pub peer_port: Option<i64>,
    /// Hold time, a Go duration (`90s`).
    #[serde(default)]
    pub hold_time: Option<String>,
    /// Keepalive interval, a Go duration.
    #[serde(default)]
    pub keepalive_time: Option<String>,
    /// Connect retry interval, a Go duration.
    #[serde(default)]
    pub connect_time: Option<String>,
    /// Router ID for every node.
    #[serde(default, rename = "routerID")]
    pub router_id: Option<String>,
    /// TCP MD5 password in clear.
    #[serde(default)]
    pub password: Option<String>,
    /// TCP MD5 password in a Secret (basic-auth, key `password`).
    #[serde(default)]
    pub password_secret: Option<SecretRef>,
    /// BFD profile name.
    #[serde(default)]
    pub bfd_profile: Option<String>,
    /// Graceful restart.
    #[serde(default)]
    pub enable_graceful_restart: Option<bool>,
    /// Nodes that peer (any of the selectors).
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// The peer is more than one hop away.
    #[serde(default)]
    pub ebgp_multi_hop: Option<bool>,
    /// Anything else (vrf, disableMP, ...).
    #[serde(flatten)]
    pub other: Other,
}

/// `BGPAdvertisement` (metallb.io/v1beta1).
#[derive(Debug, Clone, Deserialize)]
pub struct BgpAdvertisement {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: BgpAdvertisementSpec,
}

/// `BGPAdvertisement.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpAdvertisementSpec {
    /// IPv4 aggregation length.
    #[serde(default)]
    pub aggregation_length: Option<i64>,
    /// IPv6 aggregation length.
    #[serde(default, rename = "aggregationLengthV6")]
    pub aggregation_length_v6: Option<i64>,
    /// LOCAL_PREF.
    #[serde(default)]
    pub local_pref: Option<i64>,
    /// Communities: `a:b`, `large:a:b:c`, or the name of a `Community` alias.
    #[serde(default)]
    pub communities: Vec<String>,
    /// Pools whose addresses are advertised (none: all).
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    /// Pool label selectors.
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that advertise.
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// Peers that receive the routes (none: all).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Anything else.
    #[serde(flatten)]
    pub other: Other,
}

/// `L2Advertisement` (metallb.io/v1beta1).
#[derive(Debug, Clone, Deserialize)]
pub struct L2Advertisement {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: L2AdvertisementSpec,
}

/// `L2Advertisement.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools whose addresses are announced (none: all).
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    /// Pool label selectors.
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce.
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    /// Interface names (none: all).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Anything else.
    #[serde(flatten)]
    pub other: Other,
}

/// `Community` (metallb.io/v1beta1): aliases for community values.
#[derive(Debug, Clone, Deserialize)]
pub struct Community {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: CommunitySpec,
}

/// `Community.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommunitySpec {
    /// The aliases.
    #[serde(default)]
    pub communities: Vec<CommunityAlias>,
}

/// One alias.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommunityAlias {
    /// The alias.
    #[serde(default)]
    pub name: String,
    /// `a:b` or `large:a:b:c`.
    #[serde(default)]
    pub value: String,
}

/// `BFDProfile` (metallb.io/v1beta1).
#[derive(Debug, Clone, Deserialize)]
pub struct BfdProfile {
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    #[serde(default)]
    pub spec: BfdProfileSpec,
}

/// `BFDProfile.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BfdProfileSpec {
    /// Minimum receive interval, milliseconds.
    #[serde(default)]
    pub receive_interval: Option<u32>,
    /// Minimum transmit interval, milliseconds.
    #[serde(default)]
    pub transmit_interval: Option<u32>,
    /// Detect multiplier.
    #[serde(default)]
    pub detect_multiplier: Option<u32>,
    /// Echo mode.
    #[serde(default)]
    pub echo_mode: Option<bool>,
    /// Passive mode.
    #[serde(default)]
    pub passive_mode: Option<bool>,
    /// Anything else.
    #[serde(flatten)]
    pub other: Other,
}

/// Parses a Go duration (`90s`, `1m30s`, `500ms`, `1h`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let d = crate::duration::parse_go(text).ok()?;
    u64::try_from(d.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_to_milliseconds() {
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("1.5s"), Some(1_500));
        assert_eq!(parse_duration_ms("0.3s"), Some(300));
        assert_eq!(parse_duration_ms("0"), Some(0));
        for bad in ["", "90", "s", "10x", "1m-3s"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }
}
