//! L2 announcements through `lbspeaker run`, with real packets: frr-lab's `l2` topology (a
//! client and three nodes on one bridge, each running the daemon on one manifest directory
//! with the seed's l2.yaml: pool 192.168.10.211-215, policy1 on eth1), and the client's arping,
//! ndisc6, neighbour cache and tcpdump as witnesses. Short timers (2 s / 1 s / 0.25 s, three
//! announcement rounds 0.3 s apart) keep the run time down; `benches/l2_failover.rs` measures
//! the defaults.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod l2lab;

use std::time::{Duration, SystemTime};

use l2lab::{
    INGRESS_IP, INGRESS_LEASE, L2Lab, NODES, QUICK, announcements, answers_for, secs, wait,
};

/// An IPv6 pool beside the seed's, and a dual-stack service.
const DUAL_STACK: &str = "
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: lab-v6}
spec:
  blocks: [{start: 'fd00:10::211', stop: 'fd00:10::215'}]
---
apiVersion: v1
kind: Service
metadata: {name: web6, namespace: default}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{port: 80}]
";
const WEB6_LEASE: &str = "cilium-l2announce-default-web6";
const WEB6_V4: &str = "192.168.10.212";
const WEB6_V6: &str = "fd00:10::211";

/// Two services sharing 192.168.10.213 through a sharing key.
const SHARED: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web-a
  namespace: default
  annotations: {lbipam.cilium.io/sharing-key: shared, lbipam.cilium.io/ips: 192.168.10.213}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-b
  namespace: default
  annotations: {lbipam.cilium.io/sharing-key: shared, lbipam.cilium.io/ips: 192.168.10.213}
spec:
  type: LoadBalancer
  ports: [{port: 8080}]
";
const SHARED_IP: &str = "192.168.10.213";
const SHARED_LEASE: &str = "cilium-l2announce-192.168.10.213";

fn all_from(macs: &[l2announce::wire::MacAddr], want: l2announce::wire::MacAddr, n: usize) -> bool {
    macs.len() == n && macs.iter().all(|m| *m == want)
}

#[test]
fn the_seed_l2_variant_one_node_answers_for_the_ingress_address_and_holds_its_lease() {
    let Some(mut lab) = L2Lab::up("l2d", QUICK) else {
        return;
    };
    lab.wait_service_ips("kube-system", "cilium-ingress", &[INGRESS_IP]);
    let holder = lab.wait_holder(INGRESS_LEASE, INGRESS_IP, secs(10.0));
    println!("{INGRESS_LEASE} held by {holder}");

    // Exactly one answer per request, from the holder's MAC.
    let macs = lab.arping(INGRESS_IP, 3);
    assert!(
        all_from(&macs, lab.mac(&holder), 3),
        "arping {INGRESS_IP}: {macs:?}, holder {holder} is {}",
        lab.mac(&holder)
    );

    // Every node shows the same lease and holder; only the holder answers.
    let lease = lab.lease(INGRESS_LEASE).unwrap();
    for n in NODES {
        let r = wait(&format!("{n}'s row"), secs(5.0), || {
            lab.row(n, INGRESS_IP)
                .filter(|r| r.holder.as_deref() == Some(&holder))
        });
        assert_eq!(r.services, ["kube-system/cilium-ingress"], "{n}");
        assert_eq!(r.lease, INGRESS_LEASE, "{n}");
        assert!(r.eligible, "{n}");
        assert_eq!(r.announcing, n == holder, "{n}");
        let ifaces: Vec<&str> = if n == holder { vec!["eth1"] } else { vec![] };
        assert_eq!(r.interfaces, ifaces, "{n}");
        assert!(r.since_seconds.is_some(), "{n}");
    }
    assert_eq!(lease.record.holder.as_deref(), Some(holder.as_str()));
    assert_eq!(lease.record.duration, Duration::from_secs(2));

    // The table, the status and the metrics.
    let table = lab.cli(&holder, &["l2", "leases"]);
    for word in [
        "Address",
        "Services",
        "Lease",
        "Holder",
        "Interfaces",
        "Since",
        INGRESS_IP,
        "kube-system/cilium-ingress",
        INGRESS_LEASE,
        "eth1",
        "announcing",
    ] {
        assert!(table.contains(word), "{word} not in\n{table}");
    }
    let other = NODES.iter().find(|n| **n != holder).unwrap();
    assert!(lab.cli(other, &["l2", "leases"]).contains("candidate"));
    let status = lab.cli(&holder, &["-o", "json", "status"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "l2 announcements"),
        "{status}"
    );
    assert_eq!(status["problems"], serde_json::json!([]), "{status}");
    let m = |n: &str, name: &str| lab.metric(n, name).unwrap_or(-1.0);
    assert!(m(&holder, "lbspeaker_l2_arp_replies_total") >= 3.0);
    assert_eq!(m(&holder, "lbspeaker_l2_leases_acquired_total"), 1.0);
    assert_eq!(m(&holder, "lbspeaker_l2_announced_addresses"), 1.0);
    // Three rounds of an RFC 5227 announcement and a gratuitous reply, and no more.
    wait("the holder's announcements", secs(5.0), || {
        (m(&holder, "lbspeaker_l2_gratuitous_arp_total") >= 6.0).then_some(())
    });
    std::thread::sleep(secs(0.5));
    assert_eq!(m(&holder, "lbspeaker_l2_gratuitous_arp_total"), 6.0);
    assert_eq!(m(other, "lbspeaker_l2_announced_addresses"), 0.0);
    assert_eq!(m(other, "lbspeaker_l2_arp_replies_total"), 0.0);
    // A policy without errors gets no status (as in Cilium).
    assert!(
        lab.read("status/ciliuml2announcementpolicies/policy1.yaml")
            .is_none()
    );

    // A TCP connection from the client reaches a listener on the holder.
    lab.listen_everywhere(INGRESS_IP);
    assert_eq!(lab.http_from_client(INGRESS_IP), holder);
    let macs = lab.arping(INGRESS_IP, 2);
    assert!(all_from(&macs, lab.mac(&holder), 2), "{macs:?}");

    // A policy with a bad regular expression: its condition, written once by the leader, a
    // problem on every node; the seed's policy stays in force.
    lab.write_manifest(
        "bad.yaml",
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {name: policy2}\nspec:\n  interfaces: ['eth[1']\n  loadBalancerIPs: true\n",
    );
    let file = "status/ciliuml2announcementpolicies/policy2.yaml";
    let text = wait("policy2's status", secs(10.0), || lab.read(file));
    assert!(text.contains("io.cilium/bad-interface-regex"), "{text}");
    assert!(
        text.contains("status: 'True'")
            || text.contains("status: \"True\"")
            || text.contains("status: True"),
        "{text}"
    );
    assert!(text.contains("unclosed character class"), "{text}");
    wait("the problem on every node", secs(10.0), || {
        NODES
            .iter()
            .all(|n| lab.cli(n, &["status"]).contains("policy2"))
            .then_some(())
    });
    let written = std::fs::metadata(lab.lab.manifest_dir().join(file))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(secs(1.5));
    assert_eq!(
        std::fs::metadata(lab.lab.manifest_dir().join(file))
            .unwrap()
            .modified()
            .unwrap(),
        written,
        "an unchanged status is not written again"
    );
    assert!(all_from(&lab.arping(INGRESS_IP, 2), lab.mac(&holder), 2));
    lab.write_manifest(
        "bad.yaml",
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {name: policy2}\nspec:\n  interfaces: ['^eth1$']\n  loadBalancerIPs: true\n",
    );
    let text = wait("policy2's condition to turn False", secs(10.0), || {
        lab.read(file).filter(|t| t.contains("False"))
    });
    assert!(!text.contains("unclosed"), "{text}");
}

#[test]
fn ipv6_and_a_shared_address_each_have_exactly_one_responder() {
    let Some(mut lab) = L2Lab::up("l2v", QUICK) else {
        return;
    };
    lab.wait_service_ips("kube-system", "cilium-ingress", &[INGRESS_IP]);
    lab.write_manifest("dual-stack.yaml", DUAL_STACK);
    lab.write_manifest("shared.yaml", SHARED);
    lab.wait_service_ips("default", "web6", &[WEB6_V4, WEB6_V6]);
    lab.wait_service_ips("default", "web-a", &[SHARED_IP]);
    lab.wait_service_ips("default", "web-b", &[SHARED_IP]);

    // Dual stack: one lease for both addresses, one responder for each.
    let h6 = lab.wait_holder(WEB6_LEASE, WEB6_V6, secs(10.0));
    // ndisc6 -m counts every advertisement it hears: let the takeover's rounds end first.
    std::thread::sleep(secs(1.0));
    let macs = lab.ndisc(WEB6_V6);
    assert!(
        all_from(&macs, lab.mac(&h6), 1),
        "ndisc6 {WEB6_V6}: {macs:?}, holder {h6}"
    );
    let macs = lab.arping(WEB6_V4, 3);
    assert!(
        all_from(&macs, lab.mac(&h6), 3),
        "arping {WEB6_V4}: {macs:?}"
    );
    // The solicited-node group is joined on the holder only.
    for n in NODES {
        let maddr = lab
            .lab
            .exec_ok(n, "ip", &["-6", "maddr", "show", "dev", "eth1"])
            .unwrap();
        assert_eq!(maddr.contains("ff02::1:ff00:211"), n == h6, "{n}: {maddr}");
    }

    // Two services sharing an address: one lease named after the address, one responder.
    let hs = lab.wait_holder(SHARED_LEASE, SHARED_IP, secs(10.0));
    let macs = lab.arping(SHARED_IP, 3);
    assert!(
        all_from(&macs, lab.mac(&hs), 3),
        "arping {SHARED_IP}: {macs:?}, holder {hs}"
    );
    for n in NODES {
        let r = wait(&format!("{n}'s row for {SHARED_IP}"), secs(5.0), || {
            lab.row(n, SHARED_IP)
                .filter(|r| r.holder.as_deref() == Some(&hs))
        });
        assert_eq!(r.services, ["default/web-a", "default/web-b"], "{n}");
        assert_eq!(r.lease, SHARED_LEASE, "{n}");
        assert_eq!(r.announcing, n == hs, "{n}");
        let r6 = lab.row(n, WEB6_V6).unwrap();
        assert_eq!(
            (r6.lease.as_str(), r6.holder.as_deref()),
            (WEB6_LEASE, Some(h6.as_str()))
        );
    }
    assert!(lab.lease("cilium-l2announce-default-web-a").is_none());
    assert!(lab.lease("cilium-l2announce-default-web-b").is_none());

    // TCP over IPv6 reaches the holder.
    lab.listen_everywhere(WEB6_V6);
    assert_eq!(lab.http_from_client(WEB6_V6), h6);
    assert!(all_from(&lab.ndisc(WEB6_V6), lab.mac(&h6), 1));
}

#[test]
fn when_the_holders_daemon_is_killed_another_node_takes_over_and_the_clients_entries_move() {
    let Some(mut lab) = L2Lab::up("l2k", QUICK) else {
        return;
    };
    lab.write_manifest("dual-stack.yaml", DUAL_STACK);
    lab.wait_service_ips("default", "web6", &[WEB6_V4, WEB6_V6]);
    let old = lab.wait_holder(WEB6_LEASE, WEB6_V4, secs(10.0));
    lab.client_resolves(WEB6_V4);
    lab.client_resolves(WEB6_V6);
    assert_eq!(lab.client_neighbour(WEB6_V4), Some(lab.mac(&old)));
    wait("the client's IPv6 entry", secs(5.0), || {
        (lab.client_neighbour(WEB6_V6) == Some(lab.mac(&old))).then_some(())
    });
    let cap = lab.capture("kill");
    let failed = SystemTime::now();
    lab.kill(&old);
    let new = wait("a new holder", secs(10.0), || {
        lab.holder(WEB6_LEASE).filter(|h| *h != old)
    });
    let new_mac = lab.mac(&new);
    // The client's entries move by the announcements alone (no traffic from it).
    wait("the client's entries to move", secs(5.0), || {
        (lab.client_neighbour(WEB6_V4) == Some(new_mac)
            && lab.client_neighbour(WEB6_V6) == Some(new_mac))
        .then_some(())
    });
    std::thread::sleep(secs(1.2)); // the three rounds are over
    let seen = cap.finish(&mut lab);
    let v4 = announcements(&seen, WEB6_V4, new_mac, failed);
    let v6 = announcements(&seen, WEB6_V6, new_mac, failed);
    assert_eq!((v4.len(), v6.len()), (6, 3), "{seen:?}");
    println!(
        "SIGKILL of {old}'s daemon to {new}'s first gratuitous ARP: {:.3} s",
        v4[0].at.duration_since(failed).unwrap().as_secs_f64()
    );
    // Nobody but the new holder answered for the address after the failure.
    assert!(
        answers_for(&seen, WEB6_V4)
            .iter()
            .all(|s| s.src == new_mac || s.at < failed),
        "{seen:?}"
    );

    // The killed node comes back as a candidate: the lease stays, one responder.
    lab.restart(&old);
    wait("the restarted daemon's rows", secs(5.0), || {
        lab.row(&old, WEB6_V4)
            .filter(|r| r.holder.as_deref() == Some(&new) && r.eligible && !r.announcing)
    });
    let macs = lab.arping(WEB6_V4, 3);
    assert!(all_from(&macs, new_mac, 3), "{macs:?}");
    assert!(all_from(&lab.ndisc(WEB6_V6), new_mac, 1));
    assert_eq!(lab.holder(WEB6_LEASE), Some(new));
}

#[test]
fn when_the_holders_link_goes_down_another_node_takes_over_and_the_clients_entry_moves() {
    let Some(mut lab) = L2Lab::up("l2l", QUICK) else {
        return;
    };
    lab.wait_service_ips("kube-system", "cilium-ingress", &[INGRESS_IP]);
    let old = lab.wait_holder(INGRESS_LEASE, INGRESS_IP, secs(10.0));
    lab.client_resolves(INGRESS_IP);
    assert_eq!(lab.client_neighbour(INGRESS_IP), Some(lab.mac(&old)));
    let cap = lab.capture("link");
    let failed = SystemTime::now();
    lab.link(&old, false);
    let new = wait("a new holder", secs(10.0), || {
        lab.holder(INGRESS_LEASE).filter(|h| *h != old)
    });
    let new_mac = lab.mac(&new);
    wait("the client's entry to move", secs(5.0), || {
        (lab.client_neighbour(INGRESS_IP) == Some(new_mac)).then_some(())
    });
    let seen = cap.finish(&mut lab);
    let first = announcements(&seen, INGRESS_IP, new_mac, failed);
    assert!(!first.is_empty(), "{seen:?}");
    println!(
        "{old}'s eth1 down to {new}'s first gratuitous ARP: {:.3} s",
        first[0].at.duration_since(failed).unwrap().as_secs_f64()
    );
    wait("the old holder to show the new one", secs(5.0), || {
        lab.row(&old, INGRESS_IP)
            .filter(|r| !r.announcing && !r.eligible && r.holder.as_deref() == Some(new.as_str()))
    });

    // The link comes back: the old holder is a candidate again, not a second responder.
    lab.link(&old, true);
    wait("the old holder to be a candidate", secs(5.0), || {
        lab.row(&old, INGRESS_IP)
            .filter(|r| r.eligible && !r.announcing)
    });
    let macs = lab.arping(INGRESS_IP, 3);
    assert!(all_from(&macs, new_mac, 3), "{macs:?}");

    // A flap shorter than the link grace keeps the lease, and the holder announces again.
    let cap = lab.capture("flap");
    let flapped = SystemTime::now();
    lab.link(&new, false);
    std::thread::sleep(secs(0.2));
    lab.link(&new, true);
    wait(
        "the holder's announcements after the flap",
        secs(5.0),
        || {
            let n = lab.metric(&new, "lbspeaker_l2_gratuitous_arp_total")?;
            (n >= 12.0).then_some(())
        },
    );
    std::thread::sleep(secs(0.3));
    let seen = cap.finish(&mut lab);
    assert_eq!(
        announcements(&seen, INGRESS_IP, new_mac, flapped).len(),
        6,
        "{seen:?}"
    );
    assert_eq!(lab.holder(INGRESS_LEASE), Some(new.clone()));
    assert_eq!(lab.lease(INGRESS_LEASE).unwrap().record.transitions, 1);
}

/// The seed's pool and policy1 limited to node2 and node3.
const L2_NOT_NODE1: &str = "
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: cilium-lb-ippool}
spec:
  blocks: [{start: 192.168.10.211, stop: 192.168.10.215}]
---
apiVersion: cilium.io/v2alpha1
kind: CiliumL2AnnouncementPolicy
metadata: {name: policy1}
spec:
  interfaces: [eth1]
  externalIPs: true
  loadBalancerIPs: true
  nodeSelector:
    matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [node1]}]
";

/// A Local service whose only endpoint is on node3.
fn local_service(ready: bool) -> String {
    format!(
        "
apiVersion: v1
kind: Service
metadata:
  name: local
  namespace: default
  annotations: {{lbipam.cilium.io/ips: 192.168.10.214}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {{app: local}}
  ports: [{{port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: local-1
  namespace: default
  labels: {{kubernetes.io/service-name: local}}
addressType: IPv4
endpoints:
- addresses: [172.20.2.10]
  nodeName: node3
  conditions: {{ready: {ready}}}
"
    )
}
const LOCAL_IP: &str = "192.168.10.214";
const LOCAL_LEASE: &str = "cilium-l2announce-default-local";

/// A node's row for `addr`, once it has one.
fn row(lab: &L2Lab, node: &str, addr: &str) -> agent_glue::api::LeaseView {
    wait(&format!("{node}'s row for {addr}"), secs(5.0), || {
        lab.row(node, addr)
    })
}

/// Asks for `addr` for `how_long` (arping every 0.3 s): the MACs that ever answered.
fn answers_during(lab: &L2Lab, addr: &str, how_long: Duration) -> Vec<l2announce::wire::MacAddr> {
    let end = std::time::Instant::now() + how_long;
    let mut all = Vec::new();
    while std::time::Instant::now() < end {
        all.extend(lab.arping(addr, 1));
        std::thread::sleep(secs(0.1));
    }
    all
}

#[test]
fn a_node_outside_the_node_selector_or_without_a_local_endpoint_never_answers() {
    let Some(mut lab) = L2Lab::up("l2n", QUICK) else {
        return;
    };
    lab.write_manifest("l2.yaml", L2_NOT_NODE1);
    lab.write_manifest("local.yaml", &local_service(true));
    lab.wait_service_ips("default", "local", &[LOCAL_IP]);
    lab.wait_service_ips("kube-system", "cilium-ingress", &[INGRESS_IP]);
    let ingress = lab.wait_holder(INGRESS_LEASE, INGRESS_IP, secs(10.0));
    assert_ne!(ingress, "node1");
    assert_eq!(lab.wait_holder(LOCAL_LEASE, LOCAL_IP, secs(10.0)), "node3");
    for a in [INGRESS_IP, LOCAL_IP] {
        let r = row(&lab, "node1", a);
        assert!(!r.eligible && !r.announcing, "node1 {a}: {r:?}");
    }
    let r = row(&lab, "node2", LOCAL_IP);
    assert!(!r.eligible && !r.announcing, "node2 {LOCAL_IP}: {r:?}");
    assert!(all_from(&lab.arping(LOCAL_IP, 2), lab.mac("node3"), 2));

    // The endpoint stops being ready: node3 stops answering at once, and nobody else may.
    lab.write_manifest("local.yaml", &local_service(false));
    wait("node3 to stop answering", secs(5.0), || {
        lab.row("node3", LOCAL_IP)
            .filter(|r| !r.eligible && !r.announcing)
    });
    let heard = answers_during(&lab, LOCAL_IP, secs(2.5));
    assert!(heard.is_empty(), "{heard:?}");
    // Ready again: node3 answers again.
    lab.write_manifest("local.yaml", &local_service(true));
    assert_eq!(lab.wait_holder(LOCAL_LEASE, LOCAL_IP, secs(10.0)), "node3");

    // node3 dies: nobody may answer for the Local service; node2 (selected) takes the ingress.
    lab.kill("node3");
    let ingress = wait("node2 to hold the ingress lease", secs(10.0), || {
        lab.holder(INGRESS_LEASE).filter(|h| h == "node2")
    });
    assert_eq!(ingress, "node2");
    // node2 dies too: node1 is outside the selector and never answers, not even once both
    // leases have expired (the lease duration is 2 s).
    lab.kill("node2");
    let capture = lab.capture("never");
    let start = SystemTime::now();
    let heard = answers_during(&lab, INGRESS_IP, secs(3.0));
    assert!(heard.is_empty(), "{INGRESS_IP} answered by {heard:?}");
    let heard = answers_during(&lab, LOCAL_IP, secs(1.0));
    assert!(heard.is_empty(), "{LOCAL_IP} answered by {heard:?}");
    let seen = capture.finish(&mut lab);
    for a in [INGRESS_IP, LOCAL_IP] {
        let any = answers_for(&seen, a);
        assert!(any.iter().all(|s| s.at < start), "{a}: {any:?}");
    }
    for a in [INGRESS_IP, LOCAL_IP] {
        let r = row(&lab, "node1", a);
        assert!(!r.eligible && !r.announcing, "node1 {a}: {r:?}");
    }
    assert_eq!(lab.holder(INGRESS_LEASE).as_deref(), Some("node2"));
    assert_eq!(lab.holder(LOCAL_LEASE).as_deref(), Some("node3"));
    assert_eq!(
        lab.metric("node1", "lbspeaker_l2_arp_replies_total"),
        Some(0.0)
    );
    assert_eq!(
        lab.metric("node1", "lbspeaker_l2_leases_acquired_total"),
        Some(0.0)
    );
}
