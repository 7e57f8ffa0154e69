//! L2 announcement Leases on the API server through [`KubeLeaseBackend`]: three nodes
//! electing five leases with `l2announce`'s election, watched every 20 ms for two nodes
//! believing they lead one lease at once, through a crash, injected conflicts and an API
//! outage. Reads come from one watch per node; only acquisitions and renewals are requests.
//!
//! [`KubeLeaseBackend`]: agent_glue::kube::lease::KubeLeaseBackend

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod kube_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kube_support::l2::{self, Beliefs};
use kube_support::{Cluster, NS, eventually, fast_timers, rbac};
use tests::apiserver::{Fault, OutageMode, Verb};

const LEASES: [&str; 5] = [
    "cilium-l2announce-default-a",
    "cilium-l2announce-default-b",
    "cilium-l2announce-default-c",
    "cilium-l2announce-prod-d",
    "cilium-l2announce-192.168.10.211",
];

fn one_leader_each(c: &Cluster, beliefs: &Beliefs) -> Option<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for l in LEASES {
        let leaders = l2::leaders(beliefs, l);
        if leaders.len() != 1 || c.holder(l).as_deref() != Some(leaders[0].as_str()) {
            return None;
        }
        m.insert(l.to_string(), leaders[0].clone());
    }
    Some(m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_two_holders_through_a_crash_conflicts_and_an_api_outage() {
    let c = Cluster::new();
    let beliefs = Beliefs::default();
    let timers = fast_timers();
    let mut nodes: BTreeMap<String, l2::Node> = ["node1", "node2", "node3"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                l2::start(&c.server, NS, n, &LEASES, timers, beliefs.clone()),
            )
        })
        .collect();

    // A watchdog: at no instant may two nodes believe they lead one lease.
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let watchdog = {
        let (b, stop, v, s) = (
            beliefs.clone(),
            stop.clone(),
            violations.clone(),
            samples.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for l in LEASES {
                    if l2::leaders(&b, l).len() > 1 {
                        v.fetch_add(1, Ordering::Relaxed);
                        eprintln!("two leaders of {l}: {:?}", l2::leaders(&b, l));
                    }
                }
                s.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let held = eventually(
        "one holder per lease",
        Duration::from_secs(15),
        async || one_leader_each(&c, &beliefs),
    )
    .await;
    let per_node = |h: &BTreeMap<String, String>, n: &str| h.values().filter(|x| *x == n).count();

    // Reads are the watch's: one watch per node on the Leases, no GET ever.
    assert_eq!(
        c.server
            .watch_count(Some(("coordination.k8s.io", "leases"))),
        3
    );

    // The node holding most leases dies: the others take its leases once they expire.
    let victim = ["node1", "node2", "node3"]
        .into_iter()
        .max_by_key(|n| per_node(&held, n))
        .unwrap()
        .to_string();
    let died = Instant::now();
    drop(nodes.remove(&victim));
    l2::forget(&beliefs, &victim);
    let held = eventually(
        "the dead node's leases taken over",
        Duration::from_secs(15),
        async || one_leader_each(&c, &beliefs).filter(|h| per_node(h, &victim) == 0),
    )
    .await;
    eprintln!(
        "{victim} died; its leases had new holders {:?} later (lease 3 s, retry 0.5 s)",
        died.elapsed()
    );

    // Renewals refused as conflicts, three times: a holder retries at its next period, keeps
    // its leases (the renew deadline is four retries away), and nobody else takes them.
    c.server.inject(
        Fault::status(409)
            .verb(Verb::Update)
            .resource("leases")
            .times(3),
    );
    eventually("the conflicts used", Duration::from_secs(10), async || {
        (c.server.pending_faults() == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(one_leader_each(&c, &beliefs), Some(held.clone()));

    // An outage: nobody can renew, so each holder stops answering a renew deadline after its
    // last renewal; nobody else can take over (writes fail): for a while no node answers.
    c.server.outage(OutageMode::Refuse);
    let outage = Instant::now();
    eventually(
        "every holder stepped down",
        Duration::from_secs(10),
        async || {
            LEASES
                .iter()
                .all(|l| l2::leaders(&beliefs, l).is_empty())
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "outage: every holder stopped answering {:?} after it began (renew deadline 2 s)",
        outage.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(LEASES.iter().all(|l| l2::leaders(&beliefs, l).is_empty()));
    c.server.end_outage();
    let back = Instant::now();
    eventually(
        "one holder per lease again",
        Duration::from_secs(15),
        async || one_leader_each(&c, &beliefs),
    )
    .await;
    eprintln!(
        "after the outage: one holder per lease again {:?} after it ended",
        back.elapsed()
    );

    stop.store(true, Ordering::Relaxed);
    watchdog.await.unwrap();
    assert_eq!(violations.load(Ordering::Relaxed), 0, "two leaders at once");
    eprintln!(
        "{} samples without two leaders",
        samples.load(Ordering::Relaxed)
    );
    let requests = c.server.requests();
    assert!(
        !requests.iter().any(|r| r.verb == Some(Verb::Get)),
        "leases are read from the watch, never fetched one by one"
    );
    let renewals = requests
        .iter()
        .filter(|r| r.verb == Some(Verb::Update))
        .count();
    eprintln!("{renewals} lease updates in all");
    drop(nodes);
    rbac::assert_granted(&requests);
}
