//! Helpers of the BFD and FIB lab tests (and the BFD failover bench, and agent-glue's
//! `run_bfd_fib_lab`): kernel routes of our protocol, pings between pod namespaces, FRR
//! configuration changes, BFD state and reset reasons on FRR, cutting a switch port.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use frr_lab::Lab;
use serde_json::Value;

/// Our routes in a node's kernel (`ip -j route show proto 212`): destination -> sorted
/// gateways, with a destination that appears twice kept twice (duplicates must show).
pub fn ours(lab: &Lab, node: &str) -> Vec<(String, Vec<IpAddr>)> {
    let mut v: Vec<(String, Vec<IpAddr>)> = lab
        .kernel_routes(node, false, Some("212"))
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let mut g = r.gateways;
            g.sort();
            (r.dst, g)
        })
        .collect();
    v.sort();
    v
}

/// Destinations of our routes in a node's kernel.
pub fn our_dsts(lab: &Lab, node: &str) -> Vec<String> {
    ours(lab, node).into_iter().map(|(d, _)| d).collect()
}

/// One ping, one second to answer.
pub fn ping(lab: &Lab, from: &str, to: &str) -> bool {
    lab.exec(from, "ping", &["-c1", "-W1", "-q", to])
        .is_ok_and(|o| o.status.success())
}

/// Pings until one answers or `limit` passes.
pub fn ping_within(lab: &Lab, from: &str, to: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ping(lab, from, to) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Runs configuration commands on an FRR node (`vtysh -c 'configure terminal' -c ...`).
pub fn frr_configure(lab: &Lab, node: &str, commands: &[&str]) {
    let dir = lab.state().dir.join(node);
    let mut args = vec![
        "--vty_socket".to_owned(),
        dir.to_string_lossy().into_owned(),
        "-c".to_owned(),
        "configure terminal".to_owned(),
    ];
    for c in commands {
        args.push("-c".into());
        args.push((*c).into());
    }
    let out = std::process::Command::new("vtysh")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vtysh {commands:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// FRR's BFD peers (`show bfd peers json`) by peer address: status, and the rest.
pub fn frr_bfd_peers(lab: &Lab, node: &str) -> BTreeMap<String, Value> {
    lab.vtysh_json(node, "show bfd peers json")
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| Some((p["peer"].as_str()?.to_owned(), p)))
        .collect()
}

/// FRR's BFD status toward a peer (`up`, `down`, `init`, ...), empty when it has none.
pub fn frr_bfd_status(lab: &Lab, node: &str, peer: &str) -> String {
    frr_bfd_peers(lab, node)
        .get(peer)
        .and_then(|p| p["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Sets a port of the switch `sw1` (a lab node's link) down or up: a cut link.
pub fn switch_port(lab: &Lab, port: &str, up: bool) {
    lab.exec_ok(
        "sw1",
        "ip",
        &["link", "set", "dev", port, if up { "up" } else { "down" }],
    )
    .unwrap();
}

/// Why FRR last reset a neighbour: its `lastResetDueTo`, `lastNotificationReason` and
/// `lastErrorCodeSubcode`.
pub fn frr_last_reset(lab: &Lab, peer: &str) -> String {
    let v = lab
        .vtysh_json("tor", &format!("show bgp neighbors {peer} json"))
        .unwrap_or_default();
    let n = &v[peer];
    format!(
        "{} / {} / {}",
        n["lastResetDueTo"].as_str().unwrap_or_default(),
        n["lastNotificationReason"].as_str().unwrap_or_default(),
        n["lastErrorCodeSubcode"].as_str().unwrap_or_default()
    )
}

/// Median, minimum and maximum of a sample, in milliseconds.
pub fn summary(ms: &[f64]) -> (f64, f64, f64) {
    let mut v = ms.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (
        median,
        v.first().copied().unwrap_or(f64::NAN),
        v.last().copied().unwrap_or(f64::NAN),
    )
}
