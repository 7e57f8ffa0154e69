//! RIB benchmarks: a table of received UPDATEs through decode and the decision process, and
//! the same table exported to a new peer as packed UPDATEs. The full-size run (1,000,000 IPv4
//! and 200,000 IPv6 prefixes, time and memory) is `examples/rib_scale.rs`.

#![allow(clippy::unwrap_used)] // benchmark set-up: a failed unwrap is a broken benchmark

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bgp::rib::{PeerSession, PeerSettings, Rib, RibConfig};
use bgp::wire::{
    Announce, AsPath, EncodeContext, Family, FamilySet, Message, NextHop, Nlri, Origin,
    PathAttributes, pack_updates,
};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net};

const PREFIXES: usize = 100_000;
const SETS: usize = 1_000;

fn ctx() -> EncodeContext {
    EncodeContext {
        four_octet_as: true,
        families: FamilySet::of(&[Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        ..EncodeContext::default()
    }
}

fn updates() -> Vec<Bytes> {
    let per = PREFIXES / SETS;
    let mut out = Vec::new();
    for s in 0..SETS {
        let attrs = PathAttributes::new(
            Origin::Igp,
            AsPath::sequence([65000, 64512 + s as u32 % 400]),
        )
        .with_med(s as u32);
        let nlri: Vec<Nlri> = (s * per..(s + 1) * per)
            .map(|i| {
                let a = Ipv4Addr::from(0x0100_0000u32 + (i as u32) * 256);
                Nlri::new(IpNet::V4(Ipv4Net::new(a, 24).unwrap()))
            })
            .collect();
        let a = Announce {
            attributes: &attrs,
            next_hop: NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1)),
            nlri: &nlri,
        };
        out.extend(pack_updates(&ctx(), Family::IPV4_UNICAST, Some(a), &[]).unwrap());
    }
    out
}

fn session(asn: u32, id: [u8; 4]) -> PeerSession {
    PeerSession {
        ebgp: true,
        peer_as: asn,
        router_id: Ipv4Addr::from(id),
        families: ctx().families,
        encode: ctx(),
        next_hop_v4: Some(Ipv4Addr::new(192, 168, 0, 1)),
        next_hop_v6: None,
        ipv6_session: false,
    }
}

fn loaded(wire: &[Bytes]) -> Rib {
    let mut rib = Rib::new(RibConfig::new(65001, Ipv4Addr::new(192, 168, 0, 1)));
    let p = rib.add_peer(PeerSettings::new(IpAddr::from([10, 0, 0, 1])));
    rib.peer_up(p, session(65000, [10, 0, 0, 1]));
    let d = ctx().mirror();
    for b in wire {
        if let Ok(Message::Update(u)) = Message::decode(b, &d) {
            rib.apply_update(p, &u);
        }
    }
    rib
}

fn benches(c: &mut Criterion) {
    let wire = updates();
    let mut g = c.benchmark_group("rib");
    g.throughput(Throughput::Elements(PREFIXES as u64));
    g.sample_size(20);
    g.bench_function("receive 100k IPv4 prefixes (decode + decision)", |b| {
        b.iter(|| black_box(loaded(&wire)))
    });
    g.bench_function("export 100k IPv4 prefixes to a new peer (packed)", |b| {
        b.iter_batched(
            || loaded(&wire),
            |mut rib| {
                let p = rib.add_peer(PeerSettings::new(IpAddr::from([10, 0, 0, 2])));
                rib.peer_up(p, session(65002, [10, 0, 0, 2]));
                let mut n = 0;
                loop {
                    let m = rib.take_updates(p, 8192).unwrap();
                    if m.is_empty() {
                        break;
                    }
                    n += m.len();
                }
                black_box(n)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(rib, benches);
criterion_main!(rib);
