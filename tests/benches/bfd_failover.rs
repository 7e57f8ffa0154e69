//! Failure detection in the BFD lab, measured from kernel timestamps: the time from a link
//! cut (the switch port of node1 going down, as `ip -ts monitor link` in the switch's
//! namespace stamps it) to the tor removing node1's route from its kernel (`ip -ts monitor
//! route` in the tor's namespace), with BFD at 300 ms x 3, at 100 ms x 3, and with the BGP
//! hold timer alone (9 s / 3 s as in the seed lab). Beside it, when our side's BFD and BGP
//! went down (the harness's event log, same clock). A lab harness, not a criterion benchmark:
//! each sample takes seconds. Run as root:
//!
//! ```sh
//! cargo bench -p tests --bench bfd_failover                     # 10 / 10 / 5 trials
//! BFD_BENCH_TRIALS=20 cargo bench -p tests --bench bfd_failover  # 20 / 20 / 10
//! ```
//!
//! Each cut comes at a random point of the transmit / keepalive cycle; after each trial the
//! port comes back and the next trial waits for BGP, BFD and the route to be back.

#![allow(clippy::unwrap_used)] // a lab harness: a failed unwrap is a failed run

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/fib_bfd_common/mod.rs"]
mod fib_bfd_common;

use std::time::{Duration, SystemTime};

use bgp::bfd::{BfdPeer, BfdProfile, DampingConfig};
use common::{gateways, harness_config, peer, route, start, wait};
use fib_bfd_common::{frr_bfd_status, summary};
use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};
use tests::harness::{Harness, HarnessBfd};

const TOPOLOGY: &str = "
name: bfdbench
nodes:
  tor:
    kind: frr
    config: tor.conf
    bfdd: true
    bfdd-config: bfdd.conf
    interfaces: { eth1: [192.168.10.200/24] }
  sw1: { kind: bridge }
  node1: { interfaces: { eth1: [192.168.10.100/24] } }
links:
  - endpoints: [tor:eth1, sw1:tor]
  - endpoints: [node1:eth1, sw1:node1]
";

const BFDD: &str = "\
hostname tor
!
bfd
 profile fast
  transmit-interval 100
  receive-interval 100
 !
!
";

fn tor_conf(bfd: Option<&str>) -> String {
    let bfd_line = match bfd {
        None => String::new(),
        Some("") => " neighbor 192.168.10.100 bfd\n".to_owned(),
        Some(p) => {
            format!(" neighbor 192.168.10.100 bfd\n neighbor 192.168.10.100 bfd profile {p}\n")
        }
    };
    format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 192.168.10.200\n \
         no bgp ebgp-requires-policy\n neighbor 192.168.10.100 remote-as external\n \
         neighbor 192.168.10.100 timers connect 1\n{bfd_line}exit\n"
    )
}

struct Case {
    label: &'static str,
    /// FRR's profile ("" for bfdd's defaults), None without BFD.
    frr_profile: Option<&'static str>,
    ours: Option<BfdProfile>,
    trials: usize,
    /// The cut comes after a random wait of up to this long.
    spread: f64,
}

/// A kernel timestamp of `ip -ts monitor` (`[2026-12-01T19:23:51.308530]`, local time) as
/// unix seconds.
fn stamp(line: &str) -> Option<f64> {
    let text = line.strip_prefix('[')?.split(']').next()?;
    let dt: jiff::civil::DateTime = text.parse().ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::system()).ok()?.timestamp();
    Some(ts.as_microsecond() as f64 / 1e6)
}

/// The first line of a monitor log after `after` that satisfies `f`, as its timestamp.
fn first_after(log: &std::path::Path, after: f64, f: impl Fn(&str) -> bool) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| Some((stamp(l)?, l)))
        .find(|(t, l)| *t >= after && f(l))
        .map(|(t, _)| t)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Our first event from `source` after `after` whose JSON satisfies `f`.
fn our_event(
    h: &Harness,
    source: &str,
    after: f64,
    f: impl Fn(&serde_json::Value) -> bool,
) -> Option<f64> {
    h.events().ok()?.into_iter().find_map(|e| {
        let at = e["at"].as_f64()?;
        (e["source"] == source && at >= after && f(&e["event"])).then_some(at)
    })
}

fn fraction(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

struct Sample {
    tor_removed: f64,
    our_bfd_down: Option<f64>,
    our_bgp_down: f64,
}

fn run_case(case: &Case, rng: &mut u64) -> Vec<Sample> {
    let conf = tor_conf(case.frr_profile);
    let t = Topology::from_yaml(TOPOLOGY, "bench", move |f| {
        Ok(if f == "bfdd.conf" {
            BFDD.to_owned()
        } else {
            conf.clone()
        })
    })
    .unwrap();
    let mut lab = Lab::up(t, LabOptions::with_prefix(unique_prefix("bb"))).unwrap();
    let link_log = lab.node_dir("sw1").unwrap().join("monitor-link.log");
    let route_log = lab.node_dir("tor").unwrap().join("monitor-route.log");
    lab.spawn(
        "sw1",
        "monitor-link",
        "ip",
        &["-ts", "-o", "monitor", "link"],
    )
    .unwrap();
    lab.spawn(
        "tor",
        "monitor-route",
        "ip",
        &["-ts", "-o", "monitor", "route"],
    )
    .unwrap();
    let p = peer("tor", "192.168.10.200", 65000);
    let mut cfg = harness_config(
        65001,
        "192.168.10.100",
        vec![p.clone()],
        vec![route("172.20.0.0/24")],
    );
    if let Some(profile) = case.ours {
        cfg.bfd = Some(HarnessBfd {
            peers: vec![BfdPeer::for_bgp_peer("default", &p, profile).unwrap()],
            ..HarnessBfd::default()
        });
    }
    let h = start(&mut lab, "node1", cfg);
    let mut samples = Vec::new();
    for trial in 0..case.trials {
        h.wait_established("tor", Duration::from_secs(30)).unwrap();
        wait(
            "the route in the tor's kernel",
            Duration::from_secs(30),
            |_| gateways(&lab, "tor", "172.20.0.0/24"),
        );
        if case.ours.is_some() {
            wait(
                "BFD up on both sides, at the fast rate",
                Duration::from_secs(30),
                |last| {
                    let s = h.bfd_session("192.168.10.200").ok()?;
                    let frr = frr_bfd_status(&lab, "tor", "192.168.10.100");
                    *last = format!("{frr} {s}");
                    (s["status"]["state"] == "up" && s["status"]["poll"] == false && frr == "up")
                        .then_some(())
                },
            );
        }
        std::thread::sleep(Duration::from_secs_f64(0.5 + fraction(rng) * case.spread));
        let before = unix_now();
        lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node1", "down"])
            .unwrap();
        wait(
            "the route gone from the tor's kernel",
            Duration::from_secs(20),
            |_| {
                gateways(&lab, "tor", "172.20.0.0/24")
                    .is_none()
                    .then_some(())
            },
        );
        wait("our BGP down", Duration::from_secs(20), |_| {
            let p = h.peer("tor").ok()?;
            (p["state"] != "established").then_some(())
        });
        std::thread::sleep(Duration::from_millis(200));
        let cut = first_after(&link_log, before - 0.01, |l| {
            l.contains(": node1@") && l.contains("state DOWN")
        })
        .expect("the link-down event");
        let removed = first_after(&route_log, cut, |l| l.contains("Deleted 172.20.0.0/24"))
            .expect("the route deletion");
        let bgp_down =
            our_event(&h, "bgp", cut, |e| e["kind"]["event"] == "down").unwrap_or(f64::NAN);
        let bfd_down = our_event(&h, "bfd", cut, |e| e["kind"]["to"] == "down");
        let s = Sample {
            tor_removed: (removed - cut) * 1000.0,
            our_bfd_down: bfd_down.map(|t| (t - cut) * 1000.0),
            our_bgp_down: (bgp_down - cut) * 1000.0,
        };
        eprintln!(
            "{} trial {}: tor removed the route after {:.0} ms; our BFD down {:?} ms, our BGP down {:.0} ms",
            case.label,
            trial + 1,
            s.tor_removed,
            s.our_bfd_down.map(|v| v.round()),
            s.our_bgp_down
        );
        samples.push(s);
        lab.exec_ok("sw1", "ip", &["link", "set", "dev", "node1", "up"])
            .unwrap();
    }
    samples
}

fn row(label: &str, v: &[f64]) -> String {
    let (median, min, max) = summary(v);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    format!("{label} | {median:.0} | {min:.0} | {max:.0} | {mean:.0}")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !lab_available() {
        eprintln!("the lab cannot run here (root and FRR needed)");
        return;
    }
    let n: usize = std::env::var("BFD_BENCH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let profile = |ms: u64| BfdProfile {
        transmit_interval: Duration::from_millis(ms),
        receive_interval: Duration::from_millis(ms),
        detect_multiplier: 3,
        passive: false,
        // Every trial is a flap: damping would hold later trials down.
        damping: DampingConfig::off(),
    };
    let cases = [
        Case {
            label: "BFD 300 ms x 3",
            frr_profile: Some(""),
            ours: Some(profile(300)),
            trials: n,
            spread: 0.3,
        },
        Case {
            label: "BFD 100 ms x 3",
            frr_profile: Some("fast"),
            ours: Some(profile(100)),
            trials: n,
            spread: 0.1,
        },
        Case {
            label: "hold timer 9 s / 3 s, no BFD",
            frr_profile: None,
            ours: None,
            trials: n.div_ceil(2),
            spread: 3.0,
        },
    ];
    let mut rng = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut out = Vec::new();
    for case in &cases {
        let s = run_case(case, &mut rng);
        let tor: Vec<f64> = s.iter().map(|x| x.tor_removed).collect();
        let bgp: Vec<f64> = s.iter().map(|x| x.our_bgp_down).collect();
        let bfd: Vec<f64> = s.iter().filter_map(|x| x.our_bfd_down).collect();
        out.push(format!(
            "| {} ({} trials) | {} |",
            case.label,
            s.len(),
            row("tor's kernel", &tor)
        ));
        out.push(format!("| | {} |", row("our BGP down", &bgp)));
        if !bfd.is_empty() {
            out.push(format!("| | {} |", row("our BFD down", &bfd)));
        }
        out.push(format!(
            "| | samples (tor's kernel, ms): {} | | | |",
            tor.iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    println!("\nlink cut to ..., milliseconds: median | min | max | mean");
    println!("| case | what | median | min | max | mean |");
    println!("|---|---|---:|---:|---:|---:|");
    for l in out {
        println!("{l}");
    }
}
