//! The configurations frr-lab writes for gobgpd, BIRD and FRR are accepted by the real
//! daemons' own configuration checkers (`gobgpd -d`, `bird -p`, `bgpd -C`, `bfdd -C`).

use std::process::Command;

use frr_lab::{BgpSpec, lab_available, render, unique_prefix};

fn spec() -> BgpSpec {
    serde_saphyr::from_str(
        "asn: 65001\nrouter-id: 192.168.20.100\nannounce: [172.20.3.0/24, 'fd00:3::/64']\nneighbors:\n  - {address: 192.168.10.200, asn: 65000, hold-time: 9, keepalive: 3, multihop: 2, password: secret, graceful-restart: 15}\n  - {address: 'fd00::1', asn: 65000}\n",
    )
    .expect("the test spec parses")
}

/// A transit router as the benchmarks configure one: three neighbors on IPv4 sessions, each
/// carrying IPv4 and IPv6, learnt routes passed on, nothing in FRR's kernel.
fn transit_spec() -> BgpSpec {
    serde_saphyr::from_str(
        "asn: 65001\nrouter-id: 10.0.1.1\nlisten: true\ntransit: true\nno-fib: true\nneighbors:\n  - {address: 10.0.1.2, asn: 65101, families: [ipv4, ipv6]}\n  - {address: 10.0.2.2, asn: 65102, families: [ipv4, ipv6]}\n  - {address: 10.0.3.2, asn: 65200, hold-time: 9, keepalive: 3, families: [ipv4, ipv6]}\n",
    )
    .expect("the transit spec parses")
}

fn specs() -> [BgpSpec; 2] {
    [spec(), transit_spec()]
}

fn scratch() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique_prefix("render"));
    std::fs::create_dir_all(&d).expect("scratch directory");
    d
}

#[test]
fn gobgpd_accepts_the_rendered_config() {
    if !lab_available() {
        return;
    }
    for spec in specs() {
        let d = scratch();
        let f = d.join("gobgpd.toml");
        std::fs::write(&f, render::gobgpd_toml(&spec)).unwrap();
        let out = Command::new("gobgpd")
            .arg("-d")
            .arg("-f")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bird_accepts_the_rendered_config() {
    if !lab_available() {
        return;
    }
    for spec in specs() {
        let d = scratch();
        let f = d.join("bird.conf");
        std::fs::write(
            &f,
            render::bird_conf(&spec, d.join("bird.log").to_str().unwrap()),
        )
        .unwrap();
        let out = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bgpd_accepts_the_rendered_config_without_a_single_complaint() {
    if !lab_available() {
        return;
    }
    for spec in specs() {
        let d = scratch();
        let f = d.join("bgpd.conf");
        std::fs::write(&f, render::frr_bgpd_conf("node4", &spec)).unwrap();
        let child = Command::new("/usr/lib/frr/bgpd")
            .arg("-C")
            .arg("-f")
            .arg(&f)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        // bgpd -C exits 0 whatever it finds; its complaints are what tell.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for complaint in [
            "No such command",
            "Unknown command",
            "Command incomplete",
            "Ambiguous command",
            "Error",
        ] {
            assert!(!text.contains(complaint), "{complaint}: {text}");
        }
        let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/bgpd.{pid}"));
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bfdd_accepts_the_rendered_config_without_a_single_complaint() {
    if !lab_available() {
        return;
    }
    let d = scratch();
    let f = d.join("bfdd.conf");
    std::fs::write(&f, render::frr_bfdd_conf("tor")).unwrap();
    let child = Command::new("/usr/lib/frr/bfdd")
        .arg("-C")
        .arg("-f")
        .arg(&f)
        .arg("--bfdctl")
        .arg(d.join("bfdd.sock"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for complaint in [
        "No such command",
        "Unknown command",
        "Command incomplete",
        "Error",
    ] {
        assert!(!text.contains(complaint), "{complaint}: {text}");
    }
    let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/bfdd.{pid}"));
    std::fs::remove_dir_all(d).unwrap();
}
