use super::*;
use crate::election::{Timers, acquired_record};

fn name(s: &str) -> LeaseName {
    LeaseName::new(format!("{LEASE_PREFIX}{s}")).unwrap()
}

fn record(holder: &str) -> LeaseRecord {
    acquired_record(SystemTime::now(), None, holder, &Timers::default())
}

fn backend() -> (tempfile::TempDir, FileBackend) {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::open(dir.path(), None).unwrap();
    (dir, b)
}

#[test]
fn a_created_lease_reads_back_equal_to_what_was_written() {
    let (_d, b) = backend();
    let mut r = record("node1");
    r.duration = Duration::from_millis(1500);
    let created = b.create_blocking(&name("default-web"), &r).unwrap();
    assert_eq!(created.record, r);
    assert_eq!(b.get_blocking(&name("default-web")).unwrap(), Some(created));
    assert_eq!(b.get_blocking(&name("default-other")).unwrap(), None);
}

#[test]
fn the_file_is_shaped_like_a_kubernetes_lease() {
    let (d, b) = backend();
    let r = acquired_record(
        at_micros(1_700_000_000_123_456),
        None,
        "node1",
        &Timers::default(),
    );
    b.create_blocking(&name("default-web"), &r).unwrap();
    let text =
        std::fs::read_to_string(d.path().join("cilium-l2announce-default-web.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(v["kind"], "Lease");
    assert_eq!(v["metadata"]["name"], "cilium-l2announce-default-web");
    assert_eq!(v["metadata"]["resourceVersion"], "1");
    assert_eq!(v["spec"]["holderIdentity"], "node1");
    assert_eq!(v["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(v["spec"]["acquireTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(v["spec"]["renewTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(v["spec"]["leaseTransitions"], 0);
}

fn at_micros(micros: u64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_micros(micros)
}

#[test]
fn creating_an_existing_lease_is_a_conflict() {
    let (_d, b) = backend();
    b.create_blocking(&name("a"), &record("node1")).unwrap();
    assert!(
        b.create_blocking(&name("a"), &record("node2"))
            .unwrap_err()
            .is_conflict()
    );
    assert_eq!(
        b.get_blocking(&name("a"))
            .unwrap()
            .unwrap()
            .record
            .holder
            .as_deref(),
        Some("node1")
    );
}

#[test]
fn an_update_with_a_stale_version_is_a_conflict_and_changes_nothing() {
    let (_d, b) = backend();
    let v1 = b.create_blocking(&name("a"), &record("node1")).unwrap();
    let v2 = b
        .update_blocking(&name("a"), &record("node2"), &v1.resource_version)
        .unwrap();
    assert_ne!(v1.resource_version, v2.resource_version);
    let err = b
        .update_blocking(&name("a"), &record("node3"), &v1.resource_version)
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(b.get_blocking(&name("a")).unwrap().unwrap(), v2);
    assert!(matches!(
        b.update_blocking(&name("b"), &record("node3"), &v1.resource_version),
        Err(LeaseError::NotFound { .. })
    ));
}

#[test]
fn versions_never_repeat_even_across_delete_and_create() {
    let (_d, b) = backend();
    let v1 = b.create_blocking(&name("a"), &record("node1")).unwrap();
    assert!(
        b.delete_blocking(&name("a"), &ResourceVersion("999".into()))
            .unwrap_err()
            .is_conflict()
    );
    b.delete_blocking(&name("a"), &v1.resource_version).unwrap();
    assert_eq!(b.get_blocking(&name("a")).unwrap(), None);
    let v2 = b.create_blocking(&name("a"), &record("node1")).unwrap();
    assert_ne!(v1.resource_version, v2.resource_version);
    assert!(
        b.update_blocking(&name("a"), &record("node2"), &v1.resource_version)
            .unwrap_err()
            .is_conflict()
    );
}

#[test]
fn list_returns_our_leases_sorted_and_skips_a_corrupt_one() {
    let (d, b) = backend();
    b.create_blocking(&name("b"), &record("node1")).unwrap();
    b.create_blocking(&name("a"), &record("node2")).unwrap();
    std::fs::write(d.path().join("cilium-l2announce-bad.json"), "{ not json").unwrap();
    std::fs::write(d.path().join("unrelated.json"), "{}").unwrap();
    let names: Vec<_> = b
        .list_blocking()
        .unwrap()
        .into_iter()
        .map(|l| l.name.to_string())
        .collect();
    assert_eq!(names, ["cilium-l2announce-a", "cilium-l2announce-b"]);
}

#[test]
fn a_corrupt_lease_is_reported_and_left_alone() {
    let (d, b) = backend();
    let path = d.path().join("cilium-l2announce-a.json");
    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(
        b.get_blocking(&name("a")),
        Err(LeaseError::Corrupt { .. })
    ));
    assert!(matches!(
        b.update_blocking(&name("a"), &record("node1"), &ResourceVersion("1".into())),
        Err(LeaseError::Corrupt { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
    // A file whose metadata names another lease is corrupt too.
    b.create_blocking(&name("b"), &record("node1")).unwrap();
    std::fs::copy(
        d.path().join("cilium-l2announce-b.json"),
        d.path().join("cilium-l2announce-c.json"),
    )
    .unwrap();
    let err = b.get_blocking(&name("c")).unwrap_err();
    assert!(
        err.to_string().contains("names lease cilium-l2announce-b"),
        "{err}"
    );
}

#[test]
fn holder_liveness_follows_the_process_lock() {
    let dir = tempfile::tempdir().unwrap();
    let me = FileBackend::open(dir.path(), Some("node2")).unwrap();
    assert_eq!(me.holder_alive_blocking("node1"), None, "never ran here");
    let node1 = FileBackend::open(dir.path(), Some("node1")).unwrap();
    assert_eq!(me.holder_alive_blocking("node1"), Some(true));
    assert_eq!(me.holder_alive_blocking("node2"), Some(true), "ourselves");
    drop(node1);
    assert_eq!(me.holder_alive_blocking("node1"), Some(false));
    assert_eq!(
        me.clone().without_liveness().holder_alive_blocking("node1"),
        None
    );
    assert_eq!(me.holder_alive_blocking("../etc"), None);
}

#[test]
fn concurrent_writers_lose_no_update() {
    let (_d, b) = backend();
    b.create_blocking(&name("counter"), &record("node0"))
        .unwrap();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                let mut conflicts = 0;
                for _ in 0..50 {
                    loop {
                        let l = b.get_blocking(&name("counter")).unwrap().unwrap();
                        let mut r = l.record.clone();
                        r.transitions += 1;
                        match b.update_blocking(&name("counter"), &r, &l.resource_version) {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let l = b.get_blocking(&name("counter")).unwrap().unwrap();
    assert_eq!(
        l.record.transitions, 300,
        "{conflicts} conflicts along the way"
    );
}

#[tokio::test]
async fn the_trait_methods_reach_the_files() {
    let (_d, b) = backend();
    let l = b.create(&name("a"), &record("node1")).await.unwrap();
    assert_eq!(b.get(&name("a")).await.unwrap().as_ref(), Some(&l));
    let released = b.release(&l, SystemTime::now()).await.unwrap();
    assert_eq!(released.record.holder, None);
    assert_eq!(released.record.duration, Duration::from_secs(1));
    assert_eq!(b.list().await.unwrap(), vec![released.clone()]);
    b.delete(&name("a"), &released.resource_version)
        .await
        .unwrap();
    assert!(b.list().await.unwrap().is_empty());
    assert_eq!(b.holder_alive("node1").await, None);
}
