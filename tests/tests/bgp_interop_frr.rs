//! Our speaker (the `bgp-harness` process, one per node namespace) against FRR 8.4, asserting
//! on what FRR itself reports (`vtysh ... json`) and on the tor's kernel table.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bgp::wire::{Community, LargeCommunity};
use common::*;
use frr_lab::{Lab, LabOptions, lab_available, unique_prefix};
use serde_json::json;

const SEED_TOR: &str = "\
frr defaults traditional
hostname tor
!
router bgp 65000
 bgp router-id 192.168.10.200
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
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
  network 10.10.1.0/24
  maximum-paths 4
 exit-address-family
exit
";

const SEED: &str = "
name: frrseed
nodes:
  tor:
    kind: frr
    config: tor.conf
    sysctls: { net.ipv4.ip_forward: '1' }
    interfaces: { eth1: [192.168.10.200/24], eth2: [192.168.20.200/24] }
  sw1: { kind: bridge }
  node1: { interfaces: { eth1: [192.168.10.100/24] }, routes: ['192.168.20.0/24 via 192.168.10.200'] }
  node2: { interfaces: { eth1: [192.168.10.101/24] }, routes: ['192.168.20.0/24 via 192.168.10.200'] }
  node3: { interfaces: { eth1: [192.168.10.102/24] }, routes: ['192.168.20.0/24 via 192.168.10.200'] }
  node4: { interfaces: { eth1: [192.168.20.100/24] }, routes: ['192.168.10.0/24 via 192.168.20.200'] }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [node2:eth1, sw1:node2]
  - endpoints: [node3:eth1, sw1:node3]
  - endpoints: [tor:eth2, node4:eth1]
";

const NODES: [(&str, &str, &str); 4] = [
    ("node1", "192.168.10.100", "172.20.0.0/24"),
    ("node2", "192.168.10.101", "172.20.1.0/24"),
    ("node3", "192.168.10.102", "172.20.2.0/24"),
    ("node4", "192.168.20.100", "172.20.3.0/24"),
];

fn seed_node(pod_cidr: &str, id: &str, gr: Option<u16>) -> tests::harness::HarnessConfig {
    let mut p = peer("tor", "192.168.10.200", 65000);
    p.ebgp_multihop = Some(2);
    if let Some(t) = gr {
        p = with_gr(p, t);
    }
    harness_config(
        65001,
        id,
        vec![p],
        vec![route(pod_cidr), route("172.16.1.1/32")],
    )
}

/// RFC 4271 (eBGP, 2-octet AS, FRR `remote-as external`), RFC 1997 / RFC 8092 (communities),
/// multipath: the field's seed lab with our speaker on the four nodes.
///
/// ```text
///                  tor (FRR, AS 65000, maximum-paths 4, as-path multipath-relax)
///          eth1 192.168.10.200/24   eth2 192.168.20.200/24
///       ┌───────── sw1 ─────────┐          │
///    node1        node2       node3      node4      (bgp-harness, AS 65001, hold 9 s)
///    .10.100      .10.101     .10.102    192.168.20.100 (ebgp-multihop 2)
///    172.20.0/24  172.20.1/24 172.20.2/24 172.20.3/24   + all four: 172.16.1.1/32
/// ```
#[test]
fn four_speakers_advertise_pod_cidrs_and_a_shared_address_that_the_tor_installs_as_ecmp() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::up(
        topology(SEED, SEED_TOR),
        LabOptions::with_prefix(unique_prefix("fs")),
    )
    .unwrap();
    let mut hs = Vec::new();
    for (node, id, cidr) in NODES {
        let mut cfg = seed_node(cidr, id, None);
        if node == "node1" {
            let r = &mut cfg.routes[0].attributes;
            r.med = Some(50);
            r.communities = vec![Community::new(65001, 100), Community::NOPEER];
            r.large_communities = vec![LargeCommunity::new(65001, 1, 2)];
        }
        hs.push(start(&mut lab, node, cfg));
    }
    for h in &hs {
        let t = h.wait_established("tor", Duration::from_secs(20)).unwrap();
        eprintln!(
            "{}: Established {:.2} s after the process started",
            h.node,
            t.as_secs_f64()
        );
    }
    // FRR sees four Established neighbours.
    wait(
        "four Established sessions on FRR",
        Duration::from_secs(10),
        |last| {
            let s = lab.frr_neighbor_states("tor").ok()?;
            *last = format!("{s:?}");
            (s.values().filter(|v| *v == "Established").count() == 4).then_some(())
        },
    );
    let t0 = hs.iter().map(|h| h.started_at()).max().unwrap();
    // The /32 from four nodes: one route, four next hops, in the tor's kernel.
    let gws = wait(
        "4-way ECMP for 172.16.1.1 in the tor's kernel",
        Duration::from_secs(10),
        |last| {
            let g = gateways(&lab, "tor", "172.16.1.1");
            *last = format!("{g:?}");
            g.filter(|g| g.len() == 4)
        },
    );
    eprintln!(
        "ECMP in the kernel {:.2} s after the last speaker started",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        gws,
        ips(&[
            "192.168.10.100",
            "192.168.10.101",
            "192.168.10.102",
            "192.168.20.100"
        ])
    );
    let paths = frr_paths(&lab, "tor", "172.16.1.1/32");
    assert_eq!(paths.len(), 4, "{paths:?}");
    assert!(
        paths.iter().all(|p| p["aspath"]["string"] == "65001"),
        "{paths:?}"
    );
    assert_eq!(
        paths
            .iter()
            .filter(|p| p["multipath"] == true || p["bestpath"]["overall"] == true)
            .count(),
        4
    );
    // Each PodCIDR: AS path 65001 and the node as next hop, in FRR and in the kernel.
    for (_, id, cidr) in NODES {
        let paths = frr_paths(&lab, "tor", cidr);
        assert_eq!(paths.len(), 1, "{cidr}: {paths:?}");
        assert_eq!(paths[0]["aspath"]["string"], "65001");
        assert_eq!(paths[0]["nexthops"][0]["ip"], id, "{cidr}: {paths:?}");
        let g = wait(cidr, Duration::from_secs(5), |_| {
            gateways(&lab, "tor", cidr)
        });
        assert_eq!(g, ips(&[id]));
    }
    // node1's attributes as FRR shows them.
    let p = &frr_paths(&lab, "tor", "172.20.0.0/24")[0];
    assert_eq!(p["metric"], 50, "{p}");
    assert_eq!(p["community"]["string"], "65001:100 no-peer", "{p}");
    assert_eq!(p["largeCommunity"]["string"], "65001:1:2", "{p}");
    assert_eq!(p["origin"], "IGP");

    // What FRR advertises reaches our RIBs: its network, and the other nodes' PodCIDRs (in
    // the Adj-RIB-In; not usable, since their path holds our own AS 65001).
    let h1 = &hs[0];
    let loc = wait(
        "10.10.1.0/24 in node1's Loc-RIB",
        Duration::from_secs(10),
        |last| {
            let v = h1.loc_rib("ipv4-unicast").ok()?;
            *last = format!("{v:?}");
            find(&v, "10.10.1.0/24").first().map(|r| (*r).clone())
        },
    );
    assert_eq!(loc["next_hop"], "192.168.10.200");
    assert_eq!(loc["attrs"]["as_path"], "65000");
    assert_eq!(loc["peer"], "tor");
    let inn = wait(
        "the other PodCIDRs in node1's Adj-RIB-In",
        Duration::from_secs(10),
        |_| {
            let v = h1.adj_rib_in("tor", "ipv4-unicast").ok()?;
            (!find(&v, "172.20.3.0/24").is_empty()).then_some(v)
        },
    );
    let other = find(&inn, "172.20.3.0/24")[0];
    assert_eq!(other["attrs"]["as_path"], "65000 65001");
    assert_eq!(other["eligible"], false);
    let st = h1.peer("tor").unwrap();
    assert_eq!(st["hold_time"], 9);
    assert_eq!(st["keepalive"], 3);
    assert_eq!(st["counts"][0]["advertised"], 2);

    // Withdrawals leave FRR's table and the kernel.
    let t = Instant::now();
    h1.request(json!({"cmd": "withdraw", "prefixes": ["172.16.1.1/32"]}))
        .unwrap();
    wait(
        "3-way ECMP after node1 withdrew",
        Duration::from_secs(5),
        |last| {
            let g = gateways(&lab, "tor", "172.16.1.1");
            *last = format!("{g:?}");
            g.filter(|g| g.len() == 3)
        },
    );
    eprintln!(
        "a withdrawn path left the kernel in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    h1.request(json!({"cmd": "withdraw", "prefixes": ["172.20.0.0/24"]}))
        .unwrap();
    wait(
        "172.20.0.0/24 gone from FRR and the kernel",
        Duration::from_secs(5),
        |_| {
            (frr_paths(&lab, "tor", "172.20.0.0/24").is_empty()
                && gateways(&lab, "tor", "172.20.0.0/24").is_none())
            .then_some(())
        },
    );
    // Re-announced with new attributes: FRR shows the new MED.
    let mut r = route("172.20.0.0/24");
    r.attributes.med = Some(70);
    h1.request(json!({"cmd": "announce", "routes": [r]}))
        .unwrap();
    wait("the re-announced route", Duration::from_secs(5), |_| {
        frr_paths(&lab, "tor", "172.20.0.0/24")
            .first()
            .filter(|p| p["metric"] == 70)
            .map(|_| ())
    });
    // A route refresh from FRR (RFC 2918, enhanced per RFC 7313) is answered with the whole
    // Adj-RIB-Out between BoRR and EoRR; FRR keeps the route, fresh.
    let h2 = &hs[1];
    let before = h2.peer("tor").unwrap()["messages_sent"].as_u64().unwrap();
    lab.vtysh("tor", "clear bgp ipv4 unicast 192.168.10.101 soft in")
        .unwrap();
    wait(
        "our answer to the route refresh",
        Duration::from_secs(5),
        |last| {
            let sent = h2.peer("tor").ok()?["messages_sent"].as_u64()?;
            *last = format!("{before} -> {sent}");
            (sent >= before + 3).then_some(())
        },
    );
    let p = wait("172.20.1.0/24 still on FRR", Duration::from_secs(5), |_| {
        frr_paths(&lab, "tor", "172.20.1.0/24").first().cloned()
    });
    assert_ne!(p["stale"], true, "{p}");
    // Removing the peer: FRR gets our Cease with the shutdown communication.
    h1.request(json!({"cmd": "remove-peer", "peer": "tor", "communication": "node1 drained"}))
        .unwrap();
    let n = wait("FRR to see the shutdown", Duration::from_secs(5), |last| {
        let v = lab
            .vtysh_json("tor", "show bgp neighbors 192.168.10.100 json")
            .ok()?;
        let n = v["192.168.10.100"].clone();
        *last = n.to_string();
        (n["bgpState"] != "Established").then_some(n)
    });
    let text = n.to_string();
    assert!(
        text.contains("node1 drained") || text.contains("Administrative Shutdown"),
        "{text}"
    );
}

const IBGP_TOR: &str = "\
frr defaults traditional
hostname tor
!
router bgp 4200000000
 bgp router-id 10.0.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.1.11 remote-as internal
 neighbor 10.0.1.11 timers connect 2
 neighbor fd00:1::12 remote-as external
 neighbor fd00:1::12 timers connect 2
 neighbor fd00:1::12 capability extended-nexthop
 neighbor 10.0.1.13 remote-as 65003
 neighbor 10.0.1.13 timers connect 2
 !
 address-family ipv4 unicast
  network 10.10.1.0/24
  neighbor fd00:1::12 activate
 exit-address-family
 address-family ipv6 unicast
  network fd00:99::/64
  neighbor fd00:1::12 activate
  neighbor 10.0.1.13 activate
 exit-address-family
exit
";

const IBGP: &str = "
name: frribgp
nodes:
  tor:
    kind: frr
    config: tor.conf
    sysctls: { net.ipv4.ip_forward: '1', net.ipv6.conf.all.forwarding: '1' }
    interfaces: { eth1: [10.0.1.1/24, 'fd00:1::1/64'] }
  sw1: { kind: bridge }
  node1: { interfaces: { eth1: [10.0.1.11/24] } }
  node2: { interfaces: { eth1: [10.0.1.12/24, 'fd00:1::12/64'] } }
  node3: { interfaces: { eth1: [10.0.1.13/24, 'fd00:1::13/64'] } }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
  - endpoints: [node2:eth1, sw1:node2]
  - endpoints: [node3:eth1, sw1:node3]
";

/// RFC 4271 iBGP (LOCAL_PREF), RFC 6793 (4-octet ASNs), RFC 4760 (IPv6 over IPv4 and IPv4 over
/// IPv6 sessions), RFC 8950 (IPv4 prefixes with an IPv6 next hop), FRR `remote-as internal`,
/// `external` and an explicit AS.
///
/// ```text
///                      tor (FRR, AS 4200000000) 10.0.1.1, fd00:1::1
///       ┌──────────────────────── sw1 ───────────────────────┐
///    node1 10.0.1.11            node2 fd00:1::12              node3 10.0.1.13
///    iBGP AS 4200000000         eBGP AS 4200000002            eBGP AS 65003 (explicit)
///    172.21.1.0/24 LP 300       IPv6 session, extended NH     IPv4 session
///                               172.21.2.0/24, fd00:22::/64   172.21.3.0/24, fd00:23::/64
/// ```
#[test]
fn ibgp_four_octet_asns_and_both_address_families_on_either_session() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::up(
        topology(IBGP, IBGP_TOR),
        LabOptions::with_prefix(unique_prefix("fi")),
    )
    .unwrap();
    let mut lp = route("172.21.1.0/24");
    lp.attributes.local_pref = Some(300);
    let n1 = start(
        &mut lab,
        "node1",
        harness_config(
            4_200_000_000,
            "10.0.1.11",
            vec![peer("tor", "10.0.1.1", 4_200_000_000)],
            vec![lp],
        ),
    );
    let mut p2 = peer("tor", "fd00:1::1", 4_200_000_000);
    p2.extended_next_hop = true;
    let n2 = start(
        &mut lab,
        "node2",
        harness_config(
            4_200_000_002,
            "10.0.1.12",
            vec![p2],
            vec![route("172.21.2.0/24"), route("fd00:22::/64")],
        ),
    );
    let n3 = start(
        &mut lab,
        "node3",
        harness_config(
            65003,
            "10.0.1.13",
            vec![peer("tor", "10.0.1.1", 0)],
            vec![route("172.21.3.0/24"), route("fd00:23::/64")],
        ),
    );
    for h in [&n1, &n2, &n3] {
        let t = h.wait_established("tor", Duration::from_secs(20)).unwrap();
        eprintln!(
            "{}: Established {:.2} s after the process started",
            h.node,
            t.as_secs_f64()
        );
    }
    let nb = lab.vtysh_json("tor", "show bgp neighbors json").unwrap();
    assert_eq!(nb["10.0.1.11"]["remoteAs"], 4_200_000_000u32);
    assert_eq!(
        nb["10.0.1.11"]["nbrInternalLink"], true,
        "{}",
        nb["10.0.1.11"]
    );
    assert_eq!(nb["fd00:1::12"]["remoteAs"], 4_200_000_002u32);
    assert_eq!(nb["10.0.1.13"]["remoteAs"], 65003);
    // iBGP: empty AS path, LOCAL_PREF 300.
    let p = wait("172.21.1.0/24 on FRR", Duration::from_secs(10), |_| {
        frr_paths(&lab, "tor", "172.21.1.0/24").first().cloned()
    });
    assert_eq!(p["locPrf"], 300, "{p}");
    assert_eq!(p["aspath"]["length"], 0, "{p}");
    assert_eq!(p["nexthops"][0]["ip"], "10.0.1.11");
    // IPv4 over the IPv6 session with an IPv6 next hop (RFC 8950): in the kernel via inet6.
    let p = wait("172.21.2.0/24 on FRR", Duration::from_secs(10), |_| {
        frr_paths(&lab, "tor", "172.21.2.0/24").first().cloned()
    });
    assert_eq!(p["aspath"]["string"], "4200000002");
    assert_eq!(p["nexthops"][0]["ip"], "fd00:1::12", "{p}");
    let g = wait(
        "172.21.2.0/24 in the kernel",
        Duration::from_secs(10),
        |_| gateways(&lab, "tor", "172.21.2.0/24"),
    );
    assert!(g.iter().all(|g| g.is_ipv6()), "{g:?}");
    // IPv6 over the IPv6 session and over the IPv4 one, each with a real IPv6 next hop.
    let p = wait("fd00:22::/64 on FRR", Duration::from_secs(10), |_| {
        frr_paths(&lab, "tor", "fd00:22::/64").first().cloned()
    });
    assert_eq!(p["nexthops"][0]["ip"], "fd00:1::12", "{p}");
    let p = wait("fd00:23::/64 on FRR", Duration::from_secs(10), |_| {
        frr_paths(&lab, "tor", "fd00:23::/64").first().cloned()
    });
    assert_eq!(p["aspath"]["string"], "65003");
    assert_eq!(
        p["nexthops"][0]["ip"], "fd00:1::13",
        "never an IPv4-mapped next hop: {p}"
    );
    wait(
        "fd00:23::/64 in the kernel",
        Duration::from_secs(10),
        |_| gateways(&lab, "tor", "fd00:23::/64"),
    );
    // Routes FRR advertises reach our Loc-RIBs: node2 (another AS) uses node3's and FRR's.
    let v = wait("node2's Loc-RIB", Duration::from_secs(10), |_| {
        let v = n2.loc_rib("ipv4-unicast").ok()?;
        (!find(&v, "172.21.3.0/24").is_empty() && !find(&v, "10.10.1.0/24").is_empty()).then_some(v)
    });
    assert_eq!(
        find(&v, "172.21.3.0/24")[0]["attrs"]["as_path"],
        "4200000000 65003"
    );
    let v6 = wait("node2's IPv6 Loc-RIB", Duration::from_secs(10), |_| {
        let v = n2.loc_rib("ipv6-unicast").ok()?;
        (!find(&v, "fd00:99::/64").is_empty()).then_some(v)
    });
    assert!(!find(&v6, "fd00:23::/64").is_empty(), "{v6:?}");
    // node1 (iBGP) gets them with FRR's LOCAL_PREF.
    let v = wait("node1's Loc-RIB", Duration::from_secs(10), |_| {
        let v = n1.loc_rib("ipv4-unicast").ok()?;
        find(&v, "172.21.3.0/24").first().map(|r| (*r).clone())
    });
    assert_eq!(v["attrs"]["local_pref"], 100, "{v}");
    assert_eq!(v["attrs"]["as_path"], "65003");
}

const PAIR_TOR: &str = "\
frr defaults traditional
hostname tor
!
router bgp 65000
 bgp router-id 192.168.10.200
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp graceful-restart restart-time 30
 neighbor 192.168.10.100 remote-as 65001
 neighbor 192.168.10.100 timers connect 2
 neighbor 192.168.10.101 remote-as 65001
 neighbor 192.168.10.101 timers connect 2
 neighbor 192.168.10.101 password right-key
 neighbor 192.168.10.102 remote-as 65001
 neighbor 192.168.10.102 timers connect 2
 neighbor 192.168.10.102 password right-key
 neighbor 192.168.10.103 remote-as 65001
 neighbor 192.168.10.103 timers connect 2
 neighbor 192.168.10.103 ttl-security hops 1
 !
 address-family ipv4 unicast
  network 10.10.1.0/24
 exit-address-family
exit
";

const PAIR: &str = "
name: frrpair
nodes:
  tor:
    kind: frr
    config: tor.conf
    interfaces: { eth1: [192.168.10.200/24] }
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

/// RFC 4724 and RFC 8538, both roles: SIGKILL of our process while FRR keeps our routes stale
/// (never leaving its kernel) until our End-of-RIB; then FRR's bgpd killed while we keep its
/// routes stale until its End-of-RIB.
///
/// ```text
///    tor (FRR, AS 65000, bgp graceful-restart) 192.168.10.200
///       └── sw1 ── node1 192.168.10.100 (bgp-harness, AS 65001, restart time 30 s)
/// ```
#[test]
fn graceful_restart_keeps_routes_through_a_sigkill_of_either_side() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::up(
        topology(PAIR, PAIR_TOR),
        LabOptions::with_prefix(unique_prefix("fg")),
    )
    .unwrap();
    let cfg = harness_config(
        65001,
        "192.168.10.100",
        vec![with_gr(peer("tor", "192.168.10.200", 65000), 30)],
        vec![route("172.20.0.0/24")],
    );
    let mut h = start(&mut lab, "node1", cfg);
    h.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait(
        "the route in the tor's kernel",
        Duration::from_secs(10),
        |_| gateways(&lab, "tor", "172.20.0.0/24"),
    );
    let nb = lab
        .vtysh_json("tor", "show bgp neighbors 192.168.10.100 json")
        .unwrap();
    assert!(nb.to_string().contains("gracefulRestart"), "{nb}");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_kernel(lab.namespace("tor"), "172.20.0.0/24", stop.clone());
    let killed = Instant::now();
    h.kill(&mut lab).unwrap();
    let p = wait(
        "FRR to mark our route stale",
        Duration::from_secs(10),
        |last| {
            let p = frr_paths(&lab, "tor", "172.20.0.0/24");
            *last = format!("{p:?}");
            p.first().filter(|p| p["stale"] == true).cloned()
        },
    );
    eprintln!(
        "stale on FRR {:.2} s after SIGKILL",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(p["valid"], true);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        gateways(&lab, "tor", "172.20.0.0/24").is_some(),
        "kept in the kernel while we are gone"
    );
    h.restart(&mut lab, true).unwrap();
    let up = h.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait(
        "no stale path after our End-of-RIB",
        Duration::from_secs(10),
        |last| {
            let p = frr_paths(&lab, "tor", "172.20.0.0/24");
            *last = format!("{p:?}");
            p.first().filter(|p| p["stale"] != true).map(|_| ())
        },
    );
    eprintln!(
        "back {:.2} s after restart, {:.2} s after SIGKILL; nothing stale",
        up.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    let (samples, missing) = watcher.join().unwrap();
    eprintln!(
        "the tor's kernel had the route in {} of {samples} samples (every 100 ms)",
        samples - missing
    );
    assert!(samples > 20, "{samples} samples");
    assert_eq!(
        missing, 0,
        "the route left the tor's kernel in {missing} of {samples} samples"
    );

    // The other role: FRR's bgpd dies; we keep its route stale, then take its new table.
    wait(
        "10.10.1.0/24 in our Loc-RIB",
        Duration::from_secs(10),
        |_| {
            let v = h.loc_rib("ipv4-unicast").ok()?;
            (!find(&v, "10.10.1.0/24").is_empty()).then_some(())
        },
    );
    let bgpd = lab
        .processes("tor")
        .iter()
        .find(|p| p.name == "bgpd")
        .map(|p| p.pid)
        .unwrap();
    lab.signal(bgpd, nix::sys::signal::Signal::SIGKILL).unwrap();
    let stale = wait(
        "FRR's route kept stale by us",
        Duration::from_secs(15),
        |last| {
            let v = h.loc_rib("ipv4-unicast").ok()?;
            *last = format!("{v:?}");
            find(&v, "10.10.1.0/24")
                .first()
                .filter(|r| r["stale"] == true)
                .map(|r| (*r).clone())
        },
    );
    assert_eq!(stale["best"], true);
    let dir = lab.node_dir("tor").unwrap();
    frr_lab::daemons::start_frr_daemon(&mut lab, "tor", &dir, "bgpd").unwrap();
    wait("FRR's route fresh again", Duration::from_secs(30), |last| {
        let v = h.loc_rib("ipv4-unicast").ok()?;
        *last = format!("{v:?}");
        find(&v, "10.10.1.0/24")
            .first()
            .filter(|r| r["stale"] == false)
            .map(|_| ())
    });
}

/// RFC 2385: TCP MD5 with the right key comes up (also through our listener), with a wrong
/// key it never does; RFC 5082 (GTSM) toward a neighbour with `ttl-security hops 1`.
///
/// ```text
///    tor (FRR, AS 65000) 192.168.10.200, password right-key toward .101 and .102
///       └── sw1 ── node2 .101 (key right-key, listens on 179 too)
///              ├── node3 .102 (key wrong-key)
///              └── node4 .103 (GTSM, 1 hop: TTL 255 out, at least 255 in)
/// ```
#[test]
fn tcp_md5_with_the_right_key_establishes_and_with_a_wrong_key_does_not() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::up(
        topology(PAIR, PAIR_TOR),
        LabOptions::with_prefix(unique_prefix("fm")),
    )
    .unwrap();
    let mut good = peer("tor", "192.168.10.200", 65000);
    good.password = Some("right-key".into());
    let mut cfg = harness_config(
        65001,
        "192.168.10.101",
        vec![good],
        vec![route("172.20.1.0/24")],
    );
    cfg.instance.listen_port = Some(179);
    let n2 = start(&mut lab, "node2", cfg);
    let mut bad = peer("tor", "192.168.10.200", 65000);
    bad.password = Some("wrong-key".into());
    let n3 = start(
        &mut lab,
        "node3",
        harness_config(
            65001,
            "192.168.10.102",
            vec![bad],
            vec![route("172.20.2.0/24")],
        ),
    );
    let t = n2.wait_established("tor", Duration::from_secs(20)).unwrap();
    eprintln!(
        "MD5 session Established {:.2} s after start",
        t.as_secs_f64()
    );
    wait(
        "the signed session's route on FRR",
        Duration::from_secs(10),
        |_| frr_paths(&lab, "tor", "172.20.1.0/24").first().cloned(),
    );
    let mut gtsm = peer("tor", "192.168.10.200", 65000);
    gtsm.ttl_security = Some(1);
    let n4 = start(
        &mut lab,
        "node4",
        harness_config(
            65001,
            "192.168.10.103",
            vec![gtsm],
            vec![route("172.20.4.0/24")],
        ),
    );
    n4.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait(
        "the GTSM session's route on FRR",
        Duration::from_secs(10),
        |_| frr_paths(&lab, "tor", "172.20.4.0/24").first().cloned(),
    );
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_ne!(frr_state(&lab, "tor", "192.168.10.102"), "Established");
        assert_ne!(n3.peer("tor").unwrap()["state"], "established");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(frr_paths(&lab, "tor", "172.20.2.0/24").is_empty());
}

/// RFC 4271 §6.5 (hold timer), 9 s / 3 s as in the seed lab: the link of node1 is cut (its
/// veth end on the switch set down, so the tor's own interface stays up and only the hold
/// timer can tell); FRR drops the session and the route; the link comes back and so does the
/// session.
///
/// ```text
///    tor (FRR, AS 65000) ── sw1 ──X── node1 (bgp-harness, AS 65001, hold 9 s)
/// ```
#[test]
fn a_cut_link_drops_the_session_after_the_hold_time_and_it_comes_back_with_the_link() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::up(
        topology(PAIR, PAIR_TOR),
        LabOptions::with_prefix(unique_prefix("fl")),
    )
    .unwrap();
    let h = start(
        &mut lab,
        "node1",
        harness_config(
            65001,
            "192.168.10.100",
            vec![peer("tor", "192.168.10.200", 65000)],
            vec![route("172.20.0.0/24")],
        ),
    );
    h.wait_established("tor", Duration::from_secs(20)).unwrap();
    wait(
        "the route in the tor's kernel",
        Duration::from_secs(10),
        |_| gateways(&lab, "tor", "172.20.0.0/24"),
    );
    let cut = Instant::now();
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node1", "down"])
        .unwrap();
    wait("FRR to drop the session", Duration::from_secs(15), |last| {
        let s = frr_state(&lab, "tor", "192.168.10.100");
        *last = s.clone();
        (s != "Established").then_some(())
    });
    let after = cut.elapsed();
    eprintln!(
        "FRR dropped the session {:.2} s after the cut",
        after.as_secs_f64()
    );
    assert_hold_time(after);
    wait(
        "the route gone from FRR and the kernel",
        Duration::from_secs(3),
        |_| {
            (frr_paths(&lab, "tor", "172.20.0.0/24").is_empty()
                && gateways(&lab, "tor", "172.20.0.0/24").is_none())
            .then_some(())
        },
    );
    wait(
        "our side to see the hold timer expire",
        Duration::from_secs(5),
        |last| {
            let p = h.peer("tor").ok()?;
            *last = p.to_string();
            p["last_error"]
                .as_str()
                .filter(|e| e.contains("Hold Timer Expired"))
                .map(|_| ())
        },
    );
    let restored = Instant::now();
    lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node1", "up"])
        .unwrap();
    wait("the session back", Duration::from_secs(20), |_| {
        (frr_state(&lab, "tor", "192.168.10.100") == "Established").then_some(())
    });
    wait(
        "the route back in the kernel",
        Duration::from_secs(10),
        |_| gateways(&lab, "tor", "172.20.0.0/24"),
    );
    eprintln!(
        "session and route back {:.2} s after the link",
        restored.elapsed().as_secs_f64()
    );
}
