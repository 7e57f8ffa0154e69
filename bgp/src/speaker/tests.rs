//! Two speakers in one process, peering over loopback: sessions, routes both ways, removal,
//! resets, subscriptions.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::config::{Asn, HoldTime, RouterId};
use crate::wire::LargeCommunity;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn instance(name: &str, asn: u32, id: [u8; 4], port: Option<u16>) -> InstanceConfig {
    let mut c = InstanceConfig::new(
        name,
        Asn::new(asn).unwrap(),
        RouterId::new(Ipv4Addr::from(id)).unwrap(),
    );
    c.listen_port = port;
    c.listen_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    c
}

fn peer(name: &str, addr: [u8; 4], asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(name, IpAddr::from(addr), asn);
    p.hold_time = HoldTime::new(9).unwrap();
    p.keepalive = Some(3);
    p.connect_retry = 1;
    p.idle_hold_ms = 200;
    p
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
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

async fn established(s: &Speaker, inst: &str, peer: &str) -> PeerState {
    wait_for("Established", async || {
        let st = s.peer_state(inst, peer).await.unwrap();
        (st.state == State::Established).then_some(st)
    })
    .await
}

/// A listens on a port of 127.0.0.1 (passive toward B); B dials it.
async fn pair(a_as: u32, b_as: u32) -> (Speaker, Speaker, u16) {
    let port = free_port();
    let a = Speaker::new();
    a.start_instance(instance("a", a_as, [10, 0, 0, 1], Some(port)))
        .await
        .unwrap();
    let mut to_b = peer("b", [127, 0, 0, 1], b_as);
    to_b.passive = true;
    a.add_peer("a", to_b).await.unwrap();
    let b = Speaker::new();
    b.start_instance(instance("b", b_as, [10, 0, 0, 2], None))
        .await
        .unwrap();
    let mut to_a = peer("a", [127, 0, 0, 1], a_as);
    to_a.port = port;
    b.add_peer("b", to_a).await.unwrap();
    (a, b, port)
}

fn route(p: &str) -> Route {
    Route::new(p.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_establish_over_loopback_and_exchange_routes() {
    let (a, b, _) = pair(65000, 65001).await;
    let sa = established(&a, "a", "b").await;
    assert_eq!(
        (sa.hold_time, sa.keepalive, sa.peer_as),
        (Some(9), Some(3), Some(65001))
    );
    assert_eq!(
        sa.families,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    let mut routes: Vec<Route> = (0..1000u32)
        .map(|i| route(&format!("10.{}.{}.0/24", i / 256, i % 256)))
        .collect();
    routes[0].attributes.med = Some(5);
    routes[0].attributes.communities = vec![parse_community("65001:100").unwrap()];
    routes[0].attributes.large_communities = vec![LargeCommunity::new(65001, 1, 2)];
    b.announce("b", routes).await.unwrap();
    let got = wait_for("1000 routes on A", async || {
        let v = a.loc_rib("a", Family::IPV4_UNICAST).await.unwrap();
        (v.len() == 1000).then_some(v)
    })
    .await;
    let first = got
        .iter()
        .find(|r| r.prefix == "10.0.0.0/24".parse::<IpNet>().unwrap())
        .unwrap();
    assert_eq!(first.peer.as_deref(), Some("b"));
    assert_eq!(first.next_hop, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(first.attrs.path.med, Some(5));
    assert_eq!(
        first.attrs.path.large_communities,
        vec![LargeCommunity::new(65001, 1, 2)]
    );
    assert_eq!(
        first.attrs.path.as_path,
        Some(crate::wire::AsPath::sequence([65001]))
    );
    let sb = b.peer_state("b", "a").await.unwrap();
    assert_eq!(sb.counts[0].advertised, 1000);
    assert_eq!(
        b.adj_rib_out("b", "a", Family::IPV4_UNICAST)
            .await
            .unwrap()
            .len(),
        1000
    );
    let sa = a.peer_state("a", "b").await.unwrap();
    assert_eq!(sa.counts[0].received, 1000);
    assert!(
        sa.messages_received < 40,
        "{} messages for 1000 routes",
        sa.messages_received
    );
    // Withdrawal.
    b.withdraw("b", vec!["10.0.0.0/24".parse().unwrap()])
        .await
        .unwrap();
    wait_for("the withdrawal", async || {
        (a.loc_rib("a", Family::IPV4_UNICAST).await.unwrap().len() == 999).then_some(())
    })
    .await;
    a.shutdown(StopMode::Shutdown {
        communication: None,
    })
    .await;
    b.shutdown(StopMode::Shutdown {
        communication: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_peer_sends_the_shutdown_communication_and_withdraws_its_routes() {
    let (a, b, _) = pair(65000, 65001).await;
    let mut events = a.subscribe_events();
    established(&a, "a", "b").await;
    b.announce("b", vec![route("172.20.0.0/24")]).await.unwrap();
    wait_for("the route", async || {
        (!a.loc_rib("a", Family::IPV4_UNICAST)
            .await
            .unwrap()
            .is_empty())
        .then_some(())
    })
    .await;
    b.remove_peer("b", "a", Some("node drained")).await.unwrap();
    let reason = wait_for("Down on A", async || {
        loop {
            match events.try_recv() {
                Ok(PeerEvent {
                    kind:
                        PeerEventKind::Down {
                            reason,
                            established: true,
                            ..
                        },
                    ..
                }) => return Some(reason),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await;
    assert!(
        reason.contains("Administrative Shutdown") && reason.contains("node drained"),
        "{reason}"
    );
    assert!(
        a.loc_rib("a", Family::IPV4_UNICAST)
            .await
            .unwrap()
            .is_empty()
    );
    a.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibgp_carries_local_pref_and_the_subscription_sees_best_path_changes() {
    let (a, b, _) = pair(65001, 65001).await;
    let mut sub = a.subscribe_best_paths("a").await.unwrap();
    established(&a, "a", "b").await;
    let mut r = route("172.16.1.1/32");
    r.attributes.local_pref = Some(250);
    b.announce("b", vec![r]).await.unwrap();
    let change = wait_for("a best-path change", async || {
        let batch = tokio::time::timeout(Duration::from_millis(200), sub.next_batch())
            .await
            .ok()?;
        batch
            .into_iter()
            .find(|c| c.prefix == "172.16.1.1/32".parse::<IpNet>().unwrap())
    })
    .await;
    assert_eq!(change.paths.len(), 1);
    assert_eq!(change.paths[0].attrs.path.local_pref, Some(250));
    assert_eq!(
        change.paths[0].attrs.path.as_path,
        Some(crate::wire::AsPath::empty())
    );
    b.withdraw("b", vec!["172.16.1.1/32".parse().unwrap()])
        .await
        .unwrap();
    let gone = wait_for("the removal", async || {
        let batch = tokio::time::timeout(Duration::from_millis(200), sub.next_batch())
            .await
            .ok()?;
        batch.into_iter().find(|c| c.paths.is_empty())
    })
    .await;
    assert_eq!(gone.prefix, "172.16.1.1/32".parse::<IpNet>().unwrap());
    a.shutdown(StopMode::GracefulRestart).await;
    b.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_peer_as_never_establishes_and_says_why() {
    let (a, b, _) = pair(65000, 65001).await;
    let mut p = peer("b", [127, 0, 0, 1], 65099);
    p.passive = true;
    a.update_peer("a", p).await.unwrap();
    let err = wait_for("the error", async || {
        let s = a.peer_state("a", "b").await.unwrap();
        s.last_error.filter(|e| e.contains("Bad Peer AS"))
    })
    .await;
    assert!(err.contains("OPEN Message Error"), "{err}");
    a.shutdown(StopMode::GracefulRestart).await;
    b.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_hold_time_resets_only_that_session_and_applies_the_new_timers() {
    let (a, b, _) = pair(65000, 65001).await;
    established(&b, "b", "a").await;
    let before = b.peer_state("b", "a").await.unwrap().flaps;
    let mut p = b
        .inner
        .instances
        .lock()
        .unwrap()
        .get("b")
        .unwrap()
        .peers
        .lock()
        .unwrap()
        .get("a")
        .unwrap()
        .config
        .clone();
    p.hold_time = HoldTime::new(6).unwrap();
    p.keepalive = Some(2);
    assert!(b.update_peer("b", p).await.unwrap());
    let st = wait_for("the new hold time", async || {
        let s = b.peer_state("b", "a").await.unwrap();
        (s.state == State::Established && s.hold_time == Some(6)).then_some(s)
    })
    .await;
    assert_eq!(st.keepalive, Some(2));
    assert_eq!(st.flaps, before + 1);
    a.shutdown(StopMode::GracefulRestart).await;
    b.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_peer_export_change_applies_in_place_without_a_reset() {
    let (a, b, _) = pair(65000, 65001).await;
    established(&b, "b", "a").await;
    b.announce("b", vec![route("10.1.0.0/24"), route("10.2.0.0/24")])
        .await
        .unwrap();
    let count = async |n: usize| {
        wait_for("routes on A", async || {
            let v = a.loc_rib("a", Family::IPV4_UNICAST).await.unwrap();
            (v.len() == n).then_some(v)
        })
        .await
    };
    count(2).await;
    let mut p = b.peer_config("b", "a").await.unwrap();
    let mut only = route("10.2.0.0/24");
    only.attributes.communities = vec![parse_community("65001:42").unwrap()];
    p.export_routes = Some(vec![only]);
    p.export_learned = false;
    assert!(
        !b.update_peer("b", p).await.unwrap(),
        "an export change is no reset"
    );
    let v = count(1).await;
    assert_eq!(v[0].prefix, "10.2.0.0/24".parse::<IpNet>().unwrap());
    assert_eq!(
        v[0].attrs.path.communities,
        vec![parse_community("65001:42").unwrap()]
    );
    let st = b.peer_state("b", "a").await.unwrap();
    assert_eq!((st.flaps, st.state), (0, State::Established));
    assert_eq!(st.counts[0].advertised, 1);
    a.shutdown(StopMode::GracefulRestart).await;
    b.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_unconfigured_addresses_are_refused() {
    let port = free_port();
    let a = Speaker::new();
    a.start_instance(instance("a", 65000, [10, 0, 0, 1], Some(port)))
        .await
        .unwrap();
    let mut p = peer("other", [127, 0, 0, 9], 65001);
    p.passive = true;
    a.add_peer("a", p).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 19];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a word");
    a.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_with_a_clear_error() {
    let s = Speaker::new();
    s.start_instance(instance("a", 65000, [10, 0, 0, 1], None))
        .await
        .unwrap();
    let mut p = peer("x", [127, 0, 0, 1], 65001);
    p.keepalive = Some(30);
    let e = s.add_peer("a", p).await.unwrap_err();
    assert!(e.to_string().contains("keepalive 30"), "{e}");
    assert!(matches!(
        s.add_peer("nope", peer("x", [127, 0, 0, 1], 1)).await,
        Err(SpeakerError::NoInstance(_))
    ));
    s.add_peer("a", peer("x", [127, 0, 0, 1], 65001))
        .await
        .unwrap();
    assert!(matches!(
        s.add_peer("a", peer("y", [127, 0, 0, 1], 65001)).await,
        Err(SpeakerError::AddressInUse { .. })
    ));
    s.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_the_max_prefix_limit_closes_the_session_with_its_cease() {
    let port = free_port();
    let a = Speaker::new();
    a.start_instance(instance("a", 65000, [10, 0, 0, 1], Some(port)))
        .await
        .unwrap();
    let mut to_b = peer("b", [127, 0, 0, 1], 65001);
    to_b.passive = true;
    to_b.max_prefixes.insert(
        Family::IPV4_UNICAST,
        MaxPrefix {
            limit: 10,
            restart_after: None,
        },
    );
    a.add_peer("a", to_b).await.unwrap();
    let b = Speaker::new();
    b.start_instance(instance("b", 65001, [10, 0, 0, 2], None))
        .await
        .unwrap();
    let mut to_a = peer("a", [127, 0, 0, 1], 65000);
    to_a.port = port;
    b.add_peer("b", to_a).await.unwrap();
    established(&a, "a", "b").await;
    let routes = (0..20u32)
        .map(|i| route(&format!("10.0.{i}.0/24")))
        .collect();
    b.announce("b", routes).await.unwrap();
    let err = wait_for("the Cease on B", async || {
        b.peer_state("b", "a")
            .await
            .unwrap()
            .last_error
            .filter(|e| e.contains("Maximum Number of Prefixes"))
    })
    .await;
    assert!(err.starts_with("received NOTIFICATION Cease"), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let st = a.peer_state("a", "b").await.unwrap();
    assert_eq!(
        st.state,
        State::Idle,
        "no restart without a restart interval"
    );
    assert!(
        a.loc_rib("a", Family::IPV4_UNICAST)
            .await
            .unwrap()
            .is_empty()
    );
    a.shutdown(StopMode::GracefulRestart).await;
    b.shutdown(StopMode::GracefulRestart).await;
}

/// A peer that completes the OPEN exchange and then never reads again must not hold up the
/// others, and what is queued for it stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_does_not_hold_up_the_others() {
    use crate::wire::{Capability, EncodeContext, Message, Open};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (a, b, port) = pair(65000, 65001).await;
    let mut stuck = peer("stuck", [127, 0, 0, 2], 65002);
    stuck.passive = true;
    stuck.hold_time = HoldTime::new(60).unwrap();
    stuck.keepalive = None;
    a.add_peer("a", stuck).await.unwrap();
    established(&a, "a", "b").await;
    // The stuck peer: a small receive buffer, an OPEN and a KEEPALIVE, then silence.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let open = Message::Open(Open::new(
        65002,
        60,
        Ipv4Addr::new(10, 0, 0, 3),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(65002),
        ],
    ));
    let ctx = EncodeContext::default();
    s.write_all(&open.to_bytes(&ctx).unwrap()).await.unwrap();
    s.write_all(&Message::Keepalive.to_bytes(&ctx).unwrap())
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let _ = s.read(&mut first).await.unwrap();
    established(&a, "a", "stuck").await;
    // 200 000 routes go to both.
    let routes: Vec<Route> = (0..200_000u32)
        .map(|i| {
            route(&format!(
                "{}.{}.{}.0/24",
                11 + i / 65536,
                (i / 256) % 256,
                i % 256
            ))
        })
        .collect();
    a.announce("a", routes).await.unwrap();
    let t = Instant::now();
    wait_for("200 000 routes on B", async || {
        (b.loc_rib("b", Family::IPV4_UNICAST).await.unwrap().len() == 200_000).then_some(())
    })
    .await;
    eprintln!(
        "B had 200 000 routes {:.2} s after they were announced",
        t.elapsed().as_secs_f64()
    );
    let st = a.peer_state("a", "stuck").await.unwrap();
    let to_b = a.peer_state("a", "b").await.unwrap();
    assert_eq!(st.state, State::Established);
    assert_eq!(to_b.counts[0].advertised, 200_000);
    // What waits for the stuck peer in our memory is bounded by the pull threshold plus one
    // batch; the rest stays in its Adj-RIB-Out (and the kernel's bounded socket buffer).
    assert!(
        st.out_queue <= super::peer::LOW_WATER + 128 * 1024,
        "{} octets queued for a peer that does not read",
        st.out_queue
    );
    drop(s);
    a.shutdown(StopMode::GracefulRestart).await;
    b.shutdown(StopMode::GracefulRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_source_address_and_peer_port_are_used() {
    let port = free_port();
    let a = Speaker::new();
    a.start_instance(instance("a", 65000, [10, 0, 0, 1], Some(port)))
        .await
        .unwrap();
    // A knows B only as 127.0.0.5: B's connection must come from there.
    let mut to_b = peer("b", [127, 0, 0, 5], 65001);
    to_b.passive = true;
    a.add_peer("a", to_b).await.unwrap();
    let b = Speaker::new();
    b.start_instance(instance("b", 65001, [10, 0, 0, 2], None))
        .await
        .unwrap();
    let mut to_a = peer("a", [127, 0, 0, 1], 65000);
    to_a.port = port;
    to_a.local_address = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)));
    b.add_peer("b", to_a).await.unwrap();
    let st = established(&b, "b", "a").await;
    assert_eq!(
        st.local.unwrap().ip(),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))
    );
    assert_eq!(st.remote.unwrap().port(), port);
    a.shutdown(StopMode::GracefulRestart).await;
    b.shutdown(StopMode::GracefulRestart).await;
}

#[test]
fn the_handle_and_its_futures_can_move_between_threads() {
    fn send<T: Send>(_: T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Speaker>();
    let s = Speaker::new();
    send(s.start_instance(instance("a", 65000, [10, 0, 0, 1], None)));
    send(s.stop_instance("a", StopMode::GracefulRestart));
    send(s.add_peer("a", peer("b", [127, 0, 0, 1], 65001)));
    send(s.update_peer("a", peer("b", [127, 0, 0, 1], 65001)));
    send(s.remove_peer("a", "b", None));
    send(s.reset_peer("a", "b", ResetReason::BfdDown));
    send(s.announce("a", vec![]));
    send(s.withdraw("a", vec![]));
    send(s.replace_routes("a", vec![]));
    send(s.table_complete("a"));
    send(s.loc_rib("a", Family::IPV4_UNICAST));
    send(s.adj_rib_in("a", "b", Family::IPV4_UNICAST));
    send(s.adj_rib_out("a", "b", Family::IPV4_UNICAST));
    send(s.peer_states("a"));
    send(s.subscribe_best_paths("a"));
    send(s.shutdown(StopMode::GracefulRestart));
}
