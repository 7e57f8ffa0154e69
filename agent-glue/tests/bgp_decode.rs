//! `lbspeaker bgp decode` end to end: the binary on the golden captures of the `bgp` crate
//! (pcap and pcapng) and on hex from standard input.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bgp/tests/vectors")
}

fn lbspeaker(args: &[&str], stdin: Option<&str>) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lbspeaker"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The messages of a vector file, as (from, to, hex).
fn expected(stem: &str) -> Vec<(String, String, String)> {
    std::fs::read_to_string(vectors().join(format!("{stem}.txt")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_owned(), f[2].to_owned(), f[3].to_owned())
        })
        .collect()
}

#[test]
fn every_message_of_each_capture_is_reassembled_and_decoded_in_order() {
    for (stem, file) in [
        ("frr-gobgp", "frr-gobgp.pcap"),
        ("frr-bird", "frr-bird.pcap"),
        ("frr-bird", "frr-bird.pcapng"),
        ("gobgp-bird", "gobgp-bird.pcap"),
    ] {
        let path = vectors().join("pcap").join(file);
        let got = lbspeaker(&["bgp", "decode", "--pcap", path.to_str().unwrap()], None);
        let want = expected(stem);
        assert_eq!(got.len(), want.len(), "{file}");
        for (g, (from, to, _)) in got.iter().zip(&want) {
            assert_eq!(
                (g["from"].as_str().unwrap(), g["to"].as_str().unwrap()),
                (from.as_str(), to.as_str()),
                "{file}: {g}"
            );
            assert!(g.get("error").is_none(), "{file}: {g}");
            assert!(g.get("rfc7606_action").is_none(), "{file}: {g}");
        }
    }
}

#[test]
fn captured_sessions_are_decoded_with_what_their_opens_negotiated() {
    let path = vectors().join("pcap/frr-bird.pcap");
    let got = lbspeaker(&["bgp", "decode", "--pcap", path.to_str().unwrap()], None);
    // Add-path path identifiers appear only because the OPENs negotiated add-path.
    assert!(
        got.iter()
            .any(|m| m["message"]["nlri"][0]["path_id"].is_u64())
    );
    // The shutdown communication is shown.
    assert!(got.iter().any(|m| m["message"]["shutdown_communication"]
        == "lbspeaker golden vector: planned maintenance"));
    // End-of-RIB is recognised.
    assert!(got.iter().any(|m| m["end_of_rib"] == "ipv6-unicast"));
}

#[test]
fn hex_on_standard_input_with_and_without_markers() {
    let (_, _, open) = expected("frr-gobgp").into_iter().next().unwrap();
    let without_marker = &open[32..];
    let got = lbspeaker(
        &["bgp", "decode"],
        Some(&format!(
            "{open}\n{without_marker}\nffffffffffffffffffffffffffffffff001304\n"
        )),
    );
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["message"]["type"], "OPEN");
    assert_eq!(got[0]["message"], got[1]["message"]);
    assert_eq!(got[2]["message"]["type"], "KEEPALIVE");
}

#[test]
fn a_malformed_message_given_as_an_argument_shows_the_notification() {
    let got = lbspeaker(
        &["bgp", "decode", "ffffffffffffffffffffffffffffffff00140400"],
        None,
    );
    assert_eq!(got[0]["notification"]["code_name"], "Message Header Error");
    assert_eq!(got[0]["notification"]["subcode_name"], "Bad Message Length");
    assert_eq!(got[0]["rfc7606_action"], "session-reset");
}
