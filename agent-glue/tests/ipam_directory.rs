//! LB-IPAM end to end on a manifest directory: the seed lab's manifests in a temporary
//! directory, the directory source, the leader lock, the reconciler, and the status files.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_glue::ipam::{IpamController, run};
use agent_glue::source::directory::{DirectoryOptions, DirectorySource};
use agent_glue::source::leader::{DirectoryLeader, Leadership};
use agent_glue::source::{ObjectKey, Snapshot, Source, StatusSink};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../frr-lab/topologies/seed")
}

/// The BGP variant of the seed lab (l2.yaml is the alternative with another pool).
fn seed_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "bgp.yaml",
        "lb-pool.yaml",
        "webpod.yaml",
        "lb-advertisement.yaml",
    ] {
        std::fs::copy(seed().join(f), d.path().join(f)).unwrap();
    }
    std::fs::create_dir(d.path().join("cluster")).unwrap();
    for f in ["nodes.yaml", "webpod-endpoints.yaml"] {
        std::fs::copy(
            seed().join("cluster").join(f),
            d.path().join("cluster").join(f),
        )
        .unwrap();
    }
    d
}

fn fast() -> DirectoryOptions {
    DirectoryOptions {
        debounce: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
    }
}

fn ingress(s: &Snapshot, name: &str) -> Vec<String> {
    agent_glue::ipam::translate::ingress_ips(
        s.services
            .get(&ObjectKey::namespaced("default", name))
            .and_then(|s| s.status.as_ref()),
    )
    .iter()
    .map(|a| a.to_string())
    .collect()
}

async fn wait_for(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    what: &str,
    f: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let r = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| f(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match r {
        Ok(Ok(s)) => s,
        _ => panic!(
            "timed out waiting for {what}; problems: {:?}",
            rx.borrow().problems
        ),
    }
}

fn spawn_ipam(src: &DirectorySource, leader: &impl Leadership) -> tokio::task::JoinHandle<()> {
    let sink: Arc<dyn StatusSink> = Arc::new(src.status_sink());
    tokio::spawn(run(
        src.subscribe(),
        leader.subscribe(),
        sink,
        Duration::from_millis(50),
        None,
    ))
}

#[tokio::test]
async fn the_seed_lab_gives_webpod_172_16_1_1_in_readable_status_files_and_a_restart_keeps_it() {
    let d = seed_dir();
    {
        let src = DirectorySource::open(d.path(), fast()).await.unwrap();
        let leader = DirectoryLeader::new(d.path(), "node1").spawn(Duration::from_millis(20));
        let task = spawn_ipam(&src, &leader);
        let mut rx = src.subscribe();
        let s = wait_for(&mut rx, "webpod's address", |s| {
            !ingress(s, "webpod").is_empty()
        })
        .await;
        assert_eq!(ingress(&s, "webpod"), ["172.16.1.1"]);
        task.abort();
    }
    let svc =
        std::fs::read_to_string(d.path().join("status/services/default/webpod.yaml")).unwrap();
    for want in [
        "kind: Service",
        "name: webpod",
        "172.16.1.1",
        "cilium.io/IPAMRequestSatisfied",
        "reason: satisfied",
        "172.16.1.1 from cilium-pool",
    ] {
        assert!(svc.contains(want), "{want:?} missing from:\n{svc}");
    }
    let pool = std::fs::read_to_string(
        d.path()
            .join("status/ciliumloadbalancerippools/cilium-pool.yaml"),
    )
    .unwrap();
    for want in [
        "cilium.io/IPsTotal",
        "\"254\"",
        "\"253\"",
        "cilium.io/PoolConflict",
    ] {
        assert!(pool.contains(want), "{want:?} missing from:\n{pool}");
    }
    // Restart: a new source reads the status back, and a round changes nothing.
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let snap = src.snapshot();
    assert_eq!(ingress(&snap, "webpod"), ["172.16.1.1"]);
    let round = IpamController::new()
        .round(&snap, &src.status_sink(), Timestamp::now())
        .await;
    assert_eq!(round.written, 0);
    assert!(round.failed.is_empty());
    assert_eq!(
        std::fs::read_to_string(d.path().join("status/services/default/webpod.yaml")).unwrap(),
        svc
    );
}

#[tokio::test]
async fn several_processes_share_one_directory_with_one_leader_and_the_next_takes_over() {
    let d = seed_dir();
    let a = DirectorySource::open(d.path(), fast()).await.unwrap();
    let b = DirectorySource::open(d.path(), fast()).await.unwrap();
    let lead_a = DirectoryLeader::new(d.path(), "node1").spawn(Duration::from_millis(20));
    let mut la = lead_a.subscribe();
    tokio::time::timeout(Duration::from_secs(5), la.wait_for(|v| *v))
        .await
        .unwrap()
        .unwrap();
    let lead_b = DirectoryLeader::new(d.path(), "node2").spawn(Duration::from_millis(20));
    let task_a = spawn_ipam(&a, &lead_a);
    let task_b = spawn_ipam(&b, &lead_b);
    let (mut ra, mut rb) = (a.subscribe(), b.subscribe());
    for rx in [&mut ra, &mut rb] {
        let s = wait_for(rx, "webpod's address in every process", |s| {
            !ingress(s, "webpod").is_empty()
        })
        .await;
        assert_eq!(ingress(&s, "webpod"), ["172.16.1.1"]);
    }
    assert!(!*lead_b.subscribe().borrow(), "node2 is not the leader");
    assert_eq!(DirectoryLeader::holder(d.path()).as_deref(), Some("node1"));
    // The leader goes away; node2 takes over and serves a new service.
    task_a.abort();
    drop(lead_a);
    let mut lb = lead_b.subscribe();
    tokio::time::timeout(Duration::from_secs(5), lb.wait_for(|v| *v))
        .await
        .unwrap()
        .unwrap();
    std::fs::write(
        d.path().join("second.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: second, namespace: default}\n\
         spec: {type: LoadBalancer, ports: [{port: 8080}]}\n",
    )
    .unwrap();
    let s = wait_for(&mut rb, "the second service's address", |s| {
        !ingress(s, "second").is_empty()
    })
    .await;
    assert_eq!(ingress(&s, "second"), ["172.16.1.2"]);
    assert_eq!(ingress(&s, "webpod"), ["172.16.1.1"]);
    let s = wait_for(&mut ra, "the old leader's process to see it too", |s| {
        !ingress(s, "second").is_empty()
    })
    .await;
    assert_eq!(ingress(&s, "second"), ["172.16.1.2"]);
    task_b.abort();
}

#[tokio::test]
async fn an_unwritable_status_directory_is_reported_and_nothing_is_lost() {
    let d = seed_dir();
    // A file where status/services/ must be a directory: every Service write fails (as root,
    // permissions would not stop us; this does).
    std::fs::create_dir_all(d.path().join("status")).unwrap();
    std::fs::write(d.path().join("status/services"), "in the way\n").unwrap();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let sink = src.status_sink();
    let mut ctl = IpamController::new();
    let round = ctl.round(&src.snapshot(), &sink, Timestamp::now()).await;
    assert_eq!(round.failed.len(), 1, "{:?}", round.failed);
    let (what, err) = &round.failed[0];
    assert_eq!(what, "Service default/webpod");
    assert!(err.to_string().contains("status/services"), "{err}");
    assert_eq!(
        ctl.pending().services.len(),
        1,
        "the allocation is kept in memory"
    );
    // An older service appears while the write keeps failing: webpod's address stays its own.
    std::fs::write(
        d.path().join("older.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: older, namespace: default, creationTimestamp: \"2020-01-01T00:00:00Z\"}\n\
         spec: {type: LoadBalancer, ports: [{port: 443}]}\n",
    )
    .unwrap();
    let mut rx = src.subscribe();
    wait_for(&mut rx, "the older service", |s| s.services.len() == 2).await;
    let round = ctl.round(&src.snapshot(), &sink, Timestamp::now()).await;
    assert_eq!(round.failed.len(), 2);
    std::fs::remove_file(d.path().join("status/services")).unwrap();
    let round = ctl.round(&src.snapshot(), &sink, Timestamp::now()).await;
    assert!(round.failed.is_empty(), "{:?}", round.failed);
    let s = wait_for(&mut rx, "both addresses", |s| {
        !ingress(s, "webpod").is_empty() && !ingress(s, "older").is_empty()
    })
    .await;
    assert_eq!(ingress(&s, "webpod"), ["172.16.1.1"]);
    assert_eq!(ingress(&s, "older"), ["172.16.1.2"]);
}

#[tokio::test]
async fn deleting_a_service_manifest_deletes_its_status_file() {
    let d = seed_dir();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let sink = src.status_sink();
    let mut ctl = IpamController::new();
    ctl.round(&src.snapshot(), &sink, Timestamp::now()).await;
    let file = d.path().join("status/services/default/webpod.yaml");
    assert!(file.exists());
    std::fs::remove_file(d.path().join("webpod.yaml")).unwrap();
    let mut rx = src.subscribe();
    let s = wait_for(&mut rx, "the orphan", |s| !s.orphan_statuses.is_empty()).await;
    let round = ctl.round(&s, &sink, Timestamp::now()).await;
    assert!(round.failed.is_empty());
    assert!(!file.exists());
}
