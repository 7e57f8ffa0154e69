//! The seed lab of the field, brought up in namespaces with FRR on the tor and gobgpd on the
//! four nodes, checked on the tor itself, and taken down without a trace.
//!
//! ```text
//!                  tor (FRR, AS 65000)
//!          eth1 192.168.10.200/24   eth2 192.168.20.200/24
//!       ┌───────── sw1 ─────────┐          │
//!    node1        node2       node3      node4        (gobgpd, AS 65001, hold 9 s)
//!    .10.100      .10.101     .10.102    192.168.20.100 (ebgp-multihop 2)
//!    172.20.0/24  172.20.1/24 172.20.2/24 172.20.3/24
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};

/// The seed's hold time (bgp.yaml: holdTimeSeconds 9).
const HOLD_TIME: Duration = Duration::from_secs(9);
/// gobgpd 3.10 waits rand(5)+5 s before its first dial (pkg/server/fsm.go, connectLoop), and
/// node4 can only come up by its own dial: the tor's connection to it comes from an address
/// node4 does not peer with.
const GOBGP_FIRST_DIAL_MAX: Duration = Duration::from_secs(9);

fn namespaces() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn seed_lab_establishes_four_sessions_and_installs_the_pod_cidrs_then_leaves_nothing() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix("seed");
    let lab = Lab::up(
        Topology::load("seed-gobgpd").unwrap(),
        LabOptions::with_prefix(&prefix),
    )
    .unwrap();

    // Sessions: measured from the start of the last speaker.
    let last_speaker = ["node1", "node2", "node3", "node4"]
        .iter()
        .filter_map(|n| lab.processes(n).first().and_then(|p| lab.started_at(p.pid)))
        .max()
        .unwrap();
    Lab::wait_for(
        "four Established sessions",
        GOBGP_FIRST_DIAL_MAX + HOLD_TIME,
        |last| {
            let states = lab.frr_neighbor_states("tor")?;
            *last = Some(format!("{states:?}"));
            Ok((states.values().filter(|s| *s == "Established").count() == 4).then_some(()))
        },
    )
    .unwrap();
    eprintln!(
        "four sessions Established {:.1} s after the last speaker started",
        last_speaker.elapsed().as_secs_f64()
    );
    let states = lab.frr_neighbor_states("tor").unwrap();
    let peers: Vec<&str> = states.keys().map(String::as_str).collect();
    assert_eq!(
        peers,
        [
            "192.168.10.100",
            "192.168.10.101",
            "192.168.10.102",
            "192.168.20.100"
        ]
    );

    // The tor's kernel: one route per PodCIDR, through the node that owns it.
    let expected: BTreeMap<&str, IpAddr> = [
        ("172.20.0.0/24", "192.168.10.100"),
        ("172.20.1.0/24", "192.168.10.101"),
        ("172.20.2.0/24", "192.168.10.102"),
        ("172.20.3.0/24", "192.168.20.100"),
    ]
    .into_iter()
    .map(|(p, nh)| (p, nh.parse().unwrap()))
    .collect();
    let routes = Lab::wait_for(
        "the PodCIDRs in the tor's kernel",
        Duration::from_secs(10),
        |last| {
            let routes = lab.kernel_routes("tor", false, Some("bgp"))?;
            *last = Some(format!("{routes:?}"));
            Ok((routes.len() == 4).then_some(routes))
        },
    )
    .unwrap();
    for r in &routes {
        assert_eq!(r.gateways, vec![expected[r.dst.as_str()]], "{r:?}");
    }
    // FRR sees them with the nodes' AS path.
    let table = lab.vtysh_json("tor", "show ip bgp json").unwrap();
    for prefix in expected.keys() {
        let paths = &table["routes"][*prefix];
        assert_eq!(paths[0]["path"], "65001", "{prefix}: {paths}");
    }

    // Down: no namespace, process, directory or FRR scratch directory is left.
    let pids: Vec<(String, u32)> = lab
        .state()
        .processes
        .iter()
        .map(|p| (p.name.clone(), p.pid))
        .collect();
    assert_eq!(pids.len(), 6, "zebra, bgpd and four gobgpd: {pids:?}");
    let dir = lab.state().dir.clone();
    let started = Instant::now();
    lab.down().unwrap();
    eprintln!("down in {:.2} s", started.elapsed().as_secs_f64());
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    for (name, pid) in &pids {
        assert!(!pid_alive(*pid), "{name} pid {pid} still runs");
        assert!(!std::path::Path::new(&format!("/var/tmp/frr/{name}.{pid}")).exists());
    }
    assert!(!dir.exists(), "{} left", dir.display());
}

#[test]
fn a_panicking_test_still_removes_its_lab() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix("pan");
    let yaml = "name: pair\nnodes:\n  r1:\n    kind: frr\n    interfaces: {eth1: [10.0.0.1/30]}\n    bgp: {asn: 65000, router-id: 10.0.0.1, neighbors: [{address: 10.0.0.2, asn: 65001}]}\n  h1:\n    interfaces: {eth1: [10.0.0.2/30]}\nlinks:\n  - endpoints: [r1:eth1, h1:eth1]\n";
    let topology = Topology::from_yaml(yaml, "pair", |_| unreachable!()).unwrap();
    let p = prefix.clone();
    let pids = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::up(topology, LabOptions::with_prefix(&p)).unwrap();
        pids.lock()
            .unwrap()
            .extend(lab.state().processes.iter().map(|r| r.pid));
        assert!(namespaces().contains(&format!("{p}-r1")));
        let out = lab
            .exec_ok("h1", "ping", &["-c", "1", "-W", "2", "10.0.0.1"])
            .unwrap();
        assert!(out.contains("1 received"), "{out}");
        panic!("the test fails while the lab is up");
    }));
    assert!(result.is_err());
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let pids = pids.into_inner().unwrap();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| !pid_alive(*p)), "{pids:?}");
}

#[test]
fn a_second_lab_with_the_same_prefix_is_refused_and_the_first_survives() {
    if !lab_available() {
        return;
    }
    let prefix = unique_prefix("dup");
    let yaml = "name: two\nnodes:\n  a: {interfaces: {eth1: [10.9.0.1/30]}}\n  b: {interfaces: {eth1: [10.9.0.2/30]}}\nlinks:\n  - endpoints: [a:eth1, b:eth1]\n";
    let topology = Topology::from_yaml(yaml, "two", |_| unreachable!()).unwrap();
    let first = Lab::up(topology.clone(), LabOptions::with_prefix(&prefix)).unwrap();
    let err = Lab::up(topology, LabOptions::with_prefix(&prefix)).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let out = first
        .exec_ok("a", "ping", &["-c", "1", "-W", "2", "10.9.0.2"])
        .unwrap();
    assert!(out.contains("1 received"), "{out}");
    first.down().unwrap();
}
