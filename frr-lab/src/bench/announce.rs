//! Workload 1: the DUT originates 1, 10, 100, 1,000 and 10,000 service /32s; the figure is
//! the time from the change (manifest renamed into place, or the client command started)
//! to the last of them in the tor's kernel, as `ip -ts monitor route` in the tor's namespace
//! stamps it, and the same for their withdrawal.
//!
//! lbspeaker: `lbspeaker run` on the lab's manifest directory; by default the Services carry
//! their addresses in `status.loadBalancer.ingress` (inside the pool, so LB-IPAM keeps
//! them), so the path measured is source → BGP reconcile → speaker → tor; with `--lb-ipam`
//! the Services come without addresses and LB-IPAM allocates them first (its status files
//! written, read back, then advertised).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::kernel::Monitor;
use super::labs::{self, BenchLab, SessionTimers};
use super::origin::set_routes;
use super::results::AnnounceRecord;
use super::sys::{ProcSample, load_average};
use super::tables::service_prefix;
use super::{BenchError, BenchOptions, Dut, progress};
use crate::Lab;

/// How long one size may take to reach the tor's kernel.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// Waits until the tor's session with the DUT is Established.
pub fn wait_established(lab: &Lab, timeout: Duration) -> Result<(), BenchError> {
    Lab::wait_for("the tor's session with the DUT", timeout, |last| {
        let states = lab.frr_neighbor_states("tor")?;
        *last = Some(format!("{states:?}"));
        Ok(states
            .get(&labs::ORIGIN_DUT.to_string())
            .is_some_and(|s| s == "Established")
            .then_some(()))
    })?;
    Ok(())
}

/// Waits until the DUT's processes use less than 5 % of a CPU over half a second (or
/// `max` passes), so one step's leftovers do not count in the next.
pub fn wait_idle(pids: &[u32], max: Duration) {
    let deadline = Instant::now() + max;
    loop {
        let a = ProcSample::of(pids).cpu_s;
        std::thread::sleep(Duration::from_millis(500));
        let b = ProcSample::of(pids).cpu_s;
        if b - a < 0.025 || Instant::now() >= deadline {
            return;
        }
    }
}

fn label(dut: Dut, opts: &BenchOptions) -> String {
    if dut == Dut::Lbspeaker && opts.lb_ipam {
        "lbspeaker (LB-IPAM)".to_owned()
    } else {
        dut.name().to_owned()
    }
}

/// Runs workload 1 for every DUT of the options.
pub fn run(opts: &BenchOptions) -> Result<Vec<AnnounceRecord>, BenchError> {
    if opts.duts.contains(&Dut::Lbspeaker) {
        labs::require_lbspeaker(opts)?;
    }
    let mut out = Vec::new();
    for &dut in &opts.duts {
        out.extend(run_dut(opts, dut)?);
    }
    Ok(out)
}

fn in_pool(dst: &str) -> bool {
    dst.starts_with("10.96.") && dst.ends_with("/32")
}

fn run_dut(opts: &BenchOptions, dut: Dut) -> Result<Vec<AnnounceRecord>, BenchError> {
    let mut b: BenchLab = labs::origin(opts, dut, &SessionTimers::default(), Vec::new())?;
    let mut mon = Monitor::start(&mut b.lab, "tor", "route")?;
    wait_established(&b.lab, Duration::from_secs(60))?;
    let pids = b.pids();
    progress(format!("{}: lab up, DUT pids {pids:?}", label(dut, opts)));
    let mut out = Vec::new();
    for &n in &opts.sizes {
        let prefixes: Vec<IpNet> = (0..n).map(service_prefix).collect();
        for repeat in 1..=opts.repeat {
            wait_idle(&pids, Duration::from_secs(60));
            let load = load_average();
            let before = ProcSample::of(&pids);
            mon.forget();
            let t0 = set_routes(&b, opts, &prefixes, &[])?;
            let (added_at, seen) = if opts.lb_ipam && dut == Dut::Lbspeaker {
                mon.wait_routes(in_pool, n, false, t0, STEP_TIMEOUT)?
            } else {
                let want: HashSet<String> = prefixes.iter().map(ToString::to_string).collect();
                mon.wait_routes(|d| want.contains(d), n, false, t0, STEP_TIMEOUT)?
            };
            let announce_s = added_at - t0;
            let with = ProcSample::of(&pids);
            std::thread::sleep(Duration::from_millis(500));
            mon.forget();
            let t1 = set_routes(&b, opts, &[], &prefixes)?;
            let (gone_at, _) = mon.wait_routes(|d| seen.contains(d), n, true, t1, STEP_TIMEOUT)?;
            let withdraw_s = gone_at - t1;
            let after = ProcSample::of(&pids);
            progress(format!(
                "{}: {n} routes, repeat {repeat}: announced in {announce_s:.3} s, withdrawn in {withdraw_s:.3} s, {:.2} CPU s",
                label(dut, opts),
                after.cpu_s - before.cpu_s
            ));
            out.push(AnnounceRecord {
                dut: label(dut, opts),
                routes: n,
                repeat,
                announce_s,
                withdraw_s,
                cpu_s: after.cpu_s - before.cpu_s,
                rss_kib: with.rss_kib,
                load,
            });
        }
    }
    Ok(out)
}
