//! lbspeaker's BGP speaker (the `bgp` crate) configured from the same `bgp:` block that
//! frr-lab renders for gobgpd, BIRD and FRR, for the workloads that need a transit router.
//!
//! `lbspeaker run` cannot be that router: a Kubernetes node never passes routes learnt from
//! one peer to another (`PeerConfig::export_learned` is off in the daemon). The `bench-speaker`
//! binary therefore runs the very speaker library the daemon runs, with this translation, as
//! its own process in the DUT's namespace.

use bgp::config::{Asn, HoldTime, RouterId};
use bgp::speaker::{GracefulRestartConfig, InstanceConfig, PeerConfig, Route};
use bgp::wire::Family;

use super::BenchError;
use crate::topology::{AddressFamily, BgpSpec};

/// The instance, its peers and its routes, as `bench-speaker` starts them.
#[derive(Debug, Clone)]
pub struct SpeakerSetup {
    /// The instance.
    pub instance: InstanceConfig,
    /// One peer per neighbor.
    pub peers: Vec<PeerConfig>,
    /// The originated prefixes.
    pub routes: Vec<Route>,
}

fn bad(what: String) -> BenchError {
    BenchError::Failed(format!("bench-speaker configuration: {what}"))
}

/// Translates a `bgp:` block: the same timers, families, graceful restart and originated
/// prefixes, learnt routes passed on when `transit` is set (then waiting for the peers'
/// connections), connect retry of the lab's default, one path per prefix as every other DUT keeps by default.
pub fn setup(spec: &BgpSpec) -> Result<SpeakerSetup, BenchError> {
    let mut instance = InstanceConfig::new(
        "default",
        Asn::new(spec.asn).map_err(|e| bad(e.to_string()))?,
        RouterId::new(spec.router_id).map_err(|e| bad(e.to_string()))?,
    );
    if spec.listen {
        instance.listen_port = Some(179);
    }
    let mut peers = Vec::new();
    for n in &spec.neighbors {
        let mut p = PeerConfig::new(n.address.to_string(), n.address, n.asn);
        if let Some(h) = n.hold_time {
            p.hold_time = HoldTime::new(h).map_err(|e| bad(e.to_string()))?;
        }
        p.keepalive = n.keepalive;
        p.connect_retry = n.connect_retry_or_default();
        p.ebgp_multihop = n.multihop;
        p.password = n.password.clone();
        p.graceful_restart = n.graceful_restart.map(|t| GracefulRestartConfig {
            restart_time: t,
            notification: true,
        });
        p.families = n
            .families
            .iter()
            .map(|f| match f {
                AddressFamily::Ipv4 => Family::IPV4_UNICAST,
                AddressFamily::Ipv6 => Family::IPV6_UNICAST,
            })
            .collect();
        p.export_learned = spec.transit;
        // The transit lab's generators and monitor dial and never listen. Our FSM, as RFC
        // 4271 says, refuses a connection while Idle, and its own refused dials keep it
        // cycling through Idle; waiting for their connection is what a transit router
        // facing dialling peers is configured to do.
        p.passive = spec.listen && spec.transit;
        p.validate().map_err(|e| bad(e.to_string()))?;
        peers.push(p);
    }
    let routes = spec.announce.iter().map(|p| Route::new(*p)).collect();
    Ok(SpeakerSetup {
        instance,
        peers,
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transit_block_becomes_a_listening_speaker_passing_learnt_routes_on() {
        let spec: BgpSpec = serde_saphyr::from_str(
            "asn: 65001\nrouter-id: 10.0.1.1\nlisten: true\ntransit: true\nannounce: [172.20.0.0/24]\nneighbors:\n  - {address: 10.0.1.2, asn: 65101, families: [ipv4, ipv6]}\n  - {address: 10.0.3.2, asn: 65200, hold-time: 9, keepalive: 3, graceful-restart: 15}\n",
        )
        .unwrap();
        let s = setup(&spec).unwrap();
        assert_eq!(s.instance.local_as.get(), 65001);
        assert_eq!(s.instance.listen_port, Some(179));
        assert_eq!(s.instance.max_paths, 1);
        assert_eq!(s.peers.len(), 2);
        assert!(
            s.peers
                .iter()
                .all(|p| p.export_learned && p.passive && p.connect_retry == 1)
        );
        assert_eq!(
            s.peers[0].families,
            [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        );
        assert_eq!(s.peers[1].hold_time.seconds(), 9);
        assert_eq!(s.peers[1].keepalive, Some(3));
        assert_eq!(
            s.peers[1].graceful_restart.map(|g| g.restart_time),
            Some(15)
        );
        assert_eq!(s.routes.len(), 1);
    }

    #[test]
    fn without_transit_learnt_routes_stay_put() {
        let spec: BgpSpec = serde_saphyr::from_str(
            "asn: 65001\nrouter-id: 10.0.1.1\nneighbors: [{address: 10.0.1.2, asn: 65101}]\n",
        )
        .unwrap();
        let s = setup(&spec).unwrap();
        assert!(!s.peers[0].export_learned && !s.peers[0].passive);
        assert_eq!(s.instance.listen_port, None);
    }
}
