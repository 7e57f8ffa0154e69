//! Whatever decodes without malformation encodes to bytes that decode to the same message.
#![no_main]

use bgp::wire::Message;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((ctx, bytes)) = common::context(data) else {
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
});
