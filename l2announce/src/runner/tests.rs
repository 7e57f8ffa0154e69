//! The runner with an in-memory backend and interface state fed by the test (no sockets):
//! grouping, election, withdrawal, links, outages, shutdown. Real time with short timers.

use super::*;
use crate::lease::MemoryBackend;
use crate::wire::MacAddr;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(node: &str) -> RunnerConfig {
    RunnerConfig {
        node: node.into(),
        timers: Timers::new(ms(600), ms(300), ms(100)).unwrap(),
        announce: AnnounceConfig::default(),
        link_down_grace: ms(200),
    }
}

fn svc(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

fn want(addr: &str, services: &[&str], eligible: bool) -> DesiredAnnouncement {
    DesiredAnnouncement {
        address: addr.parse().unwrap(),
        services: services.iter().map(|s| svc(s)).collect(),
        interfaces: ["eth1".to_owned()].into(),
        eligible,
    }
}

fn links(up: bool) -> Links {
    Arc::new(
        [(
            "eth1".to_owned(),
            LinkInfo {
                name: "eth1".into(),
                index: 2,
                mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                up,
                loopback: false,
                since: Instant::now(),
            },
        )]
        .into(),
    )
}

struct Node {
    runner: Runner<MemoryBackend>,
    links: watch::Sender<Links>,
}

fn node(name: &str, backend: &MemoryBackend) -> Node {
    let (tx, rx) = watch::channel(links(true));
    Node {
        runner: Runner::with_links(config(name), backend.clone(), rx, false),
        links: tx,
    }
}

async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(ms(10)).await;
    }
}

fn announcing(n: &Node) -> Vec<IpAddr> {
    n.runner
        .state()
        .into_iter()
        .filter(|s| s.announcing)
        .map(|s| s.address)
        .collect()
}

#[test]
fn addresses_with_the_same_services_share_a_lease_and_shared_addresses_get_their_own() {
    let plan = plan(&[
        want("192.168.10.211", &["default/web"], true),
        want("fd00:10::211", &["default/web"], true),
        want("192.168.10.212", &["default/a", "default/b"], true),
        want("192.168.10.213", &["default/a"], false),
        want("192.168.10.213", &["default/b"], true),
        DesiredAnnouncement {
            services: BTreeSet::new(),
            ..want("192.168.10.214", &[], true)
        },
    ]);
    let names: Vec<&str> = plan.keys().map(LeaseName::as_str).collect();
    assert_eq!(
        names,
        [
            "cilium-l2announce-192.168.10.212",
            "cilium-l2announce-default-web"
        ]
    );
    let shared = &plan[&LeaseName::new("cilium-l2announce-192.168.10.212").unwrap()];
    // .213 listed twice: merged into the same two services, so the same lease as .212.
    assert_eq!(shared.addresses.len(), 2);
    assert!(shared.addresses.values().all(|a| a.eligible));
    assert_eq!(
        plan[&LeaseName::new("cilium-l2announce-default-web").unwrap()]
            .addresses
            .len(),
        2
    );
}

#[tokio::test]
async fn of_two_eligible_nodes_exactly_one_announces_and_both_report_it() {
    let backend = MemoryBackend::new();
    let (a, b) = (node("node1", &backend), node("node2", &backend));
    let d = vec![
        want("192.168.10.211", &["default/web"], true),
        want("fd00:10::211", &["default/web"], true),
    ];
    a.runner.set_desired(d.clone());
    b.runner.set_desired(d);
    eventually("a holder", ms(2000), || {
        announcing(&a).len() + announcing(&b).len() == 2
    })
    .await;
    tokio::time::sleep(ms(500)).await;
    let (sa, sb) = (a.runner.state(), b.runner.state());
    let holder = sa[0].holder.clone().unwrap();
    let (winner, loser) = if holder == "node1" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(announcing(winner).len(), 2, "both addresses with one lease");
    assert!(announcing(loser).is_empty());
    assert!(loser.runner.answering().is_empty());
    assert_eq!(winner.runner.answering().len(), 2);
    for s in sa.iter().chain(&sb) {
        assert_eq!(s.holder.as_deref(), Some(holder.as_str()));
        assert_eq!(s.lease.as_str(), "cilium-l2announce-default-web");
        assert!(s.since.is_some());
        assert!(s.eligible);
    }
    let c = winner.runner.counters();
    assert_eq!(c.leases_acquired, 1);
    assert!(c.leases_renewed >= 3, "{c:?}");
}

#[tokio::test]
async fn an_ineligible_node_never_announces_and_takes_nothing_over() {
    let backend = MemoryBackend::new();
    let (a, b) = (node("node1", &backend), node("node2", &backend));
    b.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], false)]);
    tokio::time::sleep(ms(800)).await;
    assert!(
        backend.list().await.unwrap().is_empty(),
        "an ineligible node creates no lease"
    );
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    eventually("node1 announcing", ms(2000), || !announcing(&a).is_empty()).await;
    a.runner.shutdown(ms(1000)).await;
    tokio::time::sleep(ms(1000)).await;
    assert!(announcing(&b).is_empty());
    assert!(!b.runner.state()[0].eligible);
}

#[tokio::test]
async fn a_withdrawn_address_is_not_answered_when_set_desired_returns_and_its_lease_is_released() {
    let backend = MemoryBackend::new();
    let (a, b) = (node("node1", &backend), node("node2", &backend));
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    eventually("node1 announcing", ms(2000), || !announcing(&a).is_empty()).await;
    b.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    a.runner.set_desired(vec![]);
    assert!(a.runner.answering().is_empty(), "withdrawn synchronously");
    assert!(a.runner.state().is_empty());
    // Released, so node2 takes it at its next look rather than after a lease duration.
    let start = Instant::now();
    eventually("node2 announcing", ms(2000), || !announcing(&b).is_empty()).await;
    assert!(start.elapsed() < ms(600), "took {:?}", start.elapsed());
    assert!(a.runner.counters().leases_released >= 1);
}

#[tokio::test]
async fn becoming_ineligible_stops_answering_at_once_and_hands_over() {
    let backend = MemoryBackend::new();
    let (a, b) = (node("node1", &backend), node("node2", &backend));
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    eventually("node1 announcing", ms(2000), || !announcing(&a).is_empty()).await;
    b.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], false)]);
    assert!(a.runner.answering().is_empty());
    eventually("node2 announcing", ms(1000), || !announcing(&b).is_empty()).await;
    eventually("node1 sees node2", ms(1000), || {
        a.runner.state()[0].holder.as_deref() == Some("node2")
    })
    .await;
}

#[tokio::test]
async fn a_link_down_past_the_grace_hands_over_but_a_short_flap_does_not() {
    let backend = MemoryBackend::new();
    let (a, b) = (node("node1", &backend), node("node2", &backend));
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    eventually("node1 announcing", ms(2000), || !announcing(&a).is_empty()).await;
    b.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    // A 100 ms flap (grace 200 ms): still node1.
    a.links.send_replace(links(false));
    tokio::time::sleep(ms(100)).await;
    a.links.send_replace(links(true));
    tokio::time::sleep(ms(400)).await;
    assert!(!announcing(&a).is_empty());
    assert!(announcing(&b).is_empty());
    // Down for good: node1 gives up after the grace, node2 takes over.
    let down = Instant::now();
    a.links.send_replace(links(false));
    eventually("node2 announcing", ms(2000), || !announcing(&b).is_empty()).await;
    assert!(announcing(&a).is_empty());
    assert!(
        down.elapsed() >= ms(200),
        "not before the grace: {:?}",
        down.elapsed()
    );
    assert!(
        down.elapsed() < ms(600),
        "well before the lease would expire: {:?}",
        down.elapsed()
    );
}

#[tokio::test]
async fn a_holder_that_cannot_reach_the_backend_stops_within_the_renew_deadline() {
    let backend = MemoryBackend::new();
    let a = node("node1", &backend);
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    eventually("node1 announcing", ms(2000), || !announcing(&a).is_empty()).await;
    backend.set_failing(true);
    let start = Instant::now();
    eventually("node1 stopping", ms(1000), || announcing(&a).is_empty()).await;
    assert!(start.elapsed() <= ms(300 + 50), "{:?}", start.elapsed());
    assert!(a.runner.counters().leases_lost >= 1);
    backend.set_failing(false);
    eventually("node1 announcing again", ms(2000), || {
        !announcing(&a).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_holder_known_to_be_gone_is_replaced_at_the_next_look() {
    let backend = MemoryBackend::new();
    let a = node("node1", &backend);
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    eventually("node1 announcing", ms(2000), || !announcing(&a).is_empty()).await;
    // node1 dies without releasing: its lease stays.
    a.runner.kill();
    tokio::time::sleep(ms(50)).await;
    assert_eq!(
        backend.list().await.unwrap()[0].record.holder.as_deref(),
        Some("node1")
    );
    backend.set_alive("node1", false);
    let b = node("node2", &backend);
    let start = Instant::now();
    b.runner
        .set_desired(vec![want("192.168.10.211", &["default/web"], true)]);
    eventually("node2 announcing", ms(2000), || !announcing(&b).is_empty()).await;
    assert!(
        start.elapsed() < ms(300),
        "no lease duration of waiting: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn shutdown_releases_what_is_held() {
    let backend = MemoryBackend::new();
    let a = node("node1", &backend);
    a.runner.set_desired(vec![
        want("192.168.10.211", &["default/web"], true),
        want("192.168.10.212", &["default/x", "default/y"], true),
    ]);
    eventually("node1 announcing both", ms(2000), || {
        announcing(&a).len() == 2
    })
    .await;
    a.runner.shutdown(ms(1000)).await;
    let leases = backend.list().await.unwrap();
    assert_eq!(leases.len(), 2);
    assert!(
        leases.iter().all(|l| l.record.holder.is_none()),
        "{leases:?}"
    );
}

#[tokio::test]
async fn a_second_service_sharing_the_address_moves_it_to_the_address_lease() {
    let backend = MemoryBackend::new();
    let a = node("node1", &backend);
    a.runner
        .set_desired(vec![want("192.168.10.211", &["default/a"], true)]);
    eventually("announcing", ms(2000), || !announcing(&a).is_empty()).await;
    a.runner.set_desired(vec![want(
        "192.168.10.211",
        &["default/a", "default/b"],
        true,
    )]);
    eventually("announcing under the shared lease", ms(2000), || {
        a.runner
            .state()
            .first()
            .is_some_and(|s| s.announcing && s.lease.as_str() == "cilium-l2announce-192.168.10.211")
    })
    .await;
    let s = &a.runner.state()[0];
    assert_eq!(s.services, vec![svc("default/a"), svc("default/b")]);
    eventually("old lease released", ms(1000), || {
        futures::executor::block_on(
            backend.get(&LeaseName::new("cilium-l2announce-default-a").unwrap()),
        )
        .unwrap()
        .is_some_and(|l| l.record.holder.is_none())
    })
    .await;
}
