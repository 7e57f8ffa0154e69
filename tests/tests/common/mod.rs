//! Helpers shared by the interop tests: harness configurations, waiting, kernel tables.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bgp::config::{Asn, HoldTime, RouterId};
use bgp::speaker::{GracefulRestartConfig, InstanceConfig, PeerConfig, Route};
use frr_lab::{KernelRoute, Lab, Topology};
use serde_json::Value;
use tests::harness::{Harness, HarnessConfig};

pub fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bgp-harness"))
}

/// A topology from YAML, with the FRR configuration text for `tor.conf`.
pub fn topology(yaml: &str, tor_conf: &str) -> Topology {
    let conf = tor_conf.to_owned();
    Topology::from_yaml(yaml, "test", move |_| Ok(conf.clone())).unwrap()
}

/// Our side of a session with the lab's short timers (hold 9 s, keepalive 3 s, connect retry
/// 1 s).
pub fn peer(name: &str, address: &str, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(name, address.parse().unwrap(), asn);
    p.hold_time = HoldTime::new(9).unwrap();
    p.keepalive = Some(3);
    p.connect_retry = 1;
    p.idle_hold_ms = 500;
    p
}

pub fn with_gr(mut p: PeerConfig, restart_time: u16) -> PeerConfig {
    p.graceful_restart = Some(GracefulRestartConfig {
        restart_time,
        notification: true,
    });
    p
}

pub fn harness_config(
    asn: u32,
    router_id: &str,
    peers: Vec<PeerConfig>,
    routes: Vec<Route>,
) -> HarnessConfig {
    let mut instance = InstanceConfig::new(
        "default",
        Asn::new(asn).unwrap(),
        RouterId::new(router_id.parse().unwrap()).unwrap(),
    );
    instance.max_paths = 4;
    HarnessConfig {
        instance,
        peers,
        routes,
        control: Default::default(),
        bfd: None,
        fib: None,
    }
}

pub fn route(prefix: &str) -> Route {
    Route::new(prefix.parse().unwrap())
}

pub fn start(lab: &mut Lab, node: &str, cfg: HarnessConfig) -> Harness {
    Harness::start(lab, exe(), node, cfg).unwrap()
}

/// Polls `probe` every 100 ms until it gives a value, or panics after `timeout` with what it
/// saw last.
pub fn wait<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Some(v) = probe(&mut last) {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn kernel(lab: &Lab, node: &str, v6: bool) -> Vec<KernelRoute> {
    lab.kernel_routes(node, v6, Some("bgp")).unwrap_or_default()
}

pub fn gateways(lab: &Lab, node: &str, dst: &str) -> Option<Vec<IpAddr>> {
    let v6 = dst.contains(':');
    kernel(lab, node, v6)
        .into_iter()
        .find(|r| r.dst == dst)
        .map(|r| r.gateways)
}

pub fn ips(list: &[&str]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = list.iter().map(|s| s.parse().unwrap()).collect();
    v.sort();
    v
}

/// FRR's state of a neighbour (`Established`, `Active`, ...).
pub fn frr_state(lab: &Lab, tor: &str, neighbor: &str) -> String {
    lab.frr_neighbor_states(tor)
        .ok()
        .and_then(|m| m.get(neighbor).cloned())
        .unwrap_or_default()
}

/// The paths FRR has for a prefix (`show bgp ... json`).
pub fn frr_paths(lab: &Lab, tor: &str, prefix: &str) -> Vec<Value> {
    let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    lab.vtysh_json(tor, &format!("show bgp {afi} unicast {prefix} json"))
        .ok()
        .and_then(|v| v["paths"].as_array().cloned())
        .unwrap_or_default()
}

/// Which of our routes in a harness RIB listing have this prefix.
pub fn find<'a>(rib: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    rib.iter().filter(|r| r["prefix"] == prefix).collect()
}

/// Samples the kernel table of `node` every 100 ms in a thread until `stop` is set, and
/// returns the instants at which `dst` was missing.
pub fn watch_kernel(
    ns: String,
    dst: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut samples, mut missing) = (0, 0);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let out = std::process::Command::new("ip")
                .args(["-n", &ns, "-j", "route", "show", "proto", "bgp"])
                .output();
            if let Ok(o) = out {
                samples += 1;
                let text = String::from_utf8_lossy(&o.stdout);
                if !text.contains(&format!("\"dst\":\"{dst}\"")) {
                    missing += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (samples, missing)
    })
}

/// The peer's hold timer (9 s) runs from the last message it got from us, and our keepalives
/// come every 2.25-3 s: a cut is noticed between 6 and 9 s after it (plus the peer's own timer
/// granularity, about a second for GoBGP).
pub fn assert_hold_time(after: Duration) {
    assert!(
        after >= Duration::from_millis(5900) && after <= Duration::from_millis(11_500),
        "the session ended {after:?} after the cut, not within the hold time"
    );
}
