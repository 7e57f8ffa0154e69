//! Any bytes, any negotiated context: decoding (and framing) never panics, and whatever
//! decodes can be encoded again.
#![no_main]

use bgp::wire::Message;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((ctx, bytes)) = common::context(data) else {
        return;
    };
    let _ = Message::frame_len(bytes, &ctx);
    if let Ok(m) = Message::decode(bytes, &ctx) {
        let _ = m.to_bytes(&ctx.mirror());
    }
});
