//! Invalid, contradictory and huge manifest directories through the directory source
//! (`agent_glue::source::directory::DirectorySource`) and LB-IPAM (`agent_glue::ipam`): every
//! problem is reported once, with its file (and document and line where there is one), and
//! nothing that is valid is held up by it — every valid Service gets an address from its
//! pool, written as status and read back.
//!
//! The directory holds `pools` pools (a /24 each, selecting services by a `pool` label) and
//! `services` LoadBalancer Services spread over them, in multi-document files and single
//! files, plus the bad cases below. The light version runs in the test command; the issue's
//! size (10,000 services, 1,000 pools) is `bench_...` (`#[ignore]`d; its figures, time and
//! memory, are in `docs/RELIABILITY.md`).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use agent_glue::ipam::IpamController;
use agent_glue::source::directory::{DirectoryOptions, DirectorySource};
use agent_glue::source::{ObjectKey, Source as _};
use k8s_openapi::jiff::Timestamp;

fn pool_doc(name: &str, cidr: &str, label: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata:\n  name: {name}\n\
         spec:\n  blocks:\n  - cidr: {cidr}\n  serviceSelector:\n    matchLabels:\n      pool: {label}\n"
    )
}

fn service_doc(ns: &str, name: &str, label: &str, extra_annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         \x20 labels:\n    pool: {label}\n{extra_annotations}spec:\n  type: LoadBalancer\n\
         \x20 ports:\n  - port: 80\n    protocol: TCP\n"
    )
}

fn pool_cidr(i: usize) -> String {
    format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
}

/// What the generator put in the directory and expects.
struct Generated {
    pools: usize,
    services: usize,
    /// The Service whose requested address no pool has.
    unsatisfiable: ObjectKey,
    /// The two Services asking for the same address without a sharing key.
    same_ip: (ObjectKey, ObjectKey),
    /// Services selecting only the pool that conflicts.
    behind_conflict: ObjectKey,
}

fn generate(dir: &Path, pools: usize, services: usize) -> Generated {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    // Pools: the first half in one multi-document file, the rest one file each.
    let mut many = String::new();
    for i in 0..pools {
        let doc = pool_doc(&format!("pool-{i:04}"), &pool_cidr(i), &format!("p{i}"));
        if i < pools / 2 {
            many.push_str("---\n");
            many.push_str(&doc);
        } else {
            w(&format!("pools/pool-{i:04}.yaml"), &doc);
        }
    }
    w("pools/many.yaml", &many);
    // Services: 100 to a file, in ten namespaces.
    let mut file = String::new();
    for i in 0..services {
        let _ = write!(
            file,
            "---\n{}",
            service_doc(
                &format!("ns-{}", i % 10),
                &format!("svc-{i:05}"),
                &format!("p{}", i % pools),
                ""
            )
        );
        if i % 100 == 99 || i + 1 == services {
            w(&format!("services/batch-{:03}.yaml", i / 100), &file);
            file.clear();
        }
    }
    // Invalid documents among valid ones: a syntax error between two good pools, an
    // impossible CIDR, an unknown cilium.io kind, a nameless Service, a file that is not
    // UTF-8.
    w(
        "bad/mixed.yaml",
        &format!(
            "{}---\napiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {{name: broken\n---\n{}",
            pool_doc("mixed-before", "10.250.0.0/24", "mixed"),
            pool_doc("mixed-after", "10.250.1.0/24", "mixed"),
        ),
    );
    w(
        "bad/cidr.yaml",
        &pool_doc("bad-cidr", "10.251.0.0/33", "nobody"),
    );
    w(
        "bad/kind.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPoool\nmetadata: {name: typo}\n",
    );
    w(
        "bad/nameless.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: ns-0}\nspec: {type: LoadBalancer}\n",
    );
    std::fs::write(
        dir.join("bad/latin1.yaml"),
        b"kind: Service\nname: caf\xe9\n",
    )
    .unwrap();
    // Contradictions: the same pool twice, two pools on one block, an address no pool has,
    // one address asked for by two Services that do not share.
    w(
        "zz-contradictions/dup.yaml",
        &pool_doc("pool-0000", "10.252.0.0/24", "dup"),
    );
    w(
        "zz-contradictions/overlap.yaml",
        &format!(
            "{}---\n{}",
            pool_doc("overlap-a", "10.253.0.0/24", "overlap-a"),
            pool_doc("overlap-b", "10.253.0.0/25", "overlap-b")
        ),
    );
    let ips = |ip: &str| format!("  annotations:\n    lbipam.cilium.io/ips: {ip}\n");
    w(
        "zz-contradictions/services.yaml",
        &[
            service_doc("odd", "nowhere", "p0", &ips("192.0.2.7")),
            service_doc(
                "odd",
                "first",
                "p1",
                &ips(&pool_cidr(1).replace(".0/24", ".77")),
            ),
            service_doc(
                "odd",
                "second",
                "p1",
                &ips(&pool_cidr(1).replace(".0/24", ".77")),
            ),
            service_doc("odd", "behind-conflict", "overlap-b", ""),
        ]
        .join("---\n"),
    );
    Generated {
        pools,
        services,
        unsatisfiable: ObjectKey::namespaced("odd", "nowhere"),
        same_ip: (
            ObjectKey::namespaced("odd", "first"),
            ObjectKey::namespaced("odd", "second"),
        ),
        behind_conflict: ObjectKey::namespaced("odd", "behind-conflict"),
    }
}

fn rss_kib() -> u64 {
    tests::injector::rss_kib(std::process::id()).unwrap_or(0)
}

fn ingress(s: &k8s_openapi::api::core::v1::Service) -> Vec<IpAddr> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|v| {
            v.iter()
                .filter_map(|i| i.ip.as_ref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn run(pools: usize, services: usize) {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), pools, services);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rss0 = rss_kib();
        let t0 = Instant::now();
        let opts = DirectoryOptions {
            debounce: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
        };
        let src = DirectorySource::open(dir.path(), opts).await.unwrap();
        let snap = src.snapshot();
        let read = t0.elapsed();
        let rss_read = rss_kib();

        // Every problem, once, with where it is.
        let problems: Vec<String> = snap.problems.iter().map(|p| p.to_string()).collect();
        let expect: [(&str, &str); 5] = [
            ("bad/mixed.yaml: document 2 (from line 12)", "skipped"),
            ("bad/kind.yaml: document 1", "is not a kind lbspeaker reads"),
            ("bad/nameless.yaml: document 1", "metadata.name"),
            ("bad/latin1.yaml", "not UTF-8"),
            (
                "zz-contradictions/dup.yaml",
                "CiliumLoadBalancerIPPool pool-0000 is already defined in pools/many.yaml",
            ),
        ];
        for (at, what) in expect {
            let n = problems
                .iter()
                .filter(|p| p.starts_with(at) && p.contains(what))
                .count();
            assert_eq!(n, 1, "{at} / {what}: {problems:#?}");
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
        // Everything valid is there: the generated objects, the two good pools around the
        // broken document, the pool with an impossible block (valid as a document: its
        // conditions say what is wrong, as in Cilium), the two overlapping pools, the four odd
        // Services.
        assert_eq!(snap.lb_ip_pools.len(), g.pools + 5);
        assert_eq!(snap.services.len(), g.services + 4);

        // LB-IPAM: one round writes every status; the directory serves them back.
        let sink = src.status_sink();
        let mut ipam = IpamController::new();
        let t1 = Instant::now();
        let round = ipam.round(&snap, &sink, Timestamp::now()).await;
        let allocate = t1.elapsed();
        assert!(round.failed.is_empty(), "{:?}", round.failed);
        // The watcher sees the status files come in: how long until every address shows.
        let t2 = Instant::now();
        let mut rx = src.subscribe();
        loop {
            let shown = rx
                .borrow_and_update()
                .services
                .values()
                .filter(|s| !ingress(s).is_empty())
                .count();
            if shown > g.services {
                break;
            }
            tokio::time::timeout(Duration::from_secs(600), rx.changed())
                .await
                .expect("the status files never all showed")
                .unwrap();
        }
        let seen = t2.elapsed();
        let t3 = Instant::now();
        src.rescan().await;
        let snap = src.snapshot();
        let reread = t3.elapsed();
        let rss_end = rss_kib();
        let mut given = BTreeSet::new();
        let mut by_pool: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..g.services {
            let key = ObjectKey::namespaced(format!("ns-{}", i % 10), format!("svc-{i:05}"));
            let svc = &snap.services[&key];
            let a = ingress(svc);
            assert_eq!(a.len(), 1, "{key}: {:?}", svc.status);
            let pool = pool_cidr(i % g.pools);
            let net: ipnet::IpNet = pool.parse().unwrap();
            assert!(net.contains(&a[0]), "{key}: {} not in {pool}", a[0]);
            assert!(given.insert(a[0]), "{} given twice", a[0]);
            *by_pool.entry(pool).or_default() += 1;
        }
        // The contradictions: reported on the objects, nothing else held up.
        let svc = |k: &ObjectKey| snap.services[k].clone();
        assert!(ingress(&svc(&g.unsatisfiable)).is_empty());
        let (a, b) = (ingress(&svc(&g.same_ip.0)), ingress(&svc(&g.same_ip.1)));
        assert_eq!(
            a.len() + b.len(),
            1,
            "one of two Services asking for one address without sharing gets it: {a:?} {b:?}"
        );
        assert!(ingress(&svc(&g.behind_conflict)).is_empty());
        let view = |k: &ObjectKey| {
            round
                .desired
                .service_views
                .iter()
                .find(|v| Some(&v.namespace) == k.namespace.as_ref() && v.name == k.name)
                .map(|v| format!("{}: {}", v.reason, v.message))
                .unwrap_or_default()
        };
        for k in [&g.unsatisfiable, &g.behind_conflict] {
            assert!(!view(k).trim().is_empty(), "{k}: no reason given");
        }
        let conflicting: BTreeMap<_, _> = round
            .desired
            .pool_views
            .iter()
            .filter(|p| p.conflicting)
            .map(|p| (p.name.clone(), p.conflict.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            conflicting.keys().collect::<Vec<_>>(),
            ["bad-cidr", "overlap-b"],
            "{conflicting:?}"
        );
        assert!(
            conflicting["bad-cidr"].contains("10.251.0.0/33"),
            "{conflicting:?}"
        );
        // A second round has nothing to write (level-triggered, idempotent).
        let again = ipam.round(&snap, &sink, Timestamp::now()).await;
        assert_eq!(again.written, 0);
        eprintln!(
            "manifests: {} pools, {} services, {} problems, conflicts {conflicting:?}; read in {:.2} s, LB-IPAM round \
             ({} writes) {:.2} s, every address seen through the watcher {:.2} s after, a full \
             re-read {:.2} s; RSS {:.1} MiB -> {:.1} after \
             reading -> {:.1} at the end; peak {:.1} MiB. Why not: nowhere: {}; behind-conflict: {}",
            g.pools,
            g.services,
            problems.len(),
            read.as_secs_f64(),
            round.written,
            allocate.as_secs_f64(),
            seen.as_secs_f64(),
            reread.as_secs_f64(),
            rss0 as f64 / 1024.0,
            rss_read as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            tests::injector::peak_rss_kib(std::process::id()).unwrap_or(0) as f64 / 1024.0,
            view(&g.unsatisfiable),
            view(&g.behind_conflict),
        );
    });
}

#[test]
fn invalid_and_contradictory_manifests_are_reported_and_hold_up_nothing_valid() {
    run(50, 500);
}

#[test]
#[ignore = "benchmark: scripts/reliability-bench.sh"]
fn bench_ten_thousand_services_and_a_thousand_pools() {
    run(1_000, 10_000);
}
