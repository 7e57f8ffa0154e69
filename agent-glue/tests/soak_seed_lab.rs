//! The soak of issue 12, run by `scripts/soak.sh MINUTES` (an `#[ignore]`d test: it runs for
//! as long as it is told, an hour by default, and stops by itself): the seed lab with
//! `lbspeaker run` on its four nodes, 1,000 LoadBalancer services created, changed and
//! deleted at random at 10 changes a second over 50 pools that are edited too, the
//! endpoints of the `Local` services moving between nodes, and the tor's bgpd restarted
//! every ten minutes. At the end (after a quiet spell) it checks: no address given twice,
//! none lost (every service has one, from its pool; those neither deleted nor moved to
//! another pool kept theirs), the tor's kernel holds exactly the routes it should (every
//! advertised service via the right nodes, nothing else), the daemons' memory near its
//! baseline, no session reset but the tor's restarts; and prints the figures.

#![allow(clippy::unwrap_used)]

mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use frr_lab::{Lab, lab_available};
use lab::faults;
use lab::*;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

const SERVICES: usize = 1000;
const POOLS: usize = 50;
/// Services whose index is below this are `externalTrafficPolicy: Local` with endpoints.
const LOCAL: usize = 50;

fn pool_yaml(p: usize, second_block: bool) -> String {
    let extra = if second_block {
        format!("\n  - cidr: 10.201.{p}.0/24")
    } else {
        String::new()
    };
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {{name: soak-{p:02}}}\nspec:\n  blocks:\n  - cidr: 10.200.{p}.0/24{extra}\n  serviceSelector: {{matchLabels: {{soak-pool: p{p:02}}}}}\n"
    )
}

fn service_yaml(i: usize, pool: usize, port: u16) -> String {
    let local = if i < LOCAL {
        "\n  externalTrafficPolicy: Local"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s{i:04}\n  namespace: soak\n  labels: {{soak: \"yes\", soak-pool: p{pool:02}}}\nspec:\n  selector: {{app: s{i:04}}}\n  ports: [{{protocol: TCP, port: {port}}}]\n  type: LoadBalancer{local}\n"
    )
}

/// The EndpointSlice of a `Local` service: one endpoint on each of `nodes`, ready.
fn endpoints_yaml(i: usize, nodes: &[usize]) -> String {
    let mut s = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s{i:04}-eps\n  namespace: soak\n  labels: {{kubernetes.io/service-name: s{i:04}}}\naddressType: IPv4\nports: [{{name: \"\", protocol: TCP, port: 80}}]\nendpoints:\n"
    );
    for n in nodes {
        s.push_str(&format!(
            "- addresses: [172.20.{n}.{}]\n  conditions: {{ready: true, serving: true, terminating: false}}\n  nodeName: node{}\n",
            10 + i % 200,
            n + 1
        ));
    }
    if nodes.is_empty() {
        s.push_str("  []\n");
        s = s.replace("endpoints:\n  []\n", "endpoints: []\n");
    }
    s
}

/// What the soak wants of one service.
#[derive(Debug, Clone)]
struct Svc {
    pool: usize,
    port: u16,
    /// `Local` services: the nodes (0..4) with a ready endpoint.
    nodes: Vec<usize>,
    /// Neither deleted nor moved to another pool since the first check: its address (in
    /// its pool's first block, which no edit takes away) must not move.
    untouched: bool,
}

fn soak_topology() -> frr_lab::Topology {
    let mut t = seed();
    let bgp = t.files["bgp.yaml"].replace(
        "    keepAliveTimeSeconds: 3\n",
        "    keepAliveTimeSeconds: 3\n    connectRetryTimeSeconds: 5\n",
    );
    t.files.insert("bgp.yaml".into(), bgp);
    // The seed's pool serves webpod only, the soak pools the soak's services.
    let pool = t.files["lb-pool.yaml"].replace(
        "  blocks:\n",
        "  serviceSelector: {matchLabels: {app: webpod}}\n  blocks:\n",
    );
    t.files.insert("lb-pool.yaml".into(), pool);
    t.files.insert(
        "soak-advertisement.yaml".into(),
        "apiVersion: cilium.io/v2\nkind: CiliumBGPAdvertisement\nmetadata:\n  name: soak-services\n  labels: {advertise: bgp}\nspec:\n  advertisements:\n  - advertisementType: Service\n    service: {addresses: [LoadBalancerIP]}\n    selector: {matchLabels: {soak: \"yes\"}}\n".into(),
    );
    t.manifests.push("soak-advertisement.yaml".into());
    t
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_all(lab: &Lab) -> BTreeMap<String, u64> {
    lbspeaker_pids(lab)
        .into_iter()
        .map(|(n, p)| (n, rss_kib(p)))
        .collect()
}

/// Every soak service's addresses from the status files.
fn addresses(lab: &Lab) -> BTreeMap<usize, Vec<String>> {
    let dir = lab.manifest_dir().join("status/services/soak");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(i) = name
            .strip_prefix('s')
            .and_then(|n| n.strip_suffix(".yaml"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        out.insert(i, service_ips(lab, "soak", &format!("s{i:04}")));
    }
    out
}

/// The routes the tor's kernel must hold: the seed's five, and each advertised soak
/// service via the nodes that advertise it.
fn expected_routes(
    seed_routes: &[(String, Vec<String>)],
    want: &BTreeMap<usize, Svc>,
    addrs: &BTreeMap<usize, Vec<String>>,
) -> Vec<(String, Vec<String>)> {
    let mut r: Vec<(String, Vec<String>)> = seed_routes.to_vec();
    for (i, s) in want {
        let Some(ip) = addrs.get(i).and_then(|a| a.first()) else {
            continue;
        };
        let mut via: Vec<String> = if *i < LOCAL {
            s.nodes.iter().map(|n| ALL_NODES[*n].to_owned()).collect()
        } else {
            ALL_NODES.iter().map(|a| a.to_string()).collect()
        };
        via.sort();
        if !via.is_empty() {
            r.push((ip.clone(), via));
        }
    }
    r.sort();
    r
}

fn in_pool(ip: &str, pool: usize, second_block: bool) -> bool {
    ip.starts_with(&format!("10.200.{pool}."))
        || (second_block && ip.starts_with(&format!("10.201.{pool}.")))
}

/// Waits until every wanted service has one address from its pool, none twice, and the
/// tor's kernel holds exactly the routes for them; returns the addresses.
fn settle(
    lab: &Lab,
    seed_routes: &[(String, Vec<String>)],
    want: &BTreeMap<usize, Svc>,
    blocks: &[bool],
    timeout: Duration,
) -> BTreeMap<usize, Vec<String>> {
    let t = Instant::now();
    loop {
        let addrs = addresses(lab);
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, s) in want {
            match addrs.get(i).map(Vec::as_slice) {
                Some([ip]) if in_pool(ip, s.pool, blocks[s.pool]) => {
                    if !seen.insert(ip.clone()) {
                        problems.push(format!("{ip} given twice"));
                    }
                }
                other => problems.push(format!("s{i:04} (pool {}): {other:?}", s.pool)),
            }
        }
        for i in addrs.keys() {
            if !want.contains_key(i) {
                problems.push(format!("s{i:04} deleted but still has a status file"));
            }
        }
        let routes = sample_routes(&lab.namespace("tor"));
        let expected = expected_routes(seed_routes, want, &addrs);
        if routes != expected {
            let got: BTreeSet<_> = routes.iter().collect();
            let exp: BTreeSet<_> = expected.iter().collect();
            let extra: Vec<_> = got.difference(&exp).take(5).collect();
            let missing: Vec<_> = exp.difference(&got).take(5).collect();
            problems.push(format!(
                "the tor's kernel: {} routes, {} expected; extra {extra:?}, missing {missing:?}",
                routes.len(),
                expected.len()
            ));
        }
        if problems.is_empty() {
            return addrs;
        }
        assert!(
            t.elapsed() < timeout,
            "not settled after {timeout:?}: {} problems, first: {:?}",
            problems.len(),
            &problems[..problems.len().min(8)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "the soak: scripts/soak.sh MINUTES"]
fn soak() {
    if !lab_available() {
        return;
    }
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(60.0);
    let seed_value: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let tor_every = Duration::from_secs(
        std::env::var("SOAK_TOR_RESTART_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let mut rng = StdRng::seed_from_u64(seed_value);
    let mut lab = up("soak", soak_topology());
    converged(&lab);
    let seed_routes = sample_routes(&lab.namespace("tor"));
    assert_eq!(seed_routes.len(), 5);
    let rss_start = rss_all(&lab);

    // 50 pools, 1,000 services.
    let dir = lab.manifest_dir();
    std::fs::create_dir_all(dir.join("soak")).unwrap();
    let mut blocks = vec![false; POOLS];
    for p in 0..POOLS {
        write_manifest(
            &lab,
            &format!("soak/pool-{p:02}.yaml"),
            &pool_yaml(p, false),
        );
    }
    let mut want: BTreeMap<usize, Svc> = BTreeMap::new();
    for i in 0..SERVICES {
        let s = Svc {
            pool: i % POOLS,
            port: 8000,
            nodes: if i < LOCAL { vec![i % 4] } else { Vec::new() },
            untouched: true,
        };
        if i < LOCAL {
            write_manifest(
                &lab,
                &format!("soak/s{i:04}-eps.yaml"),
                &endpoints_yaml(i, &s.nodes),
            );
        }
        write_manifest(
            &lab,
            &format!("soak/s{i:04}.yaml"),
            &service_yaml(i, s.pool, s.port),
        );
        want.insert(i, s);
    }
    let t = Instant::now();
    let first = settle(&lab, &seed_routes, &want, &blocks, Duration::from_secs(600));
    let initial_settle = t.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let rss_base = rss_all(&lab);
    eprintln!(
        "soak: 1,000 services in 50 pools settled in {:.1} s (addresses and {} routes in the tor's kernel); RSS before {rss_start:?} KiB, baseline {rss_base:?} KiB",
        initial_settle.as_secs_f64(),
        sample_routes(&lab.namespace("tor")).len()
    );
    let mut sessions_base = all_established(&lab, "tor", 4);
    let mut next_index = SERVICES;

    // The churn.
    let start = Instant::now();
    let mut last_tor = Instant::now();
    let mut ops: BTreeMap<&str, u64> = BTreeMap::new();
    let mut tor_restarts = 0u32;
    let mut tor_recovery = Vec::new();
    let mut unexpected_resets = 0u64;
    let mut tick = 0u64;
    let mut rss_peak: BTreeMap<String, u64> = BTreeMap::new();
    while start.elapsed() < run_for {
        let due = start + Duration::from_millis(100 * tick);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        tick += 1;
        let roll: u32 = rng.random_range(0..100);
        if tick.is_multiple_of(120) {
            // A pool edited every 12 s: a second block added, or taken away again (its
            // services there move back into the first).
            let p = rng.random_range(0..POOLS);
            blocks[p] = !blocks[p];
            write_manifest(
                &lab,
                &format!("soak/pool-{p:02}.yaml"),
                &pool_yaml(p, blocks[p]),
            );
            *ops.entry("pool edited").or_default() += 1;
        } else if roll < 15 {
            // Endpoints move.
            let i = rng.random_range(0..LOCAL);
            if let Some(s) = want.get_mut(&i) {
                let mut nodes: Vec<usize> = (0..4).filter(|_| rng.random_bool(0.5)).collect();
                nodes.sort();
                s.nodes = nodes;
                write_manifest(
                    &lab,
                    &format!("soak/s{i:04}-eps.yaml"),
                    &endpoints_yaml(i, &s.nodes),
                );
                *ops.entry("endpoints moved").or_default() += 1;
            }
        } else if roll < 45 && want.len() > SERVICES / 2 {
            // Delete one (never a Local one: their slices stay).
            let keys: Vec<usize> = want.keys().copied().filter(|i| *i >= LOCAL).collect();
            let i = keys[rng.random_range(0..keys.len())];
            want.remove(&i);
            std::fs::remove_file(dir.join(format!("soak/s{i:04}.yaml"))).unwrap();
            *ops.entry("service deleted").or_default() += 1;
        } else if roll < 75 || want.len() < SERVICES / 2 {
            if want.len() < SERVICES {
                let i = next_index;
                next_index += 1;
                let s = Svc {
                    pool: rng.random_range(0..POOLS),
                    port: 8000,
                    nodes: Vec::new(),
                    untouched: false,
                };
                write_manifest(
                    &lab,
                    &format!("soak/s{i:04}.yaml"),
                    &service_yaml(i, s.pool, s.port),
                );
                want.insert(i, s);
                *ops.entry("service created").or_default() += 1;
            }
        } else {
            // Change one: another pool (a new address) or another port (the same address).
            let keys: Vec<usize> = want.keys().copied().collect();
            let i = keys[rng.random_range(0..keys.len())];
            let s = want.get_mut(&i).unwrap();
            if rng.random_bool(0.5) {
                s.pool = rng.random_range(0..POOLS);
                s.untouched = false;
                *ops.entry("service moved to another pool").or_default() += 1;
            } else {
                s.port = if s.port == 8000 { 8080 } else { 8000 };
                *ops.entry("service port changed").or_default() += 1;
            }
            write_manifest(
                &lab,
                &format!("soak/s{i:04}.yaml"),
                &service_yaml(i, s.pool, s.port),
            );
        }
        if tick.is_multiple_of(50) {
            for (n, k) in rss_all(&lab) {
                let e = rss_peak.entry(n).or_default();
                *e = (*e).max(k);
            }
            // Sessions: a reset outside a tor restart is unexpected.
            let now = sessions(&lab, "tor");
            for (a, c) in &sessions_base {
                if now.get(a).map(|(_, n)| *n) != Some(*c) {
                    unexpected_resets += 1;
                    eprintln!(
                        "soak: unexpected session change with {a}: {:?} (was {c})",
                        now.get(a)
                    );
                    sessions_base.insert(a.clone(), now.get(a).map(|(_, n)| *n).unwrap_or(0));
                    break;
                }
            }
        }
        if last_tor.elapsed() >= tor_every {
            // The tor restarted (bgpd stopped and started, zebra kept): every session goes and
            // comes back by itself.
            let t = Instant::now();
            let pid = faults::pid_of(&lab, "tor", "bgpd");
            lab.stop_process(pid, Duration::from_secs(5)).unwrap();
            faults::start_bgpd(&mut lab, "tor");
            sessions_base = all_established(&lab, "tor", 4);
            tor_recovery.push(t.elapsed());
            tor_restarts += 1;
            last_tor = Instant::now();
        }
    }
    let churned = start.elapsed();
    let changes: u64 = ops.values().sum();

    // Quiet, then the checks.
    let t = Instant::now();
    let addrs = settle(&lab, &seed_routes, &want, &blocks, Duration::from_secs(300));
    let final_settle = t.elapsed();
    let mut moved = Vec::new();
    for (i, s) in &want {
        if s.untouched && first.get(i) != addrs.get(i) {
            moved.push((*i, first.get(i).cloned(), addrs.get(i).cloned()));
        }
    }
    let untouched = want.values().filter(|s| s.untouched).count();
    let final_sessions = sessions(&lab, "tor");
    for (a, c) in &sessions_base {
        if final_sessions.get(a).map(|(_, n)| *n) != Some(*c) {
            unexpected_resets += 1;
        }
    }
    std::thread::sleep(Duration::from_secs(10));
    let rss_end = rss_all(&lab);
    let advertised = sample_routes(&lab.namespace("tor")).len() - 5;
    eprintln!(
        "soak: {:.1} min of churn, seed {seed_value}: {changes} changes ({:.2}/s): {ops:?}; {tor_restarts} tor restarts, sessions back after {:?}",
        churned.as_secs_f64() / 60.0,
        changes as f64 / churned.as_secs_f64(),
        tor_recovery
            .iter()
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "soak: at the end {} services ({untouched} of the first 1,000 neither deleted nor moved to another pool, {} of them with another address), {advertised} advertised service routes in the tor's kernel, settled {:.1} s after the last change; no address twice, none missing, nothing extra; unexpected session resets: {unexpected_resets}",
        want.len(),
        moved.len(),
        final_settle.as_secs_f64()
    );
    eprintln!("soak: RSS KiB baseline {rss_base:?}, peak {rss_peak:?}, end {rss_end:?}");
    assert!(
        moved.is_empty(),
        "addresses moved: {:?}",
        &moved[..moved.len().min(5)]
    );
    assert_eq!(unexpected_resets, 0);
    for (n, base) in &rss_base {
        let end = rss_end[n];
        assert!(
            // Back to the baseline: glibc's per-thread arenas once kept it ~30 % above
            // (docs/RELIABILITY.md); with one arena the hour ended 3-5 % above.
            end <= base + base / 10 + 4 * 1024,
            "{n}: RSS {end} KiB at the end, baseline {base} KiB"
        );
    }
    let _ = addrs;
    lab.down().unwrap();
}
