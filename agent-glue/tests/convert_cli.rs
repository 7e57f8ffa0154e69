//! `lbspeaker convert metallb` as users run it: files and directories in, YAML on stdout,
//! warnings and errors on stderr, exit status 2 when something could not be converted.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

fn lbspeaker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lbspeaker"))
}

const POOL_AND_L2: &str = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: [192.168.10.211-192.168.10.215]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {interfaces: [eth1], ipAddressPools: [lan, other]}
";

#[test]
fn a_directory_of_metallb_manifests_converts_and_warns_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("l2.yaml"), POOL_AND_L2).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
    let out = lbspeaker()
        .args(["convert", "metallb"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("kind: CiliumLoadBalancerIPPool"),
        "{stdout}"
    );
    assert!(
        stdout.contains("kind: CiliumL2AnnouncementPolicy"),
        "{stdout}"
    );
    assert!(stdout.contains("^eth1$"), "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("warning: ") && stderr.contains("L2Advertisement/lan"),
        "{stderr}"
    );
}

#[test]
fn a_broken_document_is_an_error_and_the_rest_is_still_printed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mixed.yaml");
    std::fs::write(
        &f,
        format!("{POOL_AND_L2}---\nkind: IPAddressPool\napiVersion: metallb.io/v1beta1\nspec: [\n"),
    )
    .unwrap();
    let out = lbspeaker()
        .args(["convert", "metallb"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("CiliumLoadBalancerIPPool"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("error: ") && stderr.contains("mixed.yaml"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_a_one_line_error() {
    let out = lbspeaker()
        .args(["convert", "metallb", "/nonexistent/metallb.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/metallb.yaml"), "{stderr}");
}
