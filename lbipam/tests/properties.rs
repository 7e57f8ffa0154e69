//! Property tests: no address is given twice except by sharing, every address lies in a pool
//! that selects its service (new ones in an enabled, non-conflicting pool), and allocation is
//! stable across restarts, input order and sequences of events.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::with_current;
use lbipam::{
    Addr, AddrRange, Allocation, Block, CrossNamespace, Families, PoolSpec, ServiceRequest,
    allocate,
};
use proptest::prelude::*;

/// Addresses from a small space so that pools overlap and services collide.
fn small_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => (0u8..32).prop_map(|x| IpAddr::V4(Ipv4Addr::new(10, 0, 0, x))),
        1 => (0u16..16).prop_map(|x| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, x))),
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        (0u8..32, 27u8..=32).prop_map(|(x, len)| Block::Cidr(
            format!("10.0.0.{x}/{len}")
                .parse::<ipnet::IpNet>()
                .unwrap()
                .trunc()
        )),
        (0u16..16, 124u8..=128).prop_map(|(x, len)| Block::Cidr(
            format!("fd00::{x:x}/{len}")
                .parse::<ipnet::IpNet>()
                .unwrap()
                .trunc()
        )),
        (0u8..32, 0u8..6).prop_map(|(a, n)| Block::Range {
            start: IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)),
            stop: IpAddr::V4(Ipv4Addr::new(10, 0, 0, a.saturating_add(n).min(31))),
        }),
    ]
}

fn pool(i: usize) -> impl Strategy<Value = PoolSpec> {
    (
        prop::collection::vec(block(), 1..3),
        0i64..4,
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.3),
        any::<bool>(),
    )
        .prop_map(
            move |(blocks, created, allow, disabled, no_first_last, catch_all)| PoolSpec {
                created,
                disabled,
                allow_first_last_ips: allow || !no_first_last,
                catch_all,
                ..PoolSpec::new(format!("pool{i}"), blocks)
            },
        )
}

fn pools() -> impl Strategy<Value = Vec<PoolSpec>> {
    (1usize..4).prop_flat_map(|n| (0..n).map(pool).collect::<Vec<_>>())
}

fn service(i: usize, npools: usize) -> impl Strategy<Value = ServiceRequest> {
    (
        prop::collection::btree_set(0..npools, 0..=npools),
        prop_oneof![
            3 => Just(Families::IPV4),
            1 => Just(Families::IPV6),
            1 => Just(Families::PREFER_DUAL),
            1 => Just(Families::REQUIRE_DUAL),
        ],
        prop::collection::vec(small_ip(), 0..3),
        prop::bool::weighted(0.2),
        prop::option::of(prop_oneof![Just("a".to_string()), Just("b".to_string())]),
        prop::collection::vec(prop_oneof![Just(80u16), Just(81), Just(443)], 0..2),
        any::<bool>(),
        prop_oneof![Just("x"), Just("y"), Just("")],
        prop_oneof![Just("ns1"), Just("ns2")],
        prop_oneof![Just(CrossNamespace::None), Just(CrossNamespace::Any)],
        0i64..5,
    )
        .prop_map(
            move |(
                pools,
                families,
                current,
                request,
                key,
                ports,
                local,
                app,
                ns,
                cross,
                created,
            )| {
                let mut s = ServiceRequest::new(ns, format!("svc{i}"), pools.into_iter().collect());
                s.created = created;
                s.families = families;
                if request {
                    s.requested = current.iter().take(1).copied().collect();
                }
                s.current = current;
                s.sharing_key = key;
                s.ports = ports;
                s.external_traffic_local = local;
                if !app.is_empty() {
                    s.pod_selector = BTreeMap::from([("app".into(), app.into())]);
                }
                s.sharing_cross_namespace = cross;
                s
            },
        )
}

fn world() -> impl Strategy<Value = (Vec<PoolSpec>, Vec<ServiceRequest>)> {
    pools().prop_flat_map(|p| {
        let n = p.len();
        (
            Just(p),
            (0usize..12).prop_flat_map(move |k| (0..k).map(|i| service(i, n)).collect::<Vec<_>>()),
        )
    })
}

fn pool_ranges(p: &PoolSpec) -> Vec<AddrRange> {
    p.blocks
        .iter()
        .filter_map(|b| match *b {
            Block::Cidr(n) => Some(AddrRange::of_cidr(n)),
            Block::Range { start, stop } => AddrRange::new(start, stop),
        })
        .collect()
}

fn check_invariants(pools: &[PoolSpec], services: &[ServiceRequest], out: &Allocation) {
    let mut holders: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
    for o in &out.services {
        let s = &services[o.service];
        let mut fams = BTreeSet::new();
        for a in &o.addresses {
            holders.entry(a.ip).or_default().push(o.service);
            // Inside a pool that selects the service.
            assert!(
                s.pools.contains(&a.pool),
                "{} not eligible for pool {}",
                s.name,
                a.pool
            );
            let inside = pool_ranges(&pools[a.pool])
                .iter()
                .any(|r| r.contains(Addr::from(a.ip)));
            assert!(inside, "{} outside pool {}", a.ip, pools[a.pool].name);
            let was_held = s.current.contains(&a.ip);
            if !was_held {
                // New addresses only from pools that allocate.
                let po = &out.pools[a.pool];
                assert!(
                    !pools[a.pool].disabled && po.conflict.is_none(),
                    "new {} from closed pool",
                    a.ip
                );
            }
            if s.requested.is_empty() {
                assert!(
                    fams.insert(lbipam::Family::of(a.ip)),
                    "two addresses of one family"
                );
            } else {
                assert!(s.requested.contains(&a.ip), "{} not requested", a.ip);
            }
        }
    }
    for (ip, hs) in holders {
        for (i, &x) in hs.iter().enumerate() {
            for &y in &hs[i + 1..] {
                assert!(
                    services[x].can_share_with(&services[y]).is_ok(),
                    "{ip} given to {} and {} which may not share",
                    services[x].name,
                    services[y].name
                );
            }
        }
    }
    for p in &out.pools {
        assert_eq!(p.available, p.total.saturating_sub(p.used));
        assert!(p.used <= p.total);
    }
}

proptest! {

    #[test]
    fn addresses_are_unique_unless_shared_and_always_in_a_selecting_pool((pools, services) in world()) {
        let out = allocate(&pools, &services);
        check_invariants(&pools, &services, &out);
    }

    #[test]
    fn allocating_again_on_the_result_changes_nothing((pools, services) in world()) {
        let first = allocate(&pools, &services);
        let again = with_current(&services, &first);
        let second = allocate(&pools, &again);
        // The addresses and reasons are a fixed point. A message may name another family
        // once (a RequireDualStack service that got nothing, whose other family a newer
        // service then exhausted), after which the inputs, and so the answer, are the same.
        for (a, b) in first.services.iter().zip(&second.services) {
            prop_assert_eq!(&a.addresses, &b.addresses);
            prop_assert_eq!(a.reason, b.reason);
        }
        prop_assert_eq!(&first.pools, &second.pools);
        let third = allocate(&pools, &with_current(&again, &second));
        prop_assert_eq!(&second, &third);
    }

    #[test]
    fn the_order_of_services_and_pools_does_not_matter(
        (pools, services) in world(),
        seed in any::<u64>(),
    ) {
        let out = allocate(&pools, &services);
        // Reverse the pools and rotate the services, remapping pool indices.
        let np = pools.len();
        let rev_pools: Vec<PoolSpec> = pools.iter().rev().cloned().collect();
        let remap = |p: usize| np - 1 - p;
        let ns = services.len().max(1);
        let shift = (seed as usize) % ns;
        let mut moved: Vec<ServiceRequest> = services
            .iter()
            .map(|s| ServiceRequest { pools: s.pools.iter().map(|&p| remap(p)).collect(), ..s.clone() })
            .collect();
        if !moved.is_empty() {
            moved.rotate_left(shift);
        }
        let out2 = allocate(&rev_pools, &moved);
        for (i, o) in out.services.iter().enumerate() {
            let j = (i + ns - shift) % ns;
            let o2 = &out2.services[j];
            let a: Vec<(IpAddr, String)> = o.addresses.iter().map(|a| (a.ip, pools[a.pool].name.clone())).collect();
            let b: Vec<(IpAddr, String)> = o2.addresses.iter().map(|a| (a.ip, rev_pools[a.pool].name.clone())).collect();
            prop_assert_eq!(a, b);
            prop_assert_eq!(o.reason, o2.reason);
        }
        for (i, p) in out.pools.iter().enumerate() {
            let p2 = &out2.pools[remap(i)];
            prop_assert_eq!((&p.total, &p.used, &p.conflict), (&p2.total, &p2.used, &p2.conflict));
        }
    }

    /// Services come and go one at a time, statuses fed back each time: a service that holds
    /// an address keeps it for as long as it exists, whatever happens to the others.
    #[test]
    fn addresses_stay_with_their_services_through_any_sequence_of_events(
        (pools, services) in world(),
        events in prop::collection::vec((any::<bool>(), 0usize..12), 0..30),
    ) {
        let n = services.len();
        let mut present: BTreeSet<usize> = BTreeSet::new();
        let mut current: BTreeMap<usize, Vec<IpAddr>> = BTreeMap::new();
        for (add, k) in events {
            if n == 0 { break; }
            let k = k % n;
            if add { present.insert(k); } else { present.remove(&k); current.remove(&k); }
            let ids: Vec<usize> = present.iter().copied().collect();
            let input: Vec<ServiceRequest> = ids
                .iter()
                .map(|&i| ServiceRequest {
                    // Start from nothing: the generated `current` is only used by other tests.
                    current: current.get(&i).cloned().unwrap_or_default(),
                    requested: vec![],
                    ..services[i].clone()
                })
                .collect();
            let out = allocate(&pools, &input);
            check_invariants(&pools, &input, &out);
            for (pos, &i) in ids.iter().enumerate() {
                let got: Vec<IpAddr> = out.services[pos].addresses.iter().map(|a| a.ip).collect();
                if let Some(before) = current.get(&i) {
                    for a in before {
                        prop_assert!(got.contains(a), "svc{} lost {}", i, a);
                    }
                }
                current.insert(i, got);
            }
        }
    }
}
