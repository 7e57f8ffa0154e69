//! The UPDATE packer: as few messages as fit, never longer than the negotiated maximum,
//! every prefix exactly once, classic fields for IPv4 and MP_REACH/MP_UNREACH otherwise.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::{
    Announce, AsPath, Community, EncodeContext, EncodeError, Family, FamilySet, LargeCommunity,
    Message, NextHop, Nlri, Origin, PathAttributes, Update, pack_updates,
};

fn ctx() -> EncodeContext {
    EncodeContext {
        four_octet_as: true,
        families: FamilySet::ALL,
        ..EncodeContext::default()
    }
}

fn attrs() -> PathAttributes {
    PathAttributes::new(Origin::Igp, AsPath::sequence([65001, 65002, 65003]))
        .with_med(10)
        .with_communities([Community::new(65001, 1), Community::new(65001, 2)])
        .with_large_communities([LargeCommunity::new(65001, 1, 1)])
}

fn v4(n: usize) -> Vec<Nlri> {
    (0..n)
        .map(|i| Nlri::new(format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()))
        .collect()
}

fn v6(n: usize) -> Vec<Nlri> {
    (0..n)
        .map(|i| Nlri::new(format!("2001:db8:{:x}::/48", i).parse().unwrap()))
        .collect()
}

fn decode_all(msgs: &[bytes::Bytes], ctx: &EncodeContext) -> Vec<Update> {
    msgs.iter()
        .map(|m| {
            assert!(m.len() <= ctx.max_message_len(), "{} octets", m.len());
            match Message::decode(m, &ctx.mirror()).unwrap() {
                Message::Update(u) => {
                    assert!(u.errors.is_empty(), "{:?}", u.errors);
                    u
                }
                other => panic!("{other:?}"),
            }
        })
        .collect()
}

/// The fewest messages that can hold `items` octets of prefixes when each message has
/// `room` octets for them.
fn fewest(items: usize, room: usize) -> usize {
    items.div_ceil(room)
}

#[test]
fn ipv4_prefixes_fill_classic_updates_to_the_brim() {
    let prefixes = v4(3000);
    let nh = Ipv4Addr::new(192, 0, 2, 1);
    let a = attrs();
    let msgs = pack_updates(
        &ctx(),
        Family::IPV4_UNICAST,
        Some(Announce {
            attributes: &a,
            next_hop: NextHop::Ipv4(nh),
            nlri: &prefixes,
        }),
        &[],
    )
    .unwrap();
    let updates = decode_all(&msgs, &ctx());
    let mut got = Vec::new();
    for u in &updates {
        assert_eq!(u.attributes, a.clone().with_next_hop(nh));
        got.extend(u.nlri.iter().copied());
    }
    assert_eq!(got, prefixes);
    let mut attr_len = bytes::BytesMut::new();
    Message::Update(Update {
        attributes: a.clone().with_next_hop(nh),
        ..Update::default()
    })
    .encode(&ctx(), &mut attr_len)
    .unwrap();
    let room = 4096 - attr_len.len();
    assert_eq!(msgs.len(), fewest(3000 * 4, room));
}

#[test]
fn extended_message_sessions_need_fewer_updates() {
    let prefixes = v4(3000);
    let a = attrs();
    let ext = EncodeContext {
        extended_message: true,
        ..ctx()
    };
    let announce = Some(Announce {
        attributes: &a,
        next_hop: NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
        nlri: &prefixes,
    });
    let msgs = pack_updates(&ext, Family::IPV4_UNICAST, announce, &[]).unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].len() > 4096);
    assert_eq!(decode_all(&msgs, &ext)[0].nlri.len(), 3000);
}

#[test]
fn ipv6_prefixes_go_in_mp_reach_with_a_link_local_next_hop() {
    let prefixes = v6(1000);
    let a = attrs();
    let nh = NextHop::Ipv6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: Some("fe80::1".parse().unwrap()),
    };
    let withdrawn = v6(1300)[1000..].to_vec();
    let msgs = pack_updates(
        &ctx(),
        Family::IPV6_UNICAST,
        Some(Announce {
            attributes: &a,
            next_hop: nh,
            nlri: &prefixes,
        }),
        &withdrawn,
    )
    .unwrap();
    let updates = decode_all(&msgs, &ctx());
    let (mut reach, mut unreach) = (Vec::new(), Vec::new());
    for u in &updates {
        assert!(u.nlri.is_empty() && u.withdrawn.is_empty());
        if let Some(r) = &u.mp_reach {
            assert_eq!(r.next_hop, nh);
            assert_eq!(u.attributes, a);
            reach.extend(r.nlri.iter().copied());
        }
        if let Some(w) = &u.mp_unreach {
            unreach.extend(w.withdrawn.iter().copied());
        }
    }
    assert_eq!(reach, prefixes);
    assert_eq!(unreach, withdrawn);
    // 1000 * 7 + 300 * 7 octets of prefixes, about 4000 per message.
    assert!(msgs.len() <= 3, "{} messages", msgs.len());
}

#[test]
fn ipv4_with_an_ipv6_next_hop_needs_extended_next_hop() {
    let prefixes = v4(10);
    let a = attrs();
    let announce = Some(Announce {
        attributes: &a,
        next_hop: NextHop::Ipv6 {
            global: Ipv6Addr::LOCALHOST,
            link_local: None,
        },
        nlri: &prefixes,
    });
    assert!(matches!(
        pack_updates(&ctx(), Family::IPV4_UNICAST, announce, &[]),
        Err(EncodeError::NextHop { .. })
    ));
    let enh = EncodeContext {
        extended_next_hop: FamilySet::of(&[Family::IPV4_UNICAST]),
        ..ctx()
    };
    let msgs = pack_updates(&enh, Family::IPV4_UNICAST, announce, &[]).unwrap();
    let u = &decode_all(&msgs, &enh)[0];
    let r = u.mp_reach.as_ref().unwrap();
    assert_eq!((r.family, r.nlri.len()), (Family::IPV4_UNICAST, 10));
    assert_eq!(u.attributes.next_hop, None);
}

#[test]
fn withdrawals_share_a_message_with_announcements_when_there_is_room() {
    let a = attrs();
    let msgs = pack_updates(
        &ctx(),
        Family::IPV4_UNICAST,
        Some(Announce {
            attributes: &a,
            next_hop: NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
            nlri: &v4(5),
        }),
        &v4(10)[5..],
    )
    .unwrap();
    assert_eq!(msgs.len(), 1);
    let u = &decode_all(&msgs, &ctx())[0];
    assert_eq!((u.withdrawn.len(), u.nlri.len()), (5, 5));
}

#[test]
fn path_identifiers_are_written_only_where_add_path_is_negotiated() {
    let prefixes: Vec<Nlri> = v4(3)
        .into_iter()
        .enumerate()
        .map(|(i, n)| Nlri::with_path_id(n.prefix, i as u32 + 1))
        .collect();
    let a = attrs();
    let announce = Some(Announce {
        attributes: &a,
        next_hop: NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
        nlri: &prefixes,
    });
    let ap = EncodeContext {
        add_path: FamilySet::of(&[Family::IPV4_UNICAST]),
        ..ctx()
    };
    let u = &decode_all(
        &pack_updates(&ap, Family::IPV4_UNICAST, announce, &[]).unwrap(),
        &ap,
    )[0];
    assert_eq!(u.nlri, prefixes);
    let u = &decode_all(
        &pack_updates(&ctx(), Family::IPV4_UNICAST, announce, &[]).unwrap(),
        &ctx(),
    )[0];
    assert_eq!(u.nlri, v4(3));
}

#[test]
fn withdrawals_alone_need_no_attributes() {
    let msgs = pack_updates(&ctx(), Family::IPV4_UNICAST, None, &v4(2000)).unwrap();
    let updates = decode_all(&msgs, &ctx());
    assert_eq!(
        updates.iter().map(|u| u.withdrawn.len()).sum::<usize>(),
        2000
    );
    assert_eq!(msgs.len(), fewest(8000, 4096 - 23));
    assert!(
        updates
            .iter()
            .all(|u| u.attributes == PathAttributes::default())
    );
}

#[test]
fn prefixes_of_another_family_are_refused() {
    assert!(matches!(
        pack_updates(&ctx(), Family::IPV4_UNICAST, None, &v6(1)),
        Err(EncodeError::PrefixFamily { .. })
    ));
    assert!(matches!(
        pack_updates(&ctx(), Family::new(1, 128), None, &v4(1)),
        Err(EncodeError::UnsupportedFamily(_))
    ));
}

#[test]
fn attributes_too_large_for_any_prefix_are_an_error_not_an_oversized_message() {
    let a = attrs().with_communities((0..1100).map(Community));
    let r = pack_updates(
        &ctx(),
        Family::IPV4_UNICAST,
        Some(Announce {
            attributes: &a,
            next_hop: NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
            nlri: &v4(1),
        }),
        &[],
    );
    assert!(matches!(r, Err(EncodeError::TooLong { .. })), "{r:?}");
}

#[test]
fn end_of_rib_is_built_and_recognised_for_every_family() {
    for f in [
        Family::IPV4_UNICAST,
        Family::IPV6_UNICAST,
        Family::IPV4_MULTICAST,
        Family::IPV6_MULTICAST,
        Family::new(1, 128),
        Family::new(25, 70),
    ] {
        let bytes = Message::Update(Update::end_of_rib(f))
            .to_bytes(&ctx())
            .unwrap();
        let Message::Update(u) = Message::decode(&bytes, &ctx().mirror()).unwrap() else {
            panic!()
        };
        assert_eq!(u.end_of_rib_family(), Some(f), "{f}");
    }
    assert_eq!(
        Message::Update(Update::end_of_rib(Family::IPV4_UNICAST))
            .to_bytes(&ctx())
            .unwrap()
            .len(),
        23
    );
}
