//! CiliumBGPPeerConfig: settings shared by the peers that reference it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Errors, Validate};

/// Transport, timers, authentication, graceful restart, multihop and address families for
/// every peer whose `peerConfigRef` names this object.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cilium.io",
    version = "v2",
    kind = "CiliumBGPPeerConfig",
    shortname = "cbgppeer",
    category = "cilium",
    category = "ciliumbgp",
    status = "CiliumBGPPeerConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "CiliumBGPPeerConfig is a set of BGP peering settings shared by the peers that reference it."
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPPeerConfigSpec {
    /// TCP transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// BGP timers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers: Option<Timers>,
    /// Secret (in the BGP secrets namespace, default `kube-system`) whose key `password` is the
    /// TCP MD5 key; unset = no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<String>,
    /// Graceful restart (RFC 4724); unset = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// TTL of packets to eBGP peers, 1..255 (default 1); ignored for iBGP.
    #[serde(
        default,
        rename = "ebgpMultihop",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 255), extend("default" = 1))]
    pub ebgp_multihop: Option<i32>,
    /// Address families and what to advertise in each; omitted = ipv4/unicast and ipv6/unicast
    /// with no advertisements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub families: Option<Vec<CiliumBGPFamilyWithAdverts>>,
}

/// TCP transport settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transport {
    /// The peer's TCP port (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535), extend("default" = 179))]
    pub peer_port: Option<i32>,
}

/// BGP timers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timers {
    /// ConnectRetryTimer (RFC 4271 §8), default 120 s; jittered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647), extend("default" = 120))]
    pub connect_retry_time_seconds: Option<i32>,
    /// Proposed hold time, 3..65535, default 90 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 65535), extend("default" = 90))]
    pub hold_time_seconds: Option<i32>,
    /// Keepalive interval, 1..65535, default 30 s; must not exceed the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535), extend("default" = 30))]
    pub keep_alive_time_seconds: Option<i32>,
}

/// Default ConnectRetryTimer.
pub const DEFAULT_CONNECT_RETRY_SECONDS: i32 = 120;
/// Default hold time.
pub const DEFAULT_HOLD_TIME_SECONDS: i32 = 90;
/// Default keepalive.
pub const DEFAULT_KEEPALIVE_SECONDS: i32 = 30;
/// Default peer port.
pub const DEFAULT_PEER_PORT: i32 = 179;
/// Default graceful-restart restart time.
pub const DEFAULT_RESTART_TIME_SECONDS: i32 = 120;
/// Default eBGP multihop TTL.
pub const DEFAULT_EBGP_MULTIHOP: i32 = 1;

impl Timers {
    /// Connect retry, defaulted.
    pub fn connect_retry_time_seconds(&self) -> i32 {
        self.connect_retry_time_seconds
            .unwrap_or(DEFAULT_CONNECT_RETRY_SECONDS)
    }
    /// Hold time, defaulted.
    pub fn hold_time_seconds(&self) -> i32 {
        self.hold_time_seconds.unwrap_or(DEFAULT_HOLD_TIME_SECONDS)
    }
    /// Keepalive, defaulted.
    pub fn keep_alive_time_seconds(&self) -> i32 {
        self.keep_alive_time_seconds
            .unwrap_or(DEFAULT_KEEPALIVE_SECONDS)
    }
}

/// Graceful restart (RFC 4724, with the N bit of RFC 8538).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Advertise the capability.
    pub enabled: bool,
    /// Restart time advertised, 1..4095 s, default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4095), extend("default" = 120))]
    pub restart_time_seconds: Option<i32>,
}

impl GracefulRestart {
    /// Restart time, defaulted.
    pub fn restart_time_seconds(&self) -> i32 {
        self.restart_time_seconds
            .unwrap_or(DEFAULT_RESTART_TIME_SECONDS)
    }
}

/// One address family and the advertisements sent in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPFamilyWithAdverts {
    /// Address family identifier.
    pub afi: Afi,
    /// Subsequent address family identifier.
    pub safi: Safi,
    /// Selects CiliumBGPAdvertisements by their labels; nil = advertise nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub advertisements: Option<LabelSelector>,
}

/// AFI values Cilium's schema accepts (only `ipv4` and `ipv6` with `unicast` are acted on).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Afi {
    /// IPv4.
    #[serde(rename = "ipv4")]
    Ipv4,
    /// IPv6.
    #[serde(rename = "ipv6")]
    Ipv6,
    /// L2VPN.
    #[serde(rename = "l2vpn")]
    L2vpn,
    /// BGP-LS.
    #[serde(rename = "ls")]
    Ls,
    /// Opaque.
    #[serde(rename = "opaque")]
    Opaque,
}

/// SAFI values Cilium's schema accepts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Safi {
    Unicast,
    Multicast,
    MplsLabel,
    Encapsulation,
    Vpls,
    Evpn,
    Ls,
    SrPolicy,
    Mup,
    MplsVpn,
    MplsVpnMulticast,
    RouteTargetConstraints,
    FlowspecUnicast,
    FlowspecVpn,
    KeyValue,
}

impl CiliumBGPPeerConfigSpec {
    /// The families in effect: as listed, or ipv6/unicast and ipv4/unicast (without
    /// advertisements) when none are.
    pub fn families_or_default(&self) -> Vec<CiliumBGPFamilyWithAdverts> {
        match &self.families {
            Some(f) if !f.is_empty() => f.clone(),
            _ => [Afi::Ipv6, Afi::Ipv4]
                .into_iter()
                .map(|afi| CiliumBGPFamilyWithAdverts {
                    afi,
                    safi: Safi::Unicast,
                    advertisements: None,
                })
                .collect(),
        }
    }

    /// The peer port, defaulted.
    pub fn peer_port(&self) -> i32 {
        self.transport
            .as_ref()
            .and_then(|t| t.peer_port)
            .unwrap_or(DEFAULT_PEER_PORT)
    }

    /// The timers, with every default applied.
    pub fn timers(&self) -> Timers {
        let t = self.timers.clone().unwrap_or_default();
        Timers {
            connect_retry_time_seconds: Some(t.connect_retry_time_seconds()),
            hold_time_seconds: Some(t.hold_time_seconds()),
            keep_alive_time_seconds: Some(t.keep_alive_time_seconds()),
        }
    }

    /// The eBGP multihop TTL, defaulted.
    pub fn ebgp_multihop(&self) -> i32 {
        self.ebgp_multihop.unwrap_or(DEFAULT_EBGP_MULTIHOP)
    }
}

/// Status: conditions only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPPeerConfigStatus {
    /// `cilium.io/MissingAuthSecret`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for CiliumBGPPeerConfig {
    fn validate_into(&self, e: &mut Errors) {
        let s = &self.spec;
        if let Some(t) = &s.transport {
            e.range("spec.transport.peerPort", t.peer_port, 1, 65535);
        }
        if let Some(t) = &s.timers {
            e.range(
                "spec.timers.connectRetryTimeSeconds",
                t.connect_retry_time_seconds,
                1,
                i32::MAX,
            );
            e.range("spec.timers.holdTimeSeconds", t.hold_time_seconds, 3, 65535);
            e.range(
                "spec.timers.keepAliveTimeSeconds",
                t.keep_alive_time_seconds,
                1,
                65535,
            );
            let (hold, keep) = (t.hold_time_seconds(), t.keep_alive_time_seconds());
            if keep > hold {
                e.push(
                    "spec.timers.keepAliveTimeSeconds",
                    Some(keep.to_string()),
                    format!("must not exceed holdTimeSeconds ({hold})"),
                );
            }
        }
        if let Some(g) = &s.graceful_restart {
            e.range(
                "spec.gracefulRestart.restartTimeSeconds",
                g.restart_time_seconds,
                1,
                4095,
            );
        }
        e.range("spec.ebgpMultihop", s.ebgp_multihop, 1, 255);
        if let Some(name) = &s.auth_secret_ref {
            e.length("spec.authSecretRef", name, 1, 253);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_config(timers: Timers) -> CiliumBGPPeerConfig {
        CiliumBGPPeerConfig::new(
            "cilium-peer",
            CiliumBGPPeerConfigSpec {
                timers: Some(timers),
                ..Default::default()
            },
        )
    }

    #[test]
    fn keepalive_above_the_hold_time_is_rejected_with_object_path_and_rule() {
        let err = peer_config(Timers {
            hold_time_seconds: Some(9),
            ..Default::default()
        })
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CiliumBGPPeerConfig cilium-peer: spec.timers.keepAliveTimeSeconds (30) must not exceed holdTimeSeconds (9)"
        );
    }

    #[test]
    fn every_out_of_range_timer_is_reported() {
        let err = peer_config(Timers {
            connect_retry_time_seconds: Some(0),
            hold_time_seconds: Some(2),
            keep_alive_time_seconds: Some(1),
        })
        .validate()
        .unwrap_err();
        let lines: Vec<String> = err.to_string().lines().map(String::from).collect();
        assert_eq!(
            lines,
            [
                "CiliumBGPPeerConfig cilium-peer: spec.timers.connectRetryTimeSeconds (0) must be between 1 and 2147483647",
                "CiliumBGPPeerConfig cilium-peer: spec.timers.holdTimeSeconds (2) must be between 3 and 65535",
            ]
        );
    }

    #[test]
    fn defaults_apply_when_fields_are_omitted() {
        let s = CiliumBGPPeerConfigSpec::default();
        assert_eq!(s.peer_port(), 179);
        let t = s.timers();
        assert_eq!(t.connect_retry_time_seconds, Some(120));
        assert_eq!(t.hold_time_seconds, Some(90));
        assert_eq!(t.keep_alive_time_seconds, Some(30));
        assert_eq!(s.ebgp_multihop(), 1);
        let f = s.families_or_default();
        assert_eq!(
            f.iter().map(|f| (f.afi, f.safi)).collect::<Vec<_>>(),
            [(Afi::Ipv6, Safi::Unicast), (Afi::Ipv4, Safi::Unicast)]
        );
        assert!(f.iter().all(|f| f.advertisements.is_none()));
        assert_eq!(GracefulRestart::default().restart_time_seconds(), 120);
    }

    #[test]
    fn multihop_and_restart_time_ranges_are_enforced() {
        let mut c = peer_config(Timers::default());
        c.spec.ebgp_multihop = Some(256);
        c.spec.graceful_restart = Some(GracefulRestart {
            enabled: true,
            restart_time_seconds: Some(4096),
        });
        c.spec.transport = Some(Transport { peer_port: Some(0) });
        let err = c.validate().unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.transport.peerPort",
                "spec.gracefulRestart.restartTimeSeconds",
                "spec.ebgpMultihop"
            ]
        );
    }
}
