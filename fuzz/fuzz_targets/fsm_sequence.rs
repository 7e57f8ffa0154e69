//! See checks/fsm.rs for what this target feeds and what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/fsm.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    let _ = checks::fsm_sequence(data);
});
