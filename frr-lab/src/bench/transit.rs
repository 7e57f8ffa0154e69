//! Workloads 2 and 3, through the transit lab: the DUT between generators (gen-a, gen-b)
//! and a monitor (mon), all three raw peers of this process.
//!
//! - **ingest** (2): gen-a sends a full table (1,000,000 IPv4 + 200,000 IPv6 prefixes in
//!   10,000 attribute sets per family, packed as a real peer packs them). The figure is
//!   from gen-a's first UPDATE written to the monitor holding every prefix (the monitor's
//!   arrival stamp of the UPDATE that completed it); beside it, the DUT's peak memory
//!   (VmHWM) above its resident memory before the table, per prefix, and its CPU seconds.
//! - **best-path** (3): gen-a's table first (paths one AS longer), then gen-b's (the better
//!   paths: every prefix must move to B at the monitor), then gen-b shut with a Cease
//!   (every prefix must move back to A).

use std::time::Duration;

use super::labs::{self, BenchLab, GEN_A_AS, GEN_B_AS, MON_AS};
use super::peer::{Goal, PeerConfig, RawPeer};
use super::results::{BestPathRecord, IngestRecord};
use super::sys::{ProcSample, load_average};
use super::tables::Feed;
use super::{BenchError, BenchOptions, Dut, progress};

/// How long a whole table may take through the slowest DUT.
const TABLE_TIMEOUT: Duration = Duration::from_secs(1800);

/// The raw peer on a transit-lab node.
pub fn peer_config(b: &BenchLab, node: &str, track_table: bool, hold: u16) -> PeerConfig {
    let (local, dut, asn, id) = match node {
        "gen-a" => ([10, 0, 1, 2], [10, 0, 1, 1], GEN_A_AS, [10, 0, 1, 2]),
        "gen-b" => ([10, 0, 2, 2], [10, 0, 2, 1], GEN_B_AS, [10, 0, 2, 2]),
        _ => ([10, 0, 3, 2], [10, 0, 3, 1], MON_AS, [10, 0, 3, 2]),
    };
    PeerConfig {
        name: node.to_owned(),
        ns: b.lab.namespace(node),
        local: std::net::IpAddr::from(local),
        remote: std::net::SocketAddr::from((dut, 179)),
        asn,
        router_id: id.into(),
        hold_time: hold,
        track_table,
    }
}

/// A generator's feed of the options' size; `padding` makes its paths longer.
pub fn feed(opts: &BenchOptions, node: &str, padding: Vec<u32>) -> Feed {
    let (asn, v4, v6) = match node {
        "gen-b" => (GEN_B_AS, [10, 0, 2, 2], "fd00:2::2"),
        _ => (GEN_A_AS, [10, 0, 1, 2], "fd00:1::2"),
    };
    Feed {
        asn,
        padding,
        v4: opts.v4,
        v6: opts.v6,
        sets: opts.sets,
        next_hop_v4: v4.into(),
        next_hop_v6: v6.parse().unwrap_or(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

const CONNECT: Duration = Duration::from_secs(60);
/// Hold time the raw peers offer in workloads 2 and 3 (the DUTs keep their defaults).
const HOLD: u16 = 180;

/// Runs workload 2 for every DUT.
pub fn run_ingest(opts: &BenchOptions) -> Result<Vec<IngestRecord>, BenchError> {
    let mut out = Vec::new();
    for &dut in &opts.duts {
        for repeat in 1..=opts.repeat {
            out.push(ingest_once(opts, dut, repeat)?);
        }
    }
    Ok(out)
}

fn ingest_once(opts: &BenchOptions, dut: Dut, repeat: usize) -> Result<IngestRecord, BenchError> {
    let b = labs::transit(opts, dut, None)?;
    let mon = RawPeer::connect(peer_config(&b, "mon", true, HOLD), CONNECT)?;
    let gen_a = RawPeer::connect(peer_config(&b, "gen-a", false, HOLD), CONNECT)?;
    let table = feed(opts, "gen-a", vec![]).updates(&gen_a.encode_context())?;
    let total = opts.v4 + opts.v6;
    // Whatever the session set-up sends goes first.
    std::thread::sleep(Duration::from_millis(500));
    let pids = b.pids();
    let load = load_average();
    let before = ProcSample::of(&pids);
    mon.mark();
    mon.add_goal(Goal::TableSize(total));
    let sent = gen_a.send_all(&table)?;
    let done = mon.wait_goal(Goal::TableSize(total), TABLE_TIMEOUT)?;
    let w = mon.mark();
    let after = ProcSample::of(&pids);
    let first_to_last_s = done - sent.first;
    let bytes_per_route =
        after.hwm_kib.saturating_sub(before.rss_kib) as f64 * 1024.0 / total as f64;
    progress(format!(
        "{dut} ingest {repeat}: {total} prefixes in {first_to_last_s:.2} s ({:.0}/s), send {:.2} s, peak {} MiB (+{:.0} B/prefix), {:.2} CPU s, {} UPDATEs out",
        total as f64 / first_to_last_s,
        sent.last - sent.first,
        after.hwm_kib / 1024,
        bytes_per_route,
        after.cpu_s - before.cpu_s,
        w.updates
    ));
    Ok(IngestRecord {
        dut: dut.name().to_owned(),
        repeat,
        prefixes: total,
        first_to_last_s,
        first_out_s: w.first_update.map_or(f64::NAN, |f| f - sent.first),
        send_s: sent.last - sent.first,
        routes_per_s: total as f64 / first_to_last_s,
        updates_out: w.updates,
        rss_before_kib: before.rss_kib,
        hwm_kib: after.hwm_kib,
        rss_after_kib: after.rss_kib,
        bytes_per_route,
        cpu_s: after.cpu_s - before.cpu_s,
        load,
    })
}

/// Runs workload 3 for every DUT.
pub fn run_best_path(opts: &BenchOptions) -> Result<Vec<BestPathRecord>, BenchError> {
    let mut out = Vec::new();
    for &dut in &opts.duts {
        for repeat in 1..=opts.repeat {
            out.push(best_path_once(opts, dut, repeat)?);
        }
    }
    Ok(out)
}

fn best_path_once(
    opts: &BenchOptions,
    dut: Dut,
    repeat: usize,
) -> Result<BestPathRecord, BenchError> {
    let b = labs::transit(opts, dut, None)?;
    let mon = RawPeer::connect(peer_config(&b, "mon", true, HOLD), CONNECT)?;
    let gen_a = RawPeer::connect(peer_config(&b, "gen-a", false, HOLD), CONNECT)?;
    let gen_b = RawPeer::connect(peer_config(&b, "gen-b", false, HOLD), CONNECT)?;
    // A's paths are one AS longer than B's, so B wins every prefix.
    let table_a = feed(opts, "gen-a", vec![65111]).updates(&gen_a.encode_context())?;
    let table_b = feed(opts, "gen-b", vec![]).updates(&gen_b.encode_context())?;
    let total = opts.v4 + opts.v6;
    std::thread::sleep(Duration::from_millis(500));
    let pids = b.pids();
    let load = load_average();
    let s0 = ProcSample::of(&pids);

    mon.add_goal(Goal::FromAs(GEN_A_AS, total));
    let sent = gen_a.send_all(&table_a)?;
    let done = mon.wait_goal(Goal::FromAs(GEN_A_AS, total), TABLE_TIMEOUT)?;
    let first_feed_s = done - sent.first;
    let s1 = ProcSample::of(&pids);
    progress(format!(
        "{dut} best-path {repeat}: feed A in {first_feed_s:.2} s"
    ));

    mon.add_goal(Goal::FromAs(GEN_B_AS, total));
    let sent = gen_b.send_all(&table_b)?;
    let done = mon.wait_goal(Goal::FromAs(GEN_B_AS, total), TABLE_TIMEOUT)?;
    let second_feed_s = done - sent.first;
    let s2 = ProcSample::of(&pids);
    progress(format!(
        "{dut} best-path {repeat}: feed B (better) in {second_feed_s:.2} s, {} MiB",
        s2.rss_kib / 1024
    ));

    // The goal "all on A" held before B came: register it anew, unmet.
    mon.add_goal(Goal::FromAs(GEN_A_AS, total));
    let shut_at = gen_b.shut()?;
    let done = mon.wait_goal(Goal::FromAs(GEN_A_AS, total), TABLE_TIMEOUT)?;
    let shut_s = done - shut_at;
    let s3 = ProcSample::of(&pids);
    progress(format!(
        "{dut} best-path {repeat}: B shut, back on A in {shut_s:.2} s, peak {} MiB",
        s3.hwm_kib / 1024
    ));
    Ok(BestPathRecord {
        dut: dut.name().to_owned(),
        repeat,
        prefixes: total,
        first_feed_s,
        second_feed_s,
        shut_s,
        rss_kib: [s0.rss_kib, s1.rss_kib, s2.rss_kib, s3.rss_kib],
        hwm_kib: s3.hwm_kib,
        cpu_s: [
            s1.cpu_s - s0.cpu_s,
            s2.cpu_s - s1.cpu_s,
            s3.cpu_s - s2.cpu_s,
        ],
        load,
    })
}
