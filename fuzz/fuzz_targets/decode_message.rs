//! Any bytes, any negotiated context: decoding (and framing) never panics, and whatever
//! decodes can be encoded again (see checks/bgp_codec.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/bgp_codec.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::decode_message(data));
