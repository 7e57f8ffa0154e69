//! The dataplane's benchmark harness (figures in docs/BENCHMARKS.md; never assertions).
//!
//! ```sh
//! cargo run --release -p ebpf --example lb_bench -- programming [SERVICES]      # default 27000
//! cargo run --release -p ebpf --example lb_bench -- forwarding [SECONDS] [SERVICES...]
//! ```
//!
//! `programming`: the time to load SERVICES LoadBalancer services with 2 backends each into
//! the maps, then to change one backend of one service, against `iptables-restore` of the
//! equivalent kube-proxy-style NAT rules (nf_tables and legacy backends), all in scratch
//! namespaces and a bpffs of its own.
//!
//! `forwarding`: wrk from a client namespace through a node namespace to two local backends,
//! through the dataplane and through an iptables DNAT of the same service, with 10 and 27,000
//! services programmed, with keep-alive connections and with a new connection per request.
//!
//! Needs root. Everything it creates (namespaces, bpffs mounts) is removed when it ends.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ebpf::{Dataplane, DataplaneConfig, DesiredState, Frontend, MapSizes, Protocol};
use support::{Bpffs, NodeLab, eventually, get, ip};

fn vip_of(i: u32) -> IpAddr {
    IpAddr::from([172, 20, (i >> 8) as u8, (i & 0xff) as u8])
}

fn backend_of(i: u32, j: u32) -> IpAddr {
    let n = i * 2 + j;
    IpAddr::from([10, 100 + (n >> 16) as u8, (n >> 8) as u8, (n & 0xff) as u8])
}

/// `n` services, 2 backends each, as the dataplane sees them.
fn desired(n: u32) -> DesiredState {
    DesiredState::from_frontends((0..n).map(|i| {
        let mut f = Frontend::new(vip_of(i), 80, Protocol::Tcp)
            .backend(backend_of(i, 0), 8080, false)
            .backend(backend_of(i, 1), 8080, false);
        f.service = Some(format!("bench/svc-{i}"));
        f
    }))
}

fn chain(kind: &str, i: u32, j: Option<u32>) -> String {
    // kube-proxy names chains by a hash; a counter is as long and as unique.
    match j {
        None => format!("KUBE-{kind}-{i:016X}"),
        Some(j) => format!("KUBE-{kind}-{:016X}", i * 2 + j),
    }
}

/// kube-proxy-style rules for one service: its KUBE-SERVICES match, a KUBE-SVC chain picking
/// an endpoint at random, a KUBE-SEP chain per endpoint (masquerade hairpin, DNAT).
fn service_rules(out: &mut String, i: u32, vip: IpAddr, bes: &[(IpAddr, u16)], decl: bool) {
    let svc = chain("SVC", i, None);
    if decl {
        let _ = writeln!(out, ":{svc} - [0:0]");
        for j in 0..bes.len() as u32 {
            let _ = writeln!(out, ":{} - [0:0]", chain("SEP", i, Some(j)));
        }
    }
    let name = format!("bench/svc-{i}:http");
    let n = bes.len();
    for (j, (a, p)) in bes.iter().enumerate() {
        let sep = chain("SEP", i, Some(j as u32));
        if j + 1 < n {
            let prob = 1.0 / (n - j) as f64;
            let _ = writeln!(
                out,
                "-A {svc} -m comment --comment \"{name} -> {a}:{p}\" -m statistic --mode random --probability {prob:.10} -j {sep}"
            );
        } else {
            let _ = writeln!(
                out,
                "-A {svc} -m comment --comment \"{name} -> {a}:{p}\" -j {sep}"
            );
        }
        let _ = writeln!(
            out,
            "-A {sep} -s {a}/32 -m comment --comment \"{name}\" -j KUBE-MARK-MASQ"
        );
        let _ = writeln!(
            out,
            "-A {sep} -p tcp -m comment --comment \"{name}\" -m tcp -j DNAT --to-destination {a}:{p}"
        );
    }
    let _ = writeln!(
        out,
        "-A KUBE-SERVICES -d {vip}/32 -p tcp -m comment --comment \"{name} loadbalancer IP\" -m tcp --dport 80 -j {svc}"
    );
}

/// The whole nat table for `n` services; `extra` (the forwarding test's service) goes last,
/// where a packet for it walks the whole KUBE-SERVICES chain.
fn iptables_nat(n: u32, extra: Option<(IpAddr, Vec<(IpAddr, u16)>)>) -> String {
    let mut out = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n",
    );
    let total = n + u32::from(extra.is_some());
    for i in 0..total {
        let _ = writeln!(out, ":{} - [0:0]", chain("SVC", i, None));
        for j in 0..2 {
            let _ = writeln!(out, ":{} - [0:0]", chain("SEP", i, Some(j)));
        }
    }
    out.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    out.push_str("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
    for i in 0..n {
        let bes = [(backend_of(i, 0), 8080), (backend_of(i, 1), 8080)];
        service_rules(&mut out, i, vip_of(i), &bes, false);
    }
    if let Some((vip, bes)) = extra {
        service_rules(&mut out, n, vip, &bes, false);
    }
    out.push_str("COMMIT\n");
    out
}

/// A namespace of the harness's own, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Result<Netns> {
        let name = format!("lbbench-{tag}-{}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        Ok(Netns(name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Time of `restore [--noflush]` of `rules` in namespace `ns`.
fn restore(ns: &str, restore: &str, rules: &str, noflush: bool) -> Result<Duration> {
    use std::io::Write as _;
    let mut args = vec!["netns", "exec", ns, restore];
    if noflush {
        args.push("--noflush");
    }
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    let t = start.elapsed();
    if !out.status.success() {
        bail!("{restore}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn programming(n: u32) -> Result<()> {
    println!("== programming: {n} services x 2 backends");
    let bpffs = Bpffs::mount(&format!("lbbench-prog-{}", std::process::id()));
    let cfg = DataplaneConfig {
        bpffs_root: bpffs.path.join("lbspeaker"),
        sizes: MapSizes {
            services: (n * 3 + 1024).next_power_of_two(),
            backends: (n * 2 + 1024).next_power_of_two(),
            rev_nat: 65535,
            ..MapSizes::default()
        },
        ..DataplaneConfig::default()
    };
    let mut d = desired(n);

    // The plan alone, in memory.
    let mut mem = Dataplane::without_kernel(cfg.clone());
    let r = mem.sync(&d)?;
    println!(
        "in memory (plan + apply to BTreeMaps): {} for {} operations",
        ms(r.elapsed),
        r.ops.total()
    );

    let t0 = Instant::now();
    let mut dp = Dataplane::load(cfg.clone())?;
    let load = t0.elapsed();
    let r = dp.sync(&d)?;
    println!(
        "kernel maps: load+verify {}; full sync {} ({} map updates, {:.0} ns each)",
        ms(load),
        ms(r.elapsed),
        r.ops.total(),
        r.elapsed.as_nanos() as f64 / r.ops.total().max(1) as f64
    );

    // One change: a backend of one service replaced, back and forth, 50 times each way.
    let key = *d
        .frontends
        .keys()
        .nth((n / 2) as usize)
        .context("a service")?;
    let (mut full, mut one, mut ops) = (Vec::new(), Vec::new(), 0);
    for round in 0..100 {
        let f = d.frontends.get_mut(&key).context("the service")?;
        f.backends[0].address = if round % 2 == 0 {
            ip("10.250.0.1")
        } else {
            backend_of(n / 2, 0)
        };
        let f = f.clone();
        if round < 50 {
            let r = dp.sync(&d)?;
            ops = r.ops.total();
            full.push(r.elapsed);
        } else {
            one.push(dp.upsert(&f)?.elapsed);
        }
    }
    println!(
        "one change: full-state sync {} median ({ops} map operations); single-frontend upsert {} median",
        ms(median(full)),
        ms(median(one))
    );
    let t = Instant::now();
    let adopted = Dataplane::load(cfg)?;
    println!(
        "restart: load and adopt {} frontends from the pinned maps in {}",
        n,
        ms(t.elapsed())
    );
    drop(adopted);
    drop(dp);

    // iptables-restore of the same services, as kube-proxy writes them.
    let rules = iptables_nat(n, None);
    let lines = rules.lines().count();
    for tool in ["iptables-nft-restore", "iptables-legacy-restore"] {
        let ns = Netns::new("ipt")?;
        let full = restore(&ns.0, tool, &rules, false)?;
        // kube-proxy's full sync: the whole table again, with one endpoint changed.
        let changed = rules.replace(&format!("{}:8080", backend_of(n / 2, 0)), "10.250.0.1:8080");
        let resync = restore(&ns.0, tool, &changed, false)?;
        // The smallest restore of one change: that service's chains only.
        let mut partial = String::from("*nat\n");
        let bes = [(ip("10.250.0.2"), 8080), (backend_of(n / 2, 1), 8080)];
        let mut body = String::new();
        service_rules(&mut body, n / 2, vip_of(n / 2), &bes, true);
        // Without re-adding its KUBE-SERVICES rule (it exists already).
        for l in body.lines().filter(|l| !l.starts_with("-A KUBE-SERVICES")) {
            partial.push_str(l);
            partial.push('\n');
        }
        partial.push_str("COMMIT\n");
        let part = restore(&ns.0, tool, &partial, true)?;
        println!(
            "{tool}: {lines} lines; full load {}; one change by full resync {}; by --noflush of the service's chains {}",
            ms(full),
            ms(resync),
            ms(part)
        );
    }
    Ok(())
}

/// wrk's requests/s and latency percentiles.
struct WrkResult {
    rps: f64,
    p50: String,
    p99: String,
    errors: String,
}

fn wrk(lab: &NodeLab, seconds: u32, close: bool) -> Result<WrkResult> {
    let d = format!("{seconds}s");
    let mut args = vec!["-t2", "-c32", "-d", d.as_str(), "--latency"];
    if close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push("http://172.16.1.1/");
    let out = lab.lab.exec_ok("client", "wrk", &args)?;
    let field = |prefix: &str| -> String {
        out.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    let errors = out
        .lines()
        .find(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .unwrap_or("")
        .trim()
        .to_owned();
    Ok(WrkResult {
        rps,
        p50: field("50%"),
        p99: field("99%"),
        errors,
    })
}

fn forwarding(seconds: u32, counts: &[u32]) -> Result<()> {
    println!("== forwarding: wrk -t2 -c32 -d{seconds}s through 172.16.1.1:80 to 2 local backends");
    println!("| services | dataplane | connections | requests/s | p50 | p99 | errors |");
    println!("|---:|---|---|---:|---:|---:|---|");
    for &n in counts {
        for variant in ["eBPF", "iptables"] {
            let mut lab = NodeLab::up("lbw");
            lab.http("b1", 8080);
            lab.http("b2", 8080);
            let bes = vec![(ip("10.0.1.2"), 8080u16), (ip("10.0.2.2"), 8080)];
            let bpffs = Bpffs::mount(lab.lab.prefix());
            let mut dp = None;
            if variant == "eBPF" {
                let mut cfg = NodeLab::config(&bpffs);
                cfg.sizes.services = (n * 3 + 1024).next_power_of_two();
                cfg.sizes.backends = (n * 2 + 1024).next_power_of_two();
                cfg.sizes.rev_nat = 65535;
                cfg.sizes.conntrack_tcp = 1 << 20;
                let mut d = Dataplane::load(cfg)?;
                lab.attach(&mut d);
                let mut state = desired(n - 1);
                state.insert(
                    Frontend::new(ip("172.16.1.1"), 80, Protocol::Tcp)
                        .backend(bes[0].0, 8080, true)
                        .backend(bes[1].0, 8080, true),
                );
                d.sync(&state)?;
                dp = Some(d);
            } else {
                let rules = iptables_nat(n - 1, Some((ip("172.16.1.1"), bes.clone())));
                restore(
                    &lab.lab.namespace("node"),
                    "iptables-restore",
                    &rules,
                    false,
                )?;
            }
            let client = lab.ns("client");
            eventually(Duration::from_secs(5), || {
                get(&client, "172.16.1.1:80".parse().unwrap())
            });
            for close in [false, true] {
                let r = wrk(&lab, seconds, close)?;
                println!(
                    "| {n} | {variant} | {} | {:.0} | {} | {} | {} |",
                    if close {
                        "new per request"
                    } else {
                        "keep-alive"
                    },
                    r.rps,
                    r.p50,
                    r.p99,
                    r.errors
                );
            }
            if let Some(mut d) = dp {
                d.detach_all()?;
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the harness needs root (namespaces, bpffs, eBPF)");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("programming") => {
            let n = args
                .get(1)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(27_000);
            programming(n)
        }
        Some("forwarding") => {
            let secs = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
            let counts: Vec<u32> = if args.len() > 2 {
                args[2..]
                    .iter()
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()?
            } else {
                vec![10, 27_000]
            };
            forwarding(secs, &counts)
        }
        _ => bail!("usage: lb_bench programming [SERVICES] | forwarding [SECONDS] [SERVICES...]"),
    }
}
