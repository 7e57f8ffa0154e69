//! Operator failover: two `lbspeaker operator` replicas, one leading through the Lease. When
//! the leader dies the standby takes over within a lease duration and changes no address
//! (it writes nothing at all but its Lease); when the leader stops cleanly it releases the
//! Lease and the standby takes over at its next look.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod kube_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube_support::{Cluster, eventually, fast_timers, free_port, rbac, seed_manifests};

const WAIT: Duration = Duration::from_secs(20);

const MORE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\n\
    apiVersion: v1\nkind: Service\nmetadata: {name: web2, namespace: default}\n\
    spec: {type: LoadBalancer, ports: [{port: 443}]}\n---\n\
    apiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: prod, annotations: {lbipam.cilium.io/ips: 172.16.1.53}}\n\
    spec: {type: LoadBalancer, ports: [{port: 53, protocol: UDP}]}\n";

fn addresses(c: &Cluster) -> BTreeMap<&'static str, Vec<String>> {
    [("default", "webpod"), ("default", "web2"), ("prod", "dns")]
        .into_iter()
        .map(|(ns, n)| (n, c.ingress(ns, n)))
        .collect()
}

/// Writes other than to Leases and Events that `identity` sent.
fn writes_by(c: &Cluster, identity: &str) -> Vec<String> {
    c.server
        .requests()
        .iter()
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|u| u.ends_with(&format!("({identity})")))
        })
        .filter(|r| r.verb.is_some_and(|v| v.is_write()))
        .filter(|r| {
            r.target
                .as_ref()
                .is_some_and(|t| t.resource != "leases" && t.resource != "events")
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_without_changing_any_address() {
    let mut c = Cluster::new();
    c.apply(&seed_manifests(free_port())).await;
    c.apply(MORE).await;
    c.start_operator("op-a", fast_timers());
    let before = eventually("every address", WAIT, async || {
        let a = addresses(&c);
        a.values().all(|v| v.len() == 1).then_some(a)
    })
    .await;
    assert_eq!(before["dns"], ["172.16.1.53"]);
    eventually("op-a leads", WAIT, async || {
        (c.holder("lbspeaker-operator").as_deref() == Some("op-a")).then_some(())
    })
    .await;
    c.start_operator("op-b", fast_timers());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        c.holder("lbspeaker-operator").as_deref(),
        Some("op-a"),
        "op-b waits"
    );
    assert!(
        writes_by(&c, "op-b").is_empty(),
        "a standby writes nothing: {:?}",
        writes_by(&c, "op-b")
    );

    // The leader dies (no release): op-b takes over once the lease has expired.
    let killed = Instant::now();
    c.kill("op-a");
    eventually("op-b leads", WAIT, async || {
        (c.holder("lbspeaker-operator").as_deref() == Some("op-b")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    eprintln!(
        "failover after a crash: op-b leads {took:?} after op-a died (lease 3 s, retry 0.5 s)"
    );
    assert!(
        took >= Duration::from_secs(2),
        "not before the lease could expire: {took:?}"
    );
    // It runs LB-IPAM, the conditions and the node configs from what the API holds: every
    // address stays, and there is nothing to write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(addresses(&c), before);
    assert!(
        writes_by(&c, "op-b").is_empty(),
        "the new leader wrote: {:?}",
        writes_by(&c, "op-b")
    );
    // It does allocate what is new, next to what is taken.
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web3, namespace: default}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n").await;
    let web3 = eventually("web3's address", WAIT, async || {
        let a = c.ingress("default", "web3");
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert!(!before.values().any(|v| *v == web3), "{web3:?} is new");

    // A clean stop releases the Lease: the next replica takes over at its next look.
    c.start_operator("op-c", fast_timers());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = Instant::now();
    c.stop("op-b").await;
    eventually("op-c leads", WAIT, async || {
        (c.holder("lbspeaker-operator").as_deref() == Some("op-c")).then_some(())
    })
    .await;
    let took = stopped.elapsed();
    eprintln!("failover after a clean stop: op-c leads {took:?} after op-b was told to stop");
    assert!(
        took < Duration::from_secs(2),
        "a released lease is taken at once, not after it expires: {took:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut after = addresses(&c);
    after.remove("web3");
    assert_eq!(after, before);
    assert_eq!(c.ingress("default", "web3"), web3);
    assert!(
        writes_by(&c, "op-c").is_empty(),
        "{:?}",
        writes_by(&c, "op-c")
    );
    let lease: k8s_openapi::api::coordination::v1::Lease = c
        .server
        .get(kube_support::NS, "lbspeaker-operator")
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().lease_transitions,
        Some(2),
        "op-a, op-b, op-c"
    );
    c.stop_all().await;
    rbac::assert_granted(&c.server.requests());
}
