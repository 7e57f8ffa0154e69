//! BFDProfile (`lbspeaker.io/v1alpha1`, cluster-scoped): BFD timers for BGP peers. The
//! `cilium.io` schemas have no place for BFD, so this is an extension resource in our own
//! API group, referenced from a CiliumBGPPeerConfig by the annotation
//! [`BFD_PROFILE_ANNOTATION`]:
//!
//! ```yaml
//! apiVersion: lbspeaker.io/v1alpha1
//! kind: BFDProfile
//! metadata: { name: fast }
//! spec: { transmitInterval: 100, receiveInterval: 100, detectMultiplier: 3 }
//! ---
//! apiVersion: cilium.io/v2
//! kind: CiliumBGPPeerConfig
//! metadata:
//!   name: cilium-peer
//!   annotations: { lbspeaker.io/bfd-profile: fast }
//! spec: { timers: { holdTimeSeconds: 9, keepAliveTimeSeconds: 3 } }
//! ```
//!
//! Every peer whose `peerConfigRef` names that CiliumBGPPeerConfig then runs single-hop BFD.
//! Field names follow MetalLB's BFDProfile where they mean the same (intervals in
//! milliseconds, `detectMultiplier`, `echoMode`, `passiveMode`), so a profile moves over
//! with its group and kind changed; flap damping is ours.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bgp::CiliumBGPPeerConfig;
use crate::validate::{Errors, Validate};

/// Our own API group, for what the `cilium.io` resources cannot say.
pub const GROUP: &str = "lbspeaker.io";

/// The annotation of a CiliumBGPPeerConfig that names the BFDProfile of its peers.
pub const BFD_PROFILE_ANNOTATION: &str = "lbspeaker.io/bfd-profile";

/// The condition of a CiliumBGPPeerConfig whose `lbspeaker.io/bfd-profile` annotation names
/// a BFDProfile that does not exist (True; its peers then run without BFD) or one that does
/// (False). Absent on peer configs without the annotation.
pub const MISSING_BFD_PROFILE: &str = "lbspeaker.io/MissingBFDProfile";

/// BFD timers and flap damping for the BGP peers whose CiliumBGPPeerConfig names this
/// profile in its `lbspeaker.io/bfd-profile` annotation.
// Three printer columns of type integer: clippy takes the repeated `type_` for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "lbspeaker.io",
    version = "v1alpha1",
    kind = "BFDProfile",
    shortname = "bfdprofile",
    category = "lbspeaker",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "TX ms",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(name = "RX ms", type_ = "integer", json_path = ".spec.receiveInterval"),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "BFDProfile sets the BFD (RFC 5880, single hop RFC 5881) timers of the BGP peers whose CiliumBGPPeerConfig names it in the annotation lbspeaker.io/bfd-profile."
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Desired minimum interval between our Control packets, milliseconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000), extend("default" = 300))]
    pub transmit_interval: Option<u32>,
    /// Minimum interval at which we can receive Control packets, milliseconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000), extend("default" = 300))]
    pub receive_interval: Option<u32>,
    /// Packets the remote may miss before the session is declared down (default 3): the
    /// detection time is this times the larger of the two intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255), extend("default" = 3))]
    pub detect_multiplier: Option<u32>,
    /// The Echo function. Only `false` (the default) is accepted: lbspeaker runs no Echo
    /// function and asks peers for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub echo_mode: Option<bool>,
    /// Wait for the peer to send first (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub passive_mode: Option<bool>,
    /// Flap damping; unset = the defaults (one free flap, then 2, 4 ... 120 s held down,
    /// forgiven after 60 s up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damping: Option<BFDDamping>,
}

/// How long a flapping session is held Down before it may take BGP down again.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BFDDamping {
    /// Off: every flap is free (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Flaps of a series that are not held down (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100), extend("default" = 1))]
    pub free_flaps: Option<u32>,
    /// Hold-down after the first flap beyond the free ones, seconds (default 2); doubled for
    /// each further flap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600), extend("default" = 2))]
    pub initial_hold_seconds: Option<u32>,
    /// Longest hold-down, seconds (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600), extend("default" = 120))]
    pub max_hold_seconds: Option<u32>,
    /// Time up after which a session's flaps are forgiven, seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400), extend("default" = 60))]
    pub decay_seconds: Option<u32>,
}

impl BFDProfileSpec {
    /// `transmitInterval`, defaulted (ms).
    pub fn transmit_interval(&self) -> u32 {
        self.transmit_interval.unwrap_or(300)
    }
    /// `receiveInterval`, defaulted (ms).
    pub fn receive_interval(&self) -> u32 {
        self.receive_interval.unwrap_or(300)
    }
    /// `detectMultiplier`, defaulted.
    pub fn detect_multiplier(&self) -> u32 {
        self.detect_multiplier.unwrap_or(3)
    }
    /// `passiveMode`, defaulted.
    pub fn passive_mode(&self) -> bool {
        self.passive_mode.unwrap_or(false)
    }
    /// The damping settings, every field defaulted.
    pub fn damping(&self) -> BFDDampingValues {
        let d = self.damping.clone().unwrap_or_default();
        BFDDampingValues {
            enabled: d.enabled.unwrap_or(true),
            free_flaps: d.free_flaps.unwrap_or(1),
            initial_hold_seconds: d.initial_hold_seconds.unwrap_or(2),
            max_hold_seconds: d.max_hold_seconds.unwrap_or(120),
            decay_seconds: d.decay_seconds.unwrap_or(60),
        }
    }
}

/// [`BFDDamping`] with its defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BFDDampingValues {
    /// On.
    pub enabled: bool,
    /// Free flaps.
    pub free_flaps: u32,
    /// First hold-down, seconds.
    pub initial_hold_seconds: u32,
    /// Longest hold-down, seconds.
    pub max_hold_seconds: u32,
    /// Forgiven after, seconds.
    pub decay_seconds: u32,
}

impl Validate for BFDProfile {
    fn validate_into(&self, e: &mut Errors) {
        let s = &self.spec;
        e.range("spec.transmitInterval", s.transmit_interval, 10, 60000);
        e.range("spec.receiveInterval", s.receive_interval, 10, 60000);
        e.range("spec.detectMultiplier", s.detect_multiplier, 2, 255);
        if s.echo_mode == Some(true) {
            e.push(
                "spec.echoMode",
                Some("true".into()),
                "is not supported: lbspeaker runs no BFD Echo function",
            );
        }
        if let Some(d) = &s.damping {
            e.range("spec.damping.freeFlaps", d.free_flaps, 0, 100);
            e.range(
                "spec.damping.initialHoldSeconds",
                d.initial_hold_seconds,
                1,
                3600,
            );
            e.range("spec.damping.maxHoldSeconds", d.max_hold_seconds, 1, 3600);
            e.range("spec.damping.decaySeconds", d.decay_seconds, 1, 86400);
            let v = s.damping();
            if v.max_hold_seconds < v.initial_hold_seconds {
                e.push(
                    "spec.damping.maxHoldSeconds",
                    Some(v.max_hold_seconds.to_string()),
                    format!(
                        "must not be below initialHoldSeconds ({})",
                        v.initial_hold_seconds
                    ),
                );
            }
        }
    }
}

/// The BFDProfile a CiliumBGPPeerConfig asks for, by name (its `lbspeaker.io/bfd-profile`
/// annotation, trimmed; `None` when absent or empty: no BFD).
pub fn bfd_profile_name(peer_config: &CiliumBGPPeerConfig) -> Option<&str> {
    peer_config
        .metadata
        .annotations
        .as_ref()?
        .get(BFD_PROFILE_ANNOTATION)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(yaml: &str) -> BFDProfile {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn an_empty_profile_means_300_ms_times_3_with_damping() {
        let p = parse(
            "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: d}\nspec: {}\n",
        );
        assert_eq!(p.validate(), Ok(()));
        let s = &p.spec;
        assert_eq!(
            (
                s.transmit_interval(),
                s.receive_interval(),
                s.detect_multiplier()
            ),
            (300, 300, 3)
        );
        assert!(!s.passive_mode());
        assert_eq!(
            s.damping(),
            BFDDampingValues {
                enabled: true,
                free_flaps: 1,
                initial_hold_seconds: 2,
                max_hold_seconds: 120,
                decay_seconds: 60
            }
        );
    }

    #[test]
    fn a_metallb_style_profile_reads_unchanged_apart_from_group_and_kind() {
        let p = parse(
            "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast}\n\
             spec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3, echoMode: false, passiveMode: true}\n",
        );
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.spec.transmit_interval(), 100);
        assert!(p.spec.passive_mode());
    }

    #[test]
    fn out_of_range_values_and_echo_mode_are_refused_with_their_paths() {
        let p = parse(
            "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: bad}\n\
             spec: {transmitInterval: 5, receiveInterval: 70000, detectMultiplier: 1, echoMode: true,\n\
             damping: {initialHoldSeconds: 30, maxHoldSeconds: 10}}\n",
        );
        let e = p.validate().unwrap_err().to_string();
        for want in [
            "BFDProfile bad: spec.transmitInterval (5) must be between 10 and 60000",
            "spec.receiveInterval (70000) must be between 10 and 60000",
            "spec.detectMultiplier (1) must be between 2 and 255",
            "spec.echoMode (true) is not supported",
            "spec.damping.maxHoldSeconds (10) must not be below initialHoldSeconds (30)",
        ] {
            assert!(e.contains(want), "{want}\n{e}");
        }
    }

    #[test]
    fn the_peer_config_annotation_names_the_profile() {
        let mut pc: CiliumBGPPeerConfig = serde_saphyr::from_str(
            "apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata:\n  name: p\n  annotations: {lbspeaker.io/bfd-profile: ' fast '}\nspec: {}\n",
        )
        .unwrap();
        assert_eq!(bfd_profile_name(&pc), Some("fast"));
        pc.metadata.annotations =
            Some([(BFD_PROFILE_ANNOTATION.to_string(), String::new())].into());
        assert_eq!(bfd_profile_name(&pc), None);
        pc.metadata.annotations = None;
        assert_eq!(bfd_profile_name(&pc), None);
    }
}
