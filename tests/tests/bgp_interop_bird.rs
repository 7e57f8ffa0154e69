//! Our speaker (the `bgp-harness` process) against BIRD 2.0, asserting on what `birdc`
//! reports.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bgp::wire::{Community, LargeCommunity};
use common::*;
use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};
use serde_json::json;

const LAB: &str = "
name: birdlab
nodes:
  tor:
    kind: bird
    interfaces: { eth1: [192.168.10.200/24, 'fd00:10::200/64'] }
    bgp:
      asn: 65000
      router-id: 192.168.10.200
      announce: [10.10.1.0/24, 'fd00:99::/64']
      neighbors:
        - { address: 192.168.10.100, asn: 65001, hold-time: 9, keepalive: 3, graceful-restart: 30 }
        - { address: 192.168.10.101, asn: 65001, hold-time: 9, keepalive: 3 }
        - { address: 192.168.10.102, asn: 65001, hold-time: 9, keepalive: 3, password: right-key }
        - { address: 192.168.10.103, asn: 65001, hold-time: 9, keepalive: 3, password: right-key }
        - { address: 'fd00:10::104', asn: 65001, hold-time: 9, keepalive: 3 }
  sw1: { kind: bridge }
  node1: { interfaces: { eth1: [192.168.10.100/24] } }
  node2: { interfaces: { eth1: [192.168.10.101/24] } }
  node3: { interfaces: { eth1: [192.168.10.102/24] } }
  node4: { interfaces: { eth1: [192.168.10.103/24] } }
  node5: { interfaces: { eth1: [192.168.10.104/24, 'fd00:10::104/64'] } }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [node2:eth1, sw1:node2]
  - endpoints: [node3:eth1, sw1:node3]
  - endpoints: [node4:eth1, sw1:node4]
  - endpoints: [node5:eth1, sw1:node5]
";

fn lab() -> Lab {
    let t = Topology::from_yaml(LAB, "birdlab", |_| unreachable!()).unwrap();
    Lab::up(t, LabOptions::with_prefix(unique_prefix("bd"))).unwrap()
}

fn birdc(lab: &Lab, cmd: &str) -> String {
    frr_lab::daemons::birdc(lab, "tor", cmd).unwrap_or_default()
}

/// Whether BIRD's protocol `peerN` is Established.
fn established(lab: &Lab, protocol: &str) -> bool {
    birdc(lab, "show protocols")
        .lines()
        .any(|l| l.split_whitespace().next() == Some(protocol) && l.contains("Established"))
}

/// BIRD's routes for one prefix (`show route PREFIX all`), one text block per route.
fn routes(lab: &Lab, prefix: &str) -> Vec<String> {
    let out = birdc(lab, &format!("show route {prefix} all"));
    let mut blocks: Vec<String> = Vec::new();
    for line in out.lines() {
        if line.contains("unicast [") {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line.trim());
            b.push('\n');
        }
    }
    blocks
}

fn h(
    id: &str,
    addr: &str,
    gr: bool,
    password: Option<&str>,
    routes: Vec<bgp::speaker::Route>,
) -> tests::harness::HarnessConfig {
    let mut p = peer("tor", addr, 65000);
    if gr {
        p = with_gr(p, 30);
    }
    p.password = password.map(str::to_owned);
    harness_config(65001, id, vec![p], routes)
}

/// RFC 4271 eBGP with BIRD 2 over IPv4 and IPv6 sessions, RFC 1997 / RFC 8092 attributes,
/// several paths for one prefix, routes both ways and withdrawal.
///
/// ```text
///    tor (BIRD, AS 65000, 10.10.1.0/24, fd00:99::/64) 192.168.10.200, fd00:10::200
///       └── sw1 ── node1 .100 (172.20.0.0/24 MED 50 communities, 172.16.1.1/32)
///              ├── node2 .101 (172.20.1.0/24, 172.16.1.1/32)
///              └── node5 fd00:10::104 (IPv6 session: fd00:25::/64)
/// ```
#[test]
fn bird_sees_our_routes_with_their_attributes_and_we_see_its_routes() {
    if !lab_available() {
        return;
    }
    let mut lab = lab();
    let mut r1 = route("172.20.0.0/24");
    r1.attributes.med = Some(50);
    r1.attributes.communities = vec![Community::new(65001, 100)];
    r1.attributes.large_communities = vec![LargeCommunity::new(65001, 1, 2)];
    let n1 = start(
        &mut lab,
        "node1",
        h(
            "192.168.10.100",
            "192.168.10.200",
            false,
            None,
            vec![r1, route("172.16.1.1/32")],
        ),
    );
    let n2 = start(
        &mut lab,
        "node2",
        h(
            "192.168.10.101",
            "192.168.10.200",
            false,
            None,
            vec![route("172.20.1.0/24"), route("172.16.1.1/32")],
        ),
    );
    let mut c5 = h(
        "192.168.10.104",
        "fd00:10::200",
        false,
        None,
        vec![route("fd00:25::/64")],
    );
    c5.peers[0].families = vec![bgp::wire::Family::IPV6_UNICAST];
    let n5 = start(&mut lab, "node5", c5);
    for n in [&n1, &n2, &n5] {
        let t = n.wait_established("tor", Duration::from_secs(20)).unwrap();
        eprintln!(
            "{}: Established {:.2} s after the process started",
            n.node,
            t.as_secs_f64()
        );
    }
    wait("BIRD Established", Duration::from_secs(10), |last| {
        *last = birdc(&lab, "show protocols");
        (established(&lab, "peer1") && established(&lab, "peer2") && established(&lab, "peer5"))
            .then_some(())
    });
    let r = wait("172.20.0.0/24 on BIRD", Duration::from_secs(10), |last| {
        *last = birdc(&lab, "show route all");
        routes(&lab, "172.20.0.0/24").first().cloned()
    });
    for want in [
        "BGP.as_path: 65001",
        "BGP.next_hop: 192.168.10.100",
        "BGP.med: 50",
        "BGP.community: (65001,100)",
        "BGP.large_community: (65001, 1, 2)",
        "BGP.origin: IGP",
    ] {
        assert!(r.contains(want), "{want:?} missing in\n{r}");
    }
    let two = wait(
        "two paths for 172.16.1.1/32",
        Duration::from_secs(10),
        |_| {
            let r = routes(&lab, "172.16.1.1/32");
            (r.len() == 2).then_some(r)
        },
    );
    assert!(
        two.iter().any(|r| r.contains("192.168.10.100"))
            && two.iter().any(|r| r.contains("192.168.10.101"))
    );
    let v6 = wait("fd00:25::/64 on BIRD", Duration::from_secs(10), |_| {
        routes(&lab, "fd00:25::/64").first().cloned()
    });
    assert!(v6.contains("BGP.next_hop: fd00:10::104"), "{v6}");
    // BIRD's routes reach our Loc-RIBs.
    let loc = wait(
        "10.10.1.0/24 in node1's Loc-RIB",
        Duration::from_secs(10),
        |_| {
            let v = n1.loc_rib("ipv4-unicast").ok()?;
            find(&v, "10.10.1.0/24").first().map(|r| (*r).clone())
        },
    );
    assert_eq!(loc["attrs"]["as_path"], "65000");
    let loc6 = wait(
        "fd00:99::/64 in node5's Loc-RIB",
        Duration::from_secs(10),
        |_| {
            let v = n5.loc_rib("ipv6-unicast").ok()?;
            find(&v, "fd00:99::/64").first().map(|r| (*r).clone())
        },
    );
    assert_eq!(loc6["next_hop"], "fd00:10::200");
    // Withdrawal.
    n1.request(json!({"cmd": "withdraw", "prefixes": ["172.16.1.1/32", "172.20.0.0/24"]}))
        .unwrap();
    wait("the withdrawals on BIRD", Duration::from_secs(5), |_| {
        (routes(&lab, "172.16.1.1/32").len() == 1 && routes(&lab, "172.20.0.0/24").is_empty())
            .then_some(())
    });
}

/// RFC 4724 with BIRD as the helper, and RFC 2385 (TCP MD5) right and wrong.
///
/// ```text
///    tor (BIRD, AS 65000) 192.168.10.200
///       └── sw1 ── node1 .100 (graceful restart, 30 s) ── SIGKILL, start again
///              ├── node3 .102 (key right-key)
///              └── node4 .103 (key wrong-key)
/// ```
#[test]
fn bird_keeps_our_routes_through_a_sigkill_and_checks_our_md5_keys() {
    if !lab_available() {
        return;
    }
    let mut lab = lab();
    let mut n1 = start(
        &mut lab,
        "node1",
        h(
            "192.168.10.100",
            "192.168.10.200",
            true,
            None,
            vec![route("172.20.0.0/24")],
        ),
    );
    let n3 = start(
        &mut lab,
        "node3",
        h(
            "192.168.10.102",
            "192.168.10.200",
            false,
            Some("right-key"),
            vec![route("172.20.2.0/24")],
        ),
    );
    let n4 = start(
        &mut lab,
        "node4",
        h(
            "192.168.10.103",
            "192.168.10.200",
            false,
            Some("wrong-key"),
            vec![route("172.20.3.0/24")],
        ),
    );
    n1.wait_established("tor", Duration::from_secs(20)).unwrap();
    let t = n3.wait_established("tor", Duration::from_secs(20)).unwrap();
    eprintln!(
        "MD5 session with BIRD Established {:.2} s after start",
        t.as_secs_f64()
    );
    wait("172.20.0.0/24 on BIRD", Duration::from_secs(10), |_| {
        routes(&lab, "172.20.0.0/24").first().cloned()
    });
    let killed = Instant::now();
    n1.kill(&mut lab).unwrap();
    wait("BIRD to notice", Duration::from_secs(10), |_| {
        (!established(&lab, "peer1")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let kept = routes(&lab, "172.20.0.0/24");
    assert_eq!(
        kept.len(),
        1,
        "kept while we are gone: {}",
        birdc(&lab, "show protocols all peer1")
    );
    n1.restart(&mut lab, true).unwrap();
    n1.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait("BIRD Established again", Duration::from_secs(10), |_| {
        established(&lab, "peer1").then_some(())
    });
    assert_eq!(routes(&lab, "172.20.0.0/24").len(), 1);
    eprintln!(
        "back on BIRD {:.2} s after SIGKILL",
        killed.elapsed().as_secs_f64()
    );
    assert!(!established(&lab, "peer4"));
    assert_ne!(n4.peer("tor").unwrap()["state"], "established");
    assert!(routes(&lab, "172.20.3.0/24").is_empty());
}

/// RFC 4271 §6.5 with BIRD: the cut link ends the session after the 9 s hold time, the route
/// leaves BIRD's table, and both come back with the link.
///
/// ```text
///    tor (BIRD) ── sw1 ──X── node2 .101 (hold 9 s)
/// ```
#[test]
fn bird_drops_a_cut_session_after_the_hold_time_and_takes_it_back() {
    if !lab_available() {
        return;
    }
    let mut lab = lab();
    let n2 = start(
        &mut lab,
        "node2",
        h(
            "192.168.10.101",
            "192.168.10.200",
            false,
            None,
            vec![route("172.20.1.0/24")],
        ),
    );
    n2.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait("the route on BIRD", Duration::from_secs(10), |_| {
        routes(&lab, "172.20.1.0/24").first().cloned()
    });
    let cut = Instant::now();
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node2", "down"])
        .unwrap();
    wait("BIRD to drop the session", Duration::from_secs(15), |_| {
        (!established(&lab, "peer2")).then_some(())
    });
    let after = cut.elapsed();
    eprintln!(
        "BIRD dropped the session {:.2} s after the cut",
        after.as_secs_f64()
    );
    assert_hold_time(after);
    wait("the route gone", Duration::from_secs(3), |_| {
        routes(&lab, "172.20.1.0/24").is_empty().then_some(())
    });
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node2", "up"])
        .unwrap();
    wait("the session back", Duration::from_secs(30), |_| {
        established(&lab, "peer2").then_some(())
    });
    wait("the route back", Duration::from_secs(10), |_| {
        routes(&lab, "172.20.1.0/24").first().cloned()
    });
}

const FOUR_OCTET_LAB: &str = "
name: birdasn4
nodes:
  tor:
    kind: bird
    interfaces: { eth1: [10.0.3.1/24] }
    bgp:
      asn: 4200000000
      router-id: 10.0.3.1
      announce: [10.10.1.0/24]
      neighbors:
        - { address: 10.0.3.11, asn: 4200000002, hold-time: 9, keepalive: 3 }
  node1: { interfaces: { eth1: [10.0.3.11/24] } }
links:
  - endpoints: [tor:eth1, node1:eth1]
";

/// RFC 6793: 4-octet ASNs on both sides with BIRD.
///
/// ```text
///    tor (BIRD, AS 4200000000) 10.0.3.1 ── node1 10.0.3.11 (AS 4200000002, 172.23.1.0/24)
/// ```
#[test]
fn bird_with_four_octet_asns() {
    if !lab_available() {
        return;
    }
    let t = Topology::from_yaml(FOUR_OCTET_LAB, "birdasn4", |_| unreachable!()).unwrap();
    let mut lab = Lab::up(t, LabOptions::with_prefix(unique_prefix("ba"))).unwrap();
    let n1 = start(
        &mut lab,
        "node1",
        harness_config(
            4_200_000_002,
            "10.0.3.11",
            vec![peer("tor", "10.0.3.1", 4_200_000_000)],
            vec![route("172.23.1.0/24")],
        ),
    );
    n1.wait_established("tor", Duration::from_secs(20)).unwrap();
    let r = wait("172.23.1.0/24 on BIRD", Duration::from_secs(10), |_| {
        routes(&lab, "172.23.1.0/24").first().cloned()
    });
    assert!(r.contains("BGP.as_path: 4200000002"), "{r}");
    let v = wait(
        "BIRD's route in our Loc-RIB",
        Duration::from_secs(10),
        |_| {
            let v = n1.loc_rib("ipv4-unicast").ok()?;
            find(&v, "10.10.1.0/24").first().map(|r| (*r).clone())
        },
    );
    assert_eq!(v["attrs"]["as_path"], "4200000000");
}
