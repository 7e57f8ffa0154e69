//! The directory source against real files: the seed lab's manifests, bad documents, edits,
//! status files written by one process and seen by another.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_glue::source::directory::{DirectoryOptions, DirectorySource};
use agent_glue::source::{Kind, ObjectKey, Snapshot, Source, StatusSink, StatusUpdate};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
use tokio::sync::watch;

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../frr-lab/topologies/seed")
}

/// The seed manifests and cluster objects, copied into a fresh directory.
fn seed_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "bgp.yaml",
        "lb-pool.yaml",
        "webpod.yaml",
        "lb-advertisement.yaml",
        "l2.yaml",
        "topology.yaml",
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
            "timed out waiting for {what}; problems: {:#?}",
            rx.borrow().problems
        ),
    }
}

fn webpod() -> ObjectKey {
    ObjectKey::namespaced("default", "webpod")
}

#[tokio::test]
async fn the_seed_lab_reads_completely_and_without_problems() {
    let d = seed_dir();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let s = src.snapshot();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.bgp_cluster_configs.len(), 1);
    assert_eq!(s.bgp_peer_configs.len(), 1);
    assert_eq!(s.bgp_advertisements.len(), 2);
    assert_eq!(s.lb_ip_pools.len(), 2);
    assert_eq!(s.l2_announcement_policies.len(), 1);
    assert_eq!(s.services.len(), 1);
    assert_eq!(s.nodes.len(), 4);
    assert_eq!(s.endpoint_slices.len(), 1);
    assert!(s.services[&webpod()].metadata.creation_timestamp.is_some());
    assert!(s.synced);
    assert_eq!(
        src.describe(),
        format!("directory {}", src.root().display())
    );
}

#[tokio::test]
async fn a_bad_document_is_reported_with_its_line_and_the_others_are_served() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("pools.yaml"),
        "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: good}\n\
         spec: {blocks: [{cidr: 10.0.0.0/24}]}\n---\n\
         apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata: {name: cilium-peer}\n\
         spec:\n  timers:\n    holdTimeSeconds: 9\n---\n\
         apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: broken}\n\
         spec:\n  allowFirstLastIPs: perhaps\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("other.yaml"),
        "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: other}\nspec: {}\n",
    )
    .unwrap();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let s = src.snapshot();
    let names: Vec<&str> = s.lb_ip_pools.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["good", "other"]);
    let lines: Vec<String> = s.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        lines[0],
        "pools.yaml: document 2 (from line 6): CiliumBGPPeerConfig cilium-peer: spec.timers.keepAliveTimeSeconds (30) must not exceed holdTimeSeconds (9); skipped"
    );
    assert!(
        lines[1].starts_with("pools.yaml: document 3 (from line 13): "),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("at line 17, column 22"), "{}", lines[1]);
}

#[tokio::test]
async fn edits_are_picked_up_and_a_broken_edit_keeps_the_last_good_version() {
    let d = seed_dir();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let mut rx = src.subscribe();
    let pool_file = d.path().join("lb-pool.yaml");
    let text = std::fs::read_to_string(&pool_file).unwrap();
    std::fs::write(&pool_file, text.replace("172.16.1.0/24", "172.16.2.0/24")).unwrap();
    let s = wait_for(&mut rx, "the edited pool", |s| {
        s.lb_ip_pools
            .get(&ObjectKey::cluster("cilium-pool"))
            .is_some_and(|p| p.spec.blocks[0].cidr.as_deref() == Some("172.16.2.0/24"))
    })
    .await;
    assert!(s.problems.is_empty());
    // A typo: the pool stays as it was, and the problem is reported.
    std::fs::write(
        &pool_file,
        text.replace("allowFirstLastIPs: \"No\"", "allowFirstLastIPs: Nope"),
    )
    .unwrap();
    let s = wait_for(&mut rx, "the problem", |s| !s.problems.is_empty()).await;
    let p = &s.lb_ip_pools[&ObjectKey::cluster("cilium-pool")];
    assert_eq!(p.spec.blocks[0].cidr.as_deref(), Some("172.16.2.0/24"));
    assert!(
        s.problems[0]
            .message
            .ends_with("keeping the previous version"),
        "{}",
        s.problems[0]
    );
    // Deleting the file deletes its objects.
    std::fs::remove_file(&pool_file).unwrap();
    wait_for(&mut rx, "the pool to go", |s| {
        s.lb_ip_pools.len() == 1 && s.problems.is_empty()
    })
    .await;
}

#[tokio::test]
async fn any_layout_is_read_but_hidden_files_and_the_status_directory_are_not_manifests() {
    let d = tempfile::tempdir().unwrap();
    let deep = d.path().join("a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    let pool = |n: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {{name: {n}}}\nspec: {{}}\n"
        )
    };
    std::fs::write(deep.join("p.yml"), pool("deep")).unwrap();
    std::fs::write(d.path().join(".hidden.yaml"), pool("hidden")).unwrap();
    std::fs::write(d.path().join("notes.txt"), pool("text")).unwrap();
    std::fs::create_dir_all(d.path().join("status/x")).unwrap();
    std::fs::write(d.path().join("status/x/p.yaml"), pool("in-status")).unwrap();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let s = src.snapshot();
    let names: Vec<&str> = s.lb_ip_pools.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["deep"]);
}

#[tokio::test]
async fn an_object_defined_twice_is_reported_and_the_first_definition_wins() {
    let d = tempfile::tempdir().unwrap();
    let pool = |c: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {{name: p}}\nspec: {{blocks: [{{cidr: {c}}}]}}\n"
        )
    };
    std::fs::write(d.path().join("a.yaml"), pool("10.0.0.0/24")).unwrap();
    std::fs::write(d.path().join("b.yaml"), pool("10.9.0.0/24")).unwrap();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let s = src.snapshot();
    assert_eq!(
        s.lb_ip_pools[&ObjectKey::cluster("p")].spec.blocks[0]
            .cidr
            .as_deref(),
        Some("10.0.0.0/24")
    );
    assert_eq!(
        s.problems[0].to_string(),
        "b.yaml: CiliumLoadBalancerIPPool p is already defined in a.yaml; this definition is ignored"
    );
}

fn ingress(ip: &str) -> ServiceStatus {
    ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some(ip.into()),
                ..Default::default()
            }]),
        }),
        conditions: None,
    }
}

fn ingress_of(s: &Snapshot) -> Option<String> {
    s.services
        .get(&webpod())?
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .clone()
}

#[tokio::test]
async fn status_written_by_one_process_is_merged_into_every_process_snapshot() {
    let d = seed_dir();
    let leader = DirectorySource::open(d.path(), fast()).await.unwrap();
    let other = DirectorySource::open(d.path(), fast()).await.unwrap();
    let mut rx_leader = leader.subscribe();
    let mut rx_other = other.subscribe();
    let meta = leader.snapshot().services[&webpod()].metadata.clone();
    leader
        .status_sink()
        .write(&StatusUpdate::Service {
            meta: meta.clone(),
            status: Some(ingress("172.16.1.1")),
        })
        .await
        .unwrap();
    let file = d.path().join("status/services/default/webpod.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# Written by lbspeaker"), "{text}");
    assert!(text.contains("172.16.1.1"), "{text}");
    for rx in [&mut rx_leader, &mut rx_other] {
        let s = wait_for(rx, "the ingress", |s| {
            ingress_of(s).as_deref() == Some("172.16.1.1")
        })
        .await;
        // The status record carries the creation time, so every process agrees on age.
        assert_eq!(
            s.services[&webpod()].metadata.creation_timestamp,
            meta.creation_timestamp
        );
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }
    // A third process started later reads it back at once.
    let late = DirectorySource::open(d.path(), fast()).await.unwrap();
    assert_eq!(ingress_of(&late.snapshot()).as_deref(), Some("172.16.1.1"));
    assert_eq!(
        late.snapshot().services[&webpod()]
            .metadata
            .creation_timestamp,
        meta.creation_timestamp
    );
}

#[tokio::test]
async fn status_of_a_deleted_object_is_reported_as_orphan_unless_a_manifest_is_unreadable() {
    let d = seed_dir();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let mut rx = src.subscribe();
    let meta = src.snapshot().services[&webpod()].metadata.clone();
    src.status_sink()
        .write(&StatusUpdate::Service {
            meta,
            status: Some(ingress("172.16.1.1")),
        })
        .await
        .unwrap();
    wait_for(&mut rx, "the status", |s| ingress_of(s).is_some()).await;
    // A syntax error in the service's file: nobody can tell which objects it held.
    std::fs::write(
        d.path().join("webpod.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: [\n",
    )
    .unwrap();
    let s = wait_for(&mut rx, "the problem", |s| !s.problems.is_empty()).await;
    assert!(s.orphan_statuses.is_empty());
    assert_eq!(
        ingress_of(&s).as_deref(),
        Some("172.16.1.1"),
        "kept from before"
    );
    std::fs::remove_file(d.path().join("webpod.yaml")).unwrap();
    let s = wait_for(&mut rx, "the orphan", |s| !s.orphan_statuses.is_empty()).await;
    assert_eq!(s.orphan_statuses, [(Kind::Service, webpod())]);
    assert!(s.services.is_empty());
}

#[tokio::test]
async fn node_configs_and_conditions_of_other_kinds_round_trip_through_status_files() {
    use crds::bgp::{CiliumBGPNodeConfig, CiliumBGPNodeConfigSpec, CiliumBGPNodeInstance};
    use crds::conditions::{self, Status};
    let d = seed_dir();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let mut rx = src.subscribe();
    let sink = src.status_sink();
    let node = CiliumBGPNodeConfig::new(
        "node1",
        CiliumBGPNodeConfigSpec {
            bgp_instances: vec![CiliumBGPNodeInstance {
                name: "instance-65001".into(),
                local_asn: Some(65001),
                router_id: Some("192.168.10.100".into()),
                ..Default::default()
            }],
        },
    );
    sink.write(&StatusUpdate::BgpNodeConfig {
        name: "node1".into(),
        object: Some(node.clone()),
    })
    .await
    .unwrap();
    let cc_meta = src.snapshot().bgp_cluster_configs[&ObjectKey::cluster("cilium-bgp")]
        .metadata
        .clone();
    let now = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let cond = conditions::new(
        conditions::NO_MATCHING_NODE,
        Status::False,
        "matched",
        "4 nodes",
        None,
        now,
    );
    sink.write(&StatusUpdate::Conditions {
        kind: Kind::BgpClusterConfig,
        meta: cc_meta,
        conditions: Some(vec![cond.clone()]),
    })
    .await
    .unwrap();
    let s = wait_for(&mut rx, "both records", |s| {
        !s.bgp_node_configs.is_empty()
            && s.bgp_cluster_configs[&ObjectKey::cluster("cilium-bgp")]
                .status
                .is_some()
    })
    .await;
    assert_eq!(
        s.bgp_node_configs[&ObjectKey::cluster("node1")].spec,
        node.spec
    );
    let st = s.bgp_cluster_configs[&ObjectKey::cluster("cilium-bgp")]
        .status
        .clone()
        .unwrap();
    assert_eq!(st.conditions, [cond]);
    assert!(
        d.path()
            .join("status/ciliumbgpnodeconfigs/node1.yaml")
            .exists()
    );
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    // Deleting the node config removes it.
    sink.write(&StatusUpdate::BgpNodeConfig {
        name: "node1".into(),
        object: None,
    })
    .await
    .unwrap();
    wait_for(&mut rx, "the node config to go", |s| {
        s.bgp_node_configs.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let e = DirectorySource::open("/nonexistent/lbspeaker-manifests", fast())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/lbspeaker-manifests: "),
        "{e}"
    );
}

#[tokio::test]
async fn reading_files_and_touching_hidden_names_make_no_new_snapshot() {
    let d = seed_dir();
    let src = DirectorySource::open(d.path(), fast()).await.unwrap();
    let mut rx = src.subscribe();
    std::fs::create_dir_all(d.path().join("status")).unwrap();
    // The first scan opened every file: that alone must not trigger anything.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rev = rx.borrow_and_update().revision;
    for _ in 0..5 {
        // What another process sharing the directory does all the time: read the files,
        // try the operator lock, write a temporary file it renames later.
        for f in ["bgp.yaml", "webpod.yaml", "cluster/nodes.yaml"] {
            std::fs::read_to_string(d.path().join(f)).unwrap();
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(d.path().join("status/.operator.lock"))
            .unwrap();
        std::fs::write(d.path().join(".webpod.yaml.tmp"), "not yet").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        rx.borrow().revision,
        rev,
        "nothing changed, no new snapshot"
    );
    // A real change (the temporary file renamed over a manifest) still arrives.
    let text = std::fs::read_to_string(d.path().join("webpod.yaml"))
        .unwrap()
        .replace("app: webpod\nspec:", "app: webpod\n    tier: web\nspec:");
    std::fs::write(d.path().join(".webpod.yaml.tmp"), text).unwrap();
    std::fs::rename(
        d.path().join(".webpod.yaml.tmp"),
        d.path().join("webpod.yaml"),
    )
    .unwrap();
    wait_for(&mut rx, "the new label", |s| {
        s.services[&webpod()]
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get("tier").map(String::as_str) == Some("web"))
    })
    .await;
}

#[tokio::test]
async fn a_directory_renamed_away_keeps_what_was_read_and_is_read_again_when_it_is_back() {
    let parent = tempfile::tempdir().unwrap();
    let d = seed_dir();
    let dir = parent.path().join("manifests");
    std::fs::rename(d.path(), &dir).unwrap();
    let src = DirectorySource::open(&dir, fast()).await.unwrap();
    let sink = src.status_sink();
    let mut rx = src.subscribe();
    let away = parent.path().join("manifests.away");
    std::fs::rename(&dir, &away).unwrap();
    let s = wait_for(&mut rx, "the directory reported as unavailable", |s| {
        s.problems
            .iter()
            .any(|p| p.message.contains("cannot be read"))
    })
    .await;
    assert!(s.services.contains_key(&webpod()), "webpod forgotten");
    assert_eq!(s.bgp_cluster_configs.len(), 1);
    // A status write while it is gone fails and does not create the directory again.
    let update = StatusUpdate::Service {
        meta: s.services[&webpod()].metadata.clone(),
        status: Some(ingress("172.16.1.1")),
    };
    assert!(sink.write(&update).await.is_err());
    assert!(!dir.exists(), "the status write recreated the directory");
    // Still the same after a while (the source keeps retrying).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = rx.borrow_and_update().clone();
    assert!(s.services.contains_key(&webpod()));
    std::fs::rename(&away, &dir).unwrap();
    wait_for(&mut rx, "the problem gone", |s| s.problems.is_empty()).await;
    // Watched again: an edit is seen.
    let text = std::fs::read_to_string(dir.join("webpod.yaml"))
        .unwrap()
        .replace("app: webpod\nspec:", "app: webpod\n    tier: web\nspec:");
    std::fs::write(dir.join("webpod.yaml"), text).unwrap();
    wait_for(&mut rx, "the new label", |s| {
        s.services[&webpod()]
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("tier"))
    })
    .await;
}

#[tokio::test]
async fn a_directory_deleted_and_made_again_is_watched_again() {
    let parent = tempfile::tempdir().unwrap();
    let d = seed_dir();
    let dir = parent.path().join("manifests");
    std::fs::rename(d.path(), &dir).unwrap();
    let src = DirectorySource::open(&dir, fast()).await.unwrap();
    let mut rx = src.subscribe();
    // Moved aside and a copy put in its place (what `rsync` or a config-management tool
    // replacing a directory does): the copy is read and watched.
    let away = parent.path().join("old");
    std::fs::rename(&dir, &away).unwrap();
    wait_for(&mut rx, "unavailable", |s| !s.problems.is_empty()).await;
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(&away).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    std::fs::create_dir(dir.join("cluster")).unwrap();
    for f in ["nodes.yaml", "webpod-endpoints.yaml"] {
        std::fs::copy(away.join("cluster").join(f), dir.join("cluster").join(f)).unwrap();
    }
    std::fs::remove_dir_all(&away).unwrap();
    let s = wait_for(&mut rx, "the copy read", |s| s.problems.is_empty()).await;
    assert!(s.services.contains_key(&webpod()));
    std::fs::remove_file(dir.join("webpod.yaml")).unwrap();
    wait_for(&mut rx, "webpod deleted in the new directory", |s| {
        !s.services.contains_key(&webpod())
    })
    .await;
}
