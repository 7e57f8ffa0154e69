//! Whatever decodes without malformation encodes to bytes that decode to the same message
//! (checks/bgp_codec.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/bgp_codec.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::round_trip(data));
