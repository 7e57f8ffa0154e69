//! The dataplane with real packets: a client namespace, a node namespace with the programs on
//! its uplink and backend interfaces, local backends b1/b2 and a remote backend b3 behind a
//! router. Every test builds its own lab and bpffs (removed when it ends, also on failure).
//! Checksum offload is off on the endpoints, so the receiving stacks verify every checksum
//! the programs rewrote.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ebpf::{Algorithm, BackendState, Dataplane, DesiredState, Frontend, Protocol, TrafficPolicy};
use support::{Bpffs, Conn, NodeLab, eventually, get, ip, udp_ask};

const VIP: &str = "172.16.1.1";
const VIP6: &str = "fd00:1::1";

fn vip(port: u16) -> SocketAddr {
    SocketAddr::new(ip(VIP), port)
}

fn web(port: u16) -> Frontend {
    Frontend::new(ip(VIP), port, Protocol::Tcp)
}

fn backends_seen(lab: &NodeLab, to: SocketAddr, n: usize) -> BTreeSet<String> {
    let client = lab.ns("client");
    (0..n)
        .map(|_| eventually(Duration::from_secs(5), || get(&client, to)).backend)
        .collect()
}

fn no_checksum_errors(lab: &NodeLab) {
    for node in ["client", "b1", "b2", "b3"] {
        for c in ["TcpInCsumErrors", "UdpInCsumErrors", "Udp6InCsumErrors"] {
            assert_eq!(lab.nstat(node, c), 0, "{c} on {node}");
        }
    }
}

#[test]
fn requests_reach_every_backend_and_only_remote_ones_are_snated() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpa");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    for b in ["b1", "b2", "b3"] {
        lab.http(b, 8080);
    }
    let mut dp = lab.dataplane(&bpffs);
    let f = web(80)
        .backend(ip("10.0.1.2"), 8080, true)
        .backend(ip("10.0.2.2"), 8080, true)
        .backend(ip("10.0.3.2"), 8080, false);
    let mut mag = f.clone();
    mag.key.port = 81;
    mag.algorithm = Algorithm::Maglev;
    let report = dp.sync(&DesiredState::from_frontends([f, mag])).unwrap();
    assert!(report.rejected.is_empty());

    let seen = backends_seen(&lab, vip(80), 40);
    assert_eq!(
        seen,
        BTreeSet::from(["b1".into(), "b2".into(), "b3".into()])
    );
    let seen = backends_seen(&lab, vip(81), 40);
    assert_eq!(seen.len(), 3, "Maglev spreads flows too: {seen:?}");

    // Local backends see the client; the remote one sees the node, from the SNAT ports.
    let client = lab.ns("client");
    for _ in 0..30 {
        let a = get(&client, vip(80)).unwrap();
        if a.backend == "b3" {
            assert_eq!(a.peer.ip(), ip("192.168.1.1"), "{a:?}");
            assert!((61000..=65535).contains(&a.peer.port()), "{a:?}");
        } else {
            assert_eq!(a.peer.ip(), ip("192.168.1.2"), "{a:?}");
        }
    }
    // The node's own address is not a frontend: traffic to it is left alone.
    assert!(
        lab.lab
            .exec_ok("client", "ping", &["-c1", "-W2", "192.168.1.1"])
            .is_ok()
    );
    no_checksum_errors(&lab);
    let stats: std::collections::BTreeMap<_, _> = dp.stats().unwrap().into_iter().collect();
    assert!(stats["translated"] >= 110, "{stats:?}");
    dp.detach_all().unwrap();
}

#[test]
fn removing_a_backend_stops_new_connections_while_an_open_one_keeps_working() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpb");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    lab.http("b1", 8080);
    lab.http("b2", 8080);
    let mut dp = lab.dataplane(&bpffs);
    let both = web(80)
        .backend(ip("10.0.1.2"), 8080, true)
        .backend(ip("10.0.2.2"), 8080, true);
    dp.sync(&DesiredState::from_frontends([both.clone()]))
        .unwrap();
    let client = lab.ns("client");
    let mut open = eventually(Duration::from_secs(5), || Conn::open(&client, vip(80)));
    let first = open.request(0).unwrap().backend;
    let (gone, stays) = if first == "b1" {
        ("10.0.1.2", "b2")
    } else {
        ("10.0.2.2", "b1")
    };

    let mut without = both.clone();
    without.backends.retain(|b| b.address != ip(gone));
    let report = dp.sync(&DesiredState::from_frontends([without])).unwrap();
    assert!(
        report.ops.total() <= 4,
        "one backend less: {:?}",
        report.ops
    );
    for _ in 0..20 {
        assert_eq!(get(&client, vip(80)).unwrap().backend, stays);
    }
    for _ in 0..5 {
        assert_eq!(
            open.request(100).unwrap().backend,
            first,
            "the open connection stays"
        );
    }
    // GC keeps the removed backend while its flow lives, then releases it.
    let now = ebpf::gc::monotonic_secs();
    assert_eq!(dp.gc_at(now).unwrap().backends_released, 0);
    assert!(
        dp.snapshot()
            .unwrap()
            .backends
            .iter()
            .any(|(_, b)| b.addr.ip() == ip(gone))
    );
    drop(open);
    std::thread::sleep(Duration::from_millis(200));
    let r = dp.gc_at(now + 11).unwrap();
    assert_eq!(r.backends_released, 1, "{r:?}");
    assert!(
        !dp.snapshot()
            .unwrap()
            .backends
            .iter()
            .any(|(_, b)| b.addr.ip() == ip(gone))
    );

    // A terminating backend also keeps its flow and gets no new ones.
    dp.sync(&DesiredState::from_frontends([both.clone()]))
        .unwrap();
    let mut open = Conn::open(&client, vip(80)).unwrap();
    let first = open.request(0).unwrap().backend;
    let mut term = both.clone();
    for b in &mut term.backends {
        if (first == "b1") == (b.address == ip("10.0.1.2")) {
            b.state = BackendState::Terminating;
        }
    }
    dp.sync(&DesiredState::from_frontends([term])).unwrap();
    for _ in 0..10 {
        assert_ne!(get(&client, vip(80)).unwrap().backend, first);
    }
    assert_eq!(open.request(0).unwrap().backend, first);
    no_checksum_errors(&lab);
    dp.detach_all().unwrap();
}

#[test]
fn local_policy_preserves_the_client_address_and_drops_without_a_local_backend() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpc");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    lab.http("b1", 8080);
    lab.http("b3", 8080);
    let mut dp = lab.dataplane(&bpffs);
    let mut f = web(80)
        .backend(ip("10.0.1.2"), 8080, true)
        .backend(ip("10.0.3.2"), 8080, false);
    f.external_policy = TrafficPolicy::Local;
    dp.sync(&DesiredState::from_frontends([f.clone()])).unwrap();
    let client = lab.ns("client");
    for _ in 0..20 {
        let a = eventually(Duration::from_secs(5), || get(&client, vip(80)));
        assert_eq!(a.backend, "b1");
        assert_eq!(a.peer.ip(), ip("192.168.1.2"), "the client's own address");
    }
    let text = ebpf::render_table(&dp.list().unwrap());
    assert!(text.contains("[LoadBalancer, Local, two-scopes]"), "{text}");

    f.backends.retain(|b| !b.local);
    dp.sync(&DesiredState::from_frontends([f])).unwrap();
    let err = get(&client, vip(80)).expect_err("no local backend: dropped");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ),
        "{err}"
    );
    let stats: std::collections::BTreeMap<_, _> = dp.stats().unwrap().into_iter().collect();
    assert!(stats["no_backend"] > 0, "{stats:?}");
    dp.detach_all().unwrap();
}

#[test]
fn udp_answers_come_from_the_frontend_address() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpd");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    for b in ["b1", "b2", "b3"] {
        lab.udp(b, 5353);
    }
    let mut dp = lab.dataplane(&bpffs);
    let f = Frontend::new(ip(VIP), 53, Protocol::Udp)
        .backend(ip("10.0.1.2"), 5353, true)
        .backend(ip("10.0.2.2"), 5353, true)
        .backend(ip("10.0.3.2"), 5353, false);
    dp.sync(&DesiredState::from_frontends([f])).unwrap();
    let client = lab.ns("client");
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let (a, from) = eventually(Duration::from_secs(5), || udp_ask(&client, vip(53)));
        assert_eq!(from, vip(53), "replies come from the frontend");
        seen.insert(a.backend);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    no_checksum_errors(&lab);
    dp.detach_all().unwrap();
}

#[test]
fn ipv6_frontends_work_for_tcp_and_udp_local_and_remote() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpe");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    for b in ["b1", "b3"] {
        lab.http(b, 8080);
        lab.udp(b, 5353);
    }
    let mut dp = lab.dataplane(&bpffs);
    let tcp = Frontend::new(ip(VIP6), 80, Protocol::Tcp)
        .backend(ip("fd10:1::2"), 8080, true)
        .backend(ip("fd10:3::2"), 8080, false);
    let udp = Frontend::new(ip(VIP6), 53, Protocol::Udp)
        .backend(ip("fd10:1::2"), 5353, true)
        .backend(ip("fd10:3::2"), 5353, false);
    dp.sync(&DesiredState::from_frontends([tcp, udp])).unwrap();
    let client = lab.ns("client");
    let to = SocketAddr::new(ip(VIP6), 80);
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let a = eventually(Duration::from_secs(5), || get(&client, to));
        if a.backend == "b3" {
            assert_eq!(
                a.peer.ip(),
                ip("fd01::1"),
                "SNAT to the node's IPv6 address"
            );
        } else {
            assert_eq!(a.peer.ip(), ip("fd01::2"));
        }
        seen.insert(a.backend);
    }
    assert_eq!(seen.len(), 2);
    let to = SocketAddr::new(ip(VIP6), 53);
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let (a, from) = eventually(Duration::from_secs(5), || udp_ask(&client, to));
        assert_eq!(from, to);
        seen.insert(a.backend);
    }
    assert_eq!(seen.len(), 2);
    no_checksum_errors(&lab);
    dp.detach_all().unwrap();
}

#[test]
fn fragmentation_needed_from_a_small_mtu_hop_reaches_the_client_translated() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpf");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    // The hop's link to b3 carries 1280 bytes; b3 itself (and its MSS) thinks 1500.
    lab.lab
        .exec_ok("hop", "ip", &["link", "set", "dev", "eth1", "mtu", "1280"])
        .unwrap();
    lab.http("b3", 8080);
    let mut dp = lab.dataplane(&bpffs);
    let v4 = web(80).backend(ip("10.0.3.2"), 8080, false);
    let v6 = Frontend::new(ip(VIP6), 80, Protocol::Tcp).backend(ip("fd10:3::2"), 8080, false);
    dp.sync(&DesiredState::from_frontends([v4, v6])).unwrap();
    let client = lab.ns("client");
    for (to, family) in [(vip(80), "-4"), (SocketAddr::new(ip(VIP6), 80), "-6")] {
        let mut c = eventually(Duration::from_secs(5), || Conn::open(&client, to));
        // 6000 bytes in full-size segments: too big for the hop until the client learns.
        let a = c.request(6000).unwrap();
        assert_eq!((a.backend.as_str(), a.got), ("b3", 6000));
        let route = lab
            .lab
            .exec_ok(
                "client",
                "ip",
                &[family, "route", "get", &to.ip().to_string()],
            )
            .unwrap();
        assert!(
            route.contains("mtu 1280"),
            "the client learnt the path MTU: {route}"
        );
    }
    let stats: std::collections::BTreeMap<_, _> = dp.stats().unwrap().into_iter().collect();
    assert!(stats["icmp"] >= 2, "{stats:?}");
    no_checksum_errors(&lab);
    dp.detach_all().unwrap();
}

#[test]
fn a_backend_reaches_its_own_service_and_its_neighbour_through_it() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpg");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    lab.http("b1", 8080);
    lab.http("b2", 8080);
    let mut dp = lab.dataplane(&bpffs);
    let f = web(80)
        .backend(ip("10.0.1.2"), 8080, true)
        .backend(ip("10.0.2.2"), 8080, true);
    dp.sync(&DesiredState::from_frontends([f])).unwrap();
    let b1 = lab.ns("b1");
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let a = eventually(Duration::from_secs(5), || get(&b1, vip(80)));
        if a.backend == "b1" {
            // Hairpin: SNATed to the node, or b1 would answer itself directly.
            assert_eq!(a.peer.ip(), ip("192.168.1.1"), "{a:?}");
        } else {
            assert_eq!(a.peer.ip(), ip("10.0.1.2"), "{a:?}");
        }
        seen.insert(a.backend);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    no_checksum_errors(&lab);
    dp.detach_all().unwrap();
}

#[test]
fn conntrack_gc_deletes_closed_flows_and_keeps_open_ones() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dph");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    lab.http("b1", 8080);
    lab.udp("b1", 5353);
    let mut dp = lab.dataplane(&bpffs);
    let tcp = web(80).backend(ip("10.0.1.2"), 8080, true);
    let udp = Frontend::new(ip(VIP), 53, Protocol::Udp).backend(ip("10.0.1.2"), 5353, true);
    dp.sync(&DesiredState::from_frontends([tcp, udp])).unwrap();
    let client = lab.ns("client");
    let mut open = eventually(Duration::from_secs(5), || Conn::open(&client, vip(80)));
    open.request(0).unwrap();
    for _ in 0..5 {
        get(&client, vip(80)).unwrap();
    }
    udp_ask(&client, vip(53)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // 6 TCP flows and 1 UDP flow, two entries each.
    assert_eq!(dp.conntrack().unwrap().len(), 14);
    let now = ebpf::gc::monotonic_secs();
    assert_eq!(dp.gc_at(now).unwrap().deleted, 0);
    // After the closing timeout: the 5 closed TCP flows go; the open one and UDP stay.
    let r = dp.gc_at(now + 11).unwrap();
    assert_eq!((r.deleted, r.flows_kept), (10, 2), "{r:?}");
    // After the UDP timeout: UDP goes too.
    let r = dp.gc_at(now + 61).unwrap();
    assert_eq!((r.deleted, r.flows_kept), (2, 1), "{r:?}");
    assert_eq!(open.request(0).unwrap().backend, "b1");
    dp.detach_all().unwrap();
}

#[test]
fn a_restart_adopts_the_pinned_maps_without_disturbing_an_open_connection() {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpi");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    lab.http("b1", 8080);
    lab.http("b2", 8080);
    let f = web(80)
        .backend(ip("10.0.1.2"), 8080, true)
        .backend(ip("10.0.2.2"), 8080, true);
    let desired = DesiredState::from_frontends([f]);
    let client = lab.ns("client");
    let (mut open, first) = {
        let mut dp = lab.dataplane(&bpffs);
        dp.sync(&desired).unwrap();
        let mut c = eventually(Duration::from_secs(5), || Conn::open(&client, vip(80)));
        let first = c.request(0).unwrap().backend;
        (c, first)
        // The daemon goes away: maps and links stay pinned.
    };
    assert_eq!(
        open.request(0).unwrap().backend,
        first,
        "forwarding without the daemon"
    );
    let mut dp = Dataplane::load(NodeLab::config(&bpffs)).unwrap();
    let report = dp.sync(&desired).unwrap();
    assert_eq!(
        report.ops.total(),
        0,
        "the same state after a restart is a no-op"
    );
    lab.attach(&mut dp);
    assert_eq!(open.request(0).unwrap().backend, first);
    assert_eq!(backends_seen(&lab, vip(80), 30).len(), 2);
    dp.detach_all().unwrap();
}

#[test]
fn loading_without_a_bpf_filesystem_says_how_to_mount_one() {
    let cfg = ebpf::DataplaneConfig {
        bpffs_root: std::env::temp_dir().join("lbspeaker-not-bpffs"),
        ..Default::default()
    };
    let err = Dataplane::load(cfg).expect_err("not a bpffs");
    assert!(
        err.to_string().contains("mount -t bpf bpf /sys/fs/bpf"),
        "{err}"
    );
}

#[test]
fn with_the_program_on_the_uplink_only_replies_and_the_kernels_icmp_errors_are_translated_on_egress()
 {
    if !support::required() {
        return;
    }
    let mut lab = NodeLab::up("dpj");
    let bpffs = Bpffs::mount(lab.lab.prefix());
    // b1's link carries 1280 bytes: the node itself must send fragmentation-needed.
    for (node, dev) in [("node", "be1"), ("b1", "eth0")] {
        lab.lab
            .exec_ok(node, "ip", &["link", "set", "dev", dev, "mtu", "1280"])
            .unwrap();
    }
    lab.http("b1", 8080);
    lab.udp("b1", 5353);
    let mut dp = Dataplane::load(NodeLab::config(&bpffs)).unwrap();
    dp.attach(&ebpf::Attachment::uplink("up0").in_netns(lab.ns("node")))
        .unwrap();
    let tcp = web(80).backend(ip("10.0.1.2"), 8080, true);
    let udp = Frontend::new(ip(VIP), 53, Protocol::Udp).backend(ip("10.0.1.2"), 5353, true);
    dp.sync(&DesiredState::from_frontends([tcp, udp])).unwrap();
    let client = lab.ns("client");
    // b1's replies leave through the uplink, where lb_egress gives them the VIP back.
    for _ in 0..5 {
        let a = eventually(Duration::from_secs(5), || get(&client, vip(80)));
        assert_eq!((a.backend.as_str(), a.peer.ip()), ("b1", ip("192.168.1.2")));
    }
    // A 1400-byte datagram (Linux sets DF on UDP): the node's kernel answers
    // fragmentation-needed about the translated packet; egress translates it for the client.
    let sock = ebpf::netns::run_in(Some(&client), || std::net::UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    sock.send_to(&[0u8; 1400], vip(53)).unwrap();
    let route = eventually(Duration::from_secs(3), || {
        let r = lab
            .lab
            .exec_ok("client", "ip", &["-4", "route", "get", VIP])
            .map_err(std::io::Error::other)?;
        if r.contains("mtu 1280") {
            Ok(r)
        } else {
            Err(std::io::Error::other(r))
        }
    });
    assert!(route.contains("mtu 1280"), "{route}");
    let (a, from) = udp_ask(&client, vip(53)).unwrap();
    assert_eq!((a.backend.as_str(), from), ("b1", vip(53)));
    let stats: std::collections::BTreeMap<_, _> = dp.stats().unwrap().into_iter().collect();
    assert!(stats["icmp"] >= 1 && stats["reversed"] >= 5, "{stats:?}");
    no_checksum_errors(&lab);
    dp.detach_all().unwrap();
}
