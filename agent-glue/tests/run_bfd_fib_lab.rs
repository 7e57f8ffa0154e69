//! BFD and kernel FIB installation through `lbspeaker run`, in the field's seed lab
//! (frr-lab/topologies/seed) with this build's lbspeaker on every node, configured only from
//! the manifests: the ClusterConfig's `lbspeaker.io/install-routes` annotations and a
//! BFDProfile named by the peer config's `lbspeaker.io/bfd-profile`.
//!
//! ```text
//!                 tor (FRR 8.4, AS 65000, `neighbor CILIUM as-override` [+ bfdd, `neighbor CILIUM bfd`])
//!          eth1 192.168.10.200/24              eth2 192.168.20.200/24
//!       ┌──────────── sw1 ────────────┐              │
//!    node1          node2          node3           node4      lbspeaker run, AS 65001
//!    .10.100        .10.101        .10.102         .20.100    (ebgpMultihop 2, GR 15 s, hold 9 s)
//!      │ pod          │              │               │
//!    pod1           pod2           pod3            pod4       a namespace behind each node's
//!    172.20.0.10    172.20.1.10    172.20.2.10     172.20.3.10  PodCIDR, default via the node
//! ```
//!
//! No route toward the PodCIDRs is configured anywhere (the engineer's
//! `ip route add 172.20.0.0/16 via 192.168.10.200`): the nodes keep only the seed's routes
//! toward the other segment, which node4's multihop session needs. Every node is in AS 65001
//! as in the field, so the tor needs `as-override` (a common fabric setting for that design)
//! or each node would drop the others' PodCIDRs as looping.

#![allow(clippy::unwrap_used)]

#[path = "../../tests/tests/fib_bfd_common/mod.rs"]
mod fib_bfd_common;
mod lab;

use std::time::{Duration, Instant};

use fib_bfd_common::{
    frr_bfd_peers, frr_bfd_status, frr_configure, frr_last_reset, our_dsts, ours, ping_within,
    switch_port,
};
use frr_lab::{Lab, Topology, daemons, lab_available};
use lab::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const INSTALL: &str = "  annotations:\n    lbspeaker.io/install-routes: \"true\"\n    lbspeaker.io/install-routes-prefixes: \"172.20.0.0/16 le 24, 0.0.0.0/0\"\n";

const PROFILE: &str = "apiVersion: lbspeaker.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast}\nspec:\n  transmitInterval: 300\n  receiveInterval: 300\n  detectMultiplier: 3\n";

/// The seed with a pod namespace behind each node, the tor's `as-override`, and the
/// ClusterConfig asking for FIB installation; with `bfd`, bfdd on the tor (`neighbor CILIUM
/// bfd`) and the peer config naming the BFDProfile `fast`.
fn seed(bfd: bool) -> Topology {
    let mut t = Topology::load("seed").unwrap();
    // The seed's tor announces 10.10.1.0/24 without a route to it, which FRR's import check
    // keeps from being sent; without the check the nodes receive it (and the filter must keep
    // it out of their kernels).
    let mut tor = t.files["frr-tor.conf"]
        .replace(
            " address-family ipv4 unicast\n",
            " address-family ipv4 unicast\n  neighbor CILIUM as-override\n",
        )
        .replace(
            " no bgp ebgp-requires-policy\n",
            " no bgp ebgp-requires-policy\n no bgp network import-check\n",
        )
        // The restart time the tor asks the nodes to keep its routes for (FRR's default, 120
        // s, is long for a test).
        .replace(
            " bgp graceful-restart\n",
            " bgp graceful-restart\n bgp graceful-restart restart-time 5\n",
        );
    // Sessions that die here come back within seconds of their link, not after Cilium's
    // default connect retry of 120 s.
    let mut bgp = t.files["bgp.yaml"]
        .replace(
            "  name: cilium-bgp\n",
            &format!("  name: cilium-bgp\n{INSTALL}"),
        )
        .replace(
            "    keepAliveTimeSeconds: 3\n",
            "    keepAliveTimeSeconds: 3\n    connectRetryTimeSeconds: 2\n",
        );
    if bfd {
        tor = tor.replace(
            " neighbor CILIUM remote-as external\n",
            " neighbor CILIUM remote-as external\n neighbor CILIUM bfd\n",
        );
        bgp = bgp.replace(
            "  name: cilium-peer\n",
            "  name: cilium-peer\n  annotations:\n    lbspeaker.io/bfd-profile: fast\n",
        );
        t.files.insert("bfd.yaml".into(), PROFILE.into());
        t.manifests.push("bfd.yaml".into());
        t.nodes.get_mut("tor").unwrap().bfdd = true;
    }
    assert!(tor.contains("restart-time 5") && bgp.contains("connectRetryTimeSeconds"));
    t.files.insert("frr-tor.conf".into(), tor);
    t.files.insert("bgp.yaml".into(), bgp);
    for (i, (node, _)) in NODES.iter().enumerate() {
        let n = t.nodes.get_mut(*node).unwrap();
        n.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        n.interfaces.insert(
            "pod".into(),
            vec![format!("172.20.{i}.1/24").parse().unwrap()],
        );
        let pod = frr_lab::Node {
            interfaces: [(
                "eth0".to_string(),
                vec![format!("172.20.{i}.10/24").parse().unwrap()],
            )]
            .into(),
            routes: vec![format!("default via 172.20.{i}.1").parse().unwrap()],
            ..frr_lab::Node::default()
        };
        t.nodes.insert(format!("pod{}", i + 1), pod);
        t.links.push(
            serde_saphyr::from_str(&format!("endpoints: [{node}:pod, pod{}:eth0]", i + 1)).unwrap(),
        );
    }
    t
}

fn pod_ip(i: usize) -> String {
    format!("172.20.{i}.10")
}

/// The other nodes' PodCIDRs.
fn others(me: usize) -> Vec<String> {
    (0..4)
        .filter(|i| *i != me)
        .map(|i| POD_CIDRS[i].to_owned())
        .collect()
}

fn wait_ours(lab: &Lab, node: &str, want: &[String], what: &str) -> Duration {
    let start = Instant::now();
    wait(what, TIMEOUT, |last| {
        let got = our_dsts(lab, node);
        *last = format!("{node}: {got:?}");
        (got == want).then_some(())
    });
    start.elapsed()
}

#[test]
fn with_install_routes_the_nodes_install_each_others_pod_cidrs_and_pods_talk_through_the_tor() {
    if !lab_available() {
        return;
    }
    let mut lab = up("rf", seed(false));
    // An operator's route of its own on node1: never touched.
    lab.exec_ok(
        "node1",
        "ip",
        &["route", "add", "172.31.0.0/16", "via", "192.168.10.200"],
    )
    .unwrap();
    let last_start = lbspeaker_pids(&lab)
        .values()
        .filter_map(|p| lab.started_at(*p))
        .max()
        .unwrap();
    all_established(&lab, "tor", 4);
    for (i, (node, _)) in NODES.iter().enumerate() {
        wait_ours(&lab, node, &others(i), "the other PodCIDRs in the kernel");
    }
    eprintln!(
        "every node has the other three PodCIDRs {:.2} s after the last lbspeaker started",
        last_start.elapsed().as_secs_f64()
    );
    // node1..3 share a segment: FRR passes the other node as next hop (third-party next
    // hop); node4's next hop 192.168.10.200 is resolved through its static route and installed
    // via 192.168.20.200; node4's PodCIDR reaches node1 via the tor.
    let n1: Vec<(String, Vec<std::net::IpAddr>)> = ours(&lab, "node1");
    eprintln!("node1: {n1:?}\nnode4: {:?}", ours(&lab, "node4"));
    assert_eq!(
        n1,
        [
            ("172.20.1.0/24".to_string(), ips(&["192.168.10.101"])),
            ("172.20.2.0/24".to_string(), ips(&["192.168.10.102"])),
            ("172.20.3.0/24".to_string(), ips(&["192.168.10.200"])),
        ]
    );
    for (dst, gws) in ours(&lab, "node4") {
        assert_eq!(gws, ips(&["192.168.20.200"]), "{dst}");
    }
    // The filter: the tor's 10.10.1.0/24 is received, not installed.
    let rib = lbspeaker_json(
        &lab,
        "node1",
        &["bgp", "routes", "available", "ipv4", "unicast"],
    );
    assert!(
        rib.as_array()
            .unwrap()
            .iter()
            .any(|r| r["prefix"] == "10.10.1.0/24"),
        "{rib}"
    );
    for (node, _) in NODES {
        assert!(!our_dsts(&lab, node).contains(&"10.10.1.0/24".to_string()));
    }
    // What the daemon says.
    let fib = lbspeaker_json(&lab, "node1", &["fib", "routes"]);
    let f = &fib[0];
    assert_eq!(
        (
            f["instance"].as_str(),
            f["table"].as_u64(),
            f["protocol"].as_u64(),
            f["converged"].as_bool()
        ),
        (Some("instance-65001"), Some(254), Some(212), Some(true)),
        "{f}"
    );
    assert_eq!(
        f["accept"],
        serde_json::json!(["172.20.0.0/16 le 24", "0.0.0.0/0"])
    );
    assert_eq!(f["routes"].as_array().unwrap().len(), 3, "{f}");
    assert_eq!(f["routes"][0]["nextHops"][0], "via 192.168.10.101 dev eth1");
    let table = lab
        .exec_ok("node1", "lbspeaker", &["fib", "routes"])
        .unwrap();
    eprintln!("$ lbspeaker fib routes (node1)\n{table}");
    let status = lbspeaker_json(&lab, "node1", &["status"]);
    assert!(
        status["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "fib (instance instance-65001: 3 routes in table 254)"),
        "{status}"
    );
    assert_eq!(status["problems"], serde_json::json!([]), "{status}");
    let metrics = metrics(&lab, "node1");
    assert!(
        metrics.contains(
            "lbspeaker_fib_routes{node=\"node1\",instance=\"instance-65001\",table=\"254\"} 3"
        ),
        "{metrics}"
    );

    // Pods across nodes, through the tor and the routes the nodes installed.
    for (a, b) in [(1, 2), (1, 4), (4, 2), (3, 1), (2, 3), (4, 1)] {
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

    // A withdrawal: node2's Node loses its PodCIDR, node2 withdraws it, and it leaves every
    // other node's kernel; back when the PodCIDR is back.
    let nodes_yaml = read_manifest(&lab, "cluster/nodes.yaml");
    let edited = nodes_yaml.replace(
        "  podCIDR: 172.20.1.0/24\n  podCIDRs: [172.20.1.0/24]\n",
        "  podCIDRs: []\n",
    );
    assert_ne!(edited, nodes_yaml);
    let t = Instant::now();
    write_manifest(&lab, "cluster/nodes.yaml", &edited);
    for (node, me) in [("node1", 0), ("node3", 2), ("node4", 3)] {
        let want: Vec<String> = others(me)
            .into_iter()
            .filter(|d| d != "172.20.1.0/24")
            .collect();
        wait_ours(&lab, node, &want, "172.20.1.0/24 withdrawn");
    }
    eprintln!(
        "withdrawal: gone from three kernels {:.2} s after the manifest edit",
        t.elapsed().as_secs_f64()
    );
    write_manifest(&lab, "cluster/nodes.yaml", &nodes_yaml);
    wait_ours(&lab, "node1", &others(0), "172.20.1.0/24 back on node1");

    // A session the tor shuts (Cease with Hard Reset, RFC 8538): node3 drops its routes at
    // once, graceful restart notwithstanding.
    let t = Instant::now();
    frr_configure(
        &lab,
        "tor",
        &["router bgp 65000", "neighbor 192.168.10.102 shutdown"],
    );
    wait_ours(&lab, "node3", &[], "node3's routes gone with its session");
    let gone = t.elapsed();
    let why = lbspeaker_json(&lab, "node3", &["bgp", "peers"])[0]["lastError"].clone();
    eprintln!(
        "session shut by the tor ({why}): node3's routes gone after {:.2} s",
        gone.as_secs_f64()
    );
    frr_configure(
        &lab,
        "tor",
        &["router bgp 65000", "no neighbor 192.168.10.102 shutdown"],
    );
    wait_ours(
        &lab,
        "node3",
        &others(2),
        "node3's routes back with its session",
    );

    // A session that dies (node2's switch port cut: the hold timer, 9 s, expires): graceful
    // restart keeps the tor's routes stale for the restart time it asked for (5 s), then they
    // go; back with the link.
    let t = Instant::now();
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node2", "down"])
        .unwrap();
    wait("node2's session down", TIMEOUT, |_| {
        let p = lbspeaker_json(&lab, "node2", &["bgp", "peers"]);
        (p[0]["sessionState"] != "established").then_some(())
    });
    let down = t.elapsed();
    assert_eq!(
        our_dsts(&lab, "node2"),
        others(1),
        "kept (stale) when the session went down"
    );
    wait_ours(&lab, "node2", &[], "node2's stale routes swept");
    let swept = t.elapsed();
    eprintln!(
        "node2's link cut: session down (hold timer) after {:.2} s, its routes removed {:.2} s after that (restart time 5 s)",
        down.as_secs_f64(),
        (swept - down).as_secs_f64()
    );
    assert!(
        swept - down >= Duration::from_secs(4),
        "kept for the restart time: {:?}",
        swept - down
    );
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node2", "up"])
        .unwrap();
    wait_ours(
        &lab,
        "node2",
        &others(1),
        "node2's routes back with its link",
    );

    // SIGTERM with graceful restart: the routes stay (forwarding goes on, as the tor keeps
    // ours); the restarted daemon adopts them as they are, adds nothing twice.
    let pid = lbspeaker_pids(&lab)["node1"];
    lab.signal(pid, Signal::SIGTERM).unwrap();
    wait("node1's lbspeaker to exit", TIMEOUT, |_| {
        (!lab.is_running(pid)).then_some(())
    });
    assert_eq!(
        our_dsts(&lab, "node1"),
        others(0),
        "kept over a graceful restart"
    );
    assert!(ping_within(
        &lab,
        "pod1",
        &pod_ip(3),
        Duration::from_secs(5)
    ));
    daemons::restart(&mut lab, "node1").unwrap();
    let f = wait("node1's installer converged", TIMEOUT, |last| {
        let fib = lbspeaker_json(&lab, "node1", &["fib", "routes"]);
        *last = fib.to_string();
        let f = fib.get(0)?.clone();
        // Converged (End-of-RIB from the tor) and the tor's routes read.
        (f["converged"] == true && f["wanted"] == 3).then_some(f)
    });
    assert_eq!(
        (
            f["foundAtStart"].as_u64(),
            f["adopted"].as_u64(),
            f["added"].as_u64()
        ),
        (Some(3), Some(3), Some(0)),
        "{f}"
    );
    let dsts = our_dsts(&lab, "node1");
    assert_eq!(dsts, others(0), "no duplicates");

    // Turned off: every route of ours goes from every node; the operator's stays.
    let bgp = read_manifest(&lab, "bgp.yaml");
    write_manifest(&lab, "bgp.yaml", &bgp.replace(INSTALL, ""));
    for (node, _) in NODES {
        wait_ours(&lab, node, &[], "routes removed when install-routes goes");
    }
    assert!(
        lab.kernel_routes("node1", false, None)
            .unwrap()
            .iter()
            .any(|r| r.dst == "172.31.0.0/16"),
        "the operator's route is untouched"
    );
    assert!(lbspeaker_json(&lab, "node1", &["fib", "routes"]) == Value::Array(vec![]));
    lab.down().unwrap();
}

/// Polls the tor's kernel (every few milliseconds) until `dst` is gone; the time it took.
fn until_gone_from_tor(lab: &Lab, dst: &str, since: Instant) -> Duration {
    loop {
        if kernel_gateways(lab, "tor", dst).is_none() {
            return since.elapsed();
        }
        assert!(since.elapsed() < TIMEOUT, "{dst} still in the tor's kernel");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Our BFD session of a node toward the tor, as `lbspeaker bfd peers -o json` shows it.
fn our_bfd(lab: &Lab, node: &str) -> Value {
    lbspeaker_json(lab, node, &["bfd", "peers"])["sessions"]
        .get(0)
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_bfd_up(lab: &Lab, node: &str, address: &str) {
    wait(
        &format!("BFD Up between {node} and the tor"),
        TIMEOUT,
        |last| {
            let (ours, frr) = (our_bfd(lab, node), frr_bfd_status(lab, "tor", address));
            *last = format!("ours {ours}, FRR {frr}");
            (ours["state"] == "up" && frr == "up").then_some(())
        },
    );
}

#[test]
fn bfd_through_the_daemon_takes_a_cut_nodes_routes_off_the_tor_long_before_the_hold_timer() {
    if !lab_available() {
        return;
    }
    let mut lab = up("rb", seed(true));
    all_established(&lab, "tor", 4);
    for (node, addr) in &NODES[..3] {
        wait_bfd_up(&lab, node, addr);
    }
    // FRR's view: single hop, 300 ms x 3 from us, our discriminator.
    let frr = &frr_bfd_peers(&lab, "tor")["192.168.10.100"];
    let ours = our_bfd(&lab, "node1");
    eprintln!("FRR: {frr}\nours: {ours}");
    assert_eq!(frr["multihop"], false);
    assert_eq!(frr["remote-transmit-interval"], 300);
    assert_eq!(frr["remote-receive-interval"], 300);
    assert_eq!(frr["remote-detect-multiplier"], 3);
    assert_eq!(
        ours["peers"],
        serde_json::json!(["instance-65001/tor-switch"])
    );
    assert_eq!(ours["detectionTimeMs"], 900);
    let table = lab
        .exec_ok("node1", "lbspeaker", &["bfd", "peers"])
        .unwrap();
    eprintln!("$ lbspeaker bfd peers (node1)\n{table}");
    // node4 peers through the tor (multihop): no BFD, said so, BGP unaffected.
    let st4 = lbspeaker_json(&lab, "node4", &["status"]);
    assert!(
        st4["problems"]
            .to_string()
            .contains("multihop BFD (RFC 5883) is not implemented"),
        "{st4}"
    );
    assert_eq!(
        lbspeaker_json(&lab, "node4", &["bfd", "peers"])["running"],
        false
    );

    wait_kernel(&lab, "172.20.0.0/24", &["192.168.10.100"]);
    for (i, (node, _)) in NODES.iter().enumerate() {
        wait_ours(&lab, node, &others(i), "FIB installation on as well");
    }
    let counts = all_established(&lab, "tor", 4);

    // Cut node1's switch port: the tor's BFD (300 ms x 3) takes its BGP session down and the
    // route out of its kernel; ours does the same on node1, whose routes from the tor go
    // with the session (Cease / BFD Down in a Hard Reset: nothing kept stale).
    let cut = Instant::now();
    switch_port(&lab, "node1", false);
    let tor_gone = until_gone_from_tor(&lab, "172.20.0.0/24", cut);
    let node_gone =
        wait_ours(&lab, "node1", &[], "node1's routes gone with its session") + tor_gone;
    eprintln!(
        "BFD 300 ms x 3: node1's link cut, its PodCIDR out of the tor's kernel after {:.0} ms; node1's installed routes gone after {:.0} ms (polled)",
        tor_gone.as_secs_f64() * 1000.0,
        node_gone.as_secs_f64() * 1000.0
    );
    // The hold timer (9 s, keepalives every 3 s) cannot have fired before 6 s.
    assert!(tor_gone < Duration::from_secs(6), "{tor_gone:?}: not BFD");
    let why = frr_last_reset(&lab, "192.168.10.100");
    assert!(why.to_lowercase().contains("bfd"), "FRR's reset: {why}");
    // Ours: down, reset by BFD (Cease / BFD Down inside a Hard Reset, RFC 8538).
    let p = lbspeaker_json(&lab, "node1", &["bgp", "peers"]);
    assert_ne!(p[0]["sessionState"], "established");
    eprintln!("node1's BGP: {}", p[0]["lastError"]);
    let b = our_bfd(&lab, "node1");
    assert_eq!(b["localDiag"], "control-detection-time-expired", "{b}");
    assert_eq!(
        (b["bgpResets"].as_u64(), b["flaps"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );
    for (addr, c) in counts.iter().filter(|(a, _)| *a != "192.168.10.100") {
        assert_eq!(
            sessions(&lab, "tor")[addr],
            ("Established".to_string(), *c),
            "{addr}"
        );
    }

    // The link back: BGP, BFD and every route back.
    switch_port(&lab, "node1", true);
    wait_bfd_up(&lab, "node1", "192.168.10.100");
    wait_kernel(&lab, "172.20.0.0/24", &["192.168.10.100"]);
    wait_ours(&lab, "node1", &others(0), "node1's routes back");
    let counts = all_established(&lab, "tor", 4);

    // The profile goes to 100 ms x 3, and the tor's too (each side's detection time is
    // bounded by its own receive interval): applied in place (Poll Sequences), no BGP
    // session reset, no BFD flap.
    write_manifest(&lab, "bfd.yaml", &PROFILE.replace(": 300", ": 100"));
    frr_configure(
        &lab,
        "tor",
        &[
            "bfd",
            "profile fast",
            "transmit-interval 100",
            "receive-interval 100",
            "exit",
            "exit",
            "router bgp 65000",
            "neighbor CILIUM bfd profile fast",
        ],
    );
    for (_, addr) in &NODES[..3] {
        wait(&format!("100 ms both ways with {addr}"), TIMEOUT, |last| {
            let p = frr_bfd_peers(&lab, "tor")[*addr].clone();
            *last = p.to_string();
            (p["remote-transmit-interval"] == 100
                && p["receive-interval"] == 100
                && p["status"] == "up")
                .then_some(())
        });
    }
    assert_eq!(
        all_established(&lab, "tor", 4),
        counts,
        "no BGP session reset"
    );
    for (node, flaps) in [("node1", 1), ("node2", 0), ("node3", 0)] {
        let b = our_bfd(&lab, node);
        assert_eq!(b["flaps"].as_u64(), Some(flaps), "{node}: {b}");
        assert_eq!(b["transmitIntervalMs"], 100);
    }

    // Cut node2's port at 100 ms x 3.
    let cut = Instant::now();
    switch_port(&lab, "node2", false);
    let tor_gone = until_gone_from_tor(&lab, "172.20.1.0/24", cut);
    eprintln!(
        "BFD 100 ms x 3: node2's link cut, its PodCIDR out of the tor's kernel after {:.0} ms",
        tor_gone.as_secs_f64() * 1000.0
    );
    assert!(tor_gone < Duration::from_secs(6), "{tor_gone:?}: not BFD");
    assert_eq!(
        wait_kernel(
            &lab,
            "172.16.1.1",
            &["192.168.10.100", "192.168.10.102", "192.168.20.100"]
        )
        .as_secs(),
        0
    );
    switch_port(&lab, "node2", true);
    wait_bfd_up(&lab, "node2", "192.168.10.101");
    wait_kernel(&lab, "172.20.1.0/24", &["192.168.10.101"]);

    // SIGTERM with graceful restart: BGP is closed first, then BFD sends AdminDown (FRR 8.4
    // takes AdminDown for a failure, RFC 5882 notwithstanding, but finds the session already
    // in graceful-restart helper mode): the tor keeps node3's route, stale.
    let pid = lbspeaker_pids(&lab)["node3"];
    lab.signal(pid, Signal::SIGTERM).unwrap();
    wait("node3's route stale on the tor", TIMEOUT, |last| {
        let p = bgp_paths(&lab, "tor", "172.20.2.0/24");
        *last = format!("{p:?}");
        (p.len() == 1 && p[0]["stale"] == Value::Bool(true)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        kernel_gateways(&lab, "tor", "172.20.2.0/24"),
        Some(ips(&["192.168.10.102"])),
        "kept over the restart: {}",
        frr_last_reset(&lab, "192.168.10.102")
    );
    daemons::restart(&mut lab, "node3").unwrap();
    wait_bfd_up(&lab, "node3", "192.168.10.102");
    wait("node3's route fresh", TIMEOUT, |_| {
        let p = bgp_paths(&lab, "tor", "172.20.2.0/24");
        (p.len() == 1 && p[0].get("stale").is_none()).then_some(())
    });
    lab.down().unwrap();
}
