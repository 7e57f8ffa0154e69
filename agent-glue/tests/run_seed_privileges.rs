//! Least privilege of `lbspeaker run` in the seed lab: after start-up every thread of every
//! daemon holds only what the run still needs, the local API socket is root's (or a
//! configured group's), and BGP works all the same.

#![allow(clippy::unwrap_used)]

mod lab;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use frr_lab::lab_available;
use lab::*;

/// The capability masks of a process's status file (`CapInh`, `CapPrm`, `CapEff`, `CapBnd`,
/// `CapAmb`), and `NoNewPrivs`.
fn cap_lines(path: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// CAP_NET_BIND_SERVICE (10) and CAP_NET_RAW (13): `lbspeaker run` without the dataplane,
/// with L2 announcements (the default).
/// CAP_NET_BIND_SERVICE, CAP_NET_ADMIN (kernel routes), CAP_NET_RAW.
const KEPT: &str = "0000000000003400";
/// The non-root daemon's two ambient capabilities: CAP_NET_BIND_SERVICE, CAP_NET_RAW.
const AMBIENT: &str = "0000000000002400";

#[test]
fn after_start_every_thread_holds_only_what_the_run_needs_and_the_api_is_roots() {
    if !lab_available() {
        return;
    }
    let mut lab_topology = seed();
    let topology = &mut lab_topology;
    // node1 lets group 4242 use its API.
    topology.nodes.get_mut("node1").unwrap().lbspeaker =
        Some(serde_saphyr::from_str("args: [--api-socket-group, \"4242\"]").unwrap());
    let mut lab = up("fp", lab_topology);
    // BGP comes up after the drop: the seed's steady state.
    converged(&lab);
    for (node, pid) in lbspeaker_pids(&lab) {
        let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(tasks.len() > 2, "{node}: {tasks:?}");
        for tid in &tasks {
            let caps = cap_lines(&format!("/proc/{pid}/task/{tid}/status"));
            let want = [
                ("CapInh", "0000000000000000"),
                ("CapPrm", KEPT),
                ("CapEff", KEPT),
                ("CapBnd", KEPT),
                ("CapAmb", "0000000000000000"),
                ("NoNewPrivs", "1"),
            ];
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(caps, want, "{node} thread {tid}");
        }
        let log =
            std::fs::read_to_string(lab.node_dir(&node).unwrap().join("lbspeaker.log")).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("capabilities dropped"))
            .unwrap_or_else(|| panic!("{node} did not say what it kept"));
        assert!(
            line.contains("CAP_NET_BIND_SERVICE") && line.contains("CAP_NET_RAW"),
            "{line}"
        );
        if node == "node1" {
            eprintln!("{line}");
        }

        // The socket: root's only, or root's and group 4242's on node1.
        let meta = std::fs::metadata(lab.api_socket(&node)).unwrap();
        assert_eq!(meta.uid(), 0);
        if node == "node1" {
            assert_eq!(
                (meta.permissions().mode() & 0o777, meta.gid()),
                (0o660, 4242)
            );
        } else {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{node}");
        }
    }
    // Another user cannot use the API; a member of the configured group can.
    let bin = env!("CARGO_BIN_EXE_lbspeaker");
    let as_user = |node: &str, group: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", group, "--clear-groups"])
            .arg(bin)
            .args(["--api", &lab.api_socket(node).to_string_lossy(), "status"])
            .output()
            .unwrap()
    };
    // The lab's directory must be searchable for that user.
    let mut p = lab.api_socket("node2");
    while p.pop() {
        let m = std::fs::metadata(&p).unwrap().permissions().mode();
        assert!(
            m & 0o001 != 0,
            "{} is not searchable by others",
            p.display()
        );
        if p == std::path::Path::new("/run") {
            break;
        }
    }
    let refused = as_user("node2", "65534");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("ermission denied"), "{err}");
    let allowed = as_user("node1", "4242");
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert_eq!(lbspeaker_json(&lab, "node3", &["status"])["ready"], true);

    // Not root at all: user 65534 with the two capabilities as ambient ones (what systemd's
    // AmbientCapabilities= gives), a node no ClusterConfig selects (no BGP session) beside
    // node1's daemon. It keeps them, cannot touch the bounding set (no CAP_SETPCAP), says so.
    let own = lab.node_dir("node1").unwrap().join("nobody");
    std::fs::create_dir_all(own.join("leases")).unwrap();
    for d in [own.clone(), own.join("leases")] {
        nix::unistd::chown(
            &d,
            Some(nix::unistd::Uid::from_raw(65534)),
            Some(nix::unistd::Gid::from_raw(65534)),
        )
        .unwrap();
    }
    let api = own.join("api.sock").to_string_lossy().into_owned();
    let leases = own.join("leases").to_string_lossy().into_owned();
    let manifests = lab.manifest_dir().to_string_lossy().into_owned();
    let pid = lab
        .spawn(
            "node1",
            "lbspeaker-nobody",
            "setpriv",
            &[
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--inh-caps",
                "+net_bind_service,+net_raw",
                "--ambient-caps",
                "+net_bind_service,+net_raw",
                bin,
                "run",
                "--config-dir",
                &manifests,
                "--node",
                "node9",
                "--api",
                &api,
                "--l2-lease-dir",
                &leases,
            ],
        )
        .unwrap();
    wait("the non-root daemon's API", TIMEOUT, |_| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                bin,
                "--api",
                &api,
                "status",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
    });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("65534")),
        "{status}"
    );
    let caps: Vec<(String, String)> = cap_lines(&format!("/proc/{pid}/status"));
    let get = |k: &str| caps.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(
        (get("CapEff"), get("CapPrm"), get("CapAmb")),
        (
            AMBIENT.to_owned(),
            AMBIENT.to_owned(),
            "0000000000000000".to_owned()
        )
    );
    let log = std::fs::read_to_string(lab.node_dir("node1").unwrap().join("lbspeaker-nobody.log"))
        .unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("capabilities dropped"))
        .unwrap();
    assert!(line.contains("bounding_set_reduced=false"), "{line}");
    let meta = std::fs::metadata(&api).unwrap();
    assert_eq!(
        (meta.uid(), meta.permissions().mode() & 0o777),
        (65534, 0o600)
    );
    lab.down().unwrap();
}
