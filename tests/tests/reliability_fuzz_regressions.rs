//! Every input the fuzzers keep, run under `cargo test`: the inputs that once found a bug
//! (`fuzz/regressions/<target>/`) and the hand-made seeds of the targets whose corpus is not
//! generated (`fuzz/seeds/<target>/`). The checks are the very code the fuzz targets run
//! (`fuzz/checks/*.rs`, included here by path), so a bug that comes back fails here without
//! the fuzzer.

#![allow(clippy::unwrap_used)]

#[path = "../../fuzz/checks/bgp_codec.rs"]
mod bgp_codec;
#[path = "../../fuzz/checks/fsm.rs"]
mod fsm;
#[path = "../../fuzz/checks/l2.rs"]
mod l2;
#[path = "../../fuzz/checks/manifest.rs"]
mod manifest;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["regressions", "seeds"] {
        let Ok(rd) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_file() && p.extension().is_none_or(|x| x != "md") {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Runs `check` on every kept input of `target`, naming the file of the first that fails.
fn run(target: &str, at_least: usize, check: fn(&[u8])) {
    let all = inputs(target);
    assert!(
        all.len() >= at_least,
        "{target}: {} kept inputs, expected at least {at_least}",
        all.len()
    );
    for (path, bytes) in &all {
        if std::panic::catch_unwind(|| check(bytes)).is_err() {
            panic!("{target}: {} fails its check again", path.display());
        }
    }
}

#[test]
fn kept_decode_message_inputs_still_pass() {
    run("decode_message", 0, bgp_codec::decode_message);
}

#[test]
fn kept_decode_attribute_inputs_still_pass() {
    run("decode_attribute", 0, bgp_codec::decode_attribute);
}

#[test]
fn kept_round_trip_inputs_still_pass() {
    run("round_trip", 0, bgp_codec::round_trip);
}

#[test]
fn kept_fsm_sequences_still_pass() {
    run("fsm_sequence", 2, |d| {
        fsm::fsm_sequence(d);
    });
}

#[test]
fn kept_l2_frames_still_pass() {
    run("l2_frame", 6, l2::l2_frame);
}

#[test]
fn kept_manifests_still_pass() {
    run("manifest", 7, manifest::manifest);
}

/// The FSM check is only worth its name if its seeds reach Established and send UPDATEs
/// there, and the identifier check answers: these two seeds do.
#[test]
fn the_fsm_seeds_reach_established_send_updates_and_refuse_our_own_identifier() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/fsm_sequence");
    let r = fsm::fsm_sequence(&std::fs::read(dir.join("establish")).unwrap());
    assert!(r.established, "{r:?}");
    assert_eq!(r.updates_sent, 3, "{r:?}");
    // The overrunning UPDATE and the hold timer each end a session with a NOTIFICATION.
    assert!(r.notifications_sent >= 1, "{r:?}");
    let r = fsm::fsm_sequence(&std::fs::read(dir.join("ibgp-same-id")).unwrap());
    assert!(!r.established, "{r:?}");
    assert_eq!((r.updates_sent, r.notifications_sent), (0, 1), "{r:?}");
}
