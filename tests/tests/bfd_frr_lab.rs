//! Single-hop BFD (RFC 5880, 5881) between our speaker (bgp-harness with a BFD manager) and
//! FRR's bfdd, asked for by the tor's `neighbor CILIUM bfd`.
//!
//! ```text
//!            tor (FRR 8.4 zebra + bfdd + bgpd, AS 65000, neighbor CILIUM bfd)
//!            eth1 192.168.10.200/24
//!                     │
//!                    sw1 ── port "node1" is where the link is cut (ip link set down)
//!              ┌──────┴──────┐
//!           node1          node2      bgp-harness, AS 65001, hold 9 s / keepalive 3 s,
//!           .10.100        .10.101    BFD 300 ms x 3 toward 192.168.10.200
//! ```
//!
//! Proves: sessions come Up on both sides (FRR's `show bfd peers`, our `bfd` command); cutting
//! node1's switch port takes BGP down on our side by BFD (Cease / BFD Down, not the hold
//! timer), and FRR's BFD takes its BGP session down and removes node1's route from its kernel;
//! the link coming back brings both back; a second cut is damped: our BFD session is held
//! Down for the configured time although the link is up, BGP is not held with it, and
//! nothing takes BGP down again while it is held.

#![allow(clippy::unwrap_used)]

mod common;
mod fib_bfd_common;

use std::time::{Duration, Instant};

use bgp::bfd::{BfdPeer, BfdProfile, DampingConfig};
use common::*;
use fib_bfd_common::*;
use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};
use serde_json::Value;
use tests::harness::{Harness, HarnessBfd, HarnessConfig};

const TOR: &str = "\
frr defaults traditional
hostname tor
!
router bgp 65000
 bgp router-id 192.168.10.200
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor CILIUM peer-group
 neighbor CILIUM remote-as external
 neighbor CILIUM timers connect 2
 neighbor CILIUM bfd
 neighbor 192.168.10.100 peer-group CILIUM
 neighbor 192.168.10.101 peer-group CILIUM
exit
";

const TOPOLOGY: &str = "
name: bfdlab
nodes:
  tor:
    kind: frr
    config: tor.conf
    bfdd: true
    interfaces: { eth1: [192.168.10.200/24] }
  sw1: { kind: bridge }
  node1: { interfaces: { eth1: [192.168.10.100/24] } }
  node2: { interfaces: { eth1: [192.168.10.101/24] } }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [node2:eth1, sw1:node2]
";

fn node_config(id: &str, pod_cidr: &str, damping: DampingConfig) -> HarnessConfig {
    let p = peer("tor", "192.168.10.200", 65000);
    let profile = BfdProfile {
        damping,
        ..BfdProfile::default()
    };
    let bfd_peer = BfdPeer::for_bgp_peer("default", &p, profile).unwrap();
    let mut cfg = harness_config(65001, id, vec![p], vec![route(pod_cidr)]);
    cfg.bfd = Some(HarnessBfd {
        peers: vec![bfd_peer],
        ..HarnessBfd::default()
    });
    cfg
}

fn lab() -> Lab {
    let conf = TOR.to_owned();
    let t = Topology::from_yaml(TOPOLOGY, "test", move |_| Ok(conf.clone())).unwrap();
    Lab::up(t, LabOptions::with_prefix(unique_prefix("bf"))).unwrap()
}

fn our_state(h: &Harness) -> String {
    h.bfd_session("192.168.10.200")
        .map(|s| s["status"]["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn wait_bfd_up(lab: &Lab, h: &Harness, peer: &str) {
    wait("BFD Up on both sides", Duration::from_secs(20), |last| {
        let (ours, frr) = (our_state(h), frr_bfd_status(lab, "tor", peer));
        *last = format!("ours {ours}, FRR {frr}");
        (ours == "up" && frr == "up").then_some(())
    });
}

/// The time of our first BFD event of `kind` toward `to` after `after` (unix seconds).
fn bfd_event(h: &Harness, kind: &str, to: Option<&str>, after: f64) -> Option<f64> {
    h.events().ok()?.into_iter().find_map(|e| {
        let ev = &e["event"]["kind"];
        let at = e["at"].as_f64()?;
        (e["source"] == "bfd"
            && at >= after
            && ev["event"] == kind
            && to.is_none_or(|t| ev["to"] == t))
        .then_some(at)
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn frr_bfdd_and_our_bfd_take_bgp_down_within_the_detection_time_of_a_cut_link() {
    if !lab_available() {
        return;
    }
    let mut lab = lab();
    let damping = DampingConfig {
        free_flaps: 1,
        initial_hold: Duration::from_secs(5),
        max_hold: Duration::from_secs(20),
        decay: Duration::from_secs(120),
    };
    let h1 = start(
        &mut lab,
        "node1",
        node_config("192.168.10.100", "172.20.0.0/24", damping),
    );
    let h2 = start(
        &mut lab,
        "node2",
        node_config("192.168.10.101", "172.20.1.0/24", damping),
    );
    for h in [&h1, &h2] {
        h.wait_established("tor", Duration::from_secs(20)).unwrap();
    }
    wait_bfd_up(&lab, &h1, "192.168.10.100");
    wait_bfd_up(&lab, &h2, "192.168.10.101");
    // FRR's view: single hop, 300 ms x 3 both ways, our discriminator.
    let frr = &frr_bfd_peers(&lab, "tor")["192.168.10.100"];
    let ours = h1.bfd_session("192.168.10.200").unwrap();
    eprintln!("FRR: {frr}\nours: {ours}");
    assert_eq!(frr["multihop"], false);
    assert_eq!(frr["remote-id"], ours["status"]["local_discriminator"]);
    assert_eq!(frr["id"], ours["status"]["remote_discriminator"]);
    assert_eq!(frr["remote-detect-multiplier"], 3);
    assert_eq!(frr["remote-transmit-interval"], 300);
    assert_eq!(frr["remote-receive-interval"], 300);
    assert_eq!(ours["status"]["transmit_interval"], 300_000);
    assert_eq!(ours["status"]["detection_time"], 900_000);
    assert_eq!(ours["status"]["remote_detect_mult"], 3);
    let counters: Value =
        h1.request(serde_json::json!({"cmd": "bfd"})).unwrap()["counters"].clone();
    assert_eq!(counters["bad_ttl"], 0, "FRR sends with TTL 255");
    assert_eq!(counters["malformed"], 0);
    wait(
        "node1's route in the tor's kernel",
        Duration::from_secs(10),
        |_| gateways(&lab, "tor", "172.20.0.0/24"),
    );

    // Cut node1's switch port: BFD on both sides, not the hold timer, takes BGP down.
    let cut = unix_now();
    let cut_i = Instant::now();
    switch_port(&lab, "node1", false);
    wait("our BGP session down", Duration::from_secs(8), |last| {
        let p = h1.peer("tor").ok()?;
        *last = p.to_string();
        (p["state"] != "established").then_some(())
    });
    let ours_down = cut_i.elapsed();
    wait(
        "node1's route gone from the tor's kernel",
        Duration::from_secs(8),
        |_| {
            gateways(&lab, "tor", "172.20.0.0/24")
                .is_none()
                .then_some(())
        },
    );
    let frr_removed = cut_i.elapsed();
    let bfd_down = bfd_event(&h1, "state-changed", Some("down"), cut).unwrap() - cut;
    eprintln!(
        "cut: our BFD down after {:.0} ms, our BGP down after {:.0} ms (polled), \
         the tor's kernel without node1's route after {:.0} ms (polled)",
        bfd_down * 1000.0,
        ours_down.as_secs_f64() * 1000.0,
        frr_removed.as_secs_f64() * 1000.0
    );
    let s = h1.bfd_session("192.168.10.200").unwrap();
    assert_eq!(s["status"]["local_diag"], "control-detection-time-expired");
    assert_eq!(s["bgp_resets"], 1);
    let why = h1.peer("tor").unwrap()["last_error"].to_string();
    assert!(
        why.to_lowercase().contains("bfd"),
        "our BGP went down by BFD: {why}"
    );
    let frr_why = frr_last_reset(&lab, "192.168.10.100");
    eprintln!("FRR's last reset of node1: {frr_why}");
    assert!(
        frr_why.to_lowercase().contains("bfd")
            || frr_why.ends_with("060A")
            || frr_why.ends_with("060a"),
        "FRR's BGP went down by BFD (it sends Cease / BFD Down, 6/10): {frr_why}"
    );
    assert_eq!(
        frr_state(&lab, "tor", "192.168.10.101"),
        "Established",
        "node2 unaffected"
    );
    assert_eq!(our_state(&h2), "up");

    // The link comes back: BFD first (or BGP first), both up, the route back.
    switch_port(&lab, "node1", true);
    h1.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait_bfd_up(&lab, &h1, "192.168.10.100");
    wait(
        "node1's route back in the tor's kernel",
        Duration::from_secs(10),
        |_| gateways(&lab, "tor", "172.20.0.0/24"),
    );

    // Second flap: damped. Our BFD stays Down for the hold (5 s) although the link is back.
    let cut2 = unix_now();
    switch_port(&lab, "node1", false);
    let down2 = wait("our BFD down again", Duration::from_secs(8), |_| {
        bfd_event(&h1, "state-changed", Some("down"), cut2)
    });
    let held = wait("the hold-down", Duration::from_secs(2), |_| {
        bfd_event(&h1, "held-down", None, cut2)
    });
    assert!(held - down2 < 0.1);
    switch_port(&lab, "node1", true);
    let restored = unix_now();
    // While held: the link works (BGP may come back over TCP) but BFD stays Down on both
    // sides, and no BFD event takes BGP down again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(our_state(&h1), "down", "held down");
    let s = h1.bfd_session("192.168.10.200").unwrap();
    assert!(s["held_for"].as_u64().unwrap() > 0, "{s}");
    assert_ne!(frr_bfd_status(&lab, "tor", "192.168.10.100"), "up");
    let bgp_while_held = h1.peer("tor").unwrap()["state"].clone();
    eprintln!("BGP while BFD is held down: {bgp_while_held}");
    let up2 = wait("our BFD up after the hold", Duration::from_secs(15), |_| {
        bfd_event(&h1, "state-changed", Some("up"), restored)
    });
    eprintln!(
        "second flap: down {:.2} s after the cut, held {:.2} s, up {:.2} s after the link \
         came back",
        down2 - cut2,
        up2 - down2,
        up2 - restored
    );
    assert!(
        up2 - down2 >= 5.0,
        "held for the configured 5 s: {:.2}",
        up2 - down2
    );
    let s = h1.bfd_session("192.168.10.200").unwrap();
    assert_eq!(s["bgp_resets"], 2, "only the two failures reset BGP: {s}");
    assert_eq!(s["status"]["flaps"], 2);
    wait_bfd_up(&lab, &h1, "192.168.10.100");
    h1.wait_established("tor", Duration::from_secs(20)).unwrap();
}

const TOR6: &str = "\
frr defaults traditional
hostname tor
!
router bgp 65000
 bgp router-id 192.168.10.200
 no bgp ebgp-requires-policy
 neighbor fd00:10::100 remote-as external
 neighbor fd00:10::100 timers connect 2
 neighbor fd00:10::100 bfd
 address-family ipv4 unicast
  no neighbor fd00:10::100 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor fd00:10::100 activate
 exit-address-family
exit
";

const TOPOLOGY6: &str = "
name: bfd6
nodes:
  tor:
    kind: frr
    config: tor.conf
    bfdd: true
    interfaces: { eth1: ['fd00:10::200/64'] }
  node1: { interfaces: { eth1: ['fd00:10::100/64'] } }
links:
  - endpoints: [tor:eth1, node1:eth1]
";

/// RFC 5881 over IPv6: Hop Limit 255 both ways, a session per BGP peer, and the same
/// failure handling.
#[test]
fn an_ipv6_session_with_frr_comes_up_and_detects_a_cut_link() {
    if !lab_available() {
        return;
    }
    let conf = TOR6.to_owned();
    let t = Topology::from_yaml(TOPOLOGY6, "test", move |_| Ok(conf.clone())).unwrap();
    let mut lab = Lab::up(t, LabOptions::with_prefix(unique_prefix("b6"))).unwrap();
    let mut p = peer("tor", "fd00:10::200", 65000);
    p.families = vec![bgp::wire::Family::IPV6_UNICAST];
    let bfd_peer = BfdPeer::for_bgp_peer("default", &p, BfdProfile::default()).unwrap();
    let mut cfg = harness_config(
        65001,
        "192.168.10.100",
        vec![p],
        vec![route("fd00:20::/64")],
    );
    cfg.bfd = Some(HarnessBfd {
        peers: vec![bfd_peer],
        ..HarnessBfd::default()
    });
    let h = start(&mut lab, "node1", cfg);
    h.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait("BFD Up over IPv6", Duration::from_secs(20), |last| {
        let ours = h
            .bfd_session("fd00:10::200")
            .map(|s| s["status"]["state"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let frr = frr_bfd_status(&lab, "tor", "fd00:10::100");
        *last = format!("ours {ours}, FRR {frr}");
        (ours == "up" && frr == "up").then_some(())
    });
    let counters = h.request(serde_json::json!({"cmd": "bfd"})).unwrap()["counters"].clone();
    assert_eq!(counters["bad_ttl"], 0);
    let cut = unix_now();
    lab.exec_ok("node1", "ip", &["link", "set", "dev", "eth1", "down"])
        .unwrap();
    let down = wait("our BFD down", Duration::from_secs(8), |_| {
        bfd_event(&h, "state-changed", Some("down"), cut)
    });
    eprintln!(
        "IPv6: BFD down {:.0} ms after the cut",
        (down - cut) * 1000.0
    );
    wait("our BGP down", Duration::from_secs(8), |_| {
        let p = h.peer("tor").ok()?;
        (p["state"] != "established").then_some(())
    });
    let why = h.peer("tor").unwrap()["last_error"].to_string();
    assert!(why.to_lowercase().contains("bfd"), "{why}");
}
