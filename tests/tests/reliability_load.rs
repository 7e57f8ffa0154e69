//! Oversized and slow input from a raw peer (the injector), with our speaker's FRR session
//! watched throughout (`reliability_lab`): a table beyond the max-prefix limit, a peer that
//! stops reading, a peer that trickles one byte a second, a flood of connections from
//! addresses that are no peer's. Each asserts what the speaker must do and that the tor's
//! session and routes are untouched, and prints its figures (time, memory of the
//! `bgp-harness` process, file descriptors).
//!
//! The tests here are the light versions that run in the test command; the `#[ignore]`d ones
//! are the full-size lab benchmarks (a 1,000,000-prefix table, 100,000 connections, a peer
//! that never reads until the send hold timer drops it), run by
//! `scripts/reliability-bench.sh`, with their figures in `docs/RELIABILITY.md`.

#![allow(clippy::unwrap_used)]

mod common;
mod reliability_lab;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bgp::speaker::MaxPrefix;
use bgp::wire::{Family, Message};
use common::wait;
use frr_lab::lab_available;
use reliability_lab::{INJ, RelLab, STRANGERS, inj_peer};
use serde_json::json;
use tests::injector::{
    self, ConnectOptions, Injector, Outcome, as_path, next_hop, open_fds, origin_igp, peak_rss_kib,
    rss_kib, table_updates,
};

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The harness's resident memory, sampled every 20 ms in a thread until `stop`.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// A peer sends a table of `table` prefixes to a session limited to `limit`: the session
/// closes with Cease / Maximum Number of Prefixes Reached (RFC 4486: AFI, SAFI, limit), what
/// was taken is withdrawn again, and memory grows by a bounded amount, whatever the size of
/// the table.
fn max_prefix(tag: &str, limit: u32, table: u32, rss_bound_mib: f64) {
    let rl = RelLab::up(tag, |cfg| {
        let mut p = inj_peer();
        p.max_prefixes.insert(
            Family::IPV4_UNICAST,
            MaxPrefix {
                limit,
                restart_after: None,
            },
        );
        cfg.peers[1] = p;
    });
    let pid = rl.harness_pid();
    let updates = table_updates(
        table,
        &[
            origin_igp(),
            as_path(&[65002]),
            next_hop(INJ.parse().unwrap()),
        ]
        .concat(),
    );
    let octets: usize = updates.iter().map(Vec::len).sum();
    let mut inj = rl.inject(0);
    let before = rss_kib(pid).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(pid, stop.clone());
    let mut w = inj.stream().try_clone().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = sent.clone();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        for u in &updates {
            if w.write_all(u).is_err() {
                break;
            }
            sent2.fetch_add(1, Ordering::Relaxed);
        }
    });
    let outcome = inj.outcome(Duration::from_secs(120));
    let took = t0.elapsed();
    let _ = inj.stream().shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    let n = match outcome {
        Outcome::Notification(n) => n,
        other => panic!("{other:?} instead of Cease / Maximum Number of Prefixes Reached"),
    };
    assert_eq!((n.code, n.subcode), (6, 1), "{}", n.describe());
    let mut data = vec![0, 1, 1];
    data.extend_from_slice(&limit.to_be_bytes());
    assert_eq!(n.data, data, "AFI 1, SAFI 1, the limit");
    let st = wait("the session down", Duration::from_secs(10), |last| {
        let s = rl.inj_state();
        *last = s.to_string();
        (s["state"] == "idle").then_some(s)
    });
    assert!(
        st["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("Maximum Number of Prefixes"),
        "{st}"
    );
    // What the peer got in goes out again: the tor ends with our own route only.
    wait(
        "the tor back to our one route",
        Duration::from_secs(60),
        |last| {
            let n = rl.frr_received();
            *last = n.to_string();
            (n == 1).then_some(())
        },
    );
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap().max(rss_kib(pid).unwrap_or(0));
    let after = rss_kib(pid).unwrap();
    rl.assert_tor_untouched("the max-prefix flood");
    let growth = mib(peak.saturating_sub(before));
    eprintln!(
        "max-prefix: limit {limit}, table {table} prefixes in {} UPDATEs ({:.1} MB); Cease after \
         {:.2} s and {} UPDATEs written; harness RSS {:.1} MiB before, peak {:.1} MiB \
         (+{growth:.1} MiB), {:.1} MiB after; VmHWM {:.1} MiB",
        table.div_ceil(1000),
        octets as f64 / 1e6,
        took.as_secs_f64(),
        sent.load(Ordering::Relaxed),
        mib(before),
        mib(peak),
        mib(after),
        mib(peak_rss_kib(pid).unwrap_or(0)),
    );
    assert!(
        growth < rss_bound_mib,
        "the harness grew by {growth:.1} MiB on a table it refused"
    );
}

#[test]
fn a_table_beyond_the_max_prefix_limit_ends_with_cease_and_bounded_memory() {
    if !lab_available() {
        return;
    }
    max_prefix("maxp", 10_000, 200_000, 48.0);
}

/// The figure: 1,000,000 prefixes against a limit of 100,000.
#[test]
#[ignore = "lab benchmark: scripts/reliability-bench.sh"]
fn bench_a_million_prefix_table_beyond_the_max_prefix_limit() {
    if !lab_available() {
        return;
    }
    max_prefix("maxpb", 100_000, 1_000_000, 160.0);
}

/// Keeps a peer's hold timer happy (a KEEPALIVE every `every`) without ever reading.
fn keepalives(mut w: std::net::TcpStream, every: Duration, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let ka = Message::Keepalive
            .to_bytes(&bgp::wire::EncodeContext::default())
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            if w.write_all(&ka).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    });
}

/// A peer that completes the OPEN exchange, keeps sending KEEPALIVEs and never reads again,
/// while we announce `routes` prefixes: the tor gets all of them and its session never
/// waits (the test runs past its 9-s hold time), what we queue for the stuck peer stays
/// bounded, and the speaker keeps answering.
///
/// With `stuck` false the injector reads everything instead: the same run as a yardstick for
/// what the stuck peer itself costs.
fn stops_reading(tag: &str, routes: u32, watch: Duration, stuck: bool) {
    let rl = RelLab::up(tag, |_| {});
    let pid = rl.harness_pid();
    let inj = {
        let open = injector::open(reliability_lab::INJ_AS, 9, INJ.parse().unwrap());
        let opts = ConnectOptions {
            local: Some(INJ.parse().unwrap()),
            recv_buffer: Some(4096),
            ..ConnectOptions::default()
        };
        let s = injector::connect_in(&rl.inj_ns(), rl.node_addr(), opts).unwrap();
        let mut i = Injector::new(s);
        i.establish(&open, Duration::from_secs(5)).unwrap();
        i
    };
    let stop = Arc::new(AtomicBool::new(false));
    if !stuck {
        let mut r = inj.stream().try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    keepalives(
        inj.stream().try_clone().unwrap(),
        Duration::from_secs(3),
        stop.clone(),
    );
    let stuck_since = Instant::now();
    let before = rss_kib(pid).unwrap();
    let list: Vec<serde_json::Value> = (0..routes)
        .map(|i| {
            let [_, a, b, c] = injector::nth_slash24(i + (100 << 16));
            // A MED each: one UPDATE per route, so the table is large on the wire.
            json!({"prefix": format!("{a}.{b}.{c}.0/24"), "med": i})
        })
        .collect();
    let t0 = Instant::now();
    rl.harness
        .request(json!({"cmd": "announce", "routes": list}))
        .unwrap();
    wait("every route on the tor", Duration::from_secs(120), |last| {
        let n = rl.frr_received();
        *last = n.to_string();
        (n == u64::from(routes) + 1).then_some(())
    });
    let to_tor = t0.elapsed();
    // Ask the speaker something every 100 ms until the watch is over: it must answer.
    let mut slowest = Duration::ZERO;
    while stuck_since.elapsed() < watch {
        let q = Instant::now();
        let st = rl.inj_state();
        slowest = slowest.max(q.elapsed());
        assert_eq!(st["state"], "established", "{st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = rl.inj_state();
    let queued = st["out_queue"].as_u64().unwrap();
    let after = rss_kib(pid).unwrap();
    rl.assert_tor_untouched("a peer that stopped reading");
    if !stuck {
        eprintln!(
            "reading peer (yardstick): {routes} routes on the tor {:.2} s after the announce; \
             {queued} octets queued for the injector; harness RSS {:.1} -> {:.1} MiB",
            to_tor.as_secs_f64(),
            mib(before),
            mib(after),
        );
        stop.store(true, Ordering::Relaxed);
        return;
    }
    eprintln!(
        "stops reading: {routes} routes on the tor {:.2} s after the announce while the stuck \
         peer read nothing for {:.0} s; {queued} octets queued for it; slowest control answer \
         {:.0} ms; harness RSS {:.1} -> {:.1} MiB",
        to_tor.as_secs_f64(),
        stuck_since.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1e3,
        mib(before),
        mib(after),
    );
    // The pull threshold (64 KiB) plus one pull of 8192 prefixes, here one UPDATE of 48
    // octets each (a MED apiece): the rest waits in the Adj-RIB-Out, not in a buffer. (Had
    // the kernel's buffer taken everything, nothing would be queued and the test would
    // prove nothing: hence `queued > 0`.)
    assert!(
        queued > 0 && queued <= 64 * 1024 + 8192 * 48,
        "{queued} octets queued for a peer that does not read"
    );
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn a_peer_that_stops_reading_costs_a_bounded_queue_and_holds_up_no_one() {
    if !lab_available() {
        return;
    }
    stops_reading("stuck", 20_000, Duration::from_secs(12), true);
}

#[test]
#[ignore = "lab benchmark: scripts/reliability-bench.sh"]
fn bench_a_peer_that_stops_reading_while_200k_routes_go_to_the_tor() {
    if !lab_available() {
        return;
    }
    stops_reading("stuckb", 200_000, Duration::from_secs(30), true);
    stops_reading("readingb", 200_000, Duration::from_secs(30), false);
}

/// RFC 9687: a peer that takes nothing we send for the send hold time (twice the hold time,
/// at least 8 minutes) is dropped with Send Hold Timer Expired, even though it keeps sending
/// KEEPALIVEs.
#[test]
#[ignore = "lab benchmark (9 minutes): scripts/reliability-bench.sh"]
fn bench_a_peer_that_never_reads_is_dropped_after_the_send_hold_time() {
    if !lab_available() {
        return;
    }
    let rl = RelLab::up("sendhold", |_| {});
    let open = injector::open(reliability_lab::INJ_AS, 9, INJ.parse().unwrap());
    let opts = ConnectOptions {
        local: Some(INJ.parse().unwrap()),
        recv_buffer: Some(4096),
        ..ConnectOptions::default()
    };
    let s = injector::connect_in(&rl.inj_ns(), rl.node_addr(), opts).unwrap();
    let mut inj = Injector::new(s);
    inj.establish(&open, Duration::from_secs(5)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    keepalives(
        inj.stream().try_clone().unwrap(),
        Duration::from_secs(3),
        stop.clone(),
    );
    let t0 = Instant::now();
    let list: Vec<serde_json::Value> = (0..50_000u32)
        .map(|i| {
            let [_, a, b, c] = injector::nth_slash24(i + (100 << 16));
            json!({"prefix": format!("{a}.{b}.{c}.0/24")})
        })
        .collect();
    rl.harness
        .request(json!({"cmd": "announce", "routes": list}))
        .unwrap();
    let st = wait(
        "the stuck session dropped",
        Duration::from_secs(600),
        |last| {
            let s = rl.inj_state();
            *last = s.to_string();
            (s["state"] != "established").then_some(s)
        },
    );
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "send hold: dropped {:.0} s after it stopped reading: {}",
        t0.elapsed().as_secs_f64(),
        st["last_error"]
    );
    assert!(st.to_string().contains("Send Hold Timer Expired"), "{st}");
    rl.assert_tor_untouched("the send hold timer");
}

/// A peer that sends an UPDATE one octet a second: the hold timer (9 s) counts whole
/// messages only, so the session ends with Hold Timer Expired about 9 s after the last
/// whole message, while the tor's session and the control socket carry on.
#[test]
fn a_peer_trickling_one_octet_a_second_is_dropped_by_the_hold_timer_and_stalls_no_one() {
    if !lab_available() {
        return;
    }
    let rl = RelLab::up("trickle", |_| {});
    let mut inj = rl.inject(9);
    let last_whole = Instant::now();
    let mut w = inj.stream().try_clone().unwrap();
    let msg = injector::update(
        &[],
        &[
            origin_igp(),
            as_path(&[65002]),
            next_hop(INJ.parse().unwrap()),
        ]
        .concat(),
        &injector::prefix4("198.51.100.0/24"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let trickler = std::thread::spawn(move || {
        let mut sent = 0;
        for b in &msg {
            if stop2.load(Ordering::Relaxed) || w.write_all(&[*b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        sent
    });
    // The speaker answers while the trickle goes on.
    let mut slowest = Duration::ZERO;
    let outcome = loop {
        let q = Instant::now();
        let st = rl.inj_state();
        slowest = slowest.max(q.elapsed());
        if st["state"] != "established" {
            break inj.outcome(Duration::from_secs(2));
        }
        assert!(last_whole.elapsed() < Duration::from_secs(30), "{st}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let after = last_whole.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent = trickler.join().unwrap();
    match outcome {
        Outcome::Notification(n) => assert_eq!((n.code, n.subcode), (4, 0), "{}", n.describe()),
        other => panic!("{other:?} instead of Hold Timer Expired"),
    }
    assert!(
        after >= Duration::from_secs(8) && after <= Duration::from_secs(15),
        "dropped {after:?} after the last whole message, not after the hold time"
    );
    rl.assert_tor_untouched("a trickling peer");
    eprintln!(
        "trickle: {sent} octets at one a second; Hold Timer Expired {:.1} s after the last \
         whole message; slowest control answer meanwhile {:.0} ms",
        after.as_secs_f64(),
        slowest.as_secs_f64() * 1e3
    );
}

#[derive(Debug, Default)]
struct Flood {
    closed_silently: u64,
    answered: u64,
    connect_failed: u64,
}

/// `total` connections from the injector's unconfigured addresses, `threads` at a time, each
/// sending a valid OPEN: every one must be closed without a single octet from us.
fn flood(tag: &str, total: u64, threads: u64) {
    let rl = RelLab::up(tag, |_| {});
    let pid = rl.harness_pid();
    std::thread::sleep(Duration::from_millis(500));
    let fds_before = open_fds(pid).unwrap();
    let rss_before = rss_kib(pid).unwrap();
    let target = rl.node_addr();
    let t0 = Instant::now();
    let per = total / threads;
    let open = Message::Open(injector::open(65099, 90, "10.0.0.100".parse().unwrap()))
        .to_bytes(&bgp::wire::EncodeContext::default())
        .unwrap()
        .to_vec();
    let result = injector::in_netns(&rl.inj_ns(), move || {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let open = open.clone();
                std::thread::spawn(move || {
                    let mut f = Flood::default();
                    let addrs: Vec<_> = STRANGERS.collect();
                    for i in 0..per {
                        let src = RelLab::inj_addr(addrs[((t + i) as usize) % addrs.len()]);
                        let opts = ConnectOptions {
                            local: Some(src),
                            timeout: Duration::from_secs(3),
                            ..ConnectOptions::default()
                        };
                        match connect_here(target, &opts) {
                            Ok(mut s) => {
                                let _ = s.write_all(&open);
                                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                                let mut b = [0u8; 64];
                                match s.read(&mut b) {
                                    Ok(0) | Err(_) => f.closed_silently += 1,
                                    Ok(_) => f.answered += 1,
                                }
                            }
                            Err(_) => f.connect_failed += 1,
                        }
                    }
                    f
                })
            })
            .collect();
        let mut sum = Flood::default();
        for h in handles {
            let f = h
                .join()
                .map_err(|_| std::io::Error::other("flood thread"))?;
            sum.closed_silently += f.closed_silently;
            sum.answered += f.answered;
            sum.connect_failed += f.connect_failed;
        }
        Ok(sum)
    })
    .unwrap();
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let fds_after = open_fds(pid).unwrap();
    let rss_after = rss_kib(pid).unwrap();
    rl.assert_tor_untouched("the connection flood");
    // The configured peer still gets in.
    let _inj = rl.inject(0);
    let mut counts = BTreeMap::new();
    counts.insert("closed without a word", result.closed_silently);
    counts.insert("answered", result.answered);
    counts.insert("connect failed", result.connect_failed);
    eprintln!(
        "flood: {} connections from {} unconfigured addresses in {:.1} s ({:.0}/s): {counts:?}; \
         harness fds {fds_before} -> {fds_after}, RSS {:.1} -> {:.1} MiB",
        per * threads,
        STRANGERS.count(),
        took.as_secs_f64(),
        (per * threads) as f64 / took.as_secs_f64(),
        mib(rss_before),
        mib(rss_after),
    );
    assert_eq!(result.answered, 0, "a stranger got an answer");
    assert_eq!(result.closed_silently, per * threads, "{counts:?}");
    assert_eq!(fds_after, fds_before, "descriptors left open");
    assert!(
        mib(rss_after.saturating_sub(rss_before)) < 16.0,
        "the flood cost {:.1} MiB",
        mib(rss_after.saturating_sub(rss_before))
    );
}

fn connect_here(target: SocketAddr, opts: &ConnectOptions) -> std::io::Result<std::net::TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if let Some(l) = opts.local {
        s.bind(&SocketAddr::new(l, 0).into())?;
    }
    s.connect_timeout(&target.into(), opts.timeout)?;
    Ok(s.into())
}

#[test]
fn a_flood_of_connections_from_strangers_is_refused_without_effect() {
    if !lab_available() {
        return;
    }
    flood("flood", 2_000, 8);
}

#[test]
#[ignore = "lab benchmark: scripts/reliability-bench.sh"]
fn bench_a_flood_of_100k_connections_from_strangers() {
    if !lab_available() {
        return;
    }
    flood("floodb", 100_000, 32);
}
