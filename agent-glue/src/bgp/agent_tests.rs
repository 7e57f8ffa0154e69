//! The agent loop in one process: manifests in a memory store, our speaker, and a second
//! speaker on loopback standing in for the tor.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::config::{Asn, HoldTime, RouterId};
use bgp::fsm::State;
use bgp::speaker::{InstanceConfig, PeerConfig, PeerEventKind, Speaker, StopMode};
use bgp::wire::Family;
use tokio::sync::watch;

use super::agent::{AgentOptions, AgentView, spawn};
use crate::source::memory::MemoryStore;
use crate::source::{ObjectKey, Source, StatusSink};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A "tor" listening on 127.0.0.1:port, AS 65000, accepting our node at 127.0.0.1.
async fn tor(port: u16) -> Speaker {
    let s = Speaker::new();
    let mut i = InstanceConfig::new(
        "tor",
        Asn::new(65000).unwrap(),
        RouterId::new(Ipv4Addr::new(10, 0, 0, 200)).unwrap(),
    );
    i.listen_port = Some(port);
    i.listen_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    s.start_instance(i).await.unwrap();
    let mut p = PeerConfig::new("node1", IpAddr::V4(Ipv4Addr::LOCALHOST), 65001);
    p.passive = true;
    p.hold_time = HoldTime::new(9).unwrap();
    p.keepalive = Some(3);
    p.graceful_restart = Some(bgp::speaker::GracefulRestartConfig {
        restart_time: 15,
        notification: true,
    });
    s.add_peer("tor", p).await.unwrap();
    s
}

fn manifests(port: u16, hold: u32) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig\nmetadata: {{name: c}}\nspec:\n  bgpInstances:\n  - name: i\n    localASN: 65001\n    peers:\n    - {{name: tor, peerASN: 65000, peerAddress: 127.0.0.1, peerConfigRef: {{name: p}}}}\n---\n\
         apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata: {{name: p}}\nspec:\n  transport: {{peerPort: {port}}}\n  timers: {{holdTimeSeconds: {hold}, keepAliveTimeSeconds: 3, connectRetryTimeSeconds: 1}}\n  gracefulRestart: {{enabled: true, restartTimeSeconds: 15}}\n  families: [{{afi: ipv4, safi: unicast, advertisements: {{matchLabels: {{a: b}}}}}}]\n---\n\
         apiVersion: cilium.io/v2\nkind: CiliumBGPAdvertisement\nmetadata: {{name: pods, labels: {{a: b}}}}\nspec: {{advertisements: [{{advertisementType: PodCIDR}}]}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {{name: node1}}\nspec: {{podCIDRs: [172.20.0.0/24]}}\nstatus: {{addresses: [{{type: InternalIP, address: 127.0.0.1}}]}}\n"
    )
}

async fn wait<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn tor_prefixes(t: &Speaker) -> Vec<String> {
    t.loc_rib("tor", Family::IPV4_UNICAST)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.prefix.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_peers_advertises_edits_in_place_reports_status_and_stops_gracefully() {
    let port = free_port();
    let t = tor(port).await;
    let mut tor_events = t.subscribe_events();
    let store = MemoryStore::new();
    assert!(store.apply_yaml(&manifests(port, 9)).is_empty());
    let (stop_tx, stop_rx) = watch::channel(false);
    let sink: Arc<dyn StatusSink> = Arc::new(store.clone());
    let mut opts = AgentOptions::new("node1");
    opts.status_interval = Duration::from_millis(200);
    let (handle, task) = spawn(store.subscribe(), sink, opts, stop_rx);

    wait("the PodCIDR on the tor", async || {
        (tor_prefixes(&t).await == ["172.20.0.0/24"]).then_some(())
    })
    .await;
    let inst = handle.speaker.instance_config("i").await.unwrap();
    assert!(inst.restarting, "first start with graceful restart: R bit");
    // End-of-RIB reaches the tor once the first complete reconcile is applied.
    wait("End-of-RIB on the tor", async || {
        loop {
            match tor_events.try_recv() {
                Ok(e) if matches!(e.kind, PeerEventKind::EndOfRib { .. }) => return Some(()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await;
    let view: AgentView = handle.view.borrow().clone();
    assert!(view.ready && view.errors.is_empty(), "{:?}", view.errors);

    // The node's CiliumBGPNodeConfig shows the session.
    let nc = wait("the CiliumBGPNodeConfig", async || {
        let snap = store.snapshot();
        let nc = snap
            .bgp_node_configs
            .get(&ObjectKey::cluster("node1"))?
            .clone();
        let p = nc
            .status
            .as_ref()?
            .bgp_instances
            .first()?
            .peers
            .first()?
            .clone();
        (p.peering_state.as_deref() == Some("established")
            && p.route_count.first()?.advertised == Some(1))
        .then_some(nc)
    })
    .await;
    let st = nc.status.as_ref().unwrap();
    let p = &st.bgp_instances[0].peers[0];
    assert_eq!(p.peer_asn, Some(65000));
    assert_eq!(
        p.timers.as_ref().unwrap().applied_hold_time_seconds,
        Some(9)
    );
    assert!(p.established_time.as_deref().unwrap().ends_with('Z'));
    let c = crds::conditions::find(&st.conditions, crds::conditions::BGP_RECONCILE_ERROR).unwrap();
    assert_eq!(c.status, "False");
    assert_eq!(
        nc.spec.bgp_instances[0].router_id.as_deref(),
        Some("127.0.0.1")
    );
    let writes = store.writes();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(store.writes(), writes, "nothing changed: nothing rewritten");

    // A new advertisement reaches the tor without a reset.
    store.apply_yaml(
        "apiVersion: cilium.io/v2\nkind: CiliumBGPAdvertisement\nmetadata: {name: lo, labels: {a: b}}\nspec: {advertisements: [{advertisementType: PodCIDR, attributes: {communities: {standard: [\"65001:7\"]}}}]}\n",
    );
    store.apply_yaml(
        "apiVersion: v1\nkind: Node\nmetadata: {name: node1}\nspec: {podCIDRs: [172.20.0.0/24, 172.20.100.0/24]}\nstatus: {addresses: [{type: InternalIP, address: 127.0.0.1}]}\n",
    );
    wait("two prefixes on the tor", async || {
        (tor_prefixes(&t).await.len() == 2).then_some(())
    })
    .await;
    let r = t.loc_rib("tor", Family::IPV4_UNICAST).await.unwrap();
    assert_eq!(
        r[0].attrs.path.communities,
        vec![bgp::wire::Community::new(65001, 7)],
        "the overlapping advertisement's community is merged in"
    );
    let ours = handle.speaker.peer_state("i", "tor").await.unwrap();
    assert_eq!((ours.flaps, ours.state), (0, State::Established));

    // A hold-time change resets that session (the manifests as first written: one PodCIDR).
    store.apply_yaml(&manifests(port, 6));
    wait("the new hold time", async || {
        let s = handle.speaker.peer_state("i", "tor").await.ok()?;
        (s.state == State::Established && s.hold_time == Some(6)).then_some(())
    })
    .await;

    // Stop: graceful restart is configured, so the tor keeps our routes, stale.
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    wait("stale routes on the tor", async || {
        let r = t.loc_rib("tor", Family::IPV4_UNICAST).await.unwrap();
        (r.len() == 1 && r.iter().all(|x| x.stale)).then_some(())
    })
    .await;
    t.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_graceful_restart_stopping_sends_cease_and_the_tor_withdraws() {
    let port = free_port();
    let t = tor(port).await;
    let store = MemoryStore::new();
    let m = manifests(port, 9).replace(
        "  gracefulRestart: {enabled: true, restartTimeSeconds: 15}\n",
        "",
    );
    assert!(store.apply_yaml(&m).is_empty());
    let (stop_tx, stop_rx) = watch::channel(false);
    let sink: Arc<dyn StatusSink> = Arc::new(store.clone());
    let (handle, task) = spawn(store.subscribe(), sink, AgentOptions::new("node1"), stop_rx);
    wait("the PodCIDR on the tor", async || {
        (tor_prefixes(&t).await.len() == 1).then_some(())
    })
    .await;
    assert!(
        !handle
            .speaker
            .instance_config("i")
            .await
            .unwrap()
            .restarting
    );
    // A peer removed from the configuration goes down with Cease; it comes back when re-added.
    store.apply_yaml(&m.replace(
        "    peers:\n    - {name: tor, peerASN: 65000, peerAddress: 127.0.0.1, peerConfigRef: {name: p}}\n",
        "",
    ));
    wait("the route withdrawn", async || {
        tor_prefixes(&t).await.is_empty().then_some(())
    })
    .await;
    let down = t.peer_state("tor", "node1").await.unwrap();
    assert!(
        down.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("peer removed from the BGP configuration"),
        "{:?}",
        down.last_error
    );
    store.apply_yaml(&m);
    wait("back", async || {
        (tor_prefixes(&t).await.len() == 1).then_some(())
    })
    .await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    wait("withdrawn after Cease", async || {
        tor_prefixes(&t).await.is_empty().then_some(())
    })
    .await;
    t.shutdown(StopMode::GracefulRestart).await;
}
