//! L2 announcements with real packets: frr-lab's `l2` topology (a client and three nodes on
//! one bridge), an `l2announce-lab` process per node with the file lease backend over a
//! shared directory, and the client's own arping, ndisc6, neighbour cache and tcpdump as
//! witnesses. Short timers (2 s / 1 s / 0.25 s) keep the run time down; the failover bench
//! (`benches/failover.rs`) measures the defaults.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, SystemTime};

use common::{L2Lab, NODES, NodeOpts, desired, first_announcement, wait};

const WEB: &str = "cilium-l2announce-default-webpod";
const SHARED: &str = "cilium-l2announce-192.168.10.212";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn one_node_answers_arp_and_ndp_for_each_address_and_an_ineligible_node_never_does() {
    let Some(mut lab) = L2Lab::up("l2a") else {
        return;
    };
    let o = NodeOpts::quick();
    for n in NODES {
        lab.start_node(
            n,
            &[
                // webpod: IPv4 and IPv6, node3 not selected by the policy.
                desired("192.168.10.211", &["default/webpod"], n != "node3"),
                desired("fd00:10::211", &["default/webpod"], n != "node3"),
                // Two services sharing .212 through a sharing key.
                desired("192.168.10.212", &["default/a", "default/b"], true),
                // A Local service whose only ready endpoint is on node3.
                desired("192.168.10.213", &["prod-eu/local"], n == "node3"),
            ],
            &o,
        );
    }
    let web = lab.wait_holder(WEB, secs(10.0));
    let shared = lab.wait_holder(SHARED, secs(10.0));
    let local = lab.wait_holder("cilium-l2announce-prod-eu-local", secs(10.0));
    assert_ne!(web, "node3");
    assert_eq!(local, "node3");
    // arping counts a gratuitous reply as an answer: ask when the announcements are over.
    for n in NODES {
        let v4 = [(&web, 1), (&shared, 1), (&local, 1)]
            .iter()
            .filter(|(h, _)| h.as_str() == n)
            .count() as u64;
        let v6 = u64::from(web == n);
        lab.wait_announcements(n, v4, v6, o.announce_count);
    }

    // Exactly one answer per request, from the holder's MAC.
    assert_eq!(lab.arping("192.168.10.211", 2), vec![lab.mac(&web); 2]);
    assert_eq!(lab.ndisc("fd00:10::211"), vec![lab.mac(&web)]);
    assert_eq!(lab.arping("192.168.10.212", 2), vec![lab.mac(&shared); 2]);
    assert_eq!(lab.arping("192.168.10.213", 1), vec![lab.mac("node3")]);
    assert_eq!(
        lab.arping("192.168.10.214", 1),
        vec![],
        "nobody answers for an address nobody announces"
    );

    // One lease for the shared address, none per service; dual stack is one lease.
    let mut names: Vec<String> = std::fs::read_dir(lab.dir.path().join("leases"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cilium-l2announce-192.168.10.212.json",
            "cilium-l2announce-default-webpod.json",
            "cilium-l2announce-prod-eu-local.json"
        ]
    );

    // The holder joined the solicited-node group of the IPv6 address; the others did not.
    for n in NODES {
        let maddr = lab
            .lab
            .exec_ok(n, "ip", &["-6", "maddr", "show", "dev", "eth1"])
            .unwrap();
        assert_eq!(maddr.contains("ff02::1:ff00:211"), n == web, "{n}: {maddr}");
    }

    // Every node reports the same holder; only the holder says it announces.
    for n in NODES {
        let row = lab.row(n, "192.168.10.211").unwrap();
        assert_eq!(row["holder"], web.as_str(), "{n}: {row}");
        assert_eq!(row["lease"], WEB);
        assert_eq!(row["services"], serde_json::json!(["default/webpod"]));
        assert_eq!(row["announcing"], n == web);
        assert_eq!(
            row["interfaces"],
            if n == web {
                serde_json::json!(["eth1"])
            } else {
                serde_json::json!([])
            }
        );
        assert_eq!(row["eligible"], n != "node3");
    }
    let counters = &lab.state(&web).unwrap()["counters"];
    assert!(
        counters["arp_replies"].as_u64().unwrap() >= 2
            && counters["na_replies"].as_u64().unwrap() >= 1,
        "{counters}"
    );

    // With both eligible nodes gone, node3 still never takes webpod's address.
    let other = NODES
        .iter()
        .find(|n| **n != web && **n != "node3")
        .unwrap()
        .to_string();
    lab.kill(&web);
    lab.kill(&other);
    std::thread::sleep(secs(3.0));
    assert_eq!(lab.arping("192.168.10.211", 1), vec![]);
    assert_eq!(lab.ndisc("fd00:10::211"), vec![]);
    assert_ne!(lab.holder(WEB).as_deref(), Some("node3"));
    assert_eq!(
        lab.row("node3", "192.168.10.211").unwrap()["announcing"],
        false
    );
}

/// Kill the holder (or take its link down) and check, from the client, that another node
/// takes over and the client's neighbour entries move to its MAC by themselves.
fn takeover(
    tag: &str,
    opts: NodeOpts,
    fail: impl FnOnce(&mut L2Lab, &str),
) -> (
    String,
    String,
    l2announce::wire::MacAddr,
    SystemTime,
    Vec<common::Seen>,
) {
    let Some(mut lab) = L2Lab::up(tag) else {
        panic!("lab available but not up")
    };
    let count = opts.announce_count;
    let d = [
        desired("192.168.10.211", &["default/webpod"], true),
        desired("fd00:10::211", &["default/webpod"], true),
    ];
    for n in NODES {
        lab.start_node(n, &d, &opts);
    }
    let old = lab.wait_holder(WEB, secs(10.0));
    lab.client_resolves("192.168.10.211");
    lab.client_resolves("fd00:10::211");
    assert_eq!(lab.client_neighbour("192.168.10.211"), Some(lab.mac(&old)));
    assert_eq!(lab.client_neighbour("fd00:10::211"), Some(lab.mac(&old)));
    let cap = lab.capture("takeover");
    let failed_at = SystemTime::now();
    fail(&mut lab, &old);
    let new = wait("a new holder", secs(15.0), || {
        lab.holder(WEB).filter(|h| *h != old)
    });
    let new_mac = lab.mac(&new);
    // No traffic from the client: only the new holder's announcements can move the entries.
    wait("the client's IPv4 entry to move", secs(5.0), || {
        (lab.client_neighbour("192.168.10.211") == Some(new_mac)).then_some(())
    });
    wait("the client's IPv6 entry to move", secs(5.0), || {
        (lab.client_neighbour("fd00:10::211") == Some(new_mac)).then_some(())
    });
    std::thread::sleep(secs(1.0));
    let seen = cap.finish(&mut lab);
    assert!(
        first_announcement(&seen, "192.168.10.211", new_mac, failed_at).is_some(),
        "no gratuitous ARP from {new}: {seen:?}"
    );
    assert!(
        first_announcement(&seen, "fd00:10::211", new_mac, failed_at).is_some(),
        "no unsolicited NA from {new}: {seen:?}"
    );
    // arping counts a gratuitous reply as an answer: ask when the announcements are over.
    lab.wait_announcements(&new, 1, 1, count);
    assert_eq!(lab.arping("192.168.10.211", 1), vec![new_mac]);
    assert_eq!(lab.ndisc("fd00:10::211"), vec![new_mac]);
    (old, new, new_mac, failed_at, seen)
}

#[test]
fn when_the_holder_is_killed_another_node_takes_over_and_the_clients_entries_move() {
    if !frr_lab::lab_available() {
        return;
    }
    let (old, new, new_mac, _, seen) =
        takeover("l2k", NodeOpts::quick(), |lab, holder| lab.kill(holder));
    assert_ne!(old, new);
    // Three rounds: each an announcement and a gratuitous reply for IPv4, an NA for IPv6.
    let from_new = |k| {
        seen.iter()
            .filter(|s| s.kind == k && s.src == new_mac)
            .count()
    };
    assert_eq!(from_new(common::Kind::GratuitousArp), 6, "{seen:?}");
    assert_eq!(from_new(common::Kind::UnsolicitedNa), 3, "{seen:?}");
}

#[test]
fn without_liveness_a_killed_holder_is_replaced_only_after_its_lease_expires() {
    if !frr_lab::lab_available() {
        return;
    }
    let opts = NodeOpts {
        liveness: false,
        ..NodeOpts::quick()
    };
    let (_, _, new_mac, failed_at, seen) = takeover("l2e", opts, |lab, holder| lab.kill(holder));
    let first = first_announcement(&seen, "192.168.10.211", new_mac, failed_at).unwrap();
    let after = first.duration_since(failed_at).unwrap();
    // Lease 2 s, retry 0.25 s: the others may not take it before 2 - 0.25 s.
    assert!(
        after >= secs(1.7),
        "took over after {after:?}, before the lease could expire"
    );
}

#[test]
fn when_the_holders_link_goes_down_another_node_takes_over() {
    if !frr_lab::lab_available() {
        return;
    }
    let (old, new, _, _, _) = takeover("l2d", NodeOpts::quick(), |lab, holder| {
        lab.link(holder, false)
    });
    assert_ne!(old, new);
}

#[test]
fn a_short_flap_or_a_new_mac_keeps_the_lease_and_the_holder_announces_again() {
    let Some(mut lab) = L2Lab::up("l2f") else {
        return;
    };
    let opts = NodeOpts {
        link_grace: 5.0,
        ..NodeOpts::quick()
    };
    let d = [desired("192.168.10.211", &["default/webpod"], true)];
    for n in NODES {
        lab.start_node(n, &d, &opts);
    }
    let holder = lab.wait_holder(WEB, secs(10.0));
    std::thread::sleep(secs(1.0));
    // Make the client's entry wrong, then flap the holder's link.
    lab.lab
        .exec_ok(
            "client",
            "ip",
            &[
                "neigh",
                "replace",
                "192.168.10.211",
                "lladdr",
                "02:00:00:00:00:99",
                "dev",
                "eth1",
                "nud",
                "stale",
            ],
        )
        .unwrap();
    let cap = lab.capture("flap");
    lab.link(&holder, false);
    std::thread::sleep(secs(0.3));
    let up_at = SystemTime::now();
    lab.link(&holder, true);
    wait("the client's entry to come back", secs(5.0), || {
        (lab.client_neighbour("192.168.10.211") == Some(lab.mac(&holder))).then_some(())
    });
    let seen = cap.finish(&mut lab);
    assert!(
        first_announcement(&seen, "192.168.10.211", lab.mac(&holder), up_at).is_some(),
        "{seen:?}"
    );
    assert_eq!(lab.holder(WEB).as_deref(), Some(holder.as_str()));
    assert_eq!(
        lab.lease(WEB).unwrap().record.transitions,
        0,
        "the lease never moved"
    );

    // A new MAC on the holder's interface is announced too (once the flap's rounds are over,
    // or they would carry the new MAC themselves): two rounds of three so far.
    lab.wait_announcements(&holder, 2, 0, opts.announce_count);
    lab.lab
        .exec_ok(
            &holder,
            "ip",
            &["link", "set", "eth1", "address", "02:00:5e:00:02:11"],
        )
        .unwrap();
    let new_mac: l2announce::wire::MacAddr = "02:00:5e:00:02:11".parse().unwrap();
    wait(
        "the client's entry to follow the new MAC",
        secs(5.0),
        || (lab.client_neighbour("192.168.10.211") == Some(new_mac)).then_some(()),
    );
}

#[test]
fn a_withdrawn_address_is_no_longer_answered_and_its_lease_is_released() {
    let Some(mut lab) = L2Lab::up("l2w") else {
        return;
    };
    let d = [
        desired("192.168.10.211", &["default/webpod"], true),
        desired("fd00:10::211", &["default/webpod"], true),
    ];
    for n in NODES {
        lab.start_node(n, &d, &NodeOpts::quick());
    }
    let holder = lab.wait_holder(WEB, secs(10.0));
    assert_eq!(lab.arping("192.168.10.211", 1), vec![lab.mac(&holder)]);
    for n in NODES {
        lab.set_desired(n, &[]);
    }
    wait("the holder to stop", secs(2.0), || {
        lab.state(&holder)
            .filter(|s| s["state"].as_array().is_some_and(|a| a.is_empty()))
            .map(|_| ())
    });
    assert_eq!(lab.arping("192.168.10.211", 2), vec![]);
    assert_eq!(lab.ndisc("fd00:10::211"), vec![]);
    wait("the lease to be released", secs(2.0), || {
        lab.lease(WEB)
            .filter(|l| l.record.holder.is_none())
            .map(|_| ())
    });
    let maddr = lab
        .lab
        .exec_ok(&holder, "ip", &["-6", "maddr", "show", "dev", "eth1"])
        .unwrap();
    assert!(
        !maddr.contains("ff02::1:ff00:211"),
        "left the group: {maddr}"
    );
}

#[test]
fn a_tcp_connection_from_the_client_reaches_a_listener_on_the_holder() {
    let Some(mut lab) = L2Lab::up("l2t") else {
        return;
    };
    // As kube-proxy's IPVS mode does: the address on lo (so the kernel accepts it), and
    // arp_ignore=1 so the kernel itself never answers ARP for it on eth1.
    for n in NODES {
        for (p, a) in [
            ("sysctl", &["-qw", "net.ipv4.conf.all.arp_ignore=1"][..]),
            ("sysctl", &["-qw", "net.ipv4.conf.all.arp_announce=2"]),
            ("ip", &["addr", "add", "192.168.10.211/32", "dev", "lo"]),
        ] {
            lab.lab.exec_ok(n, p, a).unwrap();
        }
        let www = lab.lab.node_dir(n).unwrap().join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("node"), n).unwrap();
        let www = www.to_string_lossy().into_owned();
        lab.lab
            .spawn(
                n,
                "http",
                "/usr/bin/python3",
                &[
                    "-m",
                    "http.server",
                    "8080",
                    "--bind",
                    "192.168.10.211",
                    "--directory",
                    &www,
                ],
            )
            .unwrap();
        lab.start_node(
            n,
            &[desired("192.168.10.211", &["default/webpod"], true)],
            &NodeOpts::quick(),
        );
    }
    let holder = lab.wait_holder(WEB, secs(10.0));
    let body = wait("an HTTP answer", secs(10.0), || {
        lab.lab
            .exec_ok(
                "client",
                "curl",
                &["-s", "--max-time", "2", "http://192.168.10.211:8080/node"],
            )
            .ok()
    });
    assert_eq!(body, holder);
}
