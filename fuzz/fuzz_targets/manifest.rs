//! See checks/manifest.rs for what this target feeds and what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/manifest.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::manifest(data));
