//! Workload 5, churn under load, in the transit lab with hold 9 s / keepalive 3 s on every
//! session: gen-a announces a base of 10,000 IPv4 prefixes; then, while a busy loop
//! saturates one core, it flaps 1,000 of them at 1,000 updates a second for 60 s (one prefix
//! per UPDATE: in second k every one of the 1,000 is withdrawn, in second k+1 announced
//! again, so the run ends with all of them up). Recorded: sessions that went down (the goal
//! is none), the longest silence at the monitor and the longest time between the DUT's
//! KEEPALIVEs to the generator, how many prefixes the DUT put in each UPDATE, memory before,
//! after and at peak, and the settling time (the generator's last flap to the monitor's last
//! UPDATE, the monitor then holding the whole base again).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::labs;
use super::peer::{Goal, RawPeer};
use super::results::ChurnRecord;
use super::sys::{BusyLoop, ProcSample, load_average, unix_now};
use super::tables::Feed;
use super::transit::{feed, peer_config};
use super::{BenchError, BenchOptions, Dut, progress};

/// Hold time and keepalive of every session in this workload.
pub const TIMERS: (u16, u16) = (9, 3);
/// Flaps are sent in batches this often (10 per batch at 1,000 a second).
const TICK: Duration = Duration::from_millis(10);

/// Runs workload 5 for every DUT.
pub fn run(opts: &BenchOptions) -> Result<Vec<ChurnRecord>, BenchError> {
    let mut out = Vec::new();
    for &dut in &opts.duts {
        for repeat in 1..=opts.repeat {
            out.push(once(opts, dut, repeat)?);
        }
    }
    Ok(out)
}

fn once(opts: &BenchOptions, dut: Dut, repeat: usize) -> Result<ChurnRecord, BenchError> {
    let b = labs::transit(opts, dut, Some(TIMERS))?;
    let mon = RawPeer::connect(
        peer_config(&b, "mon", true, TIMERS.0),
        Duration::from_secs(60),
    )?;
    let gen_a = RawPeer::connect(
        peer_config(&b, "gen-a", false, TIMERS.0),
        Duration::from_secs(60),
    )?;
    let base = Feed {
        v4: opts.churn_base,
        v6: 0,
        sets: (opts.churn_base / 100).max(1),
        ..feed(opts, "gen-a", vec![])
    };
    let ctx = gen_a.encode_context();
    let table = base.updates(&ctx)?;
    let flapping = opts.churn_flapping.min(opts.churn_base).max(1);
    let pairs: Vec<(Bytes, Bytes)> = (0..flapping)
        .map(|i| base.flap_pair(&ctx, i))
        .collect::<Result<_, _>>()?;
    mon.add_goal(Goal::TableSize(opts.churn_base));
    gen_a.send_all(&table)?;
    mon.wait_goal(Goal::TableSize(opts.churn_base), Duration::from_secs(300))?;
    std::thread::sleep(Duration::from_secs(1));
    let pids = b.pids();
    let load = load_average();
    let base_sample = ProcSample::of(&pids);
    let busy = match opts.busy_cpu {
        Some(cpu) => Some(BusyLoop::start(
            cpu,
            Duration::from_secs(opts.churn_seconds + 300),
        )?),
        None => None,
    };
    // Let the busy loop take its core before the clock starts.
    std::thread::sleep(Duration::from_millis(300));
    mon.mark();
    gen_a.mark();
    let total = (u64::from(opts.churn_rate) * opts.churn_seconds) as usize;
    let per_tick = ((f64::from(opts.churn_rate) * TICK.as_secs_f64()).round() as usize).max(1);
    let start = Instant::now();
    let first = unix_now();
    let mut k = 0usize;
    let mut tick = 0u32;
    let mut batch: Vec<Bytes> = Vec::with_capacity(per_tick);
    // When the last batch went out (not after the tick's sleep that follows it): settling
    // is measured from here.
    let mut last_sent = first;
    while k < total {
        batch.clear();
        for _ in 0..per_tick.min(total - k) {
            let i = k % flapping;
            // Cycle 0 withdraws every flapping prefix, cycle 1 announces them again, ...
            let up = (k / flapping) % 2 == 1;
            let (announce, withdraw) = pairs.get(i).cloned().unwrap_or_default();
            batch.push(if up { announce } else { withdraw });
            k += 1;
        }
        gen_a.send_all(&batch)?;
        last_sent = unix_now();
        tick += 1;
        let next = start + TICK * tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let send_s = last_sent - first;
    // An odd number of cycles leaves the flapping prefixes withdrawn.
    let cycles = total.div_ceil(flapping);
    let expected = if cycles % 2 == 1 {
        opts.churn_base - flapping
    } else {
        opts.churn_base
    };
    let last_update = mon.wait_quiet(Duration::from_secs(5), Duration::from_secs(300))?;
    drop(busy);
    let held = mon.log().table_size();
    if held != expected {
        progress(format!(
            "{dut} churn {repeat}: the monitor holds {held} prefixes, {expected} expected"
        ));
    }
    let after = ProcSample::of(&pids);
    let w_mon = mon.mark();
    let w_gen = gen_a.mark();
    let flaps = [&mon, &gen_a]
        .iter()
        .filter(|p| p.log().closed.is_some())
        .count();
    let changes = w_mon.announced + w_mon.withdrawn;
    let settle_s = last_update.map_or(0.0, |t| (t - last_sent).max(0.0));
    let r = ChurnRecord {
        dut: dut.name().to_owned(),
        repeat,
        sent: total,
        send_s,
        session_flaps: flaps,
        prefixes_at_end: held,
        prefixes_expected: expected,
        max_gap_monitor_s: w_mon.max_gap,
        max_keepalive_gap_s: w_gen.max_keepalive_gap,
        updates_out: w_mon.updates,
        prefix_changes_out: changes,
        prefixes_per_update: changes as f64 / (w_mon.updates.max(1)) as f64,
        rss_base_kib: base_sample.rss_kib,
        rss_after_kib: after.rss_kib,
        hwm_kib: after.hwm_kib,
        settle_s,
        cpu_s: after.cpu_s - base_sample.cpu_s,
        busy_cpu: opts.busy_cpu,
        load,
    };
    progress(format!(
        "{dut} churn {repeat}: {total} flaps in {send_s:.1} s, flaps {flaps}, max gap {:.2} s (keepalives {:.2} s), {} UPDATEs / {changes} changes out ({:.2}/UPDATE), settle {settle_s:.3} s, RSS {} → {} KiB, {:.2} CPU s",
        r.max_gap_monitor_s,
        r.max_keepalive_gap_s,
        r.updates_out,
        r.prefixes_per_update,
        r.rss_base_kib,
        r.rss_after_kib,
        r.cpu_s
    ));
    Ok(r)
}
