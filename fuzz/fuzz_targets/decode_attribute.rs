//! One path attribute (flags, type, length, value as the fuzzer gives them) in an otherwise
//! valid UPDATE with one IPv4 prefix: every attribute decoder with any input, in every
//! context. Decoding never panics; the prefix is either announced, withdrawn (RFC 7606
//! treat-as-withdraw) or the session is reset, and nothing else.
#![no_main]

use bgp::wire::{Message, Rfc7606Action};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((ctx, attr)) = common::context(data) else {
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
                Some(Rfc7606Action::TreatAsWithdraw) => assert!(announced == 0 && withdrawn >= 1),
                _ => assert!(announced >= 1),
            }
            let _ = Message::Update(u).to_bytes(&ctx.mirror());
        }
        Ok(other) => panic!("an UPDATE decoded as {other:?}"),
        Err(e) => {
            let _ = e.notification();
        }
    }
});
