//! `lbspeaker run` end to end: the field's seed lab with this build's lbspeaker on every node
//! (one shared manifest directory), checked on FRR and the tor's kernel.
//!
//! ```text
//!                  tor (FRR 8.4, AS 65000)                 [tor2 (FRR, AS 65100): edits test]
//!          eth1 192.168.10.200/24   eth2 192.168.20.200/24
//!       ┌───────── sw1 ─────────┐          │
//!    node1        node2       node3      node4        lbspeaker run, AS 65001, hold 9 s
//!    .10.100      .10.101     .10.102    192.168.20.100 (ebgpMultihop 2)
//! ```
//!
//! - the seed scenario: what the field saw (four sessions, the PodCIDRs, 172.16.1.1 as ECMP in
//!   the tor's kernel, End-of-RIB from every node), the CLI, metrics and status files;
//! - manifest edits (a broken one, new advertisement, changed timers, removed peer, new pool)
//!   converge without restarting a daemon or resetting an unrelated session, and two peers of
//!   one node get different routes (per-peer advertisements, asserted on FRR);
//! - `externalTrafficPolicy: Local`: only nodes with a ready endpoint advertise, withdrawn when
//!   the last endpoint goes;
//! - SIGTERM and restart of every daemon with graceful restart: the tor's kernel keeps every
//!   route throughout, and the service keeps its address.

#![allow(clippy::unwrap_used)]

mod lab;

use std::time::{Duration, Instant};

use frr_lab::{Lab, NodeKind, Topology, daemons, lab_available};
use lab::*;
use nix::sys::signal::Signal;
use serde_json::Value;

#[test]
fn the_seed_lab_with_lbspeaker_on_every_node_shows_what_the_field_saw() {
    if !lab_available() {
        return;
    }
    let lab = up("rs", seed());
    let last_start = lbspeaker_pids(&lab)
        .values()
        .filter_map(|p| lab.started_at(*p))
        .max()
        .unwrap();
    all_established(&lab, "tor", 4);
    let sessions = last_start.elapsed();
    for (cidr, (_, via)) in POD_CIDRS.iter().zip(NODES) {
        wait_kernel(&lab, cidr, &[via]);
    }
    let pods = last_start.elapsed();
    wait_kernel(&lab, SERVICE, &ALL_NODES);
    let ecmp = last_start.elapsed();
    eprintln!(
        "from the last lbspeaker's start: 4 sessions {:.2} s, PodCIDRs in the tor's kernel {:.2} s, {SERVICE} 4-way ECMP {:.2} s",
        sessions.as_secs_f64(),
        pods.as_secs_f64(),
        ecmp.as_secs_f64()
    );

    // The tor: each PodCIDR from its node with AS path 65001; the service from all four.
    for (cidr, (_, via)) in POD_CIDRS.iter().zip(NODES) {
        let paths = bgp_paths(&lab, "tor", cidr);
        assert_eq!(path_peers(&paths), [via], "{cidr}");
        assert_eq!(paths[0]["aspath"]["string"], "65001");
        assert_eq!(paths[0]["origin"], "IGP");
    }
    assert_eq!(
        path_peers(&bgp_paths(&lab, "tor", "172.16.1.1/32")),
        ALL_NODES
    );
    // End-of-RIB from every node, graceful restart negotiated.
    wait("End-of-RIB from every node", TIMEOUT, |last| {
        let n = neighbors(&lab, "tor");
        *last = format!("{n:?}");
        (n.len() == 4
            && n.values().all(|v| {
                v["gracefulRestartInfo"]["endOfRibRecv"]["ipv4Unicast"] == Value::Bool(true)
            }))
        .then_some(())
    });
    for n in neighbors(&lab, "tor").values() {
        assert_eq!(n["bgpTimerHoldTimeMsecs"], 9000);
        assert_eq!(
            n["gracefulRestartInfo"]["timers"]["receivedRestartTimer"],
            15
        );
    }

    // A node's view: the CLI against its own daemon.
    let peers = lbspeaker_json(&lab, "node1", &["bgp", "peers"]);
    let p = &peers[0];
    assert_eq!(
        (
            p["node"].as_str(),
            p["localAsn"].as_u64(),
            p["peerAsn"].as_u64(),
            p["peerAddress"].as_str(),
            p["sessionState"].as_str()
        ),
        (
            Some("node1"),
            Some(65001),
            Some(65000),
            Some("192.168.10.200"),
            Some("established")
        )
    );
    wait(
        "node1 to advertise its PodCIDR and the service",
        TIMEOUT,
        |last| {
            let p = lbspeaker_json(&lab, "node1", &["bgp", "peers"]);
            *last = p.to_string();
            (p[0]["families"][0]["advertised"] == 2).then_some(())
        },
    );
    let table = lab
        .exec_ok("node1", "lbspeaker", &["bgp", "peers"])
        .unwrap();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Node",
            "Local",
            "AS",
            "Peer",
            "AS",
            "Peer",
            "Address",
            "Session",
            "State",
            "Uptime",
            "Family",
            "Received",
            "Advertised"
        ]
    );
    let routes = lbspeaker_json(
        &lab,
        "node2",
        &["bgp", "routes", "advertised", "ipv4", "unicast"],
    );
    let mut adv: Vec<(String, String)> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["prefix"].as_str().unwrap().to_owned(),
                r["nextHop"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    adv.sort();
    assert_eq!(
        adv,
        [
            ("172.16.1.1/32".into(), "192.168.10.101".into()),
            ("172.20.1.0/24".into(), "192.168.10.101".into())
        ]
    );
    let services = lbspeaker_json(&lab, "node3", &["ipam", "services"]);
    assert_eq!(services[0]["addresses"][0], SERVICE);
    assert_eq!(services[0]["reason"], "satisfied");
    assert_eq!(service_ips(&lab, "default", "webpod"), [SERVICE]);
    let policies = lbspeaker_json(&lab, "node4", &["bgp", "route-policies"]);
    assert_eq!(policies.as_array().unwrap().len(), 2, "{policies}");
    let status = lbspeaker_json(&lab, "node2", &["status"]);
    assert_eq!(status["ready"], true);
    assert_eq!(status["problems"], Value::Array(vec![]), "{status}");

    // Metrics and health from inside a node's namespace.
    let metrics = metrics(&lab, "node1");
    assert!(
        metrics.contains(
            "lbspeaker_bgp_session_state{node=\"node1\",instance=\"instance-65001\",peer=\"tor-switch\",peer_address=\"192.168.10.200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("lbspeaker_bgp_advertised_routes{node=\"node1\",instance=\"instance-65001\",peer=\"tor-switch\",afi=\"ipv4\",safi=\"unicast\"} 2"));
    for path in ["healthz", "readyz"] {
        lab.exec_ok(
            "node1",
            "curl",
            &["-sf", &format!("http://127.0.0.1:9962/{path}")],
        )
        .unwrap();
    }

    // Status written back: each node's CiliumBGPNodeConfig, the operator's conditions.
    wait("node4's CiliumBGPNodeConfig", TIMEOUT, |last| {
        let path = lab
            .manifest_dir()
            .join("status/ciliumbgpnodeconfigs/node4.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        *last = text.clone();
        let v: Value = serde_saphyr::from_str(&text).unwrap_or(Value::Null);
        let peer = &v["status"]["bgpInstances"][0]["peers"][0];
        (peer["peeringState"] == "established"
            && peer["routeCount"][0]["advertised"] == 2
            && peer["timers"]["appliedHoldTimeSeconds"] == 9
            && peer["establishedTime"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')))
        .then_some(())
    });
    let cc = std::fs::read_to_string(
        lab.manifest_dir()
            .join("status/ciliumbgpclusterconfigs/cilium-bgp.yaml"),
    )
    .unwrap();
    assert!(cc.contains("cilium.io/NoMatchingNode"), "{cc}");
    assert!(cc.contains("selects node1, node2, node3, node4"), "{cc}");
    lab.down().unwrap();
}

const TOR2_CONF: &str = "frr defaults traditional\nhostname tor2\nlog syslog informational\n!\nrouter bgp 65100\n bgp router-id 192.168.10.201\n no bgp ebgp-requires-policy\n bgp graceful-restart\n bgp bestpath as-path multipath-relax\n neighbor NODES peer-group\n neighbor NODES remote-as external\n neighbor NODES ebgp-multihop 2\n neighbor NODES timers 3 9\n neighbor 192.168.10.100 peer-group NODES\n neighbor 192.168.10.101 peer-group NODES\n neighbor 192.168.10.102 peer-group NODES\n neighbor 192.168.20.100 peer-group NODES\n !\n address-family ipv4 unicast\n  maximum-paths 4\n exit-address-family\nexit\n";

/// The tor2 peer of every node, its settings and what it is sent: webpod's address only,
/// with a community.
const TOR2_MANIFESTS: &str = "apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata: {name: tor2-peer}\nspec:\n  timers: {holdTimeSeconds: 9, keepAliveTimeSeconds: 3}\n  ebgpMultihop: 2\n  families:\n  - afi: ipv4\n    safi: unicast\n    advertisements: {matchLabels: {advertise: tor2}}\n---\napiVersion: cilium.io/v2\nkind: CiliumBGPAdvertisement\nmetadata:\n  name: tor2-services\n  labels: {advertise: tor2}\nspec:\n  advertisements:\n  - advertisementType: Service\n    service: {addresses: [LoadBalancerIP]}\n    selector: {matchLabels: {app: webpod}}\n    attributes: {communities: {standard: [\"65001:42\"]}}\n";

const TOR2_PEER: &str = "    - name: \"tor2\"\n      peerASN: 65100\n      peerAddress: 192.168.10.201\n      peerConfigRef:\n        name: \"tor2-peer\"\n";

fn with_tor2() -> Topology {
    let mut t = seed();
    let bgp = format!("{}{TOR2_PEER}", t.files["bgp.yaml"]);
    t.files.insert("bgp.yaml".into(), bgp);
    t.files.insert("tor2.yaml".into(), TOR2_MANIFESTS.into());
    t.manifests.push("tor2.yaml".into());
    t.files.insert("tor2.conf".into(), TOR2_CONF.into());
    let tor2 = frr_lab::Node {
        kind: NodeKind::Frr,
        config: Some("tor2.conf".into()),
        interfaces: [(
            "eth1".to_string(),
            vec!["192.168.10.201/24".parse().unwrap()],
        )]
        .into(),
        routes: vec!["192.168.20.0/24 via 192.168.10.200".parse().unwrap()],
        ..frr_lab::Node::default()
    };
    t.nodes.insert("tor2".into(), tor2);
    t.links
        .push(serde_saphyr::from_str("endpoints: [tor2:eth1, sw1:tor2]").unwrap());
    t
}

#[test]
fn manifest_edits_converge_without_restarts_or_resets_of_unrelated_sessions() {
    if !lab_available() {
        return;
    }
    let mut lab = up("re", with_tor2());
    let pids = lbspeaker_pids(&lab);
    let tor = converged(&lab);
    let tor2 = all_established(&lab, "tor2", 4);
    // Per-peer advertisements: tor2 gets only the service, with its community; the tor gets
    // the PodCIDRs and the service without it.
    wait("the service on tor2 from every node", TIMEOUT, |last| {
        let p = bgp_paths(&lab, "tor2", "172.16.1.1/32");
        *last = format!("{p:?}");
        (path_peers(&p) == ALL_NODES && p.iter().all(|x| communities(x) == "65001:42"))
            .then_some(())
    });
    for cidr in POD_CIDRS {
        assert!(
            bgp_paths(&lab, "tor2", cidr).is_empty(),
            "{cidr} leaked to tor2"
        );
    }
    assert!(
        bgp_paths(&lab, "tor", "172.16.1.1/32")
            .iter()
            .all(|p| communities(p).is_empty())
    );
    let unchanged = |lab: &Lab, router: &str, before: &std::collections::BTreeMap<String, u64>| {
        let now = sessions(lab, router);
        for (addr, c) in before {
            assert_eq!(
                now.get(addr).map(|(s, c)| (s.as_str(), *c)),
                Some(("Established", *c)),
                "{router}'s session with {addr} was reset"
            );
        }
    };

    // 0. A broken edit (keepalive above the hold time) is reported and changes nothing: the
    // previous version of the peer config stays in force.
    let bgp_ok = read_manifest(&lab, "bgp.yaml");
    write_manifest(
        &lab,
        "bgp.yaml",
        &bgp_ok.replace("keepAliveTimeSeconds: 3", "keepAliveTimeSeconds: 30"),
    );
    wait("the broken edit reported by every node", TIMEOUT, |last| {
        let problems: Vec<String> = NODES
            .iter()
            .map(|(n, _)| lbspeaker_json(&lab, n, &["status"])["problems"].to_string())
            .collect();
        *last = format!("{problems:?}");
        problems
            .iter()
            .all(|p| {
                p.contains("keepAliveTimeSeconds (30) must not exceed holdTimeSeconds (9)")
                    && p.contains("keeping the previous version")
            })
            .then_some(())
    });
    write_manifest(&lab, "bgp.yaml", &bgp_ok);
    wait("the problem gone", TIMEOUT, |_| {
        (lbspeaker_json(&lab, "node1", &["status"])["problems"] == Value::Array(vec![]))
            .then_some(())
    });
    unchanged(&lab, "tor", &tor);
    unchanged(&lab, "tor2", &tor2);

    // 1. A new advertisement: a community on the service toward the tor.
    let t = Instant::now();
    write_manifest(
        &lab,
        "extra-advertisement.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumBGPAdvertisement\nmetadata:\n  name: webpod-community\n  labels: {advertise: bgp}\nspec:\n  advertisements:\n  - advertisementType: Service\n    service: {addresses: [LoadBalancerIP]}\n    selector: {matchLabels: {app: webpod}}\n    attributes: {communities: {standard: [\"65001:77\"], wellKnown: [no-advertise]}}\n",
    );
    wait("the new community on the tor", TIMEOUT, |last| {
        let p = bgp_paths(&lab, "tor", "172.16.1.1/32");
        *last = format!("{:?}", p.iter().map(communities).collect::<Vec<_>>());
        (p.len() == 4 && p.iter().all(|x| communities(x) == "65001:77 no-advertise")).then_some(())
    });
    eprintln!(
        "new advertisement on the tor after {:.2} s",
        t.elapsed().as_secs_f64()
    );
    unchanged(&lab, "tor", &tor);
    unchanged(&lab, "tor2", &tor2);

    // 2. Changed timers of tor2's peer config: tor2's sessions reset with the new hold time,
    // the tor's are untouched.
    let t = Instant::now();
    let m = read_manifest(&lab, "tor2.yaml").replace(
        "holdTimeSeconds: 9, keepAliveTimeSeconds: 3",
        "holdTimeSeconds: 6, keepAliveTimeSeconds: 2",
    );
    write_manifest(&lab, "tor2.yaml", &m);
    wait("hold time 6 s on tor2", TIMEOUT, |last| {
        let n = neighbors(&lab, "tor2");
        *last = format!(
            "{:?}",
            n.values()
                .map(|v| (&v["bgpState"], &v["bgpTimerHoldTimeMsecs"]))
                .collect::<Vec<_>>()
        );
        (n.len() == 4
            && n.values().all(|v| {
                v["bgpState"] == "Established"
                    && v["bgpTimerHoldTimeMsecs"] == 6000
                    && v["connectionsEstablished"].as_u64() == Some(2)
            }))
        .then_some(())
    });
    eprintln!(
        "tor2's sessions back with the new timers after {:.2} s",
        t.elapsed().as_secs_f64()
    );
    unchanged(&lab, "tor", &tor);

    // 3. tor2 removed from the cluster config: its sessions end with a Cease, the tor's stay.
    let bgp = read_manifest(&lab, "bgp.yaml").replace(TOR2_PEER, "");
    write_manifest(&lab, "bgp.yaml", &bgp);
    wait(
        "tor2's sessions down and its routes gone",
        TIMEOUT,
        |last| {
            let s = sessions(&lab, "tor2");
            *last = format!("{s:?}");
            (s.values().all(|(st, _)| st != "Established")
                && bgp_paths(&lab, "tor2", "172.16.1.1/32").is_empty())
            .then_some(())
        },
    );
    for n in neighbors(&lab, "tor2").values() {
        let why = n["lastNotificationReason"].as_str().unwrap_or_default();
        assert!(why.contains("Cease"), "{why}");
    }
    unchanged(&lab, "tor", &tor);

    // 4. A new pool and a service it selects: the service gets its first address and the tor
    // routes it through every node.
    write_manifest(
        &lab,
        "pool2.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: pool2}\nspec:\n  allowFirstLastIPs: \"No\"\n  blocks: [{cidr: 172.16.2.0/24}]\n  serviceSelector: {matchLabels: {pool: two}}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web2\n  namespace: default\n  labels: {app: webpod, pool: two}\nspec:\n  selector: {app: web2}\n  ports: [{protocol: TCP, port: 8080}]\n  type: LoadBalancer\n",
    );
    let t = Instant::now();
    wait_kernel(&lab, "172.16.2.1", &ALL_NODES);
    eprintln!(
        "new pool's service in the tor's kernel after {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(service_ips(&lab, "default", "web2"), ["172.16.2.1"]);
    assert_eq!(service_ips(&lab, "default", "webpod"), [SERVICE]);
    unchanged(&lab, "tor", &tor);
    // No daemon was restarted.
    for (node, pid) in &pids {
        assert!(lab.is_running(*pid), "{node}'s lbspeaker restarted");
    }
    assert_eq!(lbspeaker_pids(&lab), pids);
    lab.down().unwrap();
}

#[test]
fn a_local_traffic_policy_service_is_advertised_only_where_a_ready_endpoint_is() {
    if !lab_available() {
        return;
    }
    let lab = up("rl", seed());
    let tor = converged(&lab);
    let webpod = read_manifest(&lab, "webpod.yaml").replace(
        "  type: LoadBalancer\n",
        "  type: LoadBalancer\n  externalTrafficPolicy: Local\n",
    );
    write_manifest(&lab, "webpod.yaml", &webpod);
    // Backends on node2..node4: node1 withdraws.
    let t = wait_kernel(&lab, SERVICE, &ALL_NODES[1..]);
    eprintln!("node1 withdrew {SERVICE} after {:.2} s", t.as_secs_f64());
    let adv = lbspeaker_json(
        &lab,
        "node1",
        &["bgp", "routes", "advertised", "ipv4", "unicast"],
    );
    assert!(!adv.to_string().contains("172.16.1.1"), "{adv}");

    // node4's backend stops being ready.
    let eps_file = "cluster/webpod-endpoints.yaml";
    let eps = read_manifest(&lab, eps_file).replace(
        "conditions: {ready: true, serving: true, terminating: false}\n  nodeName: node4",
        "conditions: {ready: false, serving: false, terminating: true}\n  nodeName: node4",
    );
    write_manifest(&lab, eps_file, &eps);
    wait_kernel(&lab, SERVICE, &ALL_NODES[1..3]);

    // node3's backend is deleted.
    let eps = eps.replace(
        "- addresses: [172.20.2.10]\n  conditions: {ready: true, serving: true, terminating: false}\n  nodeName: node3\n  targetRef: {kind: Pod, namespace: default, name: webpod-2}\n",
        "",
    );
    write_manifest(&lab, eps_file, &eps);
    wait_kernel(&lab, SERVICE, &ALL_NODES[1..2]);

    // The last endpoint goes with its EndpointSlice: nobody advertises the service any more.
    std::fs::remove_file(lab.manifest_dir().join(eps_file)).unwrap();
    let t = wait_kernel(&lab, SERVICE, &[]);
    eprintln!(
        "last advertisement withdrawn {:.2} s after the EndpointSlice went",
        t.as_secs_f64()
    );
    wait("no path for the service on the tor", TIMEOUT, |last| {
        let p = bgp_paths(&lab, "tor", "172.16.1.1/32");
        *last = format!("{p:?}");
        p.is_empty().then_some(())
    });
    for (node, _) in NODES {
        let adv = lbspeaker_json(
            &lab,
            node,
            &["bgp", "routes", "advertised", "ipv4", "unicast"],
        );
        assert!(!adv.to_string().contains("172.16.1.1"), "{node}: {adv}");
    }
    // The PodCIDRs and the sessions are untouched, the address stays.
    for (cidr, (_, via)) in POD_CIDRS.iter().zip(NODES) {
        assert_eq!(kernel_gateways(&lab, "tor", cidr), Some(ips(&[via])));
    }
    assert_eq!(all_established(&lab, "tor", 4), tor);
    assert_eq!(service_ips(&lab, "default", "webpod"), [SERVICE]);
    lab.down().unwrap();
}

#[test]
fn a_graceful_restart_of_every_daemon_keeps_the_tors_routes_and_the_service_address() {
    if !lab_available() {
        return;
    }
    let mut lab = up("rg", seed());
    converged(&lab);
    wait("End-of-RIB from every node", TIMEOUT, |_| {
        neighbors(&lab, "tor")
            .values()
            .all(|v| v["gracefulRestartInfo"]["endOfRibRecv"]["ipv4Unicast"] == Value::Bool(true))
            .then_some(())
    });
    let steady = sample_routes(&lab.namespace("tor"));
    assert_eq!(steady.len(), 5, "{steady:?}");

    // Sample the tor's kernel every 50 ms from now until the restarted daemons are back.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let ns = lab.namespace("tor");
    let want = steady.clone();
    let sampler = std::thread::spawn(move || {
        let mut samples = 0usize;
        let mut bad: Vec<Vec<(String, Vec<String>)>> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while stop_rx.try_recv().is_err() && Instant::now() < deadline {
            let got = sample_routes(&ns);
            samples += 1;
            if got != want {
                bad.push(got);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (samples, bad)
    });

    // SIGTERM to all four at once: graceful restart is configured (bgp.yaml), so they close
    // their sessions without Cease.
    let t = Instant::now();
    let pids = lbspeaker_pids(&lab);
    for pid in pids.values() {
        lab.signal(*pid, Signal::SIGTERM).unwrap();
    }
    wait("every lbspeaker to exit", TIMEOUT, |_| {
        pids.values().all(|p| !lab.is_running(*p)).then_some(())
    });
    let stopped = t.elapsed();
    // The tor keeps their routes, stale.
    wait("our routes stale on the tor", TIMEOUT, |last| {
        let p = bgp_paths(&lab, "tor", "172.16.1.1/32");
        *last = format!("{p:?}");
        (p.len() == 4 && p.iter().all(|x| x["stale"] == Value::Bool(true))).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let down_for = t.elapsed();
    for (node, _) in NODES {
        daemons::restart(&mut lab, node).unwrap();
    }
    // Back: new sessions, End-of-RIB, nothing stale any more.
    wait("new sessions and nothing stale", TIMEOUT, |last| {
        let n = neighbors(&lab, "tor");
        *last = format!(
            "{:?}",
            n.values()
                .map(|v| (&v["bgpState"], &v["connectionsEstablished"]))
                .collect::<Vec<_>>()
        );
        let up = n.len() == 4
            && n.values().all(|v| {
                v["bgpState"] == "Established" && v["connectionsEstablished"].as_u64() == Some(2)
            });
        let fresh = bgp_paths(&lab, "tor", "172.16.1.1/32")
            .iter()
            .all(|x| x.get("stale").is_none());
        (up && fresh && bgp_paths(&lab, "tor", "172.16.1.1/32").len() == 4).then_some(())
    });
    let back = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop_tx.send(()).unwrap();
    let (samples, bad) = sampler.join().unwrap();
    eprintln!(
        "SIGTERM to 4 daemons: all exited in {:.2} s, restarted after {:.2} s, sessions back and fresh at {:.2} s; {samples} kernel samples, {} different",
        stopped.as_secs_f64(),
        down_for.as_secs_f64(),
        back.as_secs_f64(),
        bad.len()
    );
    assert!(samples > 20, "{samples}");
    assert!(
        bad.is_empty(),
        "the tor's kernel changed during the restart: {:?}",
        bad.first()
    );
    for n in neighbors(&lab, "tor").values() {
        assert_eq!(
            n["gracefulRestartInfo"]["rBit"], true,
            "restarted with the R bit"
        );
    }
    assert_eq!(service_ips(&lab, "default", "webpod"), [SERVICE]);
    let services = lbspeaker_json(&lab, "node2", &["ipam", "services"]);
    assert_eq!(services[0]["addresses"][0], SERVICE);

    // A daemon that dies (SIGKILL, no chance to close anything) and comes back: the same.
    let node2 = lbspeaker_pids(&lab)["node2"];
    let before = sample_routes(&lab.namespace("tor"));
    lab.signal(node2, Signal::SIGKILL).unwrap();
    wait("node2's lbspeaker to die", TIMEOUT, |_| {
        (!lab.is_running(node2)).then_some(())
    });
    wait("node2's routes stale on the tor", TIMEOUT, |last| {
        let p = bgp_paths(&lab, "tor", "172.20.1.0/24");
        *last = format!("{p:?}");
        (p.len() == 1 && p[0]["stale"] == Value::Bool(true)).then_some(())
    });
    assert_eq!(
        sample_routes(&lab.namespace("tor")),
        before,
        "still in the kernel"
    );
    daemons::restart(&mut lab, "node2").unwrap();
    wait("node2 back and fresh", TIMEOUT, |last| {
        let p = bgp_paths(&lab, "tor", "172.20.1.0/24");
        *last = format!("{p:?}");
        (p.len() == 1 && p[0].get("stale").is_none()).then_some(())
    });
    assert_eq!(sample_routes(&lab.namespace("tor")), before);
    lab.down().unwrap();
}
