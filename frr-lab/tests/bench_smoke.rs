//! `frr-lab bench` at a tiny scale, so the harness itself is known to work: workload 2 through
//! lbspeaker's speaker (`bench-speaker`) with 10 IPv4 and 5 IPv6 prefixes, workload 1 with
//! BIRD originating 10 addresses toward the tor, and the report drawn from both. No figure is
//! asserted, only that every measurement was made and is consistent. A few seconds.

use frr_lab::bench::results::Records;
use frr_lab::bench::{self, BenchOptions, Dut, Workload};
use frr_lab::{lab_available, unique_prefix};

fn options(dut: Dut) -> BenchOptions {
    BenchOptions {
        duts: vec![dut],
        repeat: 1,
        // Pinning would pin the whole test process.
        pin: None,
        sizes: vec![10],
        v4: 10,
        v6: 5,
        sets: 3,
        bench_speaker: Some(env!("CARGO_BIN_EXE_bench-speaker").into()),
        ..BenchOptions::default()
    }
}

#[test]
fn the_harness_measures_a_tiny_ingest_and_announcement_and_reports_them() {
    if !lab_available() {
        return;
    }
    let dir = std::env::temp_dir().join(unique_prefix("bench-smoke"));
    let ingest = bench::run(Workload::Ingest, &options(Dut::Lbspeaker)).expect("ingest runs");
    let Records::Ingest(recs) = &ingest.records else {
        panic!("not ingest records")
    };
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!((r.dut.as_str(), r.prefixes), ("lbspeaker", 15));
    assert!(r.first_to_last_s > 0.0 && r.first_to_last_s < 60.0, "{r:?}");
    assert!(r.first_out_s <= r.first_to_last_s, "{r:?}");
    // At least one UPDATE per family and attribute set reached the monitor, End-of-RIBs aside.
    assert!(r.updates_out >= 2, "{r:?}");
    assert!(
        r.hwm_kib >= r.rss_before_kib && r.rss_before_kib > 0,
        "{r:?}"
    );
    assert!(r.cpu_s >= 0.0);

    let announce = bench::run(Workload::Announce, &options(Dut::Bird)).expect("announce runs");
    let Records::Announce(recs) = &announce.records else {
        panic!("not announce records")
    };
    assert_eq!(recs.len(), 1);
    let a = &recs[0];
    assert_eq!((a.dut.as_str(), a.routes), ("bird", 10));
    assert!(a.announce_s > 0.0 && a.withdraw_s > 0.0, "{a:?}");
    assert!(a.rss_kib > 0);

    ingest.write(&dir.join("results")).unwrap();
    announce.write(&dir.join("results")).unwrap();
    let w = bench::report::write(&dir.join("results"), &dir.join("docs")).unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(
        md.contains("## Workload 1") && md.contains("## Workload 2"),
        "{md}"
    );
    assert!(
        md.contains("| 10 | bird |") && md.contains("| lbspeaker |"),
        "{md}"
    );
    assert!(w.plots.len() >= 4 && w.plots.iter().all(|p| p.is_file()));
    std::fs::remove_dir_all(dir).unwrap();
}
