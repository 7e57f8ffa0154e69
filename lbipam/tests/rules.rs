//! One test per LB-IPAM rule of SPEC.md (section "LB-IPAM"), and per "beat" line.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use lbipam::{CrossNamespace, Families, PoolSpec, Reason, ServiceRequest, allocate};

// ---- pools ----

#[test]
fn a_cidr_block_gives_its_lowest_free_address() {
    let a = allocate(
        &[pool("p", vec![cidr("172.16.1.0/24")])],
        &[svc("a", &[0]), svc("b", &[0])],
    );
    assert_eq!(addrs(&a, 0), ["172.16.1.0"]);
    assert_eq!(addrs(&a, 1), ["172.16.1.1"]);
    assert!(a.services.iter().all(|s| s.satisfied()));
}

#[test]
fn the_seed_pool_with_allow_first_last_ips_no_gives_webpod_172_16_1_1() {
    let mut p = pool("cilium-pool", vec![cidr("172.16.1.0/24")]);
    p.allow_first_last_ips = false;
    let a = allocate(&[p], &[svc("webpod", &[0])]);
    assert_eq!(addrs(&a, 0), ["172.16.1.1"]);
    assert_eq!(a.services[0].message, "172.16.1.1 from cilium-pool");
    assert_eq!(a.pools[0].total.to_string(), "254");
}

#[test]
fn a_start_stop_block_allocates_inside_the_range_and_a_lone_start_is_one_address() {
    let pools = [
        pool("l2", vec![range("192.168.10.211", "192.168.10.215")]),
        pool("one", vec![range("10.9.9.9", "10.9.9.9")]),
    ];
    let svcs: Vec<_> = (0..6).map(|i| svc(&format!("s{i}"), &[0])).collect();
    let a = allocate(&pools, &svcs);
    let got: Vec<String> = (0..5).flat_map(|i| addrs(&a, i)).collect();
    assert_eq!(
        got,
        [
            "192.168.10.211",
            "192.168.10.212",
            "192.168.10.213",
            "192.168.10.214",
            "192.168.10.215"
        ]
    );
    assert_eq!(a.services[5].reason, Reason::OutOfIps);
    assert_eq!(a.services[5].message, "no free IPv4 address in pool l2");
    let b = allocate(&pools, &[svc("x", &[1]), svc("y", &[1])]);
    assert_eq!(addrs(&b, 0), ["10.9.9.9"]);
    assert_eq!(b.services[1].reason, Reason::OutOfIps);
}

#[test]
fn ipv6_blocks_allocate_like_ipv4_ones() {
    let mut s = svc("v6", &[0]);
    s.families = Families::IPV6;
    let a = allocate(
        &[pool("p", vec![cidr("fd00:10::/64"), cidr("10.0.0.0/24")])],
        &[s],
    );
    assert_eq!(addrs(&a, 0), ["fd00:10::"]);
}

#[test]
fn overlapping_blocks_inside_a_pool_make_it_conflict_and_allocate_nothing() {
    let a = allocate(
        &[pool(
            "p",
            vec![cidr("10.0.0.0/24"), range("10.0.0.5", "10.0.0.6")],
        )],
        &[svc("a", &[0])],
    );
    assert_eq!(
        a.pools[0].conflict.as_deref(),
        Some("10.0.0.0/24 overlaps 10.0.0.5-10.0.0.6 in the same pool")
    );
    assert_eq!(a.services[0].reason, Reason::NoPool);
}

#[test]
fn services_get_addresses_only_from_pools_that_select_them() {
    let pools = [
        pool("red", vec![cidr("10.0.1.0/24")]),
        pool("blue", vec![cidr("10.0.2.0/24")]),
    ];
    let a = allocate(&pools, &[svc("r", &[0]), svc("b", &[1]), svc("none", &[])]);
    assert_eq!(addrs(&a, 0), ["10.0.1.0"]);
    assert_eq!(addrs(&a, 1), ["10.0.2.0"]);
    assert_eq!(a.services[2].reason, Reason::NoPool);
    assert_eq!(
        a.services[2].message,
        "no CiliumLoadBalancerIPPool selecting this service has IPv4 addresses"
    );
}

#[test]
fn a_disabled_pool_gives_nothing_new_but_keeps_what_it_gave() {
    let mut p = pool("p", vec![cidr("10.0.0.0/24")]);
    p.disabled = true;
    let mut old = svc("old", &[0]);
    old.current = vec![ip("10.0.0.7")];
    let a = allocate(&[p], &[old, svc("new", &[0])]);
    assert_eq!(addrs(&a, 0), ["10.0.0.7"]);
    assert!(a.services[0].satisfied());
    assert_eq!(a.services[1].reason, Reason::NoPool);
    assert_eq!(
        a.services[1].message,
        "no enabled CiliumLoadBalancerIPPool selecting this service has IPv4 addresses (not allocating: p)"
    );
    assert_eq!(a.pools[0].used.to_string(), "1");
}

#[test]
fn allow_first_last_ips_applies_only_to_cidrs_larger_than_two_addresses() {
    let mut p = pool("p", vec![cidr("10.0.0.0/31"), cidr("10.0.1.0/30")]);
    p.allow_first_last_ips = false;
    let svcs: Vec<_> = (0..5).map(|i| svc(&format!("s{i}"), &[0])).collect();
    let a = allocate(&[p], &svcs);
    let got: Vec<String> = (0..4).flat_map(|i| addrs(&a, i)).collect();
    assert_eq!(got, ["10.0.0.0", "10.0.0.1", "10.0.1.1", "10.0.1.2"]);
    assert_eq!(a.services[4].reason, Reason::OutOfIps);
    // The default gives first and last too.
    let a = allocate(&[pool("q", vec![cidr("10.0.1.0/30")])], &svcs);
    assert_eq!(addrs(&a, 3), ["10.0.1.3"]);
}

#[test]
fn counts_are_exact_for_a_slash_64_and_for_the_whole_ipv6_space() {
    let mut s = svc("a", &[0]);
    s.families = Families::IPV6;
    let a = allocate(
        &[pool("p", vec![cidr("fd00::/64"), cidr("10.0.0.0/24")])],
        &[s.clone()],
    );
    let p = &a.pools[0];
    assert_eq!(p.total.to_string(), "18446744073709551872");
    assert_eq!(p.used.to_string(), "1");
    assert_eq!(p.available.to_string(), "18446744073709551871");
    let a = allocate(&[pool("all", vec![cidr("::/0")])], &[s]);
    assert_eq!(
        a.pools[0].total.to_string(),
        "340282366920938463463374607431768211456"
    );
    assert_eq!(
        a.pools[0].available.to_string(),
        "340282366920938463463374607431768211455"
    );
    assert_eq!(addrs(&a, 0), ["::"]);
}

#[test]
fn the_newer_of_two_overlapping_pools_is_marked_and_allocates_nothing() {
    let mut older = pool("older", vec![cidr("10.0.0.0/24")]);
    older.created = 100;
    let mut newer = pool("newer", vec![cidr("10.0.0.128/25")]);
    newer.created = 200;
    let a = allocate(
        &[newer, older],
        &[svc("only-newer", &[0]), svc("both", &[0, 1])],
    );
    assert_eq!(
        a.pools[0].conflict.as_deref(),
        Some("10.0.0.128/25 overlaps 10.0.0.0/24 of the older pool older")
    );
    assert_eq!(a.pools[1].conflict, None);
    assert_eq!(a.services[0].reason, Reason::NoPool);
    assert_eq!(addrs(&a, 1), ["10.0.0.0"]);
}

// ---- services ----

#[test]
fn requested_addresses_are_given_exactly() {
    let mut s = svc("a", &[0]);
    s.requested = vec![ip("10.0.0.50"), ip("10.0.0.9")];
    let a = allocate(
        &[pool("p", vec![cidr("10.0.0.0/24")])],
        &[s, svc("b", &[0])],
    );
    assert_eq!(addrs(&a, 0), ["10.0.0.9", "10.0.0.50"]);
    assert_eq!(addrs(&a, 1), ["10.0.0.0"]);
}

#[test]
fn a_requested_address_outside_every_pool_is_no_pool() {
    let mut s = svc("a", &[0]);
    s.requested = vec![ip("192.0.2.1")];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[s]);
    assert_eq!(a.services[0].reason, Reason::NoPool);
    assert_eq!(
        a.services[0].message,
        "requested address 192.0.2.1 is in no CiliumLoadBalancerIPPool"
    );
}

#[test]
fn a_requested_address_in_a_pool_that_does_not_select_the_service_is_a_selector_mismatch() {
    let mut s = svc("a", &[]);
    s.requested = vec![ip("10.0.0.1")];
    let a = allocate(&[pool("blue", vec![cidr("10.0.0.0/24")])], &[s]);
    assert_eq!(a.services[0].reason, Reason::PoolSelectorMismatch);
    assert_eq!(a.services[0].reason.as_str(), "pool_selector_mismatch");
    assert!(a.services[0].message.contains("pool blue"));
}

#[test]
fn a_requested_address_in_a_disabled_pool_is_no_pool() {
    let mut p = pool("p", vec![cidr("10.0.0.0/24")]);
    p.disabled = true;
    let mut s = svc("a", &[0]);
    s.requested = vec![ip("10.0.0.1")];
    let a = allocate(&[p], &[s]);
    assert_eq!(a.services[0].reason, Reason::NoPool);
    assert_eq!(
        a.services[0].message,
        "requested address 10.0.0.1 is in pool p, which is disabled"
    );
}

#[test]
fn a_requested_address_held_by_another_service_is_already_allocated() {
    let mut holder = svc("holder", &[0]);
    holder.current = vec![ip("10.0.0.1")];
    let mut asker = svc("asker", &[0]);
    asker.requested = vec![ip("10.0.0.1")];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[holder, asker]);
    assert_eq!(addrs(&a, 0), ["10.0.0.1"]);
    assert_eq!(a.services[1].reason, Reason::AlreadyAllocated);
    assert_eq!(
        a.services[1].message,
        "requested address 10.0.0.1 is already allocated to default/holder"
    );
    assert!(a.services[1].addresses.is_empty());
}

#[test]
fn a_requested_address_held_by_an_incompatible_sharer_is_already_allocated_incompatible_service() {
    let mut holder = svc("holder", &[0]);
    holder.current = vec![ip("10.0.0.1")];
    holder.sharing_key = Some("k".into());
    holder.ports = vec![80];
    let mut asker = svc("asker", &[0]);
    asker.requested = vec![ip("10.0.0.1")];
    asker.sharing_key = Some("k".into());
    asker.ports = vec![80];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[holder, asker]);
    assert_eq!(
        a.services[1].reason,
        Reason::AlreadyAllocatedIncompatibleService
    );
    assert_eq!(
        a.services[1].message,
        "requested address 10.0.0.1 is allocated to default/holder, which uses the same port"
    );
}

#[test]
fn requests_are_all_or_nothing() {
    let mut holder = svc("holder", &[0]);
    holder.current = vec![ip("10.0.0.2")];
    let mut s = svc("a", &[0]);
    s.requested = vec![ip("10.0.0.1"), ip("10.0.0.2")];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[holder, s]);
    assert!(a.services[1].addresses.is_empty());
    assert_eq!(a.services[1].reason, Reason::AlreadyAllocated);
}

#[test]
fn a_request_that_is_not_an_address_is_reported() {
    let mut s = svc("a", &[0]);
    s.invalid_requests = vec!["10.0.0.x".into()];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[s]);
    assert_eq!(a.services[0].reason, Reason::NoPool);
    assert_eq!(
        a.services[0].message,
        "requested address \"10.0.0.x\" is not an IP address"
    );
}

#[test]
fn requested_addresses_win_over_fresh_allocations_in_the_same_pass() {
    // The older service would take .0 as lowest free; the newer one asked for .0 explicitly.
    let mut older = svc("older", &[0]);
    older.created = 1;
    let mut newer = svc("newer", &[0]);
    newer.created = 2;
    newer.requested = vec![ip("10.0.0.0")];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[older, newer]);
    assert_eq!(addrs(&a, 1), ["10.0.0.0"]);
    assert_eq!(addrs(&a, 0), ["10.0.0.1"]);
}

fn sharer(name: &str, ns: &str, ports: &[u16]) -> ServiceRequest {
    let mut s = ServiceRequest::new(ns, name, vec![0]);
    s.sharing_key = Some("dns".into());
    s.ports = ports.to_vec();
    s
}

#[test]
fn services_with_the_same_key_and_different_ports_share_one_address() {
    let a = allocate(
        &[pool("p", vec![cidr("10.0.0.0/24")])],
        &[
            sharer("a-tcp", "default", &[53]),
            sharer("b-udp", "default", &[5353]),
            svc("c-other", &[0]),
        ],
    );
    assert_eq!(addrs(&a, 0), ["10.0.0.0"]);
    assert_eq!(addrs(&a, 1), ["10.0.0.0"]);
    assert_eq!(addrs(&a, 2), ["10.0.0.1"]);
    assert_eq!(
        a.pools[0].used.to_string(),
        "2",
        "one shared address and one other"
    );
}

#[test]
fn a_shared_port_number_prevents_sharing_whatever_the_protocol() {
    let a = allocate(
        &[pool("p", vec![cidr("10.0.0.0/24")])],
        &[
            sharer("tcp", "default", &[53]),
            sharer("udp", "default", &[53]),
        ],
    );
    assert_ne!(addrs(&a, 0), addrs(&a, 1));
}

#[test]
fn different_external_traffic_policies_prevent_sharing() {
    let mut local = sharer("b", "default", &[81]);
    local.external_traffic_local = true;
    local.pod_selector.insert("app".into(), "x".into());
    let a = allocate(
        &[pool("p", vec![cidr("10.0.0.0/24")])],
        &[sharer("a", "default", &[80]), local],
    );
    assert_ne!(addrs(&a, 0), addrs(&a, 1));
}

#[test]
fn local_services_share_only_when_they_select_the_same_pods() {
    let mk = |name: &str, port: u16, app: &str| {
        let mut s = sharer(name, "default", &[port]);
        s.external_traffic_local = true;
        if !app.is_empty() {
            s.pod_selector.insert("app".into(), app.into());
        }
        s
    };
    let p = [pool("p", vec![cidr("10.0.0.0/24")])];
    let a = allocate(
        &p,
        &[mk("a", 80, "web"), mk("b", 81, "web"), mk("c", 82, "db")],
    );
    assert_eq!(addrs(&a, 0), addrs(&a, 1));
    assert_ne!(addrs(&a, 0), addrs(&a, 2));
    let a = allocate(&p, &[mk("a", 80, ""), mk("b", 81, "")]);
    assert_ne!(addrs(&a, 0), addrs(&a, 1), "no selector: never shared");
}

#[test]
fn cross_namespace_sharing_needs_both_sides_to_allow_it() {
    let p = [pool("p", vec![cidr("10.0.0.0/24")])];
    let mut a1 = sharer("a", "team-a", &[80]);
    let mut b1 = sharer("b", "team-b", &[81]);
    let one_sided = allocate(
        &p,
        &[a1.clone(), {
            let mut b = b1.clone();
            b.sharing_cross_namespace = CrossNamespace::Any;
            b
        }],
    );
    assert_ne!(addrs(&one_sided, 0), addrs(&one_sided, 1));
    a1.sharing_cross_namespace = CrossNamespace::Some(vec!["team-b".into()]);
    b1.sharing_cross_namespace = CrossNamespace::Any;
    let both = allocate(&p, &[a1, b1]);
    assert_eq!(addrs(&both, 0), addrs(&both, 1));
}

#[test]
fn services_without_the_same_key_never_share() {
    let mut a = sharer("a", "default", &[80]);
    let mut b = sharer("b", "default", &[81]);
    a.sharing_key = Some("x".into());
    b.sharing_key = Some("y".into());
    let out = allocate(
        &[pool("p", vec![cidr("10.0.0.0/24")])],
        &[a, b, svc("c", &[0])],
    );
    let all: std::collections::BTreeSet<Vec<String>> = (0..3).map(|i| addrs(&out, i)).collect();
    assert_eq!(all.len(), 3);
}

#[test]
fn a_sharer_may_request_the_address_of_a_compatible_service() {
    let mut holder = sharer("a", "default", &[80]);
    holder.current = vec![ip("10.0.0.9")];
    let mut asker = sharer("b", "default", &[443]);
    asker.requested = vec![ip("10.0.0.9")];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[holder, asker]);
    assert_eq!(addrs(&a, 1), ["10.0.0.9"]);
    assert!(a.services[1].satisfied());
}

fn dual_pools() -> Vec<PoolSpec> {
    vec![
        pool("v4", vec![cidr("10.0.0.0/24")]),
        pool("v6", vec![cidr("fd00::/120")]),
    ]
}

#[test]
fn single_stack_services_get_one_address_of_their_family() {
    let mut v6 = svc("six", &[0, 1]);
    v6.families = Families::IPV6;
    let a = allocate(&dual_pools(), &[svc("four", &[0, 1]), v6]);
    assert_eq!(addrs(&a, 0), ["10.0.0.0"]);
    assert_eq!(addrs(&a, 1), ["fd00::"]);
}

#[test]
fn dual_stack_services_get_one_address_of_each_family() {
    let mut req = svc("a-req", &[0, 1]);
    req.families = Families::REQUIRE_DUAL;
    let mut pref = svc("b-pref", &[0, 1]);
    pref.families = Families::PREFER_DUAL;
    let a = allocate(&dual_pools(), &[req, pref]);
    assert_eq!(addrs(&a, 0), ["10.0.0.0", "fd00::"]);
    assert_eq!(addrs(&a, 1), ["10.0.0.1", "fd00::1"]);
}

#[test]
fn require_dual_stack_takes_nothing_unless_both_families_can_be_served() {
    let mut s = svc("req", &[0]);
    s.families = Families::REQUIRE_DUAL;
    let a = allocate(&dual_pools(), &[s]);
    assert!(a.services[0].addresses.is_empty());
    assert_eq!(a.services[0].reason, Reason::NoPool);
    assert!(a.services[0].message.contains("IPv6"));
}

#[test]
fn prefer_dual_stack_is_satisfied_by_one_family_and_says_what_is_missing() {
    let mut s = svc("pref", &[0]);
    s.families = Families::PREFER_DUAL;
    let a = allocate(&dual_pools(), &[s]);
    assert_eq!(addrs(&a, 0), ["10.0.0.0"]);
    assert!(a.services[0].satisfied());
    assert_eq!(
        a.services[0].message,
        "10.0.0.0 from v4; no CiliumLoadBalancerIPPool selecting this service has IPv6 addresses"
    );
}

#[test]
fn every_reason_has_cilium_spelling() {
    let all = [
        (Reason::Satisfied, "satisfied"),
        (Reason::NoPool, "no_pool"),
        (Reason::OutOfIps, "out_of_ips"),
        (Reason::PoolSelectorMismatch, "pool_selector_mismatch"),
        (Reason::AlreadyAllocated, "already_allocated"),
        (
            Reason::AlreadyAllocatedIncompatibleService,
            "already_allocated_incompatible_service",
        ),
    ];
    for (r, s) in all {
        assert_eq!(r.to_string(), s);
    }
}

// ---- lifecycle ----

#[test]
fn shrinking_a_pool_re_addresses_only_the_services_outside_it() {
    let svcs: Vec<_> = (0..4).map(|i| svc(&format!("s{i}"), &[0])).collect();
    let before = allocate(&[pool("p", vec![cidr("10.0.0.0/29")])], &svcs);
    assert_eq!(addrs(&before, 3), ["10.0.0.3"]);
    // Shrink to 10.0.0.0-10.0.0.2 plus a new block elsewhere.
    let after = allocate(
        &[pool(
            "p",
            vec![range("10.0.0.0", "10.0.0.2"), cidr("10.0.1.0/30")],
        )],
        &with_current(&svcs, &before),
    );
    for i in 0..3 {
        assert_eq!(addrs(&after, i), addrs(&before, i), "s{i} kept its address");
    }
    assert_eq!(addrs(&after, 3), ["10.0.1.0"]);
}

#[test]
fn deleting_a_pool_re_addresses_only_its_services() {
    let pools = [
        pool("a", vec![cidr("10.0.1.0/24")]),
        pool("b", vec![cidr("10.0.2.0/24")]),
    ];
    let svcs = [svc("in-a", &[0]), svc("in-b", &[1]), svc("either", &[0, 1])];
    let before = allocate(&pools, &svcs);
    // Pool "a" is gone: the survivors' indices shift, as the caller rebuilds them.
    let remaining = [pool("b", vec![cidr("10.0.2.0/24")])];
    let mut next = with_current(&svcs, &before);
    next[0].pools = vec![];
    next[1].pools = vec![0];
    next[2].pools = vec![0];
    let after = allocate(&remaining, &next);
    assert_eq!(after.services[0].reason, Reason::NoPool);
    assert!(after.services[0].addresses.is_empty());
    assert_eq!(addrs(&after, 1), addrs(&before, 1));
    assert!(addrs(&after, 2)[0].starts_with("10.0.2."));
}

#[test]
fn a_service_that_goes_away_frees_its_address_for_the_next_one() {
    let p = [pool("p", vec![range("10.0.0.1", "10.0.0.1")])];
    let before = allocate(&p, &[svc("leaving", &[0])]);
    assert_eq!(addrs(&before, 0), ["10.0.0.1"]);
    // "leaving" is no longer LoadBalancer: agent-glue stops listing it.
    let after = allocate(&p, &[svc("next", &[0])]);
    assert_eq!(addrs(&after, 0), ["10.0.0.1"]);
}

#[test]
fn a_restart_re_imports_every_address_first_even_from_disabled_or_conflicting_pools() {
    let mut old = pool("old", vec![cidr("10.0.0.0/24")]);
    old.created = 1;
    let mut newer = pool("newer", vec![cidr("10.0.0.0/25"), cidr("10.0.5.0/24")]);
    newer.created = 2;
    let mut disabled = pool("disabled", vec![cidr("10.0.9.0/24")]);
    disabled.disabled = true;
    let mut from_conflicting = svc("c", &[1]);
    from_conflicting.current = vec![ip("10.0.5.77")];
    let mut from_disabled = svc("d", &[2]);
    from_disabled.current = vec![ip("10.0.9.200")];
    // A newcomer served first in order must not take what the others hold.
    let mut newcomer = svc("a-new", &[0]);
    newcomer.created = -1;
    let a = allocate(
        &[old, newer, disabled],
        &[from_conflicting, from_disabled, newcomer],
    );
    assert!(a.pools[1].conflict.is_some());
    assert_eq!(addrs(&a, 0), ["10.0.5.77"]);
    assert_eq!(addrs(&a, 1), ["10.0.9.200"]);
    assert!(a.services[0].satisfied() && a.services[1].satisfied());
    assert_eq!(addrs(&a, 2), ["10.0.0.0"]);
}

#[test]
fn a_held_address_of_a_family_no_longer_wanted_is_released() {
    let mut s = svc("a", &[0, 1]);
    s.current = vec![ip("10.0.0.5"), ip("fd00::5")];
    let a = allocate(&dual_pools(), &[s]);
    assert_eq!(addrs(&a, 0), ["10.0.0.5"]);
}

#[test]
fn two_services_holding_one_address_without_sharing_leave_it_to_the_older() {
    let mut older = svc("older", &[0]);
    older.created = 1;
    older.current = vec![ip("10.0.0.5")];
    let mut newer = svc("newer", &[0]);
    newer.created = 2;
    newer.current = vec![ip("10.0.0.5")];
    let a = allocate(&[pool("p", vec![cidr("10.0.0.0/24")])], &[newer, older]);
    assert_eq!(addrs(&a, 1), ["10.0.0.5"]);
    assert_eq!(addrs(&a, 0), ["10.0.0.0"]);
}

// ---- beat: deterministic pool choice, stability ----

#[test]
fn pool_choice_prefers_pools_with_a_selector_then_names_in_order() {
    let mut specific = pool("zz-specific", vec![cidr("10.0.9.0/24")]);
    specific.catch_all = false;
    let pools = [
        pool("b-default", vec![cidr("10.0.2.0/24")]),
        pool("a-default", vec![cidr("10.0.1.0/24")]),
        specific,
    ];
    let a = allocate(&pools, &[svc("all", &[0, 1, 2]), svc("defaults", &[0, 1])]);
    assert_eq!(addrs(&a, 0), ["10.0.9.0"]);
    assert_eq!(addrs(&a, 1), ["10.0.1.0"]);
}

#[test]
fn a_full_preferred_pool_spills_into_the_next() {
    let pools = [
        pool("a", vec![range("10.0.0.1", "10.0.0.1")]),
        pool("b", vec![cidr("10.0.1.0/24")]),
    ];
    let a = allocate(&pools, &[svc("x", &[0, 1]), svc("y", &[0, 1])]);
    assert_eq!(addrs(&a, 0), ["10.0.0.1"]);
    assert_eq!(addrs(&a, 1), ["10.0.1.0"]);
}

#[test]
fn allocating_again_on_the_result_changes_nothing() {
    let pools = dual_pools();
    let mut svcs = vec![svc("a", &[0, 1]), svc("b", &[0, 1])];
    svcs[1].families = Families::PREFER_DUAL;
    let first = allocate(&pools, &svcs);
    let second = allocate(&pools, &with_current(&svcs, &first));
    assert_eq!(first, second);
}

#[test]
fn a_pool_with_a_broken_selector_keeps_its_addresses_and_gives_no_new_ones() {
    let mut p = pool("p", vec![cidr("10.0.0.0/24")]);
    p.selector_broken = true;
    let mut holder = svc("holder", &[0]);
    holder.current = vec![ip("10.0.0.3")];
    let a = allocate(&[p], &[holder, svc("new", &[0])]);
    assert_eq!(addrs(&a, 0), ["10.0.0.3"]);
    assert_eq!(a.services[1].reason, Reason::NoPool);
}
