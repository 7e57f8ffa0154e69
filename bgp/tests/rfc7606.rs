//! Negative vectors: one malformed message per case of RFC 4271 §6 and RFC 7606, each
//! checked for its action (treat-as-withdraw, attribute-discard or session reset), the
//! NOTIFICATION it maps to and the offset it names. Tables of the same cases are in
//! `docs/bgp-wire.md`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bgp::wire::error::AsPathMalformation;
use bgp::wire::{
    DecodeContext, DecodeError, Family, FamilySet, Malformation, Message, Rfc7606Action, Update,
};

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
/// AS_PATH `65001` with 4-octet ASNs.
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 10, 0, 0, 1];
/// 10.1.2.0/24.
const NLRI: &[u8] = &[24, 10, 1, 2];

fn ctx() -> DecodeContext {
    DecodeContext {
        four_octet_as: true,
        families: FamilySet::ALL,
        ..DecodeContext::default()
    }
}

fn message(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

fn update_bytes(withdrawn: &[u8], attrs: &[&[u8]], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(nlri);
    message(2, &body)
}

fn decode_update(bytes: &[u8], ctx: &DecodeContext) -> Update {
    match Message::decode(bytes, ctx).unwrap() {
        Message::Update(u) => {
            // Every outcome has a JSON view (for `lbspeaker bgp decode`).
            let json = serde_json::to_value(Message::Update(u.clone())).unwrap();
            assert_eq!(
                json["errors"].as_array().map_or(0, Vec::len),
                u.errors.len()
            );
            u
        }
        other => panic!("{other:?}"),
    }
}

/// Offset of the first attribute in an UPDATE without withdrawn routes.
const ATTRS_AT: usize = 23;

/// The update decodes, is treat-as-withdraw because of `type_code`, and still yields its
/// prefix as a withdrawal.
fn assert_treat_as_withdraw(attrs: &[&[u8]], type_code: u8, m: Malformation) {
    let u = decode_update(&update_bytes(&[], attrs, NLRI), &ctx());
    assert!(u.is_treat_as_withdraw(), "{attrs:?}: {:?}", u.errors);
    let e = u.errors.iter().find(|e| e.type_code == type_code).unwrap();
    assert_eq!(e.malformation, m, "{attrs:?}");
    assert_eq!(e.action, Rfc7606Action::TreatAsWithdraw);
    let withdrawn: Vec<String> = u
        .withdrawn_routes()
        .map(|(_, n)| n.prefix.to_string())
        .collect();
    assert_eq!(withdrawn, ["10.1.2.0/24"]);
    assert_eq!(u.announced_routes().count(), 0);
}

/// The update decodes without the attribute and says it was discarded.
fn assert_discarded(attrs: &[&[u8]], type_code: u8, m: Malformation) -> Update {
    let u = decode_update(&update_bytes(&[], attrs, NLRI), &ctx());
    assert_eq!(
        u.rfc7606_action(),
        Some(Rfc7606Action::AttributeDiscard),
        "{:?}",
        u.errors
    );
    assert_eq!(
        u.discarded_attributes().collect::<Vec<_>>(),
        vec![type_code]
    );
    assert_eq!(u.errors[0].malformation, m);
    assert_eq!(u.announced_routes().count(), 1);
    u
}

fn assert_reset(
    bytes: &[u8],
    ctx: &DecodeContext,
    code: u8,
    subcode: u8,
    offset: usize,
) -> DecodeError {
    let e = Message::decode(bytes, ctx).unwrap_err();
    let n = e.notification();
    assert_eq!(
        (n.code, n.subcode, e.offset),
        (code, subcode, offset),
        "{e}"
    );
    assert_eq!(e.action(), Rfc7606Action::SessionReset);
    e
}

#[test]
fn a_well_formed_update_has_no_errors() {
    let u = decode_update(
        &update_bytes(&[], &[ORIGIN, AS_PATH, NEXT_HOP], NLRI),
        &ctx(),
    );
    assert!(u.errors.is_empty());
    assert_eq!(u.announced_routes().count(), 1);
}

#[test]
fn origin_malformations_are_treat_as_withdraw() {
    assert_treat_as_withdraw(
        &[&[0x40, 1, 1, 3], AS_PATH, NEXT_HOP],
        1,
        Malformation::InvalidOrigin(3),
    );
    assert_treat_as_withdraw(
        &[&[0x40, 1, 2, 0, 0], AS_PATH, NEXT_HOP],
        1,
        Malformation::BadLength {
            length: 2,
            expected: 1,
        },
    );
    assert_treat_as_withdraw(
        &[&[0xc0, 1, 1, 0], AS_PATH, NEXT_HOP],
        1,
        Malformation::FlagsConflict { flags: 0xc0 },
    );
}

#[test]
fn as_path_malformations_are_treat_as_withdraw() {
    for (value, why) in [
        (&[2u8, 0][..], AsPathMalformation::EmptySegment),
        (
            &[7, 1, 0, 0, 0, 1][..],
            AsPathMalformation::UnknownSegmentType,
        ),
        (&[2, 2, 0, 0, 0, 1][..], AsPathMalformation::SegmentOverrun),
        (
            &[2, 1, 0, 0, 0, 1, 2][..],
            AsPathMalformation::HeaderTruncated,
        ),
    ] {
        let mut attr = vec![0x40, 2, value.len() as u8];
        attr.extend_from_slice(value);
        assert_treat_as_withdraw(&[ORIGIN, &attr, NEXT_HOP], 2, Malformation::AsPath(why));
    }
}

#[test]
fn fixed_length_attributes_of_the_wrong_length_are_treat_as_withdraw() {
    let bad = |l: u16, e: u16| Malformation::BadLength {
        length: l,
        expected: e,
    };
    assert_treat_as_withdraw(
        &[ORIGIN, AS_PATH, &[0x40, 3, 5, 1, 2, 3, 4, 5]],
        3,
        bad(5, 4),
    );
    assert_treat_as_withdraw(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 4, 3, 0, 0, 1]],
        4,
        bad(3, 4),
    );
    assert_treat_as_withdraw(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 5, 2, 0, 1]],
        5,
        bad(2, 4),
    );
    assert_treat_as_withdraw(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 9, 3, 1, 1, 1]],
        9,
        bad(3, 4),
    );
}

#[test]
fn list_attributes_of_a_bad_length_are_treat_as_withdraw() {
    let not = |l: u16, u: u16| Malformation::LengthNotMultiple { length: l, unit: u };
    let base = [ORIGIN, AS_PATH, NEXT_HOP];
    for (attr, t, m) in [
        (&[0xc0u8, 8, 5, 0, 0, 0, 1, 2][..], 8, not(5, 4)),
        (&[0xc0, 8, 0][..], 8, not(0, 4)),
        (&[0x80, 10, 6, 1, 1, 1, 1, 2, 2][..], 10, not(6, 4)),
        (&[0xc0, 16, 9, 0, 2, 0, 0, 0, 0, 0, 1, 9][..], 16, not(9, 8)),
        (
            &[0xc0, 32, 13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 4][..],
            32,
            not(13, 12),
        ),
    ] {
        let mut attrs = base.to_vec();
        attrs.push(attr);
        assert_treat_as_withdraw(&attrs, t, m);
    }
}

#[test]
fn atomic_aggregate_and_aggregator_malformations_discard_the_attribute() {
    let u = assert_discarded(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 6, 1, 0]],
        6,
        Malformation::BadLength {
            length: 1,
            expected: 0,
        },
    );
    assert!(!u.attributes.atomic_aggregate);
    let u = assert_discarded(
        &[
            ORIGIN,
            AS_PATH,
            NEXT_HOP,
            &[0xc0, 7, 7, 0, 0, 1, 10, 0, 0, 1],
        ],
        7,
        Malformation::BadLength {
            length: 7,
            expected: 8,
        },
    );
    assert_eq!(u.attributes.aggregator, None);
    assert_discarded(
        &[
            ORIGIN,
            AS_PATH,
            NEXT_HOP,
            &[0x40, 7, 8, 0, 0, 0, 1, 10, 0, 0, 1],
        ],
        7,
        Malformation::FlagsConflict { flags: 0x40 },
    );
}

#[test]
fn as4_attributes_on_a_four_octet_session_are_discarded() {
    assert_discarded(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 17, 6, 2, 1, 0, 0, 0, 1]],
        17,
        Malformation::FourOctetAsAttributeOnNewSession,
    );
}

#[test]
fn a_malformed_as4_path_on_a_two_octet_session_is_discarded() {
    let two = DecodeContext::default();
    let u = decode_update(
        &update_bytes(
            &[],
            &[
                ORIGIN,
                &[0x40, 2, 4, 2, 1, 0x5b, 0xa0],
                NEXT_HOP,
                &[0xc0, 17, 3, 2, 1, 0],
            ],
            NLRI,
        ),
        &two,
    );
    assert_eq!(u.rfc7606_action(), Some(Rfc7606Action::AttributeDiscard));
    assert_eq!(u.attributes.as4_path, None);
}

#[test]
fn a_repeated_attribute_keeps_the_first_and_discards_the_others() {
    let u = assert_discarded(
        &[
            ORIGIN,
            AS_PATH,
            NEXT_HOP,
            &[0xc0, 8, 4, 0, 0, 0, 1],
            &[0xc0, 8, 4, 0, 0, 0, 2],
        ],
        8,
        Malformation::Duplicate,
    );
    assert_eq!(u.attributes.communities[0].0, 1);
}

#[test]
fn missing_well_known_attributes_are_treat_as_withdraw_only_with_nlri() {
    assert_treat_as_withdraw(&[AS_PATH, NEXT_HOP], 1, Malformation::MissingWellKnown);
    assert_treat_as_withdraw(&[ORIGIN, NEXT_HOP], 2, Malformation::MissingWellKnown);
    assert_treat_as_withdraw(&[ORIGIN, AS_PATH], 3, Malformation::MissingWellKnown);
    // A withdrawal needs no attributes.
    let u = decode_update(&update_bytes(NLRI, &[], &[]), &ctx());
    assert!(u.errors.is_empty());
    // NEXT_HOP is not needed when the prefixes are in MP_REACH_NLRI.
    let mp = mp_reach(&[0xfd; 16], &[16, 0xfd, 0]);
    let u = decode_update(&update_bytes(&[], &[&mp, ORIGIN, AS_PATH], &[]), &ctx());
    assert!(u.errors.is_empty(), "{:?}", u.errors);
}

#[test]
fn an_attribute_overrunning_the_field_is_treat_as_withdraw_and_the_nlri_still_found() {
    let u = decode_update(
        &update_bytes(&[], &[ORIGIN, AS_PATH, &[0x40, 3, 9, 10, 0, 0, 1]], NLRI),
        &ctx(),
    );
    // The NEXT_HOP claims 9 octets but only 4 remain before the NLRI field.
    assert!(u.is_treat_as_withdraw());
    assert_eq!(u.errors[0].malformation, Malformation::AttributeOverrun);
    assert_eq!(u.errors[0].offset, ATTRS_AT + ORIGIN.len() + AS_PATH.len());
    assert_eq!(u.withdrawn_routes().count(), 1);
    let u = decode_update(
        &update_bytes(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40]], NLRI),
        &ctx(),
    );
    assert_eq!(u.errors[0].malformation, Malformation::HeaderTruncated);
    assert!(u.is_treat_as_withdraw());
}

#[test]
fn unknown_attributes_follow_their_flags() {
    // Optional transitive: kept, and passed on with Partial set.
    let u = decode_update(
        &update_bytes(
            &[],
            &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 99, 2, 1, 2]],
            NLRI,
        ),
        &ctx(),
    );
    assert!(u.errors.is_empty());
    assert_eq!(u.attributes.unknown[0].value, vec![1, 2]);
    assert_eq!(u.attributes.to_pass_on().unknown[0].flags, 0xe0);
    // Optional non-transitive: kept for display, never passed on.
    let u = decode_update(
        &update_bytes(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 99, 0]], NLRI),
        &ctx(),
    );
    assert!(u.attributes.to_pass_on().unknown.is_empty());
    // Well-known but unknown: session reset with the attribute as data.
    let e = assert_reset(
        &update_bytes(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 99, 1, 7]], NLRI),
        &ctx(),
        3,
        2,
        ATTRS_AT + 4 + 9 + 7,
    );
    assert_eq!(e.data, vec![0x40, 99, 1, 7]);
}

#[test]
fn the_strongest_action_wins() {
    let u = decode_update(
        &update_bytes(
            &[],
            &[&[0x40, 1, 1, 9], AS_PATH, NEXT_HOP, &[0x40, 6, 1, 0]],
            NLRI,
        ),
        &ctx(),
    );
    assert_eq!(u.errors.len(), 2);
    assert_eq!(u.rfc7606_action(), Some(Rfc7606Action::TreatAsWithdraw));
}

fn mp_reach(nh: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, nh.len() as u8];
    v.extend_from_slice(nh);
    v.push(0);
    v.extend_from_slice(nlri);
    let mut a = vec![0x80, 14, v.len() as u8];
    a.extend(v);
    a
}

#[test]
fn multiprotocol_attribute_malformations_reset_the_session() {
    let nh = [0xfdu8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let good = mp_reach(&nh, &[16, 0xfd, 0]);
    // Twice.
    assert_reset(
        &update_bytes(&[], &[&good, &good, ORIGIN, AS_PATH], &[]),
        &ctx(),
        3,
        1,
        ATTRS_AT + good.len(),
    );
    // Next hop of 5 octets for IPv6.
    let e = assert_reset(
        &update_bytes(
            &[],
            &[&mp_reach(&[1, 2, 3, 4, 5], &[]), ORIGIN, AS_PATH],
            &[],
        ),
        &ctx(),
        3,
        9,
        ATTRS_AT + 3 + 3,
    );
    assert_eq!(e.data.first(), Some(&14));
    // A prefix longer than 128 bits.
    assert_reset(
        &update_bytes(&[], &[&mp_reach(&nh, &[129, 0]), ORIGIN, AS_PATH], &[]),
        &ctx(),
        3,
        9,
        ATTRS_AT + 3 + 5 + 16,
    );
    // Wrong flags (transitive).
    let mut flags = good.clone();
    flags[0] = 0xc0;
    assert_reset(
        &update_bytes(&[], &[&flags, ORIGIN, AS_PATH], &[]),
        &ctx(),
        3,
        9,
        ATTRS_AT,
    );
    // MP_UNREACH_NLRI whose withdrawn routes do not parse.
    assert_reset(
        &update_bytes(&[], &[&[0x80, 15, 5, 0, 2, 1, 64, 0xfd]], &[]),
        &ctx(),
        3,
        9,
        ATTRS_AT + 3 + 3,
    );
}

#[test]
fn ipv4_nlri_with_an_ipv6_next_hop_needs_extended_next_hop() {
    let mut attr = mp_reach(&[0xfd; 16], &[24, 10, 1, 2]);
    attr[4] = 1; // AFI 1
    let bytes = update_bytes(&[], &[&attr, ORIGIN, AS_PATH], &[]);
    assert_reset(&bytes, &ctx(), 3, 9, ATTRS_AT + 3 + 3);
    let enh = DecodeContext {
        extended_next_hop: FamilySet::of(&[Family::IPV4_UNICAST]),
        ..ctx()
    };
    let u = decode_update(&bytes, &enh);
    assert_eq!(u.mp_reach.unwrap().family, Family::IPV4_UNICAST);
}

#[test]
fn field_lengths_that_overrun_the_message_reset_the_session() {
    let mut bytes = update_bytes(NLRI, &[], &[]);
    bytes[20] = 9; // withdrawn routes length 9, only 4 + 2 follow
    assert_reset(&bytes, &ctx(), 3, 1, 19);
    let mut bytes = update_bytes(&[], &[ORIGIN], &[]);
    bytes[22] = 10; // total path attribute length 10, only 4 follow
    assert_reset(&bytes, &ctx(), 3, 1, 21);
}

#[test]
fn unparseable_prefixes_reset_the_session_with_invalid_network_field() {
    assert_reset(
        &update_bytes(&[], &[ORIGIN, AS_PATH, NEXT_HOP], &[33, 1, 2, 3, 4, 5]),
        &ctx(),
        3,
        10,
        ATTRS_AT + 20,
    );
    assert_reset(&update_bytes(&[24, 10, 1], &[], &[]), &ctx(), 3, 10, 21);
    // With add-path, a truncated path identifier.
    let ap = DecodeContext {
        add_path: FamilySet::of(&[Family::IPV4_UNICAST]),
        ..ctx()
    };
    assert_reset(
        &update_bytes(&[], &[ORIGIN, AS_PATH, NEXT_HOP], &[0, 0, 1]),
        &ap,
        3,
        10,
        ATTRS_AT + 20,
    );
}

#[test]
fn header_errors_name_marker_length_and_type() {
    let mut ka = message(4, &[]);
    ka[3] = 0;
    assert_reset(&ka, &ctx(), 1, 1, 3);
    let e = assert_reset(&message(4, &[0]), &ctx(), 1, 2, 16);
    assert_eq!(e.data, vec![0, 20]);
    assert_reset(&message(9, &[]), &ctx(), 1, 3, 18);
    assert_reset(&message(3, &[6]), &ctx(), 1, 2, 16); // NOTIFICATION shorter than 21
    // 5000 octets: too long unless extended message was negotiated.
    let big = update_bytes(
        &[],
        &[ORIGIN, AS_PATH, NEXT_HOP],
        &[24, 10, 1, 2].repeat(1245),
    );
    assert!(big.len() > 4096);
    assert_reset(&big, &ctx(), 1, 2, 16);
    let ext = DecodeContext {
        extended_message: true,
        ..ctx()
    };
    assert!(Message::decode(&big, &ext).is_ok());
    // An OPEN never exceeds 4096, extended message or not.
    let mut open = vec![4, 0, 1, 0, 90, 1, 1, 1, 1, 255, 255, 0x13, 0x90];
    open.extend(std::iter::repeat_n(0, 5008));
    assert_reset(&message(1, &open), &ext, 1, 2, 16);
}

#[test]
fn route_refresh_of_the_wrong_length_is_its_own_error() {
    let e = assert_reset(&message(5, &[0, 1, 0, 1, 0]), &ctx(), 7, 1, 0);
    assert_eq!(e.data.len(), 24);
}

#[test]
fn a_buffer_longer_than_its_message_is_refused() {
    let mut ka = message(4, &[]);
    ka.push(0);
    assert_reset(&ka, &ctx(), 1, 2, 16);
}
