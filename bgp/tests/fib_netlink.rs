//! FIB installation against a real kernel, inside a network namespace of its own (root;
//! skipped otherwise, a failure with `FRR_LAB_REQUIRED=1`): the netlink layer writes and reads
//! single, multipath, IPv6 and RFC 8950 routes, never overwrites a route that is not ours;
//! the installer follows a speaker's Loc-RIB (announce, ECMP, withdraw, peer down), adopts its
//! routes after a restart without duplicating them, and removes all of them (and nothing
//! else) when it stops.
//!
//! ```text
//!  namespace fibN-host:  eth1 10.0.0.1/24, fd00::1/64 ── fibN-peer (10.0.0.2 .. 10.0.0.4)
//!     speaker "a" (127.0.0.1, FIB on) ◄─ BGP over lo ─ speakers "b", "c" (127.0.0.2, .3)
//!     announcing with explicit next hops on eth1's network
//! ```

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use bgp::config::{Asn, HoldTime, RouterId};
use bgp::fib::{Cleanup, FibConfig, FibError, FibInstaller, Kernel, NetlinkKernel, NextHop, Op};
use bgp::fsm::State;
use bgp::speaker::{InstanceConfig, PeerConfig, Route, Speaker, StopMode};
use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};
use ipnet::IpNet;

const TOPOLOGY: &str = "
name: fib
nodes:
  host: { interfaces: { eth1: [10.0.0.1/24, 'fd00::1/64'] } }
  peer: { interfaces: { eth1: [10.0.0.2/24, 10.0.0.3/24, 10.0.0.4/24, 'fd00::2/64'] } }
links:
  - endpoints: [host:eth1, peer:eth1]
";

fn lab() -> Option<Lab> {
    if !lab_available() {
        return None;
    }
    let t = Topology::from_yaml(TOPOLOGY, "test", |_| Ok(String::new())).unwrap();
    Some(Lab::up(t, LabOptions::with_prefix(unique_prefix("fib"))).unwrap())
}

/// Runs `f` on a thread inside the namespace, with a current-thread tokio runtime (every
/// socket it opens, netlink included, belongs to that namespace).
fn in_namespace<T: Send>(ns: &str, f: impl AsyncFnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
        .join()
        .unwrap()
    })
}

/// `ip -j route show proto 212` in the lab node, as (dst, gateways) pairs, IPv4 and IPv6.
fn ours(lab: &Lab, node: &str) -> Vec<(String, Vec<IpAddr>)> {
    let mut v: Vec<(String, Vec<IpAddr>)> = [false, true]
        .into_iter()
        .flat_map(|v6| lab.kernel_routes(node, v6, Some("212")).unwrap())
        .map(|r| {
            let mut g = r.gateways;
            g.sort();
            (r.dst, g)
        })
        .collect();
    v.sort();
    v
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn hop(gw: &str, ifindex: u32) -> NextHop {
    NextHop {
        gateway: Some(ip(gw)),
        ifindex,
    }
}

fn desired(dst: &str, hops: &[NextHop]) -> bgp::fib::DesiredRoute {
    bgp::fib::DesiredRoute {
        dst: net(dst),
        next_hops: hops.iter().copied().collect(),
    }
}

fn ifindex(lab: &Lab, node: &str, name: &str) -> u32 {
    let out = lab
        .exec_ok(node, "cat", &[&format!("/sys/class/net/{name}/ifindex")])
        .unwrap();
    out.trim().parse().unwrap()
}

#[test]
fn netlink_writes_single_multipath_ipv6_and_rfc8950_routes_and_reads_them_back() {
    let Some(lab) = lab() else { return };
    let eth1 = ifindex(&lab, "host", "eth1");
    let ns = lab.namespace("host");
    // Someone else's route at our metric, and one at another metric.
    lab.exec_ok(
        "host",
        "ip",
        &[
            "route",
            "add",
            "172.20.9.0/24",
            "via",
            "10.0.0.4",
            "metric",
            "20",
            "proto",
            "static",
        ],
    )
    .unwrap();
    let cfg = FibConfig::default();
    let results = in_namespace(&ns, async || {
        let mut k = NetlinkKernel::open(cfg.protocol).unwrap();
        let mut results = Vec::new();
        for op in [
            Op::Add(desired("172.20.1.0/24", &[hop("10.0.0.2", eth1)])),
            Op::Add(desired(
                "172.16.1.1/32",
                &[hop("10.0.0.2", eth1), hop("10.0.0.3", eth1)],
            )),
            Op::Add(desired("fd00:99::/64", &[hop("fd00::2", eth1)])),
            Op::Add(desired(
                "fd00:98::/64",
                &[hop("fd00::2", eth1), hop("fe80::2", eth1)],
            )),
            Op::Add(desired("172.20.5.0/24", &[hop("fd00::2", eth1)])),
            Op::Add(desired("172.20.9.0/24", &[hop("10.0.0.2", eth1)])),
        ] {
            results.push(k.apply(&op, &cfg).await);
        }
        let view = k.view().await.unwrap();
        (results, view)
    });
    let (results, view) = results;
    for (i, r) in results.iter().enumerate().take(5) {
        assert!(r.is_ok(), "op {i}: {r:?}");
    }
    assert!(
        matches!(results[5], Err(FibError::Exists(_))),
        "someone else's route is never overwritten: {:?}",
        results[5]
    );
    assert_eq!(
        ours(&lab, "host"),
        [
            (
                "172.16.1.1".to_string(),
                vec![ip("10.0.0.2"), ip("10.0.0.3")]
            ),
            ("172.20.1.0/24".to_string(), vec![ip("10.0.0.2")]),
            ("172.20.5.0/24".to_string(), vec![ip("fd00::2")]),
            (
                "fd00:98::/64".to_string(),
                vec![ip("fd00::2"), ip("fe80::2")]
            ),
            ("fd00:99::/64".to_string(), vec![ip("fd00::2")]),
        ]
    );
    let static_route = lab.kernel_routes("host", false, Some("static")).unwrap();
    assert_eq!(static_route[0].gateways, [ip("10.0.0.4")]);
    // What the view reads is what was written.
    let mp = view
        .routes
        .iter()
        .find(|r| r.dst == net("172.16.1.1/32"))
        .unwrap();
    assert_eq!((mp.protocol, mp.table, mp.metric), (212, 254, 20));
    assert_eq!(mp.next_hops, [hop("10.0.0.2", eth1), hop("10.0.0.3", eth1)]);
    let v6 = view
        .routes
        .iter()
        .find(|r| r.dst == net("fd00:98::/64"))
        .unwrap();
    assert_eq!(v6.next_hops.len(), 2, "{v6:?}");
    assert!(view.local_addresses.contains(&ip("10.0.0.1")));

    // Replace and delete, exactly.
    let after = in_namespace(&ns, async || {
        let mut k = NetlinkKernel::open(cfg.protocol).unwrap();
        let view = k.view().await.unwrap();
        k.apply(
            &Op::Replace(desired("172.16.1.1/32", &[hop("10.0.0.4", eth1)])),
            &cfg,
        )
        .await
        .unwrap();
        for r in view
            .routes
            .iter()
            .filter(|r| r.protocol == 212 && r.dst.addr().is_ipv6())
        {
            k.apply(&Op::Delete(r.clone()), &cfg).await.unwrap();
        }
        let again = view
            .routes
            .iter()
            .find(|r| r.dst == net("fd00:99::/64"))
            .unwrap()
            .clone();
        k.apply(&Op::Delete(again), &cfg).await
    });
    assert!(matches!(after, Err(FibError::Gone(_))), "{after:?}");
    assert_eq!(
        ours(&lab, "host"),
        [
            ("172.16.1.1".to_string(), vec![ip("10.0.0.4")]),
            ("172.20.1.0/24".to_string(), vec![ip("10.0.0.2")]),
            ("172.20.5.0/24".to_string(), vec![ip("fd00::2")]),
        ]
    );
}

fn instance(name: &str, asn: u32, id: u8, port: Option<u16>, addr: IpAddr) -> InstanceConfig {
    let mut c = InstanceConfig::new(
        name,
        Asn::new(asn).unwrap(),
        RouterId::new(Ipv4Addr::new(10, 255, 0, id)).unwrap(),
    );
    c.listen_port = port;
    c.listen_addresses = vec![addr];
    c.max_paths = 4;
    c
}

fn peer(name: &str, addr: IpAddr, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(name, addr, asn);
    p.hold_time = HoldTime::new(9).unwrap();
    p.connect_retry = 1;
    p.idle_hold_ms = 200;
    p
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tor-like speaker "t" announcing with next hops on eth1's network.
async fn announcer(id: u8, port: u16, routes: &[(&str, &str)]) -> Speaker {
    let me = IpAddr::V4(Ipv4Addr::new(127, 0, 0, id));
    let s = Speaker::new();
    s.start_instance(instance("t", 65000 + u32::from(id), id, None, me))
        .await
        .unwrap();
    let mut p = peer("node", ip("127.0.0.1"), 65001);
    p.port = port;
    p.local_address = Some(me);
    s.add_peer("t", p).await.unwrap();
    announce(&s, routes).await;
    s
}

async fn announce(s: &Speaker, routes: &[(&str, &str)]) {
    let routes = routes
        .iter()
        .map(|(p, nh)| {
            let mut r = Route::new(net(p));
            r.attributes.next_hop = Some(ip(nh));
            r
        })
        .collect();
    s.announce("t", routes).await.unwrap();
}

#[test]
fn the_installer_follows_the_loc_rib_adopts_after_a_restart_and_cleans_up() {
    let Some(lab) = lab() else { return };
    let ns = lab.namespace("host");
    // A foreign route that must survive everything, including our cleanup.
    lab.exec_ok(
        "host",
        "ip",
        &["route", "add", "172.20.200.0/24", "via", "10.0.0.4"],
    )
    .unwrap();
    let port = 1790;
    let cfg = FibConfig {
        accept: vec![
            "172.20.0.0/16 le 24".parse().unwrap(),
            "172.16.0.0/16 le 32".parse().unwrap(),
        ],
        startup_hold: Duration::from_secs(30),
        ..FibConfig::default()
    };
    let lab_ref = &lab;
    in_namespace(&ns, async || {
        let a = Speaker::new();
        a.start_instance(instance("a", 65001, 1, Some(port), ip("127.0.0.1")))
            .await
            .unwrap();
        for (name, id) in [("b", 2u8), ("c", 3)] {
            let mut p = peer(name, IpAddr::V4(Ipv4Addr::new(127, 0, 0, id)), 0);
            p.passive = true;
            a.add_peer("a", p).await.unwrap();
        }
        let fib = FibInstaller::start(&a, "a", cfg.clone()).await.unwrap();
        let b = announcer(
            2,
            port,
            &[
                ("172.20.1.0/24", "10.0.0.2"),
                ("172.16.1.1/32", "10.0.0.2"),
                ("10.10.1.0/24", "10.0.0.2"),
                ("172.20.7.0/24", "192.0.2.1"),
            ],
        )
        .await;
        let c = announcer(3, port, &[("172.16.1.1/32", "10.0.0.3")]).await;
        for p in ["b", "c"] {
            wait_for("Established", async || {
                (a.peer_state("a", p).await.unwrap().state == State::Established).then_some(())
            })
            .await;
        }
        // The shared /32 comes from two neighbouring ASes: without multipath-relax only one
        // path is used (the restarted speaker below relaxes).
        let st = wait_for("two routes", async || {
            let s = fib.status().await.unwrap();
            (ours(lab_ref, "host").len() == 2).then_some(s)
        })
        .await;
        assert!(st.converged, "nothing from before: no hold");
        assert_eq!(
            st.unresolved
                .keys()
                .map(|k| k.to_string())
                .collect::<Vec<_>>(),
            ["172.20.7.0/24"],
            "192.0.2.1 is unreachable"
        );
        let before = ours(lab_ref, "host");
        assert_eq!(
            before,
            [
                ("172.16.1.1".to_string(), vec![ip("10.0.0.2")]),
                ("172.20.1.0/24".to_string(), vec![ip("10.0.0.2")]),
            ],
            "10.10.1.0/24 is filtered out"
        );
        a.stop_instance("a", StopMode::GracefulRestart)
            .await
            .unwrap();
        drop((b, c, fib));
    });
    // Restart, as after a crash: the routes are still there, and adopted.
    let adopted = ours(&lab, "host");
    assert_eq!(adopted.len(), 2);
    lab.exec_ok(
        "host",
        "ip",
        &[
            "route",
            "add",
            "172.20.99.0/24",
            "via",
            "10.0.0.2",
            "proto",
            "212",
            "metric",
            "20",
        ],
    )
    .unwrap();
    in_namespace(&ns, async || {
        let a = Speaker::new();
        let mut i = instance("a", 65001, 1, Some(port), ip("127.0.0.1"));
        i.multipath_relax = true;
        a.start_instance(i).await.unwrap();
        for (name, id) in [("b", 2u8), ("c", 3)] {
            let mut p = peer(name, IpAddr::V4(Ipv4Addr::new(127, 0, 0, id)), 0);
            p.passive = true;
            a.add_peer("a", p).await.unwrap();
        }
        let fib = FibInstaller::start(&a, "a", cfg.clone()).await.unwrap();
        let st = fib.sync().await.unwrap();
        assert_eq!(st.found_at_start, 3);
        assert!(!st.converged);
        assert_eq!(
            ours(lab_ref, "host").len(),
            3,
            "kept during the startup hold"
        );
        let b = announcer(
            2,
            port,
            &[("172.20.1.0/24", "10.0.0.2"), ("172.16.1.1/32", "10.0.0.2")],
        )
        .await;
        let c = announcer(3, port, &[("172.16.1.1/32", "10.0.0.3")]).await;
        // Both peers send End-of-RIB: the hold ends, the leftover goes, nothing doubles.
        let st = wait_for("converged", async || {
            let s = fib.status().await.unwrap();
            (s.converged && ours(lab_ref, "host").len() == 2 && s.reconciles > 1).then_some(s)
        })
        .await;
        assert!(st.adopted >= 1, "172.20.1.0/24 adopted as it was: {st:?}");
        let ecmp = wait_for("ECMP over both peers", async || {
            let o = ours(lab_ref, "host");
            (o[0].1.len() == 2).then_some(o)
        })
        .await;
        assert_eq!(
            ecmp,
            [
                (
                    "172.16.1.1".to_string(),
                    vec![ip("10.0.0.2"), ip("10.0.0.3")]
                ),
                ("172.20.1.0/24".to_string(), vec![ip("10.0.0.2")]),
            ]
        );
        // A route of ours deleted by hand comes back (the kernel says so).
        lab_ref
            .exec_ok(
                "host",
                "ip",
                &["route", "del", "172.20.1.0/24", "proto", "212"],
            )
            .unwrap();
        wait_for("172.20.1.0/24 back", async || {
            (ours(lab_ref, "host").len() == 2).then_some(())
        })
        .await;
        // A withdrawal removes the path; the other stays.
        b.withdraw("t", vec![net("172.16.1.1/32")]).await.unwrap();
        wait_for("one path left", async || {
            let o = ours(lab_ref, "host");
            (o[0].1 == [ip("10.0.0.3")]).then_some(())
        })
        .await;
        // A peer going away takes its routes (no graceful restart negotiated).
        b.shutdown(StopMode::Shutdown {
            communication: None,
        })
        .await;
        wait_for("b's routes gone", async || {
            (ours(lab_ref, "host") == [("172.16.1.1".to_string(), vec![ip("10.0.0.3")])])
                .then_some(())
        })
        .await;
        let st = fib.stop(Cleanup::RemoveAll).await.unwrap();
        assert!(st.routes.is_empty());
        c.shutdown(StopMode::GracefulRestart).await;
        a.shutdown(StopMode::GracefulRestart).await;
    });
    assert!(ours(&lab, "host").is_empty(), "all of ours removed");
    let foreign = lab.kernel_routes("host", false, Some("boot")).unwrap();
    assert_eq!(
        foreign.len(),
        1,
        "the operator's route is untouched: {foreign:?}"
    );
}
