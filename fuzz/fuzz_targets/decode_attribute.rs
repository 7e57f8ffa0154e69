//! One path attribute in an otherwise valid UPDATE: never a panic, and the prefix is
//! announced, withdrawn (RFC 7606 treat-as-withdraw) or the session reset (checks/bgp_codec.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/bgp_codec.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::decode_attribute(data));
