//! BFD managers on loopback: sessions come up between two of them, a silent peer is detected
//! within the detection time and resets the BGP sessions of that path, an AdminDown does not,
//! and a real pair of speakers is reset with Cease / BFD Down.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgp::bfd::{
    BfdClient, BfdManager, BfdManagerConfig, BfdPeer, BfdProfile, BfdState, DampingConfig,
    Diagnostic,
};
use bgp::config::{Asn, HoldTime, RouterId};
use bgp::fsm::State;
use bgp::speaker::{InstanceConfig, PeerConfig, Speaker, StopMode};
use futures::future::BoxFuture;

/// Records every `session_down`.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, Diagnostic, Instant)>>);

impl BfdClient for Recorder {
    fn session_down<'a>(
        &'a self,
        instance: &'a str,
        peer: &'a str,
        diag: Diagnostic,
    ) -> BoxFuture<'a, ()> {
        self.0
            .lock()
            .unwrap()
            .push((instance.to_owned(), peer.to_owned(), diag, Instant::now()));
        Box::pin(async {})
    }
}

fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn manager(addr: IpAddr, client: Arc<dyn BfdClient>) -> BfdManager {
    BfdManager::start(
        BfdManagerConfig {
            port: 0,
            listen_addresses: vec![addr],
        },
        client,
    )
    .unwrap()
}

fn bfd_peer(
    instance: &str,
    peer: &str,
    local: IpAddr,
    to: &BfdManager,
    profile: BfdProfile,
) -> BfdPeer {
    let remote = to.listening()[0];
    BfdPeer {
        instance: instance.into(),
        peer: peer.into(),
        remote: remote.ip(),
        local: Some(local),
        interface: None,
        remote_port: remote.port(),
        profile,
    }
}

async fn wait_for<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn state_of(m: &BfdManager) -> BfdState {
    m.sessions().await.unwrap()[0].status.state
}

/// Two managers, A on 127.0.0.1 and B on 127.0.0.2, with one session each toward the other.
async fn pair(profile: BfdProfile) -> (BfdManager, BfdManager, Arc<Recorder>, Arc<Recorder>) {
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let a = manager(lo(1), ra.clone());
    let b = manager(lo(2), rb.clone());
    a.set_peers(vec![bfd_peer("default", "tor", lo(1), &b, profile)])
        .await
        .unwrap();
    b.set_peers(vec![bfd_peer("default", "node", lo(2), &a, profile)])
        .await
        .unwrap();
    (a, b, ra, rb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_bring_a_session_up_and_settle_on_300_ms() {
    let (a, b, _, _) = pair(BfdProfile::default()).await;
    wait_for("Up on both", Duration::from_secs(5), async || {
        (state_of(&a).await == BfdState::Up && state_of(&b).await == BfdState::Up).then_some(())
    })
    .await;
    let s = wait_for("the poll to end", Duration::from_secs(5), async || {
        let s = a.sessions().await.unwrap().remove(0);
        (!s.status.poll).then_some(s)
    })
    .await;
    assert_eq!(s.status.transmit_interval, Some(Duration::from_millis(300)));
    assert_eq!(s.status.detection_time, Some(Duration::from_millis(900)));
    assert!((49152..=65535).contains(&s.source_port.unwrap()));
    assert_eq!(s.clients.len(), 1);
    let (_, counters) = a.sessions_and_counters().await.unwrap();
    assert_eq!(
        counters.bad_ttl + counters.malformed + counters.unknown_session,
        0
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_detected_and_the_bgp_peers_of_the_path_are_told() {
    let (a, b, ra, _) = pair(BfdProfile::default()).await;
    wait_for("Up", Duration::from_secs(5), async || {
        (state_of(&a).await == BfdState::Up && !a.sessions().await.unwrap()[0].status.poll)
            .then_some(())
    })
    .await;
    let mut events = a.subscribe();
    let killed = Instant::now();
    b.kill();
    let told = wait_for("session_down", Duration::from_secs(5), async || {
        ra.0.lock().unwrap().first().cloned()
    })
    .await;
    let after = told.3 - killed;
    eprintln!(
        "told {:.0} ms after the peer went silent",
        after.as_secs_f64() * 1000.0
    );
    assert_eq!(
        (told.0.as_str(), told.1.as_str(), told.2),
        ("default", "tor", Diagnostic::ControlDetectionTimeExpired)
    );
    let s = &a.sessions().await.unwrap()[0];
    assert_eq!(s.status.state, BfdState::Down);
    assert_eq!(s.bgp_resets, 1);
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(serde_json::to_value(&e.kind).unwrap()["event"].clone());
    }
    assert_eq!(kinds, ["state-changed", "bgp-reset"]);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_down_peer_takes_the_session_down_without_touching_bgp() {
    let (a, b, ra, _) = pair(BfdProfile::default()).await;
    wait_for("Up", Duration::from_secs(5), async || {
        (state_of(&a).await == BfdState::Up).then_some(())
    })
    .await;
    b.shutdown().await;
    let s = wait_for("Down", Duration::from_secs(5), async || {
        let s = a.sessions().await.unwrap().remove(0);
        (s.status.state == BfdState::Down).then_some(s)
    })
    .await;
    assert_eq!(s.status.local_diag, Diagnostic::NeighborSignaledSessionDown);
    assert_eq!(s.status.remote_state, BfdState::AdminDown);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        ra.0.lock().unwrap().is_empty(),
        "RFC 5882 §3.2: AdminDown is no failure"
    );
    assert_eq!(s.bgp_resets, 0);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgp_peers_on_one_path_share_a_session_and_are_all_told() {
    let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let a = manager(lo(1), ra.clone());
    let b = manager(lo(2), rb);
    let p = BfdProfile::default();
    a.set_peers(vec![
        bfd_peer("blue", "tor", lo(1), &b, p),
        bfd_peer("red", "tor", lo(1), &b, p),
    ])
    .await
    .unwrap();
    b.set_peers(vec![bfd_peer("default", "node", lo(2), &a, p)])
        .await
        .unwrap();
    assert_eq!(a.sessions().await.unwrap().len(), 1);
    wait_for("Up", Duration::from_secs(5), async || {
        (state_of(&a).await == BfdState::Up).then_some(())
    })
    .await;
    b.kill();
    wait_for("both told", Duration::from_secs(5), async || {
        (ra.0.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    let mut told: Vec<String> = ra.0.lock().unwrap().iter().map(|t| t.0.clone()).collect();
    told.sort();
    assert_eq!(told, ["blue", "red"]);
    // Removing every peer removes the session.
    a.set_peers(vec![]).await.unwrap();
    assert!(a.sessions().await.unwrap().is_empty());
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_profile_is_applied_through_a_poll_sequence_without_a_flap() {
    let (a, b, ra, rb) = pair(BfdProfile::default()).await;
    wait_for("Up", Duration::from_secs(5), async || {
        (state_of(&a).await == BfdState::Up && state_of(&b).await == BfdState::Up).then_some(())
    })
    .await;
    let fast = BfdProfile {
        transmit_interval: Duration::from_millis(100),
        receive_interval: Duration::from_millis(100),
        ..BfdProfile::default()
    };
    a.set_peers(vec![bfd_peer("default", "tor", lo(1), &b, fast)])
        .await
        .unwrap();
    b.set_peers(vec![bfd_peer("default", "node", lo(2), &a, fast)])
        .await
        .unwrap();
    let s = wait_for("100 ms x 3", Duration::from_secs(5), async || {
        let s = a.sessions().await.unwrap().remove(0);
        (s.status.detection_time == Some(Duration::from_millis(300)) && !s.status.poll).then_some(s)
    })
    .await;
    assert_eq!(s.status.transmit_interval, Some(Duration::from_millis(100)));
    assert_eq!(s.status.state, BfdState::Up);
    assert_eq!(s.status.flaps, 0);
    assert!(ra.0.lock().unwrap().is_empty() && rb.0.lock().unwrap().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn invalid_profiles_and_link_local_peers_without_an_interface_are_refused() {
    let a = manager(lo(1), Arc::new(Recorder::default()));
    let mut p = bfd_peer("default", "tor", lo(1), &a, BfdProfile::default());
    p.profile.transmit_interval = Duration::from_millis(5);
    let e = a.set_peers(vec![p.clone()]).await.unwrap_err();
    assert!(e.to_string().contains("transmit-interval 5 ms"), "{e}");
    p.profile = BfdProfile {
        detect_multiplier: 0,
        ..BfdProfile::default()
    };
    assert!(a.set_peers(vec![p.clone()]).await.is_err());
    p.profile = BfdProfile {
        damping: DampingConfig {
            max_hold: Duration::from_secs(1),
            ..DampingConfig::default()
        },
        ..BfdProfile::default()
    };
    assert!(a.set_peers(vec![p.clone()]).await.is_err());
    p.profile = BfdProfile::default();
    p.remote = "fe80::1".parse().unwrap();
    let e = a.set_peers(vec![p]).await.unwrap_err();
    assert!(e.to_string().contains("needs an interface"), "{e}");
    assert!(a.sessions().await.unwrap().is_empty(), "nothing changed");
    let mut bgp = PeerConfig::new("far", lo(9), 65000);
    bgp.ebgp_multihop = Some(2);
    let e = BfdPeer::for_bgp_peer("default", &bgp, BfdProfile::default()).unwrap_err();
    assert!(e.to_string().contains("multihop"), "{e}");
    a.shutdown().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bfd_failure_resets_the_bgp_session_with_cease_bfd_down() {
    // Speaker A listens on 127.0.0.1; B dials it from 127.0.0.2.
    let port = free_port();
    let sa = Speaker::new();
    let mut ia = InstanceConfig::new(
        "default",
        Asn::new(65000).unwrap(),
        RouterId::new(Ipv4Addr::new(10, 0, 0, 1)).unwrap(),
    );
    ia.listen_port = Some(port);
    ia.listen_addresses = vec![lo(1)];
    sa.start_instance(ia).await.unwrap();
    let mut to_b = PeerConfig::new("node", lo(2), 65001);
    to_b.hold_time = HoldTime::new(9).unwrap();
    to_b.passive = true;
    sa.add_peer("default", to_b.clone()).await.unwrap();
    let sb = Speaker::new();
    sb.start_instance(InstanceConfig::new(
        "default",
        Asn::new(65001).unwrap(),
        RouterId::new(Ipv4Addr::new(10, 0, 0, 2)).unwrap(),
    ))
    .await
    .unwrap();
    let mut to_a = PeerConfig::new("tor", lo(1), 65000);
    to_a.port = port;
    to_a.local_address = Some(lo(2));
    to_a.hold_time = HoldTime::new(9).unwrap();
    to_a.idle_hold_ms = 200;
    sb.add_peer("default", to_a.clone()).await.unwrap();

    let ma = manager(lo(1), Arc::new(sa.clone()));
    let mb = manager(lo(2), Arc::new(sb.clone()));
    let mut pa = BfdPeer::for_bgp_peer("default", &to_b, BfdProfile::default()).unwrap();
    pa.remote_port = mb.listening()[0].port();
    pa.local = Some(lo(1));
    ma.set_peers(vec![pa]).await.unwrap();
    let mut pb = BfdPeer::for_bgp_peer("default", &to_a, BfdProfile::default()).unwrap();
    pb.remote_port = ma.listening()[0].port();
    mb.set_peers(vec![pb]).await.unwrap();

    wait_for("BGP and BFD up", Duration::from_secs(10), async || {
        let bgp = sa.peer_state("default", "node").await.unwrap().state == State::Established;
        (bgp && state_of(&ma).await == BfdState::Up && state_of(&mb).await == BfdState::Up)
            .then_some(())
    })
    .await;
    let killed = Instant::now();
    mb.kill();
    let st = wait_for("A's BGP session down", Duration::from_secs(5), async || {
        let st = sa.peer_state("default", "node").await.unwrap();
        (st.state != State::Established).then_some(st)
    })
    .await;
    eprintln!(
        "BGP down {:.0} ms after B's BFD went silent",
        killed.elapsed().as_secs_f64() * 1000.0
    );
    let why = st.last_error.unwrap_or_default();
    assert!(why.to_lowercase().contains("bfd"), "{why}");
    // B got the NOTIFICATION (its BGP path still works: only its BFD died).
    let sb_err = wait_for("B's BGP reset", Duration::from_secs(5), async || {
        sb.peer_state("default", "tor").await.unwrap().last_error
    })
    .await;
    assert!(sb_err.to_lowercase().contains("bfd"), "{sb_err}");
    ma.shutdown().await;
    sa.shutdown(StopMode::GracefulRestart).await;
    sb.shutdown(StopMode::GracefulRestart).await;
}
