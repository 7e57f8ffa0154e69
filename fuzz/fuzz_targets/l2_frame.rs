//! See checks/l2.rs for what this target feeds and what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/l2.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::l2_frame(data));
