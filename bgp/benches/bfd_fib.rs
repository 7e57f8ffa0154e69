//! BFD and FIB planning costs, the CPU side of issue 13's figures (the lab side is
//! `tests/benches/bfd_failover.rs`):
//! - a Control packet decoded and encoded, and one received by an Up session (what every
//!   packet costs; 100 sessions at 100 ms are 1,000 of each per second);
//! - FIB planning for 10,000 and 100,000 accepted prefixes with two-path ECMP: the routes
//!   wanted (next-hop resolution included) and the diff, against an empty kernel (first
//!   install) and against a kernel that already holds them all (a reconcile with nothing to
//!   do, what each resync and kernel notification costs).

#![allow(clippy::unwrap_used)] // benchmark set-up: a failed unwrap is a broken benchmark

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp::bfd::{BfdState, ControlPacket, Diagnostic, Input, Session, SessionConfig};
use bgp::fib::FibConfig;
use bgp::fib::plan::{self, BgpNextHop, KernelRoute, KernelView, NextHop, RouteKind};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net};

fn up_packet(your: u32) -> ControlPacket {
    ControlPacket {
        diag: Diagnostic::None,
        state: BfdState::Up,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 9,
        your_discriminator: your,
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 0,
    }
}

fn bfd(c: &mut Criterion) {
    let mut g = c.benchmark_group("bfd");
    g.throughput(Throughput::Elements(1));
    let wire = up_packet(7).encode();
    g.bench_function("decode", |b| {
        b.iter(|| ControlPacket::decode(black_box(&wire)).unwrap())
    });
    let p = up_packet(7);
    g.bench_function("encode", |b| b.iter(|| black_box(&p).encode()));
    // An Up session receiving the remote's periodic packet, then its own transmit tick.
    let mut cfg = SessionConfig::new(7);
    cfg.desired_min_tx = Duration::from_millis(100);
    cfg.required_min_rx = Duration::from_millis(100);
    let mut s = Session::new(cfg, Duration::ZERO);
    let mut down = up_packet(0);
    down.state = BfdState::Down;
    s.handle(Duration::from_millis(1), Input::Packet(down));
    s.handle(Duration::from_millis(2), Input::Packet(up_packet(7)));
    assert_eq!(s.state(), BfdState::Up);
    let mut now = Duration::from_millis(3);
    g.bench_function("session receives a packet and ticks", |b| {
        b.iter(|| {
            now += Duration::from_millis(100);
            let a = s.handle(now, Input::Packet(up_packet(7)));
            let t = s.handle(now, Input::Tick);
            black_box((a, t))
        })
    });
    g.finish();
}

/// A node's kernel: eth1 (2) on 10.0.0.0/16, plus `ours` of our routes already installed.
fn kernel(prefixes: &[IpNet], ours: bool) -> KernelView {
    let mut routes = vec![KernelRoute {
        dst: "10.0.0.0/16".parse().unwrap(),
        table: 254,
        protocol: 2,
        metric: 0,
        kind: RouteKind::Unicast,
        next_hops: vec![NextHop {
            gateway: None,
            ifindex: 2,
        }],
    }];
    if ours {
        routes.extend(prefixes.iter().map(|p| KernelRoute {
            dst: *p,
            table: 254,
            protocol: 212,
            metric: 20,
            kind: RouteKind::Unicast,
            next_hops: vec![hop("10.0.0.1"), hop("10.0.0.2")],
        }));
    }
    KernelView {
        routes,
        local_addresses: [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))].into(),
    }
}

fn hop(a: &str) -> NextHop {
    NextHop {
        gateway: Some(a.parse().unwrap()),
        ifindex: 2,
    }
}

fn fib(c: &mut Criterion) {
    let cfg = FibConfig {
        accept: vec!["100.0.0.0/6 le 24".parse().unwrap()],
        ..FibConfig::default()
    };
    let mut g = c.benchmark_group("fib plan");
    g.sample_size(20);
    for n in [10_000usize, 100_000] {
        let prefixes: Vec<IpNet> = (0..n)
            .map(|i| {
                let i = i as u32;
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x6400_0000 + (i << 8)), 24).unwrap())
            })
            .collect();
        let best: BTreeMap<IpNet, Vec<BgpNextHop>> = prefixes
            .iter()
            .map(|p| {
                let hops = ["10.0.0.1", "10.0.0.2"]
                    .map(|a| BgpNextHop {
                        address: a.parse().unwrap(),
                        link_local: None,
                        peer: None,
                    })
                    .to_vec();
                (*p, hops)
            })
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        for (label, installed) in [("first install", false), ("nothing to do", true)] {
            let view = kernel(&prefixes, installed);
            g.bench_with_input(BenchmarkId::new(label, n), &view, |b, view| {
                b.iter(|| {
                    let (want, _) = plan::desired(&best, view, &cfg);
                    let p = plan::diff(&want, view, &cfg, false);
                    assert_eq!(p.ops.is_empty(), installed, "{:?}", p.ops.first());
                    black_box(p)
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bfd, fib
}
criterion_main!(benches);
