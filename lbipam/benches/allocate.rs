//! Criterion benchmarks of LB-IPAM: allocate 100,000 services from one /12, and restore
//! 100,000 existing allocations (the start-up case: every service already has its address).
//!
//! ```sh
//! cargo bench -p lbipam --bench allocate
//! ```
//!
//! Before criterion runs, a tracking allocator prints the peak heap of one `allocate` call for
//! the same services from pools of very different sizes (/24-sized needs aside, a /64 or
//! `::/0` pool must cost no more than a /24), and for the 100,000-service cases.

// The tracking allocator below must implement `GlobalAlloc`, which is an unsafe trait.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)] // benchmark set-up: a failed unwrap is a broken benchmark

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lbipam::{Block, Families, PoolSpec, ServiceRequest, allocate};

/// The system allocator, tracking live and peak bytes.
struct Tracking;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is exactly `System`'s; the counters are relaxed atomics.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same layout as given to us, see the impl's comment.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Peak heap growth while `f` runs, in bytes.
fn peak_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed) - base, out)
}

fn pool(cidr: &str) -> PoolSpec {
    PoolSpec::new("bench", vec![Block::Cidr(cidr.parse().unwrap())])
}

fn services(n: usize, families: Families) -> Vec<ServiceRequest> {
    (0..n)
        .map(|i| {
            let mut s =
                ServiceRequest::new(format!("ns{}", i % 100), format!("svc-{i:06}"), vec![0]);
            s.created = i as i64;
            s.families = families;
            s
        })
        .collect()
}

fn with_current(svcs: &[ServiceRequest], pools: &[PoolSpec]) -> Vec<ServiceRequest> {
    let out = allocate(pools, svcs);
    svcs.iter()
        .zip(&out.services)
        .map(|(s, o)| ServiceRequest {
            current: o.addresses.iter().map(|a| a.ip).collect(),
            ..s.clone()
        })
        .collect()
}

fn print_memory() {
    println!("peak heap of one allocate() call (tracking global allocator):");
    for (label, cidr, fam) in [
        ("200 services, IPv4 /24", "10.0.0.0/24", Families::IPV4),
        ("200 services, IPv6 /64", "fd00::/64", Families::IPV6),
        ("200 services, IPv6 ::/0", "::/0", Families::IPV6),
        ("200 services, IPv4 /8", "10.0.0.0/8", Families::IPV4),
    ] {
        let pools = [pool(cidr)];
        let svcs = services(200, fam);
        let (bytes, out) = peak_during(|| allocate(&pools, &svcs));
        assert!(out.services.iter().all(|s| s.satisfied()));
        println!("  {label:<26} {:>9} bytes", bytes);
    }
    let pools = [pool("10.0.0.0/12")];
    let svcs = services(100_000, Families::IPV4);
    let (bytes, out) = peak_during(|| allocate(&pools, &svcs));
    assert!(out.services.iter().all(|s| s.satisfied()));
    println!("  {:<26} {:>9} bytes", "100,000 services, /12", bytes);
    let restored = with_current(&svcs, &pools);
    let (bytes, _) = peak_during(|| allocate(&pools, &restored));
    println!("  {:<26} {:>9} bytes", "restore 100,000, /12", bytes);
}

fn benches(c: &mut Criterion) {
    print_memory();
    let pools = [pool("10.0.0.0/12")];
    let fresh = services(100_000, Families::IPV4);
    let restored = with_current(&fresh, &pools);
    let mut g = c.benchmark_group("allocate");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("100k-new-from-slash12", |b| {
        b.iter(|| black_box(allocate(&pools, black_box(&fresh))))
    });
    g.bench_function("100k-restore-slash12", |b| {
        b.iter(|| black_box(allocate(&pools, black_box(&restored))))
    });
    let pools6 = [pool("fd00::/64")];
    let fresh6 = services(100_000, Families::IPV6);
    g.bench_function("100k-new-from-ipv6-slash64", |b| {
        b.iter(|| black_box(allocate(&pools6, black_box(&fresh6))))
    });
    g.finish();
}

criterion_group!(lbipam_benches, benches);
criterion_main!(lbipam_benches);
