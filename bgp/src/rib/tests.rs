//! RIB tests: decision process, ECMP, export and packing, graceful restart, subscribers.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::wire::{
    AsPath, Community, LargeCommunity, Message, MpReach, Origin, RouteRefreshSubtype,
};

const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 100);

pub(super) fn rib(max_paths: u16) -> Rib {
    let mut c = RibConfig::new(65001, ME);
    c.max_paths = max_paths;
    Rib::new(c)
}

pub(super) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ctx() -> EncodeContext {
    EncodeContext {
        four_octet_as: true,
        families: FamilySet::of(&[Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        ..EncodeContext::default()
    }
}

fn session(ebgp: bool, peer_as: u32, id: [u8; 4]) -> PeerSession {
    PeerSession {
        ebgp,
        peer_as,
        router_id: Ipv4Addr::from(id),
        families: FamilySet::of(&[Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        encode: ctx(),
        next_hop_v4: Some(ME),
        next_hop_v6: Some(("fd00::100".parse().unwrap(), None)),
        ipv6_session: false,
    }
}

pub(super) fn peer(r: &mut Rib, addr: [u8; 4], ebgp: bool, asn: u32) -> PeerIdx {
    let i = r.add_peer(PeerSettings::new(IpAddr::from(addr)));
    r.peer_up(i, session(ebgp, asn, addr));
    i
}

pub(super) fn update(
    prefixes: &[&str],
    path: &[u32],
    f: impl FnOnce(&mut PathAttributes),
) -> Update {
    let mut attrs = PathAttributes::new(Origin::Igp, AsPath::sequence(path.iter().copied()))
        .with_next_hop(Ipv4Addr::new(192, 168, 10, 200));
    f(&mut attrs);
    Update {
        attributes: attrs,
        nlri: prefixes.iter().map(|p| Nlri::new(net(p))).collect(),
        ..Update::default()
    }
}

fn best_peer(r: &Rib, prefix: &str) -> Option<PeerIdx> {
    r.loc_rib(Family::IPV4_UNICAST)
        .into_iter()
        .find(|v| v.prefix == net(prefix) && v.best)
        .map(|v| v.peer)
}

/// Decodes what `take_updates` produced.
fn decoded(msgs: &[Bytes]) -> Vec<Message> {
    let d = ctx().mirror();
    msgs.iter()
        .map(|b| Message::decode(b, &d).unwrap())
        .collect()
}

pub(super) fn drain(r: &mut Rib, idx: PeerIdx) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let m = r.take_updates(idx, 100_000).unwrap();
        if m.is_empty() {
            break;
        }
        all.extend(decoded(&m));
    }
    all
}

#[test]
fn a_received_route_is_in_the_adj_rib_in_and_the_loc_rib() {
    let mut r = rib(1);
    let p = peer(&mut r, [192, 168, 10, 200], true, 65000);
    let out = r.apply_update(p, &update(&["10.10.1.0/24"], &[65000], |_| {}));
    assert!(out.changed);
    let inn = r.adj_rib_in(p, Family::IPV4_UNICAST);
    assert_eq!(inn.len(), 1);
    assert_eq!(
        inn[0].attrs.next_hop,
        Some(NextHop::Ipv4(Ipv4Addr::new(192, 168, 10, 200)))
    );
    assert_eq!(inn[0].attrs.path.next_hop, None);
    assert_eq!(best_peer(&r, "10.10.1.0/24"), Some(p));
    assert_eq!(r.received_count(p, Family::IPV4_UNICAST), 1);
}

#[test]
fn the_decision_process_follows_rfc_4271_step_by_step() {
    let mut r = rib(1);
    let a = peer(&mut r, [10, 0, 0, 1], false, 65001);
    let b = peer(&mut r, [10, 0, 0, 2], false, 65001);
    // Higher LOCAL_PREF (iBGP) wins over a shorter path.
    r.apply_update(
        a,
        &update(&["10.1.0.0/16"], &[65100, 65200], |p| {
            p.local_pref = Some(200)
        }),
    );
    r.apply_update(
        b,
        &update(&["10.1.0.0/16"], &[65100], |p| p.local_pref = Some(100)),
    );
    assert_eq!(best_peer(&r, "10.1.0.0/16"), Some(a));
    // Same LOCAL_PREF: the shorter AS path.
    r.apply_update(a, &update(&["10.2.0.0/16"], &[65100, 65200], |_| {}));
    r.apply_update(b, &update(&["10.2.0.0/16"], &[65100], |_| {}));
    assert_eq!(best_peer(&r, "10.2.0.0/16"), Some(b));
    // Then the lower ORIGIN.
    r.apply_update(a, &update(&["10.3.0.0/16"], &[65100], |_| {}));
    r.apply_update(
        b,
        &update(&["10.3.0.0/16"], &[65100], |p| {
            p.origin = Some(Origin::Incomplete)
        }),
    );
    assert_eq!(best_peer(&r, "10.3.0.0/16"), Some(a));
    // Then the lower MED from the same neighbouring AS.
    r.apply_update(a, &update(&["10.4.0.0/16"], &[65100], |p| p.med = Some(50)));
    r.apply_update(b, &update(&["10.4.0.0/16"], &[65100], |p| p.med = Some(10)));
    assert_eq!(best_peer(&r, "10.4.0.0/16"), Some(b));
    // Then the lower BGP identifier.
    r.apply_update(b, &update(&["10.5.0.0/16"], &[65100], |_| {}));
    r.apply_update(a, &update(&["10.5.0.0/16"], &[65100], |_| {}));
    assert_eq!(best_peer(&r, "10.5.0.0/16"), Some(a));
}

#[test]
fn med_is_only_compared_between_routes_from_the_same_neighbouring_as() {
    let mut r = rib(1);
    let a = peer(&mut r, [10, 0, 0, 1], true, 65100);
    let b = peer(&mut r, [10, 0, 0, 2], true, 65200);
    r.apply_update(a, &update(&["10.4.0.0/16"], &[65100], |p| p.med = Some(50)));
    r.apply_update(b, &update(&["10.4.0.0/16"], &[65200], |p| p.med = Some(10)));
    // Different neighbour ASes: MED is skipped, the lower router id decides.
    assert_eq!(best_peer(&r, "10.4.0.0/16"), Some(a));
}

#[test]
fn external_routes_beat_internal_ones_and_our_own_beat_both() {
    let mut r = rib(1);
    let i = peer(&mut r, [10, 0, 0, 1], false, 65001);
    let e = peer(&mut r, [10, 0, 0, 2], true, 65000);
    r.apply_update(i, &update(&["10.6.0.0/16"], &[65000], |_| {}));
    r.apply_update(e, &update(&["10.6.0.0/16"], &[65000], |_| {}));
    assert_eq!(best_peer(&r, "10.6.0.0/16"), Some(e));
    r.announce(
        net("10.6.0.0/16"),
        Attrs {
            path: PathAttributes::new(Origin::Incomplete, AsPath::empty()),
            next_hop: None,
        },
    );
    assert_eq!(best_peer(&r, "10.6.0.0/16"), Some(LOCAL));
}

#[test]
fn a_path_with_our_own_as_is_kept_in_the_adj_rib_in_but_never_used() {
    let mut r = rib(1);
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    r.apply_update(p, &update(&["172.20.0.0/24"], &[65000, 65001], |_| {}));
    let inn = r.adj_rib_in(p, Family::IPV4_UNICAST);
    assert_eq!(inn.len(), 1);
    assert!(!inn[0].eligible);
    assert!(r.loc_rib(Family::IPV4_UNICAST).is_empty());
}

#[test]
fn equal_cost_paths_form_a_multipath_set_and_as_path_relax_widens_it() {
    let mut r = rib(4);
    let peers: Vec<PeerIdx> = (1..=4u8)
        .map(|i| peer(&mut r, [10, 0, 0, i], true, 65100 + u32::from(i % 2)))
        .collect();
    for p in &peers {
        let asn = 65100 + u32::from(*p as u8 % 2);
        r.apply_update(*p, &update(&["172.16.1.1/32"], &[asn], |_| {}));
    }
    let used = r.loc_rib(Family::IPV4_UNICAST);
    // Two neighbour ASes: without relax only paths with the best's AS path are kept.
    assert_eq!(used.len(), 2, "{used:?}");
    let mut c = RibConfig::new(65001, ME);
    c.max_paths = 4;
    c.multipath_relax = true;
    let mut r = Rib::new(c);
    for i in 1..=4u8 {
        let p = peer(&mut r, [10, 0, 0, i], true, 65100 + u32::from(i % 2));
        r.apply_update(
            p,
            &update(&["172.16.1.1/32"], &[65100 + u32::from(i % 2)], |_| {}),
        );
    }
    let used = r.loc_rib(Family::IPV4_UNICAST);
    assert_eq!(used.len(), 4);
    assert_eq!(used.iter().filter(|v| v.best).count(), 1);
    assert!(used[0].best, "best first");
}

#[test]
fn a_withdrawal_falls_back_to_the_next_best_path() {
    let mut r = rib(1);
    let a = peer(&mut r, [10, 0, 0, 1], true, 65000);
    let b = peer(&mut r, [10, 0, 0, 2], true, 65000);
    r.apply_update(a, &update(&["10.7.0.0/16"], &[65000], |_| {}));
    r.apply_update(b, &update(&["10.7.0.0/16"], &[65000, 65002], |_| {}));
    assert_eq!(best_peer(&r, "10.7.0.0/16"), Some(a));
    let w = Update {
        withdrawn: vec![Nlri::new(net("10.7.0.0/16"))],
        ..Update::default()
    };
    assert!(r.apply_update(a, &w).changed);
    assert_eq!(best_peer(&r, "10.7.0.0/16"), Some(b));
}

#[test]
fn an_external_path_that_does_not_start_with_the_peers_as_is_treated_as_withdrawn() {
    let mut r = rib(1);
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    r.apply_update(p, &update(&["10.8.0.0/16"], &[65000], |_| {}));
    r.apply_update(p, &update(&["10.8.0.0/16"], &[65099], |_| {}));
    assert!(r.adj_rib_in(p, Family::IPV4_UNICAST).is_empty());
}

fn local_attrs() -> Attrs {
    Attrs {
        path: PathAttributes::new(Origin::Igp, AsPath::empty())
            .with_med(20)
            .with_communities([Community::new(65001, 100), Community::NO_EXPORT_SUBCONFED])
            .with_large_communities([LargeCommunity::new(65001, 1, 2)]),
        next_hop: None,
    }
}

#[test]
fn a_new_session_gets_the_whole_table_packed_then_end_of_rib() {
    let mut r = rib(1);
    for i in 0..5000u32 {
        r.announce(
            net(&format!("10.{}.{}.0/24", i / 256, i % 256)),
            Attrs {
                path: PathAttributes::new(Origin::Igp, AsPath::empty()).with_med(7),
                next_hop: None,
            },
        );
    }
    let p = peer(&mut r, [192, 168, 10, 200], true, 65000);
    let msgs = drain(&mut r, p);
    let updates: Vec<&Update> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect();
    let announced: usize = updates.iter().map(|u| u.nlri.len()).sum();
    assert_eq!(announced, 5000);
    assert!(
        updates.len() <= 8,
        "{} UPDATEs for 5000 prefixes",
        updates.len()
    );
    let first = updates[0];
    assert_eq!(first.attributes.as_path, Some(AsPath::sequence([65001])));
    assert_eq!(first.attributes.next_hop, Some(ME));
    assert_eq!(first.attributes.med, Some(7));
    assert_eq!(first.attributes.local_pref, None);
    // End-of-RIB for both families, after the routes.
    let eors: Vec<Family> = updates
        .iter()
        .filter_map(|u| u.end_of_rib_family())
        .collect();
    assert_eq!(eors, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert_eq!(
        updates.last().unwrap().end_of_rib_family(),
        Some(Family::IPV6_UNICAST)
    );
    assert_eq!(r.advertised_count(p, Family::IPV4_UNICAST), 5000);
    // Withdrawing them all is a few UPDATEs too.
    for i in 0..5000u32 {
        r.withdraw(net(&format!("10.{}.{}.0/24", i / 256, i % 256)));
    }
    let msgs = drain(&mut r, p);
    let withdrawn: usize = msgs
        .iter()
        .map(|m| match m {
            Message::Update(u) => u.withdrawn.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(withdrawn, 5000);
    assert!(msgs.len() <= 6, "{} UPDATEs", msgs.len());
    // The export cache still holds the set sent; it goes with the session.
    r.peer_down(p, FamilySet::EMPTY);
    assert_eq!(r.attribute_sets(), 0, "no attribute set leaks");
}

#[test]
fn a_prefix_changed_many_times_before_sending_goes_out_once_with_its_last_attributes() {
    let mut r = rib(1);
    let p = peer(&mut r, [192, 168, 10, 200], true, 65000);
    drain(&mut r, p);
    for med in 0..1000 {
        r.announce(
            net("172.16.1.1/32"),
            Attrs {
                path: PathAttributes::new(Origin::Igp, AsPath::empty()).with_med(med),
                next_hop: None,
            },
        );
    }
    let msgs = drain(&mut r, p);
    assert_eq!(msgs.len(), 1);
    let Message::Update(u) = &msgs[0] else {
        panic!()
    };
    assert_eq!(u.attributes.med, Some(999));
    assert_eq!(r.attribute_sets(), 2, "the route's and the one sent");
}

#[test]
fn communities_large_communities_and_med_go_out_and_local_pref_only_to_internal_peers() {
    let mut r = rib(1);
    r.announce(net("172.20.0.0/24"), local_attrs());
    let e = peer(&mut r, [192, 168, 10, 200], true, 65000);
    let i = peer(&mut r, [192, 168, 10, 201], false, 65001);
    let Message::Update(ue) = &drain(&mut r, e)[0] else {
        panic!()
    };
    // NO_EXPORT_SUBCONFED keeps the route inside the AS.
    assert!(ue.nlri.is_empty());
    let Message::Update(ui) = &drain(&mut r, i)[0] else {
        panic!()
    };
    assert_eq!(ui.nlri.len(), 1);
    assert_eq!(ui.attributes.local_pref, Some(100));
    assert_eq!(
        ui.attributes.large_communities,
        vec![LargeCommunity::new(65001, 1, 2)]
    );
    assert_eq!(ui.attributes.med, Some(20));
    let mut a = local_attrs();
    a.path.communities = vec![Community::new(65001, 100)];
    r.announce(net("172.20.0.0/24"), a);
    let Message::Update(ue) = &drain(&mut r, e)[0] else {
        panic!()
    };
    assert_eq!(ue.nlri.len(), 1);
    assert_eq!(ue.attributes.communities, vec![Community::new(65001, 100)]);
    assert_eq!(ue.attributes.local_pref, None);
}

#[test]
fn ipv6_routes_go_out_in_mp_reach_with_an_ipv6_next_hop() {
    let mut r = rib(1);
    r.announce(net("fd00:20::/64"), local_attrs());
    let p = peer(&mut r, [192, 168, 10, 200], false, 65001);
    let msgs = drain(&mut r, p);
    let mp = msgs
        .iter()
        .find_map(|m| match m {
            Message::Update(u) => u.mp_reach.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(mp.family, Family::IPV6_UNICAST);
    assert_eq!(
        mp.next_hop,
        NextHop::Ipv6 {
            global: "fd00::100".parse().unwrap(),
            link_local: None
        }
    );
}

#[test]
fn routes_of_an_ipv6_next_hop_peer_are_kept_with_it() {
    let mut r = rib(1);
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    let u = Update {
        attributes: PathAttributes::new(Origin::Igp, AsPath::sequence([65000])),
        mp_reach: Some(MpReach {
            family: Family::IPV4_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: "fd00::1".parse().unwrap(),
                link_local: None,
            },
            nlri: vec![Nlri::new(net("10.9.0.0/16"))],
        }),
        ..Update::default()
    };
    r.apply_update(p, &u);
    let v = r.loc_rib(Family::IPV4_UNICAST);
    assert!(matches!(v[0].attrs.next_hop, Some(NextHop::Ipv6 { .. })));
}

#[test]
fn graceful_restart_keeps_paths_stale_until_end_of_rib_sweeps_the_rest() {
    let mut r = rib(1);
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    r.apply_update(
        p,
        &update(&["10.1.0.0/24", "10.2.0.0/24"], &[65000], |_| {}),
    );
    assert!(!r.peer_down(p, FamilySet::of(&[Family::IPV4_UNICAST])));
    assert_eq!(r.stale_count(p, Family::IPV4_UNICAST), 2);
    let v = r.loc_rib(Family::IPV4_UNICAST);
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|x| x.stale));
    // The session comes back and re-announces one of them.
    r.peer_up(p, session(true, 65000, [10, 0, 0, 1]));
    r.apply_update(p, &update(&["10.1.0.0/24"], &[65000], |_| {}));
    assert_eq!(r.stale_count(p, Family::IPV4_UNICAST), 1);
    let eor = r.apply_update(p, &Update::end_of_rib(Family::IPV4_UNICAST));
    assert_eq!(eor.end_of_rib, Some(Family::IPV4_UNICAST));
    assert_eq!(r.sweep_stale(p, Family::IPV4_UNICAST), 1);
    let v = r.loc_rib(Family::IPV4_UNICAST);
    assert_eq!(v.len(), 1);
    assert!(!v[0].stale);
}

#[test]
fn a_session_down_without_graceful_restart_removes_its_routes() {
    let mut r = rib(1);
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    r.apply_update(p, &update(&["10.1.0.0/24"], &[65000], |_| {}));
    assert!(r.peer_down(p, FamilySet::EMPTY));
    assert!(r.is_empty());
    assert_eq!(r.attribute_sets(), 0);
}

#[test]
fn passing_the_max_prefix_limit_is_reported() {
    let mut r = rib(1);
    let mut s = PeerSettings::new(IpAddr::from([10, 0, 0, 1]));
    s.max_prefixes = [Some(2), None];
    let p = r.add_peer(s);
    r.peer_up(p, session(true, 65000, [10, 0, 0, 1]));
    let out = r.apply_update(
        p,
        &update(&["10.1.0.0/24", "10.2.0.0/24"], &[65000], |_| {}),
    );
    assert_eq!(out.max_prefix, None);
    let out = r.apply_update(p, &update(&["10.3.0.0/24"], &[65000], |_| {}));
    assert_eq!(out.max_prefix, Some((Family::IPV4_UNICAST, 2)));
}

#[test]
fn end_of_rib_waits_until_our_table_is_complete() {
    let mut r = rib(1);
    r.set_table_complete(false);
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    r.announce(net("172.20.0.0/24"), local_attrs_exportable());
    let msgs = drain(&mut r, p);
    assert!(
        msgs.iter()
            .all(|m| matches!(m, Message::Update(u) if u.end_of_rib_family().is_none()))
    );
    assert!(!r.has_pending(p));
    r.set_table_complete(true);
    assert!(r.has_pending(p));
    let msgs = drain(&mut r, p);
    assert_eq!(msgs.len(), 2, "End-of-RIB for both families");
}

fn local_attrs_exportable() -> Attrs {
    Attrs {
        path: PathAttributes::new(Origin::Igp, AsPath::empty()),
        next_hop: None,
    }
}

#[test]
fn an_enhanced_route_refresh_resends_everything_between_markers() {
    let mut r = rib(1);
    r.announce(net("172.20.0.0/24"), local_attrs_exportable());
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    drain(&mut r, p);
    r.route_refresh(p, Family::IPV4_UNICAST, true);
    let msgs = drain(&mut r, p);
    assert!(
        matches!(&msgs[0], Message::RouteRefresh(rr) if rr.subtype == RouteRefreshSubtype::BeginningOfRouteRefresh)
    );
    assert!(matches!(&msgs[1], Message::Update(u) if u.nlri.len() == 1));
    assert!(
        matches!(&msgs[2], Message::RouteRefresh(rr) if rr.subtype == RouteRefreshSubtype::EndOfRouteRefresh)
    );
}

#[test]
fn a_subscriber_sees_the_table_then_each_change_and_removals_as_empty() {
    let mut r = rib(2);
    r.announce(net("172.20.0.0/24"), local_attrs_exportable());
    let s = r.subscribe();
    let first = r.take_best_changes(s, 100);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].paths.len(), 1);
    assert!(!r.has_best_changes(s));
    let a = peer(&mut r, [10, 0, 0, 1], true, 65000);
    let b = peer(&mut r, [10, 0, 0, 2], true, 65000);
    r.apply_update(a, &update(&["10.10.1.0/24"], &[65000], |_| {}));
    r.apply_update(
        b,
        &update(&["10.10.1.0/24"], &[65000], |p| {
            p.next_hop = Some(Ipv4Addr::new(10, 0, 0, 2))
        }),
    );
    let ch = r.take_best_changes(s, 100);
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].paths.len(), 2, "two equal-cost paths");
    r.peer_down(a, FamilySet::EMPTY);
    r.peer_down(b, FamilySet::EMPTY);
    let ch = r.take_best_changes(s, 100);
    assert_eq!(ch.len(), 1);
    assert!(ch[0].paths.is_empty());
}

#[test]
fn a_received_route_is_exported_to_other_peers_with_our_as_prepended() {
    let mut r = rib(1);
    let a = peer(&mut r, [10, 0, 0, 1], true, 65000);
    let b = peer(&mut r, [10, 0, 0, 2], true, 65100);
    drain(&mut r, a);
    drain(&mut r, b);
    r.apply_update(a, &update(&["10.10.1.0/24"], &[65000], |_| {}));
    assert!(drain(&mut r, a).is_empty(), "not back to its source");
    let msgs = drain(&mut r, b);
    let Message::Update(u) = &msgs[0] else {
        panic!()
    };
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence([65001, 65000])));
    assert_eq!(r.adj_rib_out(b, Family::IPV4_UNICAST).len(), 1);
}

#[test]
fn an_explicit_next_hop_of_our_route_is_advertised_when_the_family_fits() {
    let mut r = rib(1);
    let mut a = local_attrs_exportable();
    a.next_hop = Some(NextHop::Ipv4(Ipv4Addr::new(10, 9, 9, 9)));
    r.announce(net("172.20.9.0/24"), a);
    let p = peer(&mut r, [10, 0, 0, 1], true, 65000);
    let Message::Update(u) = &drain(&mut r, p)[0] else {
        panic!()
    };
    assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(10, 9, 9, 9)));
    assert_eq!(u.attributes.origin, Some(Origin::Igp));
}
