//! Property tests: what is encoded decodes to the same value, and no sequence of bytes makes
//! the decoder panic, whatever the session negotiated.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::open::{AddPathEntry, GracefulRestart, GracefulRestartFamily};
use bgp::wire::{
    Aggregator, AsPath, AsSegment, Capability, Community, DecodeContext, EncodeContext,
    ExtendedCommunity, Family, FamilySet, LargeCommunity, Message, MpReach, MpUnreach, NextHop,
    Nlri, Notification, Open, Origin, PathAttributes, RawAttribute, RouteRefresh, SegmentType,
    Update,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn v4_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
}

fn v6_prefix() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

fn nlris(p: impl Strategy<Value = IpNet>, add_path: bool) -> impl Strategy<Value = Vec<Nlri>> {
    vec((p, any::<u32>()), 0..40).prop_map(move |v| {
        v.into_iter()
            .map(|(prefix, id)| Nlri {
                path_id: add_path.then_some(id),
                prefix,
            })
            .collect()
    })
}

fn as_path() -> impl Strategy<Value = AsPath> {
    let kind = prop_oneof![
        Just(SegmentType::AsSequence),
        Just(SegmentType::AsSet),
        Just(SegmentType::AsConfedSequence),
        Just(SegmentType::AsConfedSet)
    ];
    vec((kind, vec(any::<u32>(), 1..8)), 0..4).prop_map(|segs| AsPath {
        segments: segs
            .into_iter()
            .map(|(kind, asns)| AsSegment { kind, asns })
            .collect(),
    })
}

fn attributes() -> impl Strategy<Value = PathAttributes> {
    (
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            as_path(),
            any::<u32>(),
            option::of(any::<u32>()),
            option::of(any::<u32>()),
            any::<bool>(),
            option::of((any::<u32>(), any::<u32>())),
        ),
        (
            vec(any::<u32>(), 0..6),
            option::of(any::<u32>()),
            vec(any::<u32>(), 0..3),
            vec(any::<[u8; 8]>(), 0..3),
            vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..3),
            option::of((
                prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0)],
                vec(any::<u8>(), 0..300),
            )),
        ),
    )
        .prop_map(
            |(
                (origin, path, nh, med, lp, atomic, agg),
                (comms, orig, clusters, ext, large, unknown),
            )| {
                PathAttributes {
                    origin: Some(origin),
                    as_path: Some(path),
                    next_hop: Some(Ipv4Addr::from(nh)),
                    med,
                    local_pref: lp,
                    atomic_aggregate: atomic,
                    aggregator: agg.map(|(asn, a)| Aggregator {
                        asn,
                        address: Ipv4Addr::from(a),
                    }),
                    communities: comms.into_iter().map(Community).collect(),
                    originator_id: orig.map(Ipv4Addr::from),
                    cluster_list: clusters.into_iter().map(Ipv4Addr::from).collect(),
                    extended_communities: ext.into_iter().map(ExtendedCommunity).collect(),
                    as4_path: None,
                    as4_aggregator: None,
                    large_communities: large
                        .into_iter()
                        .map(|(a, b, c)| LargeCommunity::new(a, b, c))
                        .collect(),
                    unknown: unknown
                        .into_iter()
                        .map(|(flags, value)| RawAttribute {
                            flags,
                            type_code: 200,
                            value,
                        })
                        .collect(),
                }
            },
        )
}

fn context() -> impl Strategy<Value = EncodeContext> {
    (any::<u8>(), any::<u8>()).prop_map(|(ap, enh)| EncodeContext {
        four_octet_as: true,
        add_path: FamilySet::from_bits(ap),
        extended_next_hop: FamilySet::from_bits(enh),
        extended_message: true,
        families: FamilySet::ALL,
    })
}

fn update(ctx: EncodeContext) -> impl Strategy<Value = Update> {
    let ap4 = ctx.add_path.contains(Family::IPV4_UNICAST);
    let ap6 = ctx.add_path.contains(Family::IPV6_UNICAST);
    let nh = prop_oneof![
        any::<u128>().prop_map(|g| NextHop::Ipv6 {
            global: Ipv6Addr::from(g),
            link_local: None
        }),
        (any::<u128>(), any::<u128>()).prop_map(|(g, l)| NextHop::Ipv6 {
            global: Ipv6Addr::from(g),
            link_local: Some(Ipv6Addr::from(l))
        }),
    ];
    (
        nlris(v4_prefix(), ap4),
        attributes(),
        option::of((nh, nlris(v6_prefix(), ap6))),
        option::of(nlris(v6_prefix(), ap6)),
        nlris(v4_prefix(), ap4),
    )
        .prop_map(|(withdrawn, attributes, reach, unreach, nlri)| Update {
            withdrawn,
            attributes,
            mp_reach: reach.map(|(next_hop, nlri)| MpReach {
                family: Family::IPV6_UNICAST,
                next_hop,
                nlri,
            }),
            mp_unreach: unreach.map(|withdrawn| MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn,
            }),
            nlri,
            ..Update::default()
        })
}

fn capability() -> impl Strategy<Value = Capability> {
    let family = (1u16..=2, 1u8..=2).prop_map(|(a, s)| Family::new(a, s));
    prop_oneof![
        family.clone().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        any::<u32>().prop_map(Capability::FourOctetAs),
        vec((family.clone(), 1u8..=3), 1..4).prop_map(|v| Capability::AddPath(
            v.into_iter()
                .map(|(family, send_receive)| AddPathEntry {
                    family,
                    send_receive
                })
                .collect()
        )),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec((family, any::<bool>()), 0..3)
        )
            .prop_map(|(r, n, t, f)| Capability::GracefulRestart(GracefulRestart {
                restart_state: r,
                notification: n,
                restart_time: t,
                families: f
                    .into_iter()
                    .map(|(family, forwarding_preserved)| GracefulRestartFamily {
                        family,
                        forwarding_preserved
                    })
                    .collect()
            })),
        ("[a-z]{0,20}", "[a-z.]{0,20}")
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (100u8..=127, vec(any::<u8>(), 0..40))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

proptest! {
    #[test]
    fn an_encoded_update_decodes_to_itself((ctx, u) in context().prop_flat_map(|c| (Just(c), update(c)))) {
        let m = Message::Update(u);
        let bytes = m.to_bytes(&ctx).unwrap();
        let back = Message::decode(&bytes, &ctx.mirror()).unwrap();
        prop_assert_eq!(&back, &m);
        // And once decoded, encoding is byte for byte the same.
        prop_assert_eq!(back.to_bytes(&ctx).unwrap(), bytes);
    }

    #[test]
    fn an_encoded_open_decodes_to_itself(
        asn in any::<u32>(),
        hold in prop_oneof![Just(0u16), 3u16..],
        id in 1u32..,
        groups in vec(vec(capability(), 1..6), 0..6),
    ) {
        let mut o = Open::new(asn, hold, Ipv4Addr::from(id), vec![]);
        o.parameters = groups;
        let m = Message::Open(o);
        let bytes = m.to_bytes(&EncodeContext::default()).unwrap();
        prop_assert_eq!(Message::decode(&bytes, &DecodeContext::default()).unwrap(), m);
    }

    #[test]
    fn notifications_and_route_refreshes_decode_to_themselves(
        code in any::<u8>(), sub in any::<u8>(), data in vec(any::<u8>(), 0..100),
        afi in any::<u16>(), safi in any::<u8>(), subtype in 0u8..3,
    ) {
        let ctx = EncodeContext::default();
        let n = Message::Notification(Notification { code, subcode: sub, data });
        prop_assert_eq!(Message::decode(&n.to_bytes(&ctx).unwrap(), &ctx.mirror()).unwrap(), n);
        let mut rr = RouteRefresh::request(Family::new(afi, safi));
        let bytes = Message::RouteRefresh(rr).to_bytes(&ctx).unwrap();
        let mut bytes = bytes.to_vec();
        bytes[21] = subtype;
        rr.subtype = match Message::decode(&bytes, &ctx.mirror()).unwrap() {
            Message::RouteRefresh(r) => r.subtype,
            other => panic!("{other:?}"),
        };
        prop_assert_eq!(Message::decode(&bytes, &ctx.mirror()).unwrap(), Message::RouteRefresh(rr));
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        msg_type in 1u8..=6,
        body in vec(any::<u8>(), 0..600),
        four in any::<bool>(), ap in any::<u8>(), enh in any::<u8>(),
    ) {
        let ctx = DecodeContext {
            four_octet_as: four,
            add_path: FamilySet::from_bits(ap),
            extended_next_hop: FamilySet::from_bits(enh),
            extended_message: false,
            families: FamilySet::ALL,
        };
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(msg_type);
        m.extend_from_slice(&body);
        let _ = Message::decode(&m, &ctx);
        let _ = Message::decode(&body, &ctx);
    }

    #[test]
    fn corrupted_golden_vectors_never_panic(
        pick in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        four in any::<bool>(), ap in any::<u8>(),
    ) {
        let all = common::load_all();
        let mut bytes = all[pick.index(all.len())].bytes.clone();
        for (at, v) in flips {
            // Keep the header valid so the body decoders are reached.
            let i = 19 + at.index(bytes.len().saturating_sub(19).max(1));
            if let Some(b) = bytes.get_mut(i) {
                *b = v;
            }
        }
        let ctx = DecodeContext {
            four_octet_as: four,
            add_path: FamilySet::from_bits(ap),
            ..DecodeContext::permissive()
        };
        if let Ok(m) = Message::decode(&bytes, &ctx) {
            // Whatever decodes can be encoded again.
            let _ = m.to_bytes(&ctx.mirror());
        }
    }
}
