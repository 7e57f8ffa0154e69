//! Losing the API server, and watches that end: agents and an operator against the in-memory
//! API server, peered with a loopback tor. An outage longer than the hold time changes
//! nothing on the wire (sessions, routes), and when the server returns everything carries on
//! without a restart; a dropped or expired watch (410) is recovered by re-listing, which
//! changes nothing either.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod kube_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_glue::kube::ratelimit::RateLimit;
use agent_glue::kube::source::{KubeSource, SourceOptions};
use agent_glue::kube::{Role, client};
use agent_glue::source::{ObjectKey, Source};
use bgp::speaker::Speaker;
use kube_support::{
    Cluster, eventually, fast_timers, free_port, rbac, seed_manifests, tor, tor_rib, tor_sessions,
};
use tests::apiserver::{OutageMode, Verb};

const WAIT: Duration = Duration::from_secs(20);

/// The tor's sessions without their uptimes, and how often each flapped.
async fn wire(
    t: &Speaker,
) -> (
    std::collections::BTreeMap<String, Vec<String>>,
    Vec<(String, String, u32)>,
) {
    let sessions = t
        .peer_states("tor")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.name.clone(), p.state.name().to_string(), p.flaps))
        .collect();
    (tor_rib(t).await, sessions)
}

async fn two_nodes_up(port: u16) -> (Speaker, Cluster) {
    let t = tor(port, 2).await;
    let mut c = Cluster::new();
    c.apply(&seed_manifests(port)).await;
    c.start_operator("op", fast_timers());
    c.start_agent("node1", true);
    c.start_agent("node2", true);
    eventually("both nodes' routes on the tor", WAIT, async || {
        let rib = tor_rib(&t).await;
        (rib.get("172.16.1.1/32").map(Vec::len) == Some(2) && rib.len() == 3).then_some(())
    })
    .await;
    (t, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_outage_longer_than_the_hold_time_changes_nothing_on_the_wire() {
    let port = free_port();
    let (t, mut c) = two_nodes_up(port).await;
    let before = wire(&t).await;
    assert!(
        before
            .1
            .iter()
            .all(|(_, s, f)| s == "established" && *f == 0),
        "{before:?}"
    );

    // 12 s without an API server (connections refused), the seed's hold time being 9 s.
    c.server.outage(OutageMode::Refuse);
    let start = Instant::now();
    let mut samples = 0;
    while start.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            wire(&t).await,
            before,
            "the wire changed {:?} into the outage",
            start.elapsed()
        );
        samples += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let refused = c.server.requests().iter().filter(|r| r.status == 0).count();
    assert!(refused > 0, "the agents kept trying");
    c.server.end_outage();
    eprintln!(
        "outage: {samples} samples of the tor over 12 s, all unchanged; {refused} requests refused"
    );

    // Back: the watchers list again and nothing changes...
    eventually("the watches back", WAIT, async || {
        (c.server.watch_count(Some(("", "services"))) >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(wire(&t).await, before);
    assert_eq!(c.ingress("default", "webpod"), ["172.16.1.1"]);
    let sessions = tor_sessions(&t).await;
    assert!(
        sessions
            .iter()
            .all(|(_, _, up)| up.unwrap() > Duration::from_secs(12)),
        "{sessions:?}"
    );
    // ...and what changes from now on is acted on, by the same processes.
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web2, namespace: default, labels: {app: webpod}}\n\
             spec: {type: LoadBalancer, selector: {app: webpod}, ports: [{port: 8080}]}\n")
        .await;
    let rib = eventually(
        "the new service on the tor via both nodes",
        WAIT,
        async || {
            let rib = tor_rib(&t).await;
            (rib.get("172.16.1.2/32").map(Vec::len) == Some(2)).then_some(rib)
        },
    )
    .await;
    assert_eq!(rib["172.16.1.1/32"], ["node1", "node2"]);
    assert!(
        wire(&t)
            .await
            .1
            .iter()
            .all(|(_, s, f)| s == "established" && *f == 0)
    );
    c.stop_all().await;
    rbac::assert_granted(&c.server.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_expired_watches_are_recovered_by_relisting_without_touching_the_wire() {
    let port = free_port();
    let (t, mut c) = two_nodes_up(port).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = wire(&t).await;
    c.server.clear_requests();

    // Every watch ends with 410 Expired: each watcher lists again.
    let expired = c.server.expire_watches();
    assert!(expired >= 20, "{expired} watches");
    // History compacted, then every watch dropped: resuming from the last version gets 410,
    // so again a list.
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.server.compact();
    c.server.drop_watches();
    eventually("the watches back", WAIT, async || {
        (c.server.watch_count(Some(("", "services"))) >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = c.server.requests();
    let lists = requests
        .iter()
        .filter(|r| {
            r.verb == Some(Verb::List)
                && r.user_agent
                    .as_deref()
                    .is_some_and(|u| u.starts_with("lbspeaker-"))
        })
        .count();
    // Every expired watch listed again, and most of the compacted ones (a watch whose last
    // version is the latest may resume).
    assert!(
        lists > expired,
        "{lists} lists after {expired} expired watches"
    );
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.verb.is_some_and(|v| v.is_write()))
        .filter(|r| r.target.as_ref().is_some_and(|t| t.resource != "leases"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "a re-list that finds the same objects writes nothing: {writes:?}"
    );
    assert_eq!(wire(&t).await, before);
    // Changes are seen again.
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web2, namespace: default, labels: {app: webpod}}\n\
             spec: {type: LoadBalancer, selector: {app: webpod}, ports: [{port: 8080}]}\n")
        .await;
    eventually("the new service on the tor", WAIT, async || {
        (tor_rib(&t).await.get("172.16.1.2/32").map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    c.stop_all().await;
    rbac::assert_granted(&c.server.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_publishes_nothing_for_a_relist_that_finds_the_same_objects() {
    let c = Cluster::new();
    c.apply(&seed_manifests(free_port())).await;
    let kc = client::over(
        c.server.service(),
        "default",
        Role::Agent,
        "node1",
        RateLimit::unlimited(),
    );
    let source = KubeSource::start(kc, SourceOptions::agent("node1", "kube-system"));
    let mut rx = source.subscribe();
    let first = eventually("the first snapshot", WAIT, async || {
        let s = rx.borrow_and_update().clone();
        s.synced.then_some(s)
    })
    .await;
    assert_eq!(
        first
            .nodes
            .keys()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        ["node1"],
        "its own Node only"
    );
    assert_eq!(first.services.len(), 1);
    assert_eq!(
        first.bgp_node_config_overrides.len(),
        1,
        "its own override only"
    );
    c.server.compact();
    assert!(c.server.expire_watches() > 0);
    c.server.drop_watches();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!rx.has_changed().unwrap(), "no new snapshot");
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web2, namespace: default}\nspec: {type: LoadBalancer}\n")
        .await;
    let next = eventually("a snapshot with the new service", WAIT, async || {
        let s = rx.borrow_and_update().clone();
        s.services
            .contains_key(&ObjectKey::namespaced("default", "web2"))
            .then_some(s)
    })
    .await;
    assert_eq!(next.revision, first.revision + 1);
    assert!(
        Arc::ptr_eq(
            &first.services[&ObjectKey::namespaced("default", "webpod")],
            &next.services[&ObjectKey::namespaced("default", "webpod")]
        ),
        "what did not change is shared"
    );
}
