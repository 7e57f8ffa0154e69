//! Our speaker (the `bgp-harness` process) against GoBGP 3.10 (`gobgpd`), asserting on what
//! `gobgp -j` reports. GoBGP does not install routes in the kernel, so the RIB is the truth.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bgp::wire::{Community, LargeCommunity};
use common::*;
use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};
use serde_json::{Value, json};

const LAB: &str = "
name: gobgplab
nodes:
  tor:
    kind: gobgpd
    interfaces: { eth1: [192.168.10.200/24] }
    bgp:
      asn: 65000
      router-id: 192.168.10.200
      listen: true
      announce: [10.10.1.0/24]
      neighbors:
        - { address: 192.168.10.100, asn: 65001, hold-time: 9, keepalive: 3, graceful-restart: 30 }
        - { address: 192.168.10.101, asn: 65001, hold-time: 9, keepalive: 3 }
        - { address: 192.168.10.102, asn: 65001, hold-time: 9, keepalive: 3, password: right-key }
        - { address: 192.168.10.103, asn: 65001, hold-time: 9, keepalive: 3, password: right-key }
  sw1: { kind: bridge }
  node1: { interfaces: { eth1: [192.168.10.100/24] } }
  node2: { interfaces: { eth1: [192.168.10.101/24] } }
  node3: { interfaces: { eth1: [192.168.10.102/24] } }
  node4: { interfaces: { eth1: [192.168.10.103/24] } }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [node2:eth1, sw1:node2]
  - endpoints: [node3:eth1, sw1:node3]
  - endpoints: [node4:eth1, sw1:node4]
";

fn lab() -> Lab {
    let t = Topology::from_yaml(LAB, "gobgplab", |_| unreachable!()).unwrap();
    Lab::up(t, LabOptions::with_prefix(unique_prefix("gb"))).unwrap()
}

fn gobgp(lab: &Lab, args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let out = frr_lab::daemons::gobgp(lab, "tor", &all).unwrap_or_default();
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

/// GoBGP's session state toward a neighbour, as its JSON says it.
fn state(lab: &Lab, addr: &str) -> String {
    let v = gobgp(lab, &["neighbor", addr]);
    let s = &v["state"]["session_state"];
    s.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| s.to_string())
        .to_lowercase()
}

fn established(lab: &Lab, addr: &str) -> bool {
    let s = state(lab, addr);
    s == "established" || s == "6"
}

/// The paths GoBGP has for a prefix.
fn paths(lab: &Lab, prefix: &str) -> Vec<Value> {
    let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v = gobgp(lab, &["global", "rib", "-a", afi, prefix]);
    v[prefix].as_array().cloned().unwrap_or_default()
}

fn attr(path: &Value, type_code: u64) -> Option<Value> {
    path["attrs"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == type_code)
        .cloned()
}

fn h(
    node: &str,
    id: &str,
    gr: bool,
    password: Option<&str>,
    routes: Vec<bgp::speaker::Route>,
) -> tests::harness::HarnessConfig {
    let mut p = peer("tor", "192.168.10.200", 65000);
    if gr {
        p = with_gr(p, 30);
    }
    p.password = password.map(str::to_owned);
    let _ = node;
    harness_config(65001, id, vec![p], routes)
}

/// RFC 4271 eBGP with GoBGP, RFC 1997 / RFC 8092 attributes, several paths for one prefix,
/// routes both ways and withdrawal.
///
/// ```text
///    tor (gobgpd, AS 65000, 10.10.1.0/24) 192.168.10.200
///       └── sw1 ── node1 .100 (172.20.0.0/24 MED 50 communities, 172.16.1.1/32)
///              └── node2 .101 (172.20.1.0/24, 172.16.1.1/32)
/// ```
#[test]
fn gobgp_sees_our_routes_with_their_attributes_and_we_see_its_routes() {
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
            "node1",
            "192.168.10.100",
            false,
            None,
            vec![r1, route("172.16.1.1/32")],
        ),
    );
    let n2 = start(
        &mut lab,
        "node2",
        h(
            "node2",
            "192.168.10.101",
            false,
            None,
            vec![route("172.20.1.0/24"), route("172.16.1.1/32")],
        ),
    );
    for n in [&n1, &n2] {
        let t = n.wait_established("tor", Duration::from_secs(20)).unwrap();
        eprintln!(
            "{}: Established {:.2} s after the process started",
            n.node,
            t.as_secs_f64()
        );
    }
    wait(
        "GoBGP Established with both",
        Duration::from_secs(10),
        |last| {
            *last = format!(
                "{} {}",
                state(&lab, "192.168.10.100"),
                state(&lab, "192.168.10.101")
            );
            (established(&lab, "192.168.10.100") && established(&lab, "192.168.10.101"))
                .then_some(())
        },
    );
    let p = wait("172.20.0.0/24 on GoBGP", Duration::from_secs(10), |last| {
        let p = paths(&lab, "172.20.0.0/24");
        *last = format!("{p:?}");
        p.first().cloned()
    });
    let text = p.to_string();
    assert_eq!(
        attr(&p, 4).map(|a| a["metric"].clone()),
        Some(json!(50)),
        "{text}"
    );
    assert!(
        attr(&p, 8).is_some_and(|a| a
            .to_string()
            .contains(&((65001u64 << 16) + 100).to_string())),
        "{text}"
    );
    assert!(
        attr(&p, 32).is_some_and(|a| a.to_string().contains("65001")),
        "{text}"
    );
    assert!(
        attr(&p, 2).is_some_and(|a| a.to_string().contains("65001")),
        "{text}"
    );
    assert!(
        attr(&p, 3).is_some_and(|a| a.to_string().contains("192.168.10.100")),
        "{text}"
    );
    let two = wait(
        "two paths for 172.16.1.1/32",
        Duration::from_secs(10),
        |last| {
            let p = paths(&lab, "172.16.1.1/32");
            *last = format!("{p:?}");
            (p.len() == 2).then_some(p)
        },
    );
    let hops: Vec<String> = two
        .iter()
        .filter_map(|p| attr(p, 3))
        .map(|a| a.to_string())
        .collect();
    assert!(
        hops.iter().any(|h| h.contains(".100")) && hops.iter().any(|h| h.contains(".101")),
        "{hops:?}"
    );
    // GoBGP's route reaches our Loc-RIB.
    let loc = wait(
        "10.10.1.0/24 in node1's Loc-RIB",
        Duration::from_secs(10),
        |_| {
            let v = n1.loc_rib("ipv4-unicast").ok()?;
            find(&v, "10.10.1.0/24").first().map(|r| (*r).clone())
        },
    );
    assert_eq!(loc["attrs"]["as_path"], "65000");
    assert_eq!(loc["next_hop"], "192.168.10.200");
    // Withdrawal.
    n1.request(json!({"cmd": "withdraw", "prefixes": ["172.16.1.1/32", "172.20.0.0/24"]}))
        .unwrap();
    wait("the withdrawals on GoBGP", Duration::from_secs(5), |_| {
        (paths(&lab, "172.16.1.1/32").len() == 1 && paths(&lab, "172.20.0.0/24").is_empty())
            .then_some(())
    });
}

/// RFC 4724 with GoBGP as the helper, and RFC 2385 (TCP MD5) right and wrong.
///
/// ```text
///    tor (gobgpd, AS 65000) 192.168.10.200
///       └── sw1 ── node1 .100 (graceful restart, 30 s) ── SIGKILL, start again
///              ├── node3 .102 (key right-key)
///              └── node4 .103 (key wrong-key)
/// ```
#[test]
fn gobgp_keeps_our_routes_through_a_sigkill_and_checks_our_md5_keys() {
    if !lab_available() {
        return;
    }
    let mut lab = lab();
    let mut n1 = start(
        &mut lab,
        "node1",
        h(
            "node1",
            "192.168.10.100",
            true,
            None,
            vec![route("172.20.0.0/24")],
        ),
    );
    let n3 = start(
        &mut lab,
        "node3",
        h(
            "node3",
            "192.168.10.102",
            false,
            Some("right-key"),
            vec![route("172.20.2.0/24")],
        ),
    );
    let n4 = start(
        &mut lab,
        "node4",
        h(
            "node4",
            "192.168.10.103",
            false,
            Some("wrong-key"),
            vec![route("172.20.3.0/24")],
        ),
    );
    n1.wait_established("tor", Duration::from_secs(20)).unwrap();
    let t = n3.wait_established("tor", Duration::from_secs(20)).unwrap();
    eprintln!(
        "MD5 session with GoBGP Established {:.2} s after start",
        t.as_secs_f64()
    );
    wait("172.20.0.0/24 on GoBGP", Duration::from_secs(10), |_| {
        paths(&lab, "172.20.0.0/24").first().cloned()
    });
    let killed = Instant::now();
    n1.kill(&mut lab).unwrap();
    wait("GoBGP to notice", Duration::from_secs(10), |_| {
        (!established(&lab, "192.168.10.100")).then_some(())
    });
    let p = wait(
        "our route kept (stale) by GoBGP",
        Duration::from_secs(5),
        |last| {
            let p = paths(&lab, "172.20.0.0/24");
            *last = format!("{p:?}");
            p.first().cloned()
        },
    );
    assert_eq!(p["stale"], true, "{p}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        paths(&lab, "172.20.0.0/24").len(),
        1,
        "kept while we are gone"
    );
    n1.restart(&mut lab, true).unwrap();
    n1.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait(
        "a fresh path after our End-of-RIB",
        Duration::from_secs(10),
        |last| {
            let p = paths(&lab, "172.20.0.0/24");
            *last = format!("{p:?}");
            p.first().filter(|p| p["stale"] != true).map(|_| ())
        },
    );
    eprintln!(
        "fresh on GoBGP {:.2} s after SIGKILL",
        killed.elapsed().as_secs_f64()
    );
    // The wrong key never comes up.
    assert!(!established(&lab, "192.168.10.103"));
    assert_ne!(n4.peer("tor").unwrap()["state"], "established");
    assert!(paths(&lab, "172.20.3.0/24").is_empty());
}

/// RFC 4271 §6.5 with GoBGP: the cut link ends the session after the 9 s hold time, the route
/// leaves GoBGP's table, and both come back with the link.
///
/// ```text
///    tor (gobgpd) ── sw1 ──X── node2 .101 (hold 9 s)
/// ```
#[test]
fn gobgp_drops_a_cut_session_after_the_hold_time_and_takes_it_back() {
    if !lab_available() {
        return;
    }
    let mut lab = lab();
    let n2 = start(
        &mut lab,
        "node2",
        h(
            "node2",
            "192.168.10.101",
            false,
            None,
            vec![route("172.20.1.0/24")],
        ),
    );
    n2.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait("the route on GoBGP", Duration::from_secs(10), |_| {
        paths(&lab, "172.20.1.0/24").first().cloned()
    });
    let cut = Instant::now();
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node2", "down"])
        .unwrap();
    wait("GoBGP to drop the session", Duration::from_secs(15), |_| {
        (!established(&lab, "192.168.10.101")).then_some(())
    });
    let after = cut.elapsed();
    eprintln!(
        "GoBGP dropped the session {:.2} s after the cut",
        after.as_secs_f64()
    );
    assert_hold_time(after);
    wait("the route gone", Duration::from_secs(3), |_| {
        paths(&lab, "172.20.1.0/24").is_empty().then_some(())
    });
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node2", "up"])
        .unwrap();
    wait("the session back", Duration::from_secs(20), |_| {
        established(&lab, "192.168.10.101").then_some(())
    });
    wait("the route back", Duration::from_secs(10), |_| {
        paths(&lab, "172.20.1.0/24").first().cloned()
    });
}

const IBGP_LAB: &str = "
name: gobgpibgp
nodes:
  tor:
    kind: gobgpd
    interfaces: { eth1: [10.0.2.1/24, 'fd00:2::1/64'] }
    bgp:
      asn: 4200000000
      router-id: 10.0.2.1
      listen: true
      announce: [10.10.1.0/24, 'fd00:99::/64']
      neighbors:
        - { address: 10.0.2.11, asn: 4200000000, hold-time: 9, keepalive: 3 }
        - { address: 'fd00:2::12', asn: 4200000002, hold-time: 9, keepalive: 3 }
  sw1: { kind: bridge }
  node1: { interfaces: { eth1: [10.0.2.11/24] } }
  node2: { interfaces: { eth1: [10.0.2.12/24, 'fd00:2::12/64'] } }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [node2:eth1, sw1:node2]
";

/// RFC 4271 iBGP (LOCAL_PREF), RFC 6793 4-octet ASNs and RFC 4760 over an IPv6 session, with
/// GoBGP.
///
/// ```text
///    tor (gobgpd, AS 4200000000) 10.0.2.1, fd00:2::1
///       └── sw1 ── node1 10.0.2.11 iBGP (172.22.1.0/24 LOCAL_PREF 300)
///              └── node2 fd00:2::12 eBGP AS 4200000002 over IPv6 (172.22.2.0/24, fd00:32::/64)
/// ```
#[test]
fn gobgp_with_ibgp_four_octet_asns_and_an_ipv6_session() {
    if !lab_available() {
        return;
    }
    let t = Topology::from_yaml(IBGP_LAB, "gobgpibgp", |_| unreachable!()).unwrap();
    let mut lab = Lab::up(t, LabOptions::with_prefix(unique_prefix("gi"))).unwrap();
    let mut lp = route("172.22.1.0/24");
    lp.attributes.local_pref = Some(300);
    let n1 = start(
        &mut lab,
        "node1",
        harness_config(
            4_200_000_000,
            "10.0.2.11",
            vec![peer("tor", "10.0.2.1", 4_200_000_000)],
            vec![lp],
        ),
    );
    let n2 = start(
        &mut lab,
        "node2",
        harness_config(
            4_200_000_002,
            "10.0.2.12",
            vec![peer("tor", "fd00:2::1", 4_200_000_000)],
            vec![route("172.22.2.0/24"), route("fd00:32::/64")],
        ),
    );
    n1.wait_established("tor", Duration::from_secs(20)).unwrap();
    n2.wait_established("tor", Duration::from_secs(20)).unwrap();
    let p = wait("172.22.1.0/24 on GoBGP", Duration::from_secs(10), |_| {
        paths(&lab, "172.22.1.0/24").first().cloned()
    });
    assert_eq!(
        attr(&p, 5).map(|a| a["value"].clone()),
        Some(json!(300)),
        "{p}"
    );
    let p = wait("172.22.2.0/24 on GoBGP", Duration::from_secs(10), |_| {
        paths(&lab, "172.22.2.0/24").first().cloned()
    });
    assert!(
        attr(&p, 2).is_some_and(|a| a.to_string().contains("4200000002")),
        "{p}"
    );
    assert!(
        p.to_string().contains("10.0.2.12"),
        "an IPv4 next hop for IPv4 prefixes: {p}"
    );
    let p = wait("fd00:32::/64 on GoBGP", Duration::from_secs(10), |_| {
        paths(&lab, "fd00:32::/64").first().cloned()
    });
    assert!(p.to_string().contains("fd00:2::12"), "{p}");
    // GoBGP's routes reach us over both sessions.
    // GoBGP sends its IPv4 route over the IPv6 session with an IPv6 next hop, without the
    // RFC 8950 capability exchange; we take it as such.
    let v4 = wait(
        "GoBGP's IPv4 route over the IPv6 session",
        Duration::from_secs(10),
        |_| {
            let v = n2.loc_rib("ipv4-unicast").ok()?;
            find(&v, "10.10.1.0/24").first().map(|r| (*r).clone())
        },
    );
    eprintln!("GoBGP's IPv4 route over IPv6: next hop {}", v4["next_hop"]);
    let v = wait("node2's IPv6 Loc-RIB", Duration::from_secs(10), |_| {
        let v = n2.loc_rib("ipv6-unicast").ok()?;
        find(&v, "fd00:99::/64").first().map(|r| (*r).clone())
    });
    assert_eq!(v["attrs"]["as_path"], "4200000000");
    let v = wait("node1's Loc-RIB", Duration::from_secs(10), |_| {
        let v = n1.loc_rib("ipv4-unicast").ok()?;
        find(&v, "172.22.2.0/24").first().map(|r| (*r).clone())
    });
    assert_eq!(
        v["attrs"]["as_path"], "4200000002",
        "iBGP keeps the path: {v}"
    );
}
