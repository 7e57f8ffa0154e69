//! Planning: resolution, the routes wanted and the diff against the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::config::FibConfig;
use super::plan::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A kernel route: `"192.168.10.0/24 dev 2"`, `"192.168.20.0/24 via 192.168.10.200 dev 2"`,
/// several `via` parts for multipath; protocol and table given.
fn route(text: &str, protocol: u8, table: u32, metric: u32) -> KernelRoute {
    let mut words = text.split_whitespace();
    let dst = net(words.next().unwrap());
    let mut next_hops = Vec::new();
    let mut gw = None;
    while let Some(w) = words.next() {
        match w {
            "via" => gw = Some(ip(words.next().unwrap())),
            "dev" => next_hops.push(NextHop {
                gateway: gw.take(),
                ifindex: words.next().unwrap().parse().unwrap(),
            }),
            _ => panic!("{w}"),
        }
    }
    KernelRoute {
        dst,
        table,
        protocol,
        metric,
        kind: RouteKind::Unicast,
        next_hops,
    }
}

/// node4 of the seed lab: eth1 (2) on 192.168.20.0/24, a static route to 192.168.10.0/24
/// through the tor, a default route through a router on eth2 (3).
fn node4() -> KernelView {
    KernelView {
        routes: vec![
            route("192.168.20.0/24 dev 2", 2, 254, 0),
            route("192.168.10.0/24 via 192.168.20.200 dev 2", 4, 254, 0),
            route("198.51.100.0/24 dev 3", 2, 254, 0),
            route("0.0.0.0/0 via 198.51.100.1 dev 3", 4, 254, 0),
            route("fd00:20::/64 dev 2", 2, 254, 256),
            route("fe80::/64 dev 2", 2, 254, 256),
        ],
        local_addresses: [ip("192.168.20.100"), ip("fd00:20::100")].into(),
    }
}

fn hop(a: &str) -> BgpNextHop {
    BgpNextHop {
        address: ip(a),
        link_local: None,
        peer: None,
    }
}

fn best(entries: &[(&str, &[&str])]) -> BTreeMap<IpNet, Vec<BgpNextHop>> {
    entries
        .iter()
        .map(|(p, hops)| (net(p), hops.iter().map(|h| hop(h)).collect()))
        .collect()
}

fn nh(gw: &str, ifindex: u32) -> NextHop {
    NextHop {
        gateway: Some(ip(gw)),
        ifindex,
    }
}

#[test]
fn a_next_hop_on_a_connected_network_is_installed_as_it_is() {
    let (want, unresolved) = desired(
        &best(&[("172.20.0.0/24", &["192.168.20.200"])]),
        &node4(),
        &FibConfig::default(),
    );
    assert!(unresolved.is_empty());
    assert_eq!(
        want[&net("172.20.0.0/24")].next_hops,
        BTreeSet::from([nh("192.168.20.200", 2)])
    );
}

#[test]
fn a_next_hop_beyond_a_static_route_resolves_to_that_routes_gateway() {
    // The tor announces with next hop 192.168.10.200 (the address node4's session goes to),
    // which node4 reaches through 192.168.20.200.
    let (want, _) = desired(
        &best(&[("172.20.1.0/24", &["192.168.10.200"])]),
        &node4(),
        &FibConfig::default(),
    );
    assert_eq!(
        want[&net("172.20.1.0/24")].next_hops,
        BTreeSet::from([nh("192.168.20.200", 2)])
    );
}

#[test]
fn the_default_route_resolves_nothing_unless_asked() {
    let b = best(&[("10.9.0.0/16", &["203.0.113.9"])]);
    let (want, unresolved) = desired(&b, &node4(), &FibConfig::default());
    assert!(want.is_empty());
    assert_eq!(
        unresolved[&net("10.9.0.0/16")],
        Unresolved::NoRoute {
            next_hops: vec![ip("203.0.113.9")]
        }
    );
    let cfg = FibConfig {
        resolve_via_default: true,
        ..FibConfig::default()
    };
    let (want, _) = desired(&b, &node4(), &cfg);
    assert_eq!(
        want[&net("10.9.0.0/16")].next_hops,
        BTreeSet::from([nh("198.51.100.1", 3)])
    );
}

#[test]
fn our_own_routes_and_other_tables_never_resolve_a_next_hop() {
    let mut view = node4();
    view.routes
        .push(route("10.50.0.0/16 via 192.168.20.200 dev 2", 212, 254, 20));
    view.routes
        .push(route("10.60.0.0/16 via 192.168.20.200 dev 2", 4, 100, 0));
    let (want, unresolved) = desired(
        &best(&[
            ("172.20.9.0/24", &["10.50.0.1"]),
            ("172.20.8.0/24", &["10.60.0.1"]),
        ]),
        &view,
        &FibConfig::default(),
    );
    assert!(want.is_empty(), "{want:?}");
    assert_eq!(unresolved.len(), 2);
}

#[test]
fn a_next_hop_that_is_our_own_address_is_refused() {
    let (want, unresolved) = desired(
        &best(&[("172.20.3.0/24", &["192.168.20.100"])]),
        &node4(),
        &FibConfig::default(),
    );
    assert!(want.is_empty());
    assert_eq!(
        unresolved[&net("172.20.3.0/24")],
        Unresolved::NextHopIsLocal {
            next_hop: ip("192.168.20.100")
        }
    );
}

#[test]
fn an_ecmp_set_becomes_one_multipath_route_without_duplicate_next_hops() {
    let (want, _) = desired(
        &best(&[(
            "172.16.1.1/32",
            // Two on the link, one beyond the static route (through .200 again).
            &[
                "192.168.20.201",
                "192.168.20.202",
                "192.168.10.5",
                "192.168.20.200",
            ],
        )]),
        &node4(),
        &FibConfig::default(),
    );
    assert_eq!(
        want[&net("172.16.1.1/32")].next_hops,
        BTreeSet::from([
            nh("192.168.20.200", 2),
            nh("192.168.20.201", 2),
            nh("192.168.20.202", 2)
        ])
    );
}

#[test]
fn paths_that_do_not_resolve_are_left_out_of_the_set() {
    let (want, unresolved) = desired(
        &best(&[("172.16.1.1/32", &["203.0.113.1", "192.168.20.201"])]),
        &node4(),
        &FibConfig::default(),
    );
    assert!(unresolved.is_empty());
    assert_eq!(
        want[&net("172.16.1.1/32")].next_hops,
        BTreeSet::from([nh("192.168.20.201", 2)])
    );
}

#[test]
fn a_link_local_next_hop_goes_out_of_the_link_of_its_peer() {
    let b = BTreeMap::from([(
        net("fd00:99::/64"),
        vec![BgpNextHop {
            address: ip("::"),
            link_local: Some("fe80::1".parse().unwrap()),
            peer: Some(ip("fd00:20::200")),
        }],
    )]);
    let (want, _) = desired(&b, &node4(), &FibConfig::default());
    assert_eq!(
        want[&net("fd00:99::/64")].next_hops,
        BTreeSet::from([nh("fe80::1", 2)])
    );
    // With a usable global next hop, that one is used.
    let b = BTreeMap::from([(
        net("fd00:99::/64"),
        vec![BgpNextHop {
            address: ip("fd00:20::200"),
            link_local: Some("fe80::1".parse().unwrap()),
            peer: Some(ip("fd00:20::200")),
        }],
    )]);
    let (want, _) = desired(&b, &node4(), &FibConfig::default());
    assert_eq!(
        want[&net("fd00:99::/64")].next_hops,
        BTreeSet::from([nh("fd00:20::200", 2)])
    );
}

#[test]
fn an_ipv4_prefix_with_an_ipv6_next_hop_resolves_in_ipv6() {
    let (want, _) = desired(
        &best(&[("172.20.5.0/24", &["fd00:20::200"])]),
        &node4(),
        &FibConfig::default(),
    );
    assert_eq!(
        want[&net("172.20.5.0/24")].next_hops,
        BTreeSet::from([nh("fd00:20::200", 2)])
    );
}

#[test]
fn the_prefix_filter_decides_what_is_wanted() {
    let cfg = FibConfig {
        accept: vec![
            "172.20.0.0/16 le 24".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
        ],
        ..FibConfig::default()
    };
    let (want, unresolved) = desired(
        &best(&[
            ("172.20.1.0/24", &["192.168.20.200"]),
            ("0.0.0.0/0", &["192.168.20.200"]),
            ("10.10.1.0/24", &["192.168.20.200"]),
            ("172.20.1.128/25", &["192.168.20.200"]),
        ]),
        &node4(),
        &cfg,
    );
    assert_eq!(
        want.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        ["0.0.0.0/0", "172.20.1.0/24"]
    );
    assert!(unresolved.is_empty());
}

fn wanted(entries: &[(&str, &[(&str, u32)])]) -> BTreeMap<IpNet, DesiredRoute> {
    entries
        .iter()
        .map(|(p, hops)| {
            (
                net(p),
                DesiredRoute {
                    dst: net(p),
                    next_hops: hops.iter().map(|(g, i)| nh(g, *i)).collect(),
                },
            )
        })
        .collect()
}

fn kinds(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .map(|o| match o {
            Op::Add(d) => format!("add {}", d.dst),
            Op::Replace(d) => format!("replace {}", d.dst),
            Op::Delete(r) => format!("delete {} metric {} table {}", r.dst, r.metric, r.table),
        })
        .collect()
}

#[test]
fn an_empty_kernel_gets_every_wanted_route_added() {
    let want = wanted(&[
        ("172.20.1.0/24", &[("192.168.20.200", 2)]),
        (
            "172.16.1.1/32",
            &[("192.168.20.201", 2), ("192.168.20.202", 2)],
        ),
    ]);
    let p = diff(&want, &node4(), &FibConfig::default(), false);
    assert_eq!(kinds(&p), ["add 172.16.1.1/32", "add 172.20.1.0/24"]);
    assert!(p.in_place.is_empty());
}

#[test]
fn routes_of_ours_already_in_place_are_adopted_and_never_duplicated() {
    let want = wanted(&[("172.20.1.0/24", &[("192.168.20.200", 2)])]);
    let mut view = node4();
    view.routes.push(route(
        "172.20.1.0/24 via 192.168.20.200 dev 2",
        212,
        254,
        20,
    ));
    let p = diff(&want, &view, &FibConfig::default(), false);
    assert!(p.ops.is_empty(), "{:?}", kinds(&p));
    assert_eq!(p.in_place, [net("172.20.1.0/24")]);
}

#[test]
fn changed_next_hops_replace_the_route_and_stale_duplicates_go_after() {
    let want = wanted(&[("172.20.1.0/24", &[("192.168.20.201", 2)])]);
    let mut view = node4();
    view.routes.push(route(
        "172.20.1.0/24 via 192.168.20.200 dev 2",
        212,
        254,
        20,
    ));
    // Left by an earlier configuration with another metric.
    view.routes.push(route(
        "172.20.1.0/24 via 192.168.20.200 dev 2",
        212,
        254,
        50,
    ));
    let p = diff(&want, &view, &FibConfig::default(), false);
    assert_eq!(
        kinds(&p),
        [
            "replace 172.20.1.0/24",
            "delete 172.20.1.0/24 metric 50 table 254"
        ]
    );
}

#[test]
fn unwanted_routes_of_ours_go_unless_the_startup_hold_keeps_them() {
    let mut view = node4();
    view.routes.push(route(
        "172.31.99.0/24 via 192.168.20.200 dev 2",
        212,
        254,
        20,
    ));
    let none = BTreeMap::new();
    let held = diff(&none, &view, &FibConfig::default(), true);
    assert!(held.ops.is_empty());
    assert_eq!(held.kept, 1);
    let p = diff(&none, &view, &FibConfig::default(), false);
    assert_eq!(kinds(&p), ["delete 172.31.99.0/24 metric 20 table 254"]);
}

#[test]
fn routes_that_are_not_ours_are_never_touched() {
    let mut view = node4();
    // A static route of the operator's at our metric for a prefix we want: a conflict.
    view.routes
        .push(route("172.20.1.0/24 via 192.168.20.250 dev 2", 4, 254, 20));
    // The same at another metric: no conflict, ours is added beside it.
    view.routes
        .push(route("172.20.2.0/24 via 192.168.20.250 dev 2", 4, 254, 100));
    // Our protocol number in another table: not ours (another instance's).
    view.routes.push(route(
        "172.20.3.0/24 via 192.168.20.250 dev 2",
        212,
        100,
        20,
    ));
    // Routes of other daemons of prefixes we do not want.
    view.routes
        .push(route("10.0.0.0/8 via 192.168.20.250 dev 2", 186, 254, 20));
    let want = wanted(&[
        ("172.20.1.0/24", &[("192.168.20.200", 2)]),
        ("172.20.2.0/24", &[("192.168.20.200", 2)]),
    ]);
    let p = diff(&want, &view, &FibConfig::default(), false);
    assert_eq!(kinds(&p), ["add 172.20.2.0/24"]);
    assert_eq!(p.conflicts, [net("172.20.1.0/24")]);
}

#[test]
fn a_route_in_a_table_of_our_own_is_planned_there() {
    let cfg = FibConfig {
        table: 1000,
        ..FibConfig::default()
    };
    let mut view = node4();
    view.routes.push(route(
        "172.20.7.0/24 via 192.168.20.200 dev 2",
        212,
        254,
        20,
    ));
    let want = wanted(&[("172.20.1.0/24", &[("192.168.20.200", 2)])]);
    let p = diff(&want, &view, &cfg, false);
    // The main table's route with our number belongs to another owner (table 254).
    assert_eq!(kinds(&p), ["add 172.20.1.0/24"]);
}
