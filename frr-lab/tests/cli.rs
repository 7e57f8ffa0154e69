//! The `frr-lab` command line: up, status, exec, vtysh and down on a topology file, in a lab
//! root of the test's own.

use std::process::Command;

use frr_lab::{lab_available, unique_prefix};

fn frr_lab(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_frr-lab"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("frr-lab runs")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_brings_a_topology_file_up_answers_and_takes_it_down() {
    if !lab_available() {
        return;
    }
    let work = std::env::temp_dir().join(unique_prefix("frrlabcli"));
    std::fs::create_dir_all(&work).unwrap();
    let root = work.join("root");
    std::fs::write(
        work.join("r.conf"),
        "frr defaults traditional\nhostname r1\nrouter bgp 65010\n bgp router-id 10.7.0.1\n no bgp ebgp-requires-policy\n no bgp network import-check\n address-family ipv4 unicast\n  network 10.77.0.0/16\n exit-address-family\nexit\n",
    )
    .unwrap();
    std::fs::write(
        work.join("t.yaml"),
        "name: clitest\nnodes:\n  r1:\n    kind: frr\n    config: r.conf\n    interfaces: {eth1: [10.7.0.1/30]}\n  h1:\n    interfaces: {eth1: [10.7.0.2/30]}\n    routes: [\"10.77.0.0/16 via 10.7.0.1\"]\nlinks:\n  - endpoints: [r1:eth1, h1:eth1]\n",
    )
    .unwrap();
    let topo = work.join("t.yaml");
    let topo = topo.to_str().unwrap();
    let prefix = unique_prefix("cli");

    let up = ok(&frr_lab(&root, &["up", topo, "--prefix", &prefix]));
    assert!(up.contains(&format!("{prefix}-r1")), "{up}");

    let status = ok(&frr_lab(&root, &["status"]));
    assert!(
        status.contains("bgpd pid") && status.contains("running"),
        "{status}"
    );

    // exec: the command runs in the node's namespace and its exit code comes back.
    let addr = ok(&frr_lab(
        &root,
        &["exec", "h1", "--", "ip", "-br", "addr", "show", "eth1"],
    ));
    assert!(addr.contains("10.7.0.2/30"), "{addr}");
    let route = ok(&frr_lab(
        &root,
        &[
            "exec",
            "--prefix",
            &prefix,
            "h1",
            "--",
            "ip",
            "route",
            "get",
            "10.77.1.1",
        ],
    ));
    assert!(route.contains("via 10.7.0.1"), "{route}");
    let failed = frr_lab(&root, &["exec", "h1", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3));

    // vtysh: the router's own configuration answers.
    let bgp = ok(&frr_lab(&root, &["vtysh", "r1", "-c", "show ip bgp"]));
    assert!(bgp.contains("10.77.0.0/16"), "{bgp}");

    let down = ok(&frr_lab(&root, &["down", topo, "--prefix", &prefix]));
    assert!(down.contains("is down"), "{down}");
    let status = ok(&frr_lab(&root, &["status"]));
    assert!(status.contains("no lab is up"), "{status}");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&netns.stdout).contains(&prefix));
    // A second down finds nothing to do and says so.
    let again = ok(&frr_lab(&root, &["down", topo, "--prefix", &prefix]));
    assert!(again.contains("was not up"), "{again}");
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn cli_explains_an_unknown_topology() {
    let root = std::env::temp_dir().join(unique_prefix("frrlabnone"));
    let out = frr_lab(&root, &["up", "no-such-lab"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no topology named \"no-such-lab\"") && err.contains("seed"),
        "{err}"
    );
}
