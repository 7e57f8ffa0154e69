//! Failover in the L2 lab, measured from the wire: the time from a failure of the holder to
//! the first gratuitous ARP from the node that takes over, as the client's tcpdump stamps it
//! (and, beside it, when the new holder's lease says it acquired). A lab harness, not a
//! criterion benchmark: each sample takes seconds. Run as root:
//!
//! ```sh
//! cargo bench -p l2announce --bench failover            # 5 trials per case, about 5 minutes
//! L2_BENCH_TRIALS=10 cargo bench -p l2announce --bench failover
//! ```
//!
//! Cases, for the default timers (15 s / 5 s / 2 s) and for 3 s / 1 s / 0.5 s:
//! - SIGKILL of the holder, with the file backend's liveness locks (candidates learn at once
//!   that the holder's process is gone);
//! - SIGKILL without them, as with a Kubernetes Lease backend (candidates wait for the lease
//!   to expire);
//! - the holder's link taken down (it gives the lease up after the one-second link grace).

#[path = "../tests/common/mod.rs"]
mod common;

use frr_lab::bench::results::{fraction, min_median_mean_max};
use std::time::{Duration, SystemTime};

use common::{L2Lab, NODES, NodeOpts, desired, first_announcement, wait};

const WEB: &str = "cilium-l2announce-default-webpod";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    Kill,
    LinkDown,
}

struct Sample {
    garp: Duration,
    lease: Duration,
}

fn trial(lab: &mut L2Lab, opts: &NodeOpts, failure: Failure, retry: f64, rng: &mut u64) -> Sample {
    let d = [desired("192.168.10.211", &["default/webpod"], true)];
    let old = lab.wait_holder(WEB, Duration::from_secs(60));
    lab.client_resolves("192.168.10.211");
    let cap = lab.capture("bench");
    // A trial is otherwise so regular that every failure would land at the same point of the
    // nodes' retry cycle; fail at a random point of it instead.
    std::thread::sleep(Duration::from_secs_f64(fraction(rng) * 2.0 * retry));
    let failed_at = SystemTime::now();
    match failure {
        Failure::Kill => lab.kill(&old),
        Failure::LinkDown => lab.link(&old, false),
    }
    let new = wait("a new holder", Duration::from_secs(60), || {
        lab.holder(WEB).filter(|h| *h != old)
    });
    let new_mac = lab.mac(&new);
    wait(
        "the client's entry to move",
        Duration::from_secs(10),
        || (lab.client_neighbour("192.168.10.211") == Some(new_mac)).then_some(()),
    );
    let acquired = lab
        .lease(WEB)
        .and_then(|l| l.record.acquire_time)
        .unwrap_or(failed_at);
    let seen = cap.finish(lab);
    let first = first_announcement(&seen, "192.168.10.211", new_mac, failed_at)
        .unwrap_or_else(|| panic!("no gratuitous ARP from {new}"));
    // Put the failed node back as a candidate, and let the new holder settle.
    match failure {
        Failure::Kill => {
            lab.start_node(&old, &d, opts);
        }
        Failure::LinkDown => lab.link(&old, true),
    }
    std::thread::sleep(Duration::from_secs(1));
    Sample {
        garp: first.duration_since(failed_at).unwrap_or_default(),
        lease: acquired.duration_since(failed_at).unwrap_or_default(),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let trials: usize = std::env::var("L2_BENCH_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    println!(
        "failover, {trials} trials per case: min / median / mean / max seconds from the failure"
    );
    println!("| timers | failure | first gratuitous ARP | lease acquired |");
    println!("|---|---|---|---|");
    let mut rng = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    for (timers, retry) in [("15/5/2", 2.0), ("3/1/0.5", 0.5)] {
        for (label, failure, liveness) in [
            ("SIGKILL, file backend liveness", Failure::Kill, true),
            (
                "SIGKILL, lease expiry only (as with Kubernetes)",
                Failure::Kill,
                false,
            ),
            ("link down (1 s grace)", Failure::LinkDown, true),
        ] {
            let Some(mut lab) = L2Lab::up("l2b") else {
                eprintln!("the lab cannot run here (root and FRR needed)");
                return;
            };
            let opts = NodeOpts {
                timers: timers.into(),
                announce_count: 5,
                announce_interval: 1.0,
                link_grace: 1.0,
                liveness,
            };
            for n in NODES {
                lab.start_node(
                    n,
                    &[desired("192.168.10.211", &["default/webpod"], true)],
                    &opts,
                );
            }
            let samples: Vec<Sample> = (0..trials)
                .map(|_| trial(&mut lab, &opts, failure, retry, &mut rng))
                .collect();
            println!(
                "| {timers} | {label} | {} | {} |",
                min_median_mean_max(samples.iter().map(|s| s.garp).collect()),
                min_median_mean_max(samples.iter().map(|s| s.lease).collect()),
            );
        }
    }
}
