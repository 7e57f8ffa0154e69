//! Criterion benchmarks of the UPDATE codec, with `bgpkit-parser` decoding the same bytes
//! in the same run, and a count of heap allocations per decode.
//!
//! ```sh
//! cargo bench -p bgp --bench codec
//! ```
//!
//! The messages are those of the issue: UPDATEs with 1, 10, 100 and 500 IPv4 /24 prefixes
//! and one with 50 IPv6 /48 prefixes in MP_REACH_NLRI (global and link-local next hop),
//! each with ORIGIN, a 3-AS AS_PATH, NEXT_HOP, MED, two communities and a large community.
//! Before criterion runs, the allocation counts are printed: they show a fixed number of
//! allocations per UPDATE, none per prefix.

// The counting allocator below must implement `GlobalAlloc`, which is an unsafe trait.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)] // benchmark set-up: a failed unwrap is a broken benchmark

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use bgp::wire::{
    AsPath, Community, DecodeContext, EncodeContext, FamilySet, LargeCommunity, Message, MpReach,
    NextHop, Nlri, Origin, PathAttributes, Update,
};
use bgpkit_parser::models::AsnLength;
use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is exactly `System`'s; the counter is a relaxed atomic increment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout as given to us, see the impl's comment.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn attributes() -> PathAttributes {
    PathAttributes::new(Origin::Igp, AsPath::sequence([65001, 65002, 65003]))
        .with_med(100)
        .with_communities([Community::new(65001, 100), Community::new(65001, 200)])
        .with_large_communities([LargeCommunity::new(65001, 1, 2)])
}

fn ctx() -> EncodeContext {
    EncodeContext {
        four_octet_as: true,
        families: FamilySet::ALL,
        ..EncodeContext::default()
    }
}

fn ipv4_update(n: usize) -> Message {
    Message::Update(Update {
        attributes: attributes().with_next_hop(Ipv4Addr::new(192, 0, 2, 1)),
        nlri: (0..n)
            .map(|i| Nlri::new(format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()))
            .collect(),
        ..Update::default()
    })
}

fn ipv6_update(n: usize) -> Message {
    Message::Update(Update {
        attributes: attributes(),
        mp_reach: Some(MpReach {
            family: bgp::wire::Family::IPV6_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            },
            nlri: (0..n)
                .map(|i| Nlri::new(format!("2001:db8:{i:x}::/48").parse().unwrap()))
                .collect(),
        }),
        ..Update::default()
    })
}

fn cases() -> Vec<(String, Message)> {
    let mut v: Vec<(String, Message)> = [1, 10, 100, 500]
        .into_iter()
        .map(|n| (format!("ipv4-{n}"), ipv4_update(n)))
        .collect();
    v.push(("ipv6-mp-50".into(), ipv6_update(50)));
    v
}

fn bgpkit_decode(bytes: &Bytes) -> usize {
    let mut b = bytes.clone();
    match bgpkit_parser::parser::bgp::parse_bgp_message(&mut b, false, &AsnLength::Bits32) {
        Ok(bgpkit_parser::models::BgpMessage::Update(u)) => {
            u.announced_prefixes.len()
                + u.attributes
                    .get_reachable_nlri()
                    .map_or(0, |n| n.prefixes.len())
        }
        other => panic!("bgpkit could not decode: {other:?}"),
    }
}

fn allocations(mut f: impl FnMut()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn print_allocations() {
    let dctx = ctx().mirror();
    println!("allocations per call (counting global allocator):");
    println!(
        "{:<12} {:>8} {:>10} {:>10} {:>8}",
        "message", "octets", "decode", "bgpkit", "encode"
    );
    for (name, msg) in cases() {
        let bytes = msg.to_bytes(&ctx()).unwrap().freeze();
        let ours = allocations(|| {
            black_box(Message::decode(&bytes, &dctx).unwrap());
        });
        let theirs = allocations(|| {
            black_box(bgpkit_decode(&bytes));
        });
        let mut out = BytesMut::with_capacity(4096);
        let enc = allocations(|| {
            out.clear();
            msg.encode(&ctx(), &mut out).unwrap();
        });
        println!(
            "{name:<12} {:>8} {ours:>10} {theirs:>10} {enc:>8}",
            bytes.len()
        );
    }
}

fn bench(c: &mut Criterion) {
    print_allocations();
    let dctx: DecodeContext = ctx().mirror();
    let mut g = c.benchmark_group("decode");
    for (name, msg) in cases() {
        let bytes = msg.to_bytes(&ctx()).unwrap().freeze();
        // Both decoders must see the same prefixes.
        let Message::Update(u) = Message::decode(&bytes, &dctx).unwrap() else {
            unreachable!()
        };
        let ours = u.nlri.len() + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len());
        assert_eq!(ours, bgpkit_decode(&bytes));
        g.throughput(Throughput::Elements(ours as u64));
        g.bench_with_input(BenchmarkId::new("lbspeaker", &name), &bytes, |b, bytes| {
            b.iter(|| Message::decode(black_box(bytes), &dctx).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("bgpkit-parser", &name),
            &bytes,
            |b, bytes| b.iter(|| bgpkit_decode(black_box(bytes))),
        );
    }
    g.finish();
    let mut g = c.benchmark_group("encode");
    for (name, msg) in cases() {
        let mut out = BytesMut::with_capacity(8192);
        g.bench_with_input(BenchmarkId::new("lbspeaker", &name), &msg, |b, msg| {
            b.iter(|| {
                out.clear();
                msg.encode(&ctx(), &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
