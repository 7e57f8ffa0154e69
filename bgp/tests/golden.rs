//! Golden vectors from real FRR 8.4, GoBGP 3.10 and BIRD 2.0.12 sessions (captured by
//! `tests/capture_golden.rs`): every message decodes with the context its session
//! negotiated, with no malformation and nothing left over, and encodes back to the very
//! same bytes. Selected messages are compared field by field with what the daemons were
//! configured to send.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bgp::wire::{Message, Negotiated};
use common::{contexts, decode_all, load_all, opens};

#[test]
#[ignore = "prints every vector as JSON, for people"]
fn print_vectors() {
    for (c, m) in decode_all() {
        println!(
            "{} s{} {} -> {} {}",
            c.file,
            c.stream,
            c.src,
            c.dst,
            serde_json::to_string(&m).unwrap()
        );
    }
}

#[test]
fn every_captured_message_decodes_cleanly_and_encodes_to_the_same_bytes() {
    let msgs = load_all();
    assert!(msgs.len() > 150, "only {} vectors", msgs.len());
    let opens = opens(&msgs);
    for m in &msgs {
        let (dctx, ectx) = contexts(&opens, m);
        let what = format!("{} stream {} {} -> {}", m.file, m.stream, m.src, m.dst);
        assert_eq!(
            Message::frame_len(&m.bytes, &dctx).unwrap(),
            Some(m.bytes.len()),
            "{what}"
        );
        let msg = Message::decode(&m.bytes, &dctx).unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Message::Update(u) = &msg {
            assert!(u.errors.is_empty(), "{what}: {:?}", u.errors);
        }
        let bytes = msg.to_bytes(&ectx).unwrap();
        assert_eq!(hex::encode(&bytes), hex::encode(&m.bytes), "{what}");
    }
}

#[test]
fn both_ends_of_each_session_agree_on_what_was_negotiated() {
    let msgs = load_all();
    let opens = opens(&msgs);
    let mut checked = 0;
    for ((file, stream, src), open) in &opens {
        for ((file2, stream2, src2), other) in &opens {
            if file == file2 && stream == stream2 && src != src2 {
                let a = Negotiated::from_opens(open, other);
                let b = Negotiated::from_opens(other, open);
                assert_eq!(a.encode.mirror(), b.decode, "{file} {stream}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked}");
}

mod expected {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use bgp::wire::open::{
        AddPathEntry, ExtendedNextHopEntry, GracefulRestart, GracefulRestartFamily,
    };
    use bgp::wire::{
        AsPath, Capability, Community, ExtendedCommunity, Family, LargeCommunity, Message, MpReach,
        MpUnreach, NextHop, Nlri, Notification, Open, Origin, PathAttributes, RouteRefresh,
        RouteRefreshSubtype, Update,
    };

    use crate::common::{Captured, decode_all};

    /// The first message of `file` sent from an address starting with `src` that matches.
    fn find(file: &str, src: &str, pred: impl Fn(&Message) -> bool) -> (Captured, Message) {
        decode_all()
            .into_iter()
            .find(|(c, m)| c.file == file && c.src.starts_with(src) && pred(m))
            .unwrap_or_else(|| panic!("no such message in {file} from {src}"))
    }

    fn nlri(p: &str) -> Nlri {
        Nlri::new(p.parse().unwrap())
    }

    fn nlri_id(p: &str, id: u32) -> Nlri {
        Nlri::with_path_id(p.parse().unwrap(), id)
    }

    fn update(m: &Message) -> &Update {
        match m {
            Message::Update(u) => u,
            other => panic!("not an UPDATE: {other:?}"),
        }
    }

    fn gr(restart_state: bool, families: &[Family]) -> Capability {
        Capability::GracefulRestart(GracefulRestart {
            restart_state,
            notification: restart_state,
            restart_time: 120,
            families: families
                .iter()
                .map(|f| GracefulRestartFamily {
                    family: *f,
                    forwarding_preserved: false,
                })
                .collect(),
        })
    }

    #[test]
    fn frr_open_carries_each_capability_in_its_own_parameter() {
        let (_, m) = find("frr-gobgp", "10.0.1.1", |m| matches!(m, Message::Open(_)));
        let want = Open {
            version: 4,
            my_as: 65001,
            hold_time: 180,
            bgp_id: Ipv4Addr::new(10, 0, 0, 1),
            parameters: vec![
                vec![Capability::Multiprotocol(Family::IPV4_UNICAST)],
                vec![Capability::Unknown {
                    code: 128,
                    value: vec![],
                }],
                vec![Capability::RouteRefresh],
                vec![Capability::EnhancedRouteRefresh],
                vec![Capability::FourOctetAs(65001)],
                vec![Capability::ExtendedMessage],
                vec![Capability::AddPath(vec![AddPathEntry {
                    family: Family::IPV4_UNICAST,
                    send_receive: 3,
                }])],
                vec![Capability::Fqdn {
                    hostname: "frr".into(),
                    domain: String::new(),
                }],
                vec![gr(true, &[Family::IPV4_UNICAST])],
                vec![Capability::Unknown {
                    code: 71,
                    value: vec![0, 1, 1, 0x80, 0, 0, 0],
                }],
            ],
        };
        assert_eq!(m, Message::Open(want));
    }

    #[test]
    fn gobgp_open_has_as_trans_and_its_four_octet_as() {
        let (_, m) = find("frr-gobgp", "10.0.1.2", |m| matches!(m, Message::Open(_)));
        let Message::Open(o) = m else { unreachable!() };
        assert_eq!((o.my_as, o.asn(), o.hold_time), (23456, 4_200_000_002, 90));
        assert_eq!(o.parameters.len(), 1);
        assert!(o.capabilities().any(|c| *c
            == Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
                afi: 1,
                safi: 1,
                next_hop_afi: 2
            }])));
        assert!(o.capabilities().any(|c| *c
            == Capability::AddPath(vec![AddPathEntry {
                family: Family::IPV4_UNICAST,
                send_receive: 3
            }])));
    }

    #[test]
    fn bird_open_puts_all_capabilities_in_one_parameter() {
        let (_, m) = find("frr-bird", "[fd00:2::2]", |m| matches!(m, Message::Open(_)));
        let want = Open {
            version: 4,
            my_as: 65003,
            hold_time: 240,
            bgp_id: Ipv4Addr::new(10, 0, 0, 3),
            parameters: vec![vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
                    afi: 1,
                    safi: 1,
                    next_hop_afi: 2,
                }]),
                gr(false, &[Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
                Capability::FourOctetAs(65003),
                Capability::EnhancedRouteRefresh,
                Capability::Unknown {
                    code: 71,
                    value: vec![],
                },
            ]],
        };
        assert_eq!(m, Message::Open(want));
    }

    #[test]
    fn frr_update_with_communities_med_and_add_path() {
        let (_, m) = find(
            "frr-gobgp",
            "10.0.1.1",
            |m| matches!(m, Message::Update(u) if u.attributes.med == Some(50)),
        );
        let want = Update {
            attributes: PathAttributes::new(Origin::Igp, AsPath::sequence([65001, 65001, 65001]))
                .with_next_hop(Ipv4Addr::new(10, 0, 1, 1))
                .with_med(50)
                .with_communities([Community::new(65001, 100), Community::new(65001, 200)])
                .with_extended_communities([ExtendedCommunity::route_target_as2(65001, 7)])
                .with_large_communities([LargeCommunity::new(65001, 1, 2)]),
            nlri: vec![nlri_id("10.101.0.0/24", 2)],
            ..Update::default()
        };
        assert_eq!(update(&m), &want);
    }

    #[test]
    fn gobgp_update_with_four_octet_as_and_no_export() {
        let (_, m) = find(
            "frr-gobgp",
            "10.0.1.2",
            |m| matches!(m, Message::Update(u) if u.attributes.med == Some(20) && !u.nlri.is_empty()),
        );
        let want = Update {
            attributes: PathAttributes::new(Origin::Igp, AsPath::sequence([4_200_000_002]))
                .with_next_hop(Ipv4Addr::new(10, 0, 1, 2))
                .with_med(20)
                .with_communities([Community::new(4200, 1), Community::NO_EXPORT])
                .with_large_communities([LargeCommunity::new(4_200_000_002, 3, 4)]),
            nlri: vec![nlri_id("10.102.0.0/24", 1)],
            ..Update::default()
        };
        assert_eq!(update(&m), &want);
    }

    #[test]
    fn frr_ipv6_update_has_global_and_link_local_next_hop() {
        let (_, m) = find(
            "frr-bird",
            "[fd00:2::1]",
            |m| matches!(m, Message::Update(u) if u.mp_reach.as_ref().is_some_and(|r| r.family == Family::IPV6_UNICAST) && u.attributes.med == Some(50)),
        );
        let u = update(&m);
        let reach = u.mp_reach.as_ref().unwrap();
        assert_eq!(reach.nlri, vec![nlri("fd00:101::/48")]);
        let NextHop::Ipv6 { global, link_local } = reach.next_hop else {
            panic!("{:?}", reach.next_hop)
        };
        assert_eq!(global, "fd00:2::1".parse::<Ipv6Addr>().unwrap());
        assert!(link_local.is_some_and(|ll| ll.segments()[0] == 0xfe80));
        assert_eq!(u.attributes.next_hop, None);
        assert_eq!(u.attributes.as_path, Some(AsPath::sequence([65001; 3])));
    }

    #[test]
    fn bird_sends_ipv4_with_an_ipv6_next_hop_where_negotiated() {
        let (_, m) = find(
            "frr-bird",
            "[fd00:2::2]",
            |m| matches!(m, Message::Update(u) if u.mp_reach.as_ref().is_some_and(|r| r.family == Family::IPV4_UNICAST && r.nlri.len() == 2)),
        );
        let u = update(&m);
        let want_attrs = PathAttributes::new(Origin::Igp, AsPath::sequence([65003]))
            .with_med(30)
            .with_communities([Community::new(65003, 300)])
            .with_extended_communities([ExtendedCommunity::route_target_as2(65003, 9)])
            .with_large_communities([LargeCommunity::new(65003, 5, 6)]);
        assert_eq!(u.attributes, want_attrs);
        let reach = u.mp_reach.as_ref().unwrap();
        assert_eq!(
            reach.nlri,
            vec![nlri("10.103.0.0/24"), nlri("10.200.0.0/24")]
        );
        assert!(
            matches!(reach.next_hop, NextHop::Ipv6 { global, link_local: Some(_) } if global == "fd00:2::2".parse::<Ipv6Addr>().unwrap())
        );
    }

    #[test]
    fn end_of_rib_markers_are_recognised_for_both_families() {
        let (_, v4) = find(
            "frr-gobgp",
            "10.0.1.2",
            |m| matches!(m, Message::Update(u) if u.end_of_rib_family().is_some()),
        );
        assert_eq!(update(&v4).end_of_rib_family(), Some(Family::IPV4_UNICAST));
        assert_eq!(update(&v4), &Update::end_of_rib(Family::IPV4_UNICAST));
        let (_, v6) = find(
            "frr-gobgp",
            "[fd00:1::2]",
            |m| matches!(m, Message::Update(u) if u.end_of_rib_family().is_some()),
        );
        assert_eq!(
            update(&v6),
            &Update {
                mp_unreach: Some(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: vec![]
                }),
                ..Update::default()
            }
        );
        assert_eq!(update(&v6), &Update::end_of_rib(Family::IPV6_UNICAST));
    }

    #[test]
    fn withdrawals_with_path_ids_and_in_mp_unreach() {
        let (_, m) = find(
            "frr-bird",
            "10.0.2.1",
            |m| matches!(m, Message::Update(u) if u.withdrawn.len() == 3),
        );
        assert_eq!(
            update(&m).withdrawn,
            vec![
                nlri_id("10.102.1.0/24", 8),
                nlri_id("10.102.1.0/24", 15),
                nlri_id("10.102.1.0/24", 14)
            ]
        );
        let (_, m) = find(
            "frr-bird",
            "[fd00:2::1]",
            |m| matches!(m, Message::Update(u) if u.mp_unreach.as_ref().is_some_and(|x| x.family == Family::IPV4_UNICAST && !x.withdrawn.is_empty())),
        );
        assert_eq!(
            update(&m).mp_unreach,
            Some(MpUnreach {
                family: Family::IPV4_UNICAST,
                withdrawn: vec![nlri("10.102.1.0/24")]
            })
        );
    }

    #[test]
    fn route_refresh_and_enhanced_route_refresh_markers() {
        let (_, m) = find("frr-bird", "10.0.2.1", |m| {
            matches!(m, Message::RouteRefresh(_))
        });
        assert_eq!(
            m,
            Message::RouteRefresh(RouteRefresh::request(Family::IPV4_UNICAST))
        );
        for subtype in [
            RouteRefreshSubtype::BeginningOfRouteRefresh,
            RouteRefreshSubtype::EndOfRouteRefresh,
        ] {
            let want = Message::RouteRefresh(RouteRefresh {
                family: Family::IPV4_UNICAST,
                subtype,
            });
            find("frr-bird", "10.0.2.2", |m| *m == want);
        }
    }

    #[test]
    fn shutdown_notifications_carry_their_communication() {
        let (_, m) = find("frr-bird", "10.0.2.1", |m| {
            matches!(m, Message::Notification(_))
        });
        assert_eq!(
            m,
            Message::Notification(Notification::cease(
                2,
                Some("lbspeaker golden vector: planned maintenance")
            ))
        );
        let (_, m) = find("frr-gobgp", "[fd00:1::2]", |m| {
            matches!(m, Message::Notification(_))
        });
        let Message::Notification(n) = m else {
            unreachable!()
        };
        assert_eq!(n.describe(), "Cease / Administrative Shutdown");
        assert_eq!(
            n.shutdown_communication(),
            Some("gobgp going down for a golden vector")
        );
        let (_, m) = find("gobgp-bird", "10.0.3.2", |m| {
            matches!(m, Message::Notification(_))
        });
        let Message::Notification(n) = m else {
            unreachable!()
        };
        assert_eq!(n.shutdown_communication(), Some("bird says goodbye"));
    }

    #[test]
    fn reach_in_ipv4_mp_reach_with_an_ipv4_next_hop_from_bird() {
        let (_, m) = find(
            "frr-bird",
            "[fd00:2::2]",
            |m| matches!(m, Message::Update(u) if u.mp_reach.as_ref().is_some_and(|r| matches!(r.next_hop, NextHop::Ipv4(_)))),
        );
        let reach = update(&m).mp_reach.clone().unwrap();
        assert_eq!(
            reach,
            MpReach {
                family: Family::IPV4_UNICAST,
                next_hop: NextHop::Ipv4(Ipv4Addr::new(10, 0, 2, 1)),
                nlri: reach.nlri.clone()
            }
        );
    }
}
