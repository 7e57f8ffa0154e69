//! L2 failover through `lbspeaker run`, measured from the wire: frr-lab's `l2` lab (three
//! daemons on the seed's l2.yaml), the holder of the ingress address 192.168.10.211 failed at
//! a random point of the retry cycle, and the time from the failure to the first gratuitous
//! ARP from the node that takes over, as the client's tcpdump stamps it (the lease's
//! `acquireTime` beside it). A lab harness, not a criterion benchmark: each sample takes
//! seconds. Run as root:
//!
//! ```sh
//! cargo bench -p agent-glue --bench l2_failover            # 5 trials per case
//! L2_BENCH_TRIALS=10 cargo bench -p agent-glue --bench l2_failover
//! ```
//!
//! Cases, for the default timers (15 s / 5 s / 2 s) and for 3 s / 1 s / 0.5 s, with the
//! daemon's default announcements (five rounds a second apart) and link grace (1 s):
//! - SIGKILL of the holder's daemon, lease files with liveness (`--l2-lease-liveness`, the
//!   default: candidates learn at once that the holder's process is gone);
//! - SIGKILL with `--l2-lease-liveness=false`, as with Kubernetes Leases (candidates wait
//!   for the lease to expire);
//! - the holder's eth1 taken down.

#![allow(clippy::unwrap_used)]

#[path = "../tests/l2lab/mod.rs"]
mod l2lab;

use frr_lab::bench::results::{fraction, min_median_mean_max};
use std::time::{Duration, SystemTime};

use l2lab::{INGRESS_IP, INGRESS_LEASE, L2Lab, announcements, wait};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    Kill,
    LinkDown,
}

struct Sample {
    garp: Duration,
    lease: Duration,
}

fn trial(lab: &mut L2Lab, failure: Failure, retry: f64, rng: &mut u64) -> Sample {
    let old = lab.wait_holder(INGRESS_LEASE, INGRESS_IP, Duration::from_secs(60));
    lab.client_resolves(INGRESS_IP);
    let cap = lab.capture("bench");
    // Otherwise every failure would land at the same point of the nodes' retry cycle.
    std::thread::sleep(Duration::from_secs_f64(fraction(rng) * 2.0 * retry));
    let failed_at = SystemTime::now();
    match failure {
        Failure::Kill => lab.kill(&old),
        Failure::LinkDown => lab.link(&old, false),
    }
    let new = wait("a new holder", Duration::from_secs(60), || {
        lab.holder(INGRESS_LEASE).filter(|h| *h != old)
    });
    let new_mac = lab.mac(&new);
    wait(
        "the client's entry to move",
        Duration::from_secs(10),
        || (lab.client_neighbour(INGRESS_IP) == Some(new_mac)).then_some(()),
    );
    let acquired = lab
        .lease(INGRESS_LEASE)
        .and_then(|l| l.record.acquire_time)
        .unwrap_or(failed_at);
    let seen = cap.finish(lab);
    let first = announcements(&seen, INGRESS_IP, new_mac, failed_at)
        .first()
        .map(|s| s.at)
        .unwrap_or_else(|| panic!("no gratuitous ARP from {new}"));
    // Put the failed node back as a candidate, and let the new holder settle.
    match failure {
        Failure::Kill => lab.restart(&old),
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
        "lbspeaker run failover, {trials} trials per case: min / median / mean / max seconds from the failure"
    );
    println!("| timers | failure | first gratuitous ARP | lease acquired |");
    println!("|---|---|---|---|");
    let mut rng = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    for (timers, retry) in [(["15s", "5s", "2s"], 2.0), (["3s", "1s", "500ms"], 0.5)] {
        for (label, failure, liveness) in [
            ("SIGKILL, lease files with liveness", Failure::Kill, "true"),
            (
                "SIGKILL, lease expiry only (as with Kubernetes)",
                Failure::Kill,
                "false",
            ),
            ("link down (1 s grace)", Failure::LinkDown, "true"),
        ] {
            let args = [
                "--l2-lease-duration",
                timers[0],
                "--l2-lease-renew-deadline",
                timers[1],
                "--l2-lease-retry-period",
                timers[2],
                "--l2-lease-liveness",
                liveness,
            ];
            let Some(mut lab) = L2Lab::up("l2b", &args) else {
                eprintln!("the lab cannot run here (root and FRR needed)");
                return;
            };
            let samples: Vec<Sample> = (0..trials)
                .map(|_| trial(&mut lab, failure, retry, &mut rng))
                .collect();
            println!(
                "| {} | {label} | {} | {} |",
                timers.join(" / "),
                min_median_mean_max(samples.iter().map(|s| s.garp).collect()),
                min_median_mean_max(samples.iter().map(|s| s.lease).collect()),
            );
        }
    }
}
