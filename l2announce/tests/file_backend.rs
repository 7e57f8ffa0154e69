//! The file lease backend across processes: several `l2announce-lab hammer` processes
//! increment one lease with optimistic concurrency and lose no update; a process's liveness
//! lock goes with it, even under SIGKILL.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use l2announce::{FileBackend, LeaseName};

const BIN: &str = env!("CARGO_BIN_EXE_l2announce-lab");

#[test]
fn four_processes_incrementing_one_lease_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(BIN)
                .args(["hammer", d, "cilium-l2announce-default-counter", "100"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut conflicts = 0u64;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        conflicts += text
            .trim()
            .strip_prefix("conflicts ")
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    let b = FileBackend::open(dir.path(), None).unwrap();
    let l = b
        .get_blocking(&LeaseName::new("cilium-l2announce-default-counter").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        l.record.transitions, 400,
        "{conflicts} conflicts were retried"
    );
    // Every write got its own version: one create, 400 updates, no version twice.
    assert_eq!(l.resource_version.0, "401");
    eprintln!("{conflicts} conflicts among 4 processes");
}

#[test]
fn a_killed_process_is_seen_gone_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let me = FileBackend::open(dir.path(), Some("observer")).unwrap();
    let mut child = Command::new(BIN)
        .args(["hold", dir.path().to_str().unwrap(), "node7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while me.holder_alive_blocking("node7") != Some(true) {
        assert!(Instant::now() < end, "the child never took its lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(me.holder_alive_blocking("node7"), Some(false));
}
