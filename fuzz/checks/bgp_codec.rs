//! The codec checks behind the `decode_message`, `decode_attribute` and `round_trip` fuzz
//! targets. Each function panics when the property it checks fails; the fuzz targets call
//! them and so does `tests/tests/reliability_fuzz_regressions.rs`, which runs every kept input
//! under `cargo test`.
#![allow(dead_code)]

use bgp::wire::{DecodeContext, FamilySet, Message, Rfc7606Action};

/// Splits `data` into a context (first three octets: flags, add-path families, extended
/// next hop families) and the rest.
pub fn context(data: &[u8]) -> Option<(DecodeContext, &[u8])> {
    let (&[flags, add_path, enh], rest) = data.split_first_chunk::<3>()?;
    Some((
        DecodeContext {
            four_octet_as: flags & 1 != 0,
            extended_message: flags & 2 != 0,
            add_path: FamilySet::from_bits(add_path),
            extended_next_hop: FamilySet::from_bits(enh),
            families: FamilySet::ALL,
        },
        rest,
    ))
}

/// Any bytes, any negotiated context: decoding (and framing) never panics, and whatever
/// decodes can be encoded again.
pub fn decode_message(data: &[u8]) {
    let Some((ctx, bytes)) = context(data) else {
        return;
    };
    let _ = Message::frame_len(bytes, &ctx);
    if let Ok(m) = Message::decode(bytes, &ctx) {
        let _ = m.to_bytes(&ctx.mirror());
    }
}

/// One path attribute (flags, type, length, value as the fuzzer gives them) in an otherwise
/// valid UPDATE with one IPv4 prefix: every attribute decoder with any input, in every
/// context. Decoding never panics; the prefix is either announced, withdrawn (RFC 7606
/// treat-as-withdraw) or the session is reset, and nothing else.
pub fn decode_attribute(data: &[u8]) {
    let Some((ctx, attr)) = context(data) else {
        return;
    };
    if attr.len() > 4000 {
        return;
    }
    let origin = [0x40, 1, 1, 0];
    let as_path: &[u8] = if ctx.four_octet_as {
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]
    } else {
        &[0x40, 2, 4, 2, 1, 0xfd, 0xe9]
    };
    let next_hop = [0x40, 3, 4, 10, 0, 0, 1];
    let nlri: &[u8] = if ctx.add_path.contains(bgp::wire::Family::IPV4_UNICAST) {
        &[0, 0, 0, 1, 24, 10, 1, 2]
    } else {
        &[24, 10, 1, 2]
    };
    let attrs: Vec<u8> = [&origin[..], as_path, &next_hop, attr].concat();
    let mut m = vec![0xff; 16];
    let len = 19 + 4 + attrs.len() + nlri.len();
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&attrs);
    m.extend_from_slice(nlri);
    match Message::decode(&m, &ctx) {
        Ok(Message::Update(u)) => {
            let announced = u.announced_routes().count();
            let withdrawn = u.withdrawn_routes().count();
            match u.rfc7606_action() {
                Some(Rfc7606Action::TreatAsWithdraw) => {
                    assert!(announced == 0 && withdrawn >= 1, "{u:?}")
                }
                _ => assert!(announced >= 1, "{u:?}"),
            }
            let _ = Message::Update(u).to_bytes(&ctx.mirror());
        }
        Ok(other) => panic!("an UPDATE decoded as {other:?}"),
        Err(e) => {
            let _ = e.notification();
        }
    }
}

/// Whatever decodes without malformation encodes to bytes that decode to the same message.
pub fn round_trip(data: &[u8]) {
    let Some((ctx, bytes)) = context(data) else {
        return;
    };
    let Ok(m) = Message::decode(bytes, &ctx) else {
        return;
    };
    if let Message::Update(u) = &m
        && !u.errors.is_empty()
    {
        return;
    }
    let encoded = m
        .to_bytes(&ctx.mirror())
        .expect("a decoded message encodes");
    let again = Message::decode(&encoded, &ctx).expect("an encoded message decodes");
    assert_eq!(again, m);
}
