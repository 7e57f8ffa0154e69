//! BFD for the BGP peers whose CiliumBGPPeerConfig asks for it with the annotation
//! `lbspeaker.io/bfd-profile: NAME`: the pure translation (BFDProfile to
//! [`bgp::bfd::BfdProfile`], the single-hop check) and [`BfdRunner`], which keeps one
//! [`BfdManager`] in line with what the reconcile wants.
//!
//! - A profile that does not exist, or a peer that is not directly connected (multihop BFD,
//!   RFC 5883, is not implemented), is a problem of the reconcile; the BGP peer runs without
//!   BFD.
//! - Single hop is decided by the path, not by `ebgpMultihop`: a peer address on one of the
//!   node's connected subnets gets RFC 5881 single-hop BFD even when the peer config allows
//!   more hops (the seed's peer config sets `ebgpMultihop: 2` for every node, and the tor runs
//!   single-hop BFD toward the nodes on its segment).
//! - The manager is started (UDP 3784 bound) only while some peer wants BFD, and stopped with
//!   AdminDown when none does. [`BfdManager::set_peers`] is level-triggered: sessions of peers
//!   whose profile did not change are left alone, a changed profile is applied with a Poll
//!   Sequence without a flap.
//! - A BFD session going Down resets the BGP session at once (Cease / BFD Down) through the
//!   speaker's [`bgp::bfd::BfdClient`]; flap damping holds a flapping session Down.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp::bfd::{BfdManager, BfdManagerConfig, BfdPeer, BfdProfile, DampingConfig};
use bgp::speaker::{PeerConfig, Speaker};
use crds::bfd::{BFD_PROFILE_ANNOTATION, BFDProfileSpec, bfd_profile_name};
use crds::bgp::CiliumBGPPeerConfig;

use super::facts::LocalFacts;
use crate::source::{ObjectKey, Snapshot};

/// A BFDProfile's values as the BFD manager takes them (the defaults of `crds::bfd` applied).
pub fn profile(spec: &BFDProfileSpec) -> BfdProfile {
    let d = spec.damping();
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    BfdProfile {
        transmit_interval: Duration::from_millis(spec.transmit_interval().into()),
        receive_interval: Duration::from_millis(spec.receive_interval().into()),
        // Validated 2-255 at the source; larger values cannot reach here.
        detect_multiplier: u8::try_from(spec.detect_multiplier()).unwrap_or(u8::MAX),
        passive: spec.passive_mode(),
        damping: if d.enabled {
            DampingConfig {
                free_flaps: d.free_flaps,
                initial_hold: secs(d.initial_hold_seconds),
                max_hold: secs(d.max_hold_seconds),
                decay: secs(d.decay_seconds),
            }
        } else {
            DampingConfig::off()
        },
    }
}

/// The interface whose connected subnet holds `addr` (the first by name), if any. An address
/// of the node itself is not a neighbour.
pub fn connected_interface(facts: &LocalFacts, addr: IpAddr) -> Option<&str> {
    facts
        .interfaces
        .iter()
        .find(|(_, nets)| {
            nets.iter().any(|n| {
                n.contains(&addr) && n.addr() != addr && n.prefix_len() < n.max_prefix_len()
            })
        })
        .map(|(name, _)| name.as_str())
}

/// The BFD session a BGP peer of `instance` should have: `Ok(None)` when its peer config asks
/// for none; `Err` (a problem; the peer runs without BFD) when the profile is missing or the
/// peer is not directly connected.
pub fn peer_for(
    snapshot: &Snapshot,
    facts: &LocalFacts,
    instance: &str,
    peer_config: Option<&CiliumBGPPeerConfig>,
    peer: &PeerConfig,
) -> Result<Option<BfdPeer>, String> {
    let Some(pc) = peer_config else {
        return Ok(None);
    };
    let Some(name) = bfd_profile_name(pc) else {
        return Ok(None);
    };
    let pc_name = pc.metadata.name.as_deref().unwrap_or_default();
    let Some(p) = snapshot.bfd_profiles.get(&ObjectKey::cluster(name)) else {
        return Err(format!(
            "BFDProfile {name} (annotation {BFD_PROFILE_ANNOTATION} of CiliumBGPPeerConfig {pc_name}) does not exist: running without BFD"
        ));
    };
    let Some(interface) = connected_interface(facts, peer.address) else {
        return Err(format!(
            "BFDProfile {name}: {} is not on a connected subnet of this node, and multihop BFD (RFC 5883) is not implemented: running without BFD",
            peer.address
        ));
    };
    let link_local = matches!(peer.address, IpAddr::V6(a) if a.is_unicast_link_local());
    let bfd = BfdPeer {
        instance: instance.to_owned(),
        peer: peer.name.clone(),
        remote: peer.address,
        local: peer.local_address,
        // Only a link-local remote needs the socket bound to its link.
        interface: link_local.then(|| interface.to_owned()),
        remote_port: bgp::bfd::transport::CONTROL_PORT,
        profile: profile(&p.spec),
    };
    bfd.profile
        .validate()
        .map_err(|e| format!("BFDProfile {name}: {e}: running without BFD"))?;
    Ok(Some(bfd))
}

/// The BFD manager of the agent as the API reads it (`None`: no peer wants BFD).
pub type BfdHandle = Arc<Mutex<Option<BfdManager>>>;

/// Keeps one [`BfdManager`] serving exactly the BFD peers the reconcile wants.
pub struct BfdRunner {
    config: BfdManagerConfig,
    manager: Option<BfdManager>,
    applied: Vec<BfdPeer>,
    shared: BfdHandle,
}

impl std::fmt::Debug for BfdRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BfdRunner")
            .field("running", &self.manager.is_some())
            .field("peers", &self.applied.len())
            .finish_non_exhaustive()
    }
}

impl BfdRunner {
    /// A runner that binds `config`'s port when a first peer wants BFD.
    pub fn new(config: BfdManagerConfig) -> BfdRunner {
        BfdRunner {
            config,
            manager: None,
            applied: Vec::new(),
            shared: Arc::new(Mutex::new(None)),
        }
    }

    /// What the API reads.
    pub fn handle(&self) -> BfdHandle {
        self.shared.clone()
    }

    fn publish(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.clone_from(&self.manager);
        }
    }

    /// Serves exactly `want` (sorted by instance and peer for comparison). Returns whether
    /// anything changed; `Err` when the manager cannot start (port 3784 taken) or refuses a
    /// peer, retried at the next apply.
    pub async fn apply(
        &mut self,
        speaker: &Speaker,
        mut want: Vec<BfdPeer>,
    ) -> Result<bool, String> {
        want.sort_by(|a, b| (&a.instance, &a.peer).cmp(&(&b.instance, &b.peer)));
        if want.is_empty() {
            let Some(m) = self.manager.take() else {
                return Ok(false);
            };
            tracing::info!(
                "no BGP peer wants BFD any more: stopping BFD (AdminDown to every session)"
            );
            m.shutdown().await;
            self.applied.clear();
            self.publish();
            return Ok(true);
        }
        if self.manager.is_some() && want == self.applied {
            return Ok(false);
        }
        let manager = match &self.manager {
            Some(m) => m.clone(),
            None => {
                let m = BfdManager::start(self.config.clone(), Arc::new(speaker.clone()))
                    .map_err(|e| format!("BFD: {e}"))?;
                tracing::info!(listening = ?m.listening(), "BFD started");
                self.manager = Some(m.clone());
                self.publish();
                m
            }
        };
        manager
            .set_peers(want.clone())
            .await
            .map_err(|e| format!("BFD: {e}"))?;
        for p in want.iter().filter(|p| !self.applied.contains(p)) {
            tracing::info!(instance = %p.instance, peer = %p.peer, remote = %p.remote,
                tx_ms = p.profile.transmit_interval.as_millis() as u64,
                rx_ms = p.profile.receive_interval.as_millis() as u64,
                multiplier = p.profile.detect_multiplier, "BFD session configured");
        }
        for p in self.applied.iter().filter(|p| {
            !want
                .iter()
                .any(|w| w.instance == p.instance && w.peer == p.peer)
        }) {
            tracing::info!(instance = %p.instance, peer = %p.peer, "BFD session removed");
        }
        self.applied = want;
        Ok(true)
    }

    /// AdminDown to every session (the peers' BGP must not take it for a failure), then stop.
    pub async fn shutdown(&mut self) {
        if let Some(m) = self.manager.take() {
            m.shutdown().await;
        }
        self.applied.clear();
        self.publish();
    }
}

/// A diagnostic by its kebab-case name (`control-detection-time-expired`), as the
/// harness and the JSON of the BFD manager name it.
fn diag(d: bgp::bfd::Diagnostic) -> String {
    match serde_json::to_value(d) {
        Ok(serde_json::Value::String(s)) => s,
        _ => d.to_string(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What `lbspeaker bfd peers` shows: every session of the running manager, if one runs.
pub async fn view(node: &str, handle: &BfdHandle) -> crate::api::BfdView {
    let manager = handle.lock().ok().and_then(|m| m.clone());
    let Some(m) = manager else {
        return crate::api::BfdView::default();
    };
    let Ok((sessions, c)) = m.sessions_and_counters().await else {
        return crate::api::BfdView::default();
    };
    crate::api::BfdView {
        running: true,
        sessions: sessions
            .into_iter()
            .map(|s| crate::api::BfdSessionView {
                node: node.to_owned(),
                peers: s
                    .clients
                    .iter()
                    .map(|c| format!("{}/{}", c.instance, c.peer))
                    .collect(),
                peer_address: s.remote.to_string(),
                local_address: s.local.map(|a| a.to_string()),
                state: s.status.state.to_string(),
                remote_state: s.status.remote_state.to_string(),
                local_diag: diag(s.status.local_diag),
                remote_diag: diag(s.status.remote_diag),
                transmit_interval_ms: ms(s.profile.transmit_interval),
                receive_interval_ms: ms(s.profile.receive_interval),
                detect_multiplier: s.profile.detect_multiplier,
                detection_time_ms: s.status.detection_time.map(ms),
                remote_detect_multiplier: s.status.remote_detect_mult,
                uptime_seconds: s.up_for.map(|d| d.as_secs()),
                held_down_ms: s.held_for.map(ms),
                flaps: s.status.flaps,
                bgp_resets: s.bgp_resets,
                packets_in: s.status.packets_in,
                packets_out: s.status.packets_out,
                error: s.error,
            })
            .collect(),
        bad_ttl: c.bad_ttl,
        malformed: c.malformed,
        unknown_session: c.unknown_session,
        send_errors: c.send_errors,
    }
}
