//! Kernel FIB installation in the field's seed lab, with no static route toward the PodCIDRs:
//! each node installs the other nodes' PodCIDRs learned from the tor, so pods (a namespace
//! behind each node, addressed from its PodCIDR) reach each other across nodes. On the shared
//! segment FRR passes the other node itself as next hop (RFC 4271 §5.1.3 third-party next
//! hop: node1 sends to node2 directly); everything to and from node4 goes through the tor. Withdrawal and a session going down remove routes, a restart after SIGKILL adopts
//! them without duplicates, a route of the operator's is never touched, SIGTERM removes all
//! of ours and nothing else.
//!
//! ```text
//!                   tor (FRR, AS 65000, `neighbor CILIUM as-override`)
//!           eth1 192.168.10.200/24             eth2 192.168.20.200/24
//!        ┌──────────── sw1 ────────────┐              │
//!     node1          node2          node3           node4     bgp-harness, AS 65001,
//!     .10.100        .10.101        .10.102         .20.100   FIB on: 172.20.0.0/16 le 24
//!       │ pod          │              │               │       and 0.0.0.0/0
//!     pod1           pod2           pod3            pod4
//!     172.20.0.10    172.20.1.10    172.20.2.10     172.20.3.10
//! ```
//!
//! Every node is in AS 65001, as in the field: the tor's `as-override` (a common fabric
//! setting for that design) replaces 65001 in the paths it sends, or each node would drop
//! the others' PodCIDRs as looping. node4's next hop (192.168.10.200, the address its
//! multihop session goes to) is not on its link: it is resolved through node4's static route
//! to 192.168.10.0/24 and installed via 192.168.20.200.

#![allow(clippy::unwrap_used)]

mod common;
mod fib_bfd_common;

use std::time::Duration;

use bgp::fib::FibConfig;
use common::*;
use fib_bfd_common::*;
use frr_lab::{Lab, LabOptions, lab_available, unique_prefix};
use serde_json::json;
use tests::harness::{Harness, HarnessConfig};

const TOR: &str = "\
frr defaults traditional
hostname tor
!
router bgp 65000
 bgp router-id 192.168.10.200
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp bestpath as-path multipath-relax
 neighbor CILIUM peer-group
 neighbor CILIUM remote-as external
 neighbor CILIUM timers connect 2
 neighbor 192.168.10.100 peer-group CILIUM
 neighbor 192.168.10.101 peer-group CILIUM
 neighbor 192.168.10.102 peer-group CILIUM
 neighbor 192.168.20.100 peer-group CILIUM
 !
 address-family ipv4 unicast
  neighbor CILIUM as-override
  maximum-paths 4
 exit-address-family
exit
";

const TOPOLOGY: &str = "
name: fibseed
nodes:
  tor:
    kind: frr
    config: tor.conf
    sysctls: { net.ipv4.ip_forward: '1' }
    interfaces: { eth1: [192.168.10.200/24], eth2: [192.168.20.200/24] }
  sw1: { kind: bridge }
  node1:
    sysctls: { net.ipv4.ip_forward: '1' }
    interfaces: { eth1: [192.168.10.100/24], pod: [172.20.0.1/24] }
    routes: ['192.168.20.0/24 via 192.168.10.200']
  node2:
    sysctls: { net.ipv4.ip_forward: '1' }
    interfaces: { eth1: [192.168.10.101/24], pod: [172.20.1.1/24] }
    routes: ['192.168.20.0/24 via 192.168.10.200']
  node3:
    sysctls: { net.ipv4.ip_forward: '1' }
    interfaces: { eth1: [192.168.10.102/24], pod: [172.20.2.1/24] }
    routes: ['192.168.20.0/24 via 192.168.10.200']
  node4:
    sysctls: { net.ipv4.ip_forward: '1' }
    interfaces: { eth1: [192.168.20.100/24], pod: [172.20.3.1/24] }
    routes: ['192.168.10.0/24 via 192.168.20.200']
  pod1: { interfaces: { eth0: [172.20.0.10/24] }, routes: ['default via 172.20.0.1'] }
  pod2: { interfaces: { eth0: [172.20.1.10/24] }, routes: ['default via 172.20.1.1'] }
  pod3: { interfaces: { eth0: [172.20.2.10/24] }, routes: ['default via 172.20.2.1'] }
  pod4: { interfaces: { eth0: [172.20.3.10/24] }, routes: ['default via 172.20.3.1'] }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [node2:eth1, sw1:node2]
  - endpoints: [node3:eth1, sw1:node3]
  - endpoints: [tor:eth2, node4:eth1]
  - endpoints: [node1:pod, pod1:eth0]
  - endpoints: [node2:pod, pod2:eth0]
  - endpoints: [node3:pod, pod3:eth0]
  - endpoints: [node4:pod, pod4:eth0]
";

const NODES: [(&str, &str, &str, &str); 4] = [
    ("node1", "192.168.10.100", "172.20.0.0/24", "pod1"),
    ("node2", "192.168.10.101", "172.20.1.0/24", "pod2"),
    ("node3", "192.168.10.102", "172.20.2.0/24", "pod3"),
    ("node4", "192.168.20.100", "172.20.3.0/24", "pod4"),
];

fn pod_ip(i: usize) -> String {
    format!("172.20.{i}.10")
}

fn node_config(id: &str, pod_cidr: &str) -> HarnessConfig {
    let mut p = peer("tor", "192.168.10.200", 65000);
    p.ebgp_multihop = Some(2);
    let mut cfg = harness_config(65001, id, vec![p], vec![route(pod_cidr)]);
    cfg.fib = Some(FibConfig {
        accept: vec![
            "172.20.0.0/16 le 24".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
        ],
        startup_hold: Duration::from_secs(20),
        ..FibConfig::default()
    });
    cfg
}

/// The other nodes' PodCIDRs, as `ip -j route` prints them.
fn others(me: usize) -> Vec<String> {
    NODES
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, n)| n.2.to_string())
        .collect()
}

fn wait_routes(lab: &Lab, node: &str, want: &[String], what: &str) {
    wait(what, Duration::from_secs(20), |last| {
        let got = our_dsts(lab, node);
        *last = format!("{node}: {got:?}");
        (got == want).then_some(())
    });
}

#[test]
fn pods_reach_each_other_through_the_tor_on_routes_the_nodes_installed() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::up(
        topology(TOPOLOGY, TOR),
        LabOptions::with_prefix(unique_prefix("fs")),
    )
    .unwrap();
    // The operator's own routes: one for an unrelated prefix on node1, one on node3 at our
    // metric for a PodCIDR we would install (a conflict: left alone, and reported).
    lab.exec_ok(
        "node1",
        "ip",
        &["route", "add", "172.31.0.0/16", "via", "192.168.10.200"],
    )
    .unwrap();
    lab.exec_ok(
        "node3",
        "ip",
        &[
            "route",
            "add",
            "172.20.1.0/24",
            "via",
            "192.168.10.200",
            "metric",
            "20",
            "proto",
            "static",
        ],
    )
    .unwrap();
    for (n, _, _, _) in NODES {
        assert!(ours(&lab, n).is_empty(), "no route of ours yet");
    }
    let mut hs: Vec<Harness> = NODES
        .iter()
        .map(|(node, id, cidr, _)| start(&mut lab, node, node_config(id, cidr)))
        .collect();
    for h in &hs {
        h.wait_established("tor", Duration::from_secs(20)).unwrap();
    }
    let t0 = hs.iter().map(|h| h.started_at()).max().unwrap();
    for (i, (node, _, _, _)) in NODES.iter().enumerate() {
        let want: Vec<String> = others(i)
            .into_iter()
            .filter(|d| !(*node == "node3" && d == "172.20.1.0/24"))
            .collect();
        wait_routes(&lab, node, &want, "the other PodCIDRs in the kernel");
    }
    eprintln!(
        "every node has the other PodCIDRs {:.2} s after the last speaker started",
        t0.elapsed().as_secs_f64()
    );
    eprintln!(
        "node1: {:?}\nnode4: {:?}",
        ours(&lab, "node1"),
        ours(&lab, "node4")
    );
    // node4's next hop 192.168.10.200 is not on its link: installed via the static route's
    // gateway.
    for (dst, gws) in ours(&lab, "node4") {
        assert_eq!(gws, ips(&["192.168.20.200"]), "{dst}");
    }
    let st3 = hs[2].fib().unwrap();
    assert_eq!(st3["conflicts"], json!(["172.20.1.0/24"]), "{st3}");
    assert_eq!(
        lab.kernel_routes("node3", false, Some("static")).unwrap()[0].gateways,
        ips(&["192.168.10.200"]),
        "the operator's route on node3 is untouched"
    );
    // Pods across nodes, through the tor (and on node3 through the operator's route).
    for (a, b) in [(1, 2), (1, 4), (4, 2), (3, 2), (2, 3), (4, 1)] {
        assert!(
            ping_within(
                &lab,
                &format!("pod{a}"),
                &pod_ip(b - 1),
                Duration::from_secs(5)
            ),
            "pod{a} cannot reach pod{b}"
        );
    }

    // Withdrawal: node2 withdraws its PodCIDR; it leaves every other node's kernel.
    hs[1]
        .request(json!({"cmd": "withdraw", "prefixes": ["172.20.1.0/24"]}))
        .unwrap();
    for node in ["node1", "node4"] {
        wait("172.20.1.0/24 gone", Duration::from_secs(10), |last| {
            let got = our_dsts(&lab, node);
            *last = format!("{node}: {got:?}");
            (!got.contains(&"172.20.1.0/24".to_string())).then_some(())
        });
    }
    assert!(!ping(&lab, "pod1", &pod_ip(1)), "no route to pod2 any more");
    hs[1]
        .request(json!({"cmd": "announce", "routes": [{"prefix": "172.20.1.0/24"}]}))
        .unwrap();
    wait_routes(&lab, "node1", &others(0), "172.20.1.0/24 back on node1");
    assert!(ping_within(
        &lab,
        "pod1",
        &pod_ip(1),
        Duration::from_secs(5)
    ));

    // The session going down takes node1's routes (no graceful restart on our side).
    frr_configure(
        &lab,
        "tor",
        &["router bgp 65000", "neighbor 192.168.10.100 shutdown"],
    );
    wait_routes(&lab, "node1", &[], "node1's routes gone with its session");
    frr_configure(
        &lab,
        "tor",
        &["router bgp 65000", "no neighbor 192.168.10.100 shutdown"],
    );
    wait_routes(
        &lab,
        "node1",
        &others(0),
        "node1's routes back with its session",
    );

    // SIGKILL: the routes stay in the kernel (nobody removed them); a leftover of ours is
    // added by hand. The restarted process adopts the three, removes the leftover once the
    // tor's End-of-RIB is in, and never doubles anything.
    hs[0].kill(&mut lab).unwrap();
    assert_eq!(our_dsts(&lab, "node1"), others(0));
    lab.exec_ok(
        "node1",
        "ip",
        &[
            "route",
            "add",
            "172.20.99.0/24",
            "via",
            "192.168.10.200",
            "proto",
            "212",
            "metric",
            "20",
        ],
    )
    .unwrap();
    hs[0].restart(&mut lab, false).unwrap();
    hs[0]
        .wait_established("tor", Duration::from_secs(20))
        .unwrap();
    let st = wait(
        "the restarted installer to converge",
        Duration::from_secs(20),
        |last| {
            let st = hs[0].fib().ok()?;
            *last = st.to_string();
            (st["converged"] == true && our_dsts(&lab, "node1") == others(0)).then_some(st)
        },
    );
    assert_eq!(st["found_at_start"], 4, "{st}");
    assert_eq!(st["adopted"], 3, "kept as they were: {st}");
    assert_eq!(st["added"], 0, "nothing added twice: {st}");
    let dsts = our_dsts(&lab, "node1");
    let mut unique = dsts.clone();
    unique.dedup();
    assert_eq!(dsts, unique, "no duplicates");
    assert!(ping_within(
        &lab,
        "pod1",
        &pod_ip(3),
        Duration::from_secs(5)
    ));

    // SIGTERM: every route of ours goes; the operator's stays.
    let pid = hs[0].pid;
    lab.stop_process(pid, Duration::from_secs(5)).unwrap();
    assert!(ours(&lab, "node1").is_empty(), "{:?}", ours(&lab, "node1"));
    let boot = lab.kernel_routes("node1", false, Some("boot")).unwrap();
    assert!(
        boot.iter().any(|r| r.dst == "172.31.0.0/16"),
        "the operator's route is still there: {boot:?}"
    );
}
