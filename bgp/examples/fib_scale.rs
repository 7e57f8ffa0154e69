//! FIB installation at scale against a real kernel, in a namespace of its own (root): N
//! two-path ECMP routes added one netlink request each, the kernel's table read back (our
//! routes among them), a reconcile that finds nothing to do (read + plan), and all of them
//! removed. Run:
//!
//! ```sh
//! cargo run --release -p bgp --example fib_scale            # 10,000 routes
//! cargo run --release -p bgp --example fib_scale -- 100000
//! ```

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed unwrap is a failed run

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd as _;
use std::time::Instant;

use bgp::fib::plan::{self, BgpNextHop, DesiredRoute, NextHop};
use bgp::fib::{FibConfig, Kernel, NetlinkKernel, Op};
use frr_lab::{Lab, LabOptions, Topology, unique_prefix};
use ipnet::{IpNet, Ipv4Net};

const TOPOLOGY: &str = "
name: fibscale
nodes:
  host: { interfaces: { eth1: [10.0.0.100/16] } }
  peer: { interfaces: { eth1: [10.0.0.1/16, 10.0.0.2/16] } }
links:
  - endpoints: [host:eth1, peer:eth1]
";

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let t = Topology::from_yaml(TOPOLOGY, "example", |_| Ok(String::new())).unwrap();
    let lab = Lab::up(t, LabOptions::with_prefix(unique_prefix("fsc"))).unwrap();
    let eth1: u32 = lab
        .exec_ok("host", "cat", &["/sys/class/net/eth1/ifindex"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let path = format!("/run/netns/{}", lab.namespace("host"));
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(n, eth1));
    })
    .join()
    .unwrap();
}

async fn run(n: usize, eth1: u32) {
    let cfg = FibConfig::default();
    let mut k = NetlinkKernel::open(cfg.protocol).unwrap();
    let prefixes: Vec<IpNet> = (0..n as u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x6400_0000 + (i << 8)), 24).unwrap()))
        .collect();
    let hops: std::collections::BTreeSet<NextHop> = ["10.0.0.1", "10.0.0.2"]
        .iter()
        .map(|a| NextHop {
            gateway: Some(a.parse().unwrap()),
            ifindex: eth1,
        })
        .collect();
    let t = Instant::now();
    for p in &prefixes {
        let d = DesiredRoute {
            dst: *p,
            next_hops: hops.clone(),
        };
        k.apply(&Op::Add(d), &cfg).await.unwrap();
    }
    let add = t.elapsed();
    let t = Instant::now();
    let view = k.view().await.unwrap();
    let dump = t.elapsed();
    let ours = view
        .routes
        .iter()
        .filter(|r| plan::is_ours(r, &cfg))
        .count();
    assert_eq!(ours, n);
    let best: BTreeMap<IpNet, Vec<BgpNextHop>> = prefixes
        .iter()
        .map(|p| {
            let h = ["10.0.0.1", "10.0.0.2"]
                .map(|a| BgpNextHop {
                    address: a.parse().unwrap(),
                    link_local: None,
                    peer: None,
                })
                .to_vec();
            (*p, h)
        })
        .collect();
    let t = Instant::now();
    let view = k.view().await.unwrap();
    let (want, _) = plan::desired(&best, &view, &cfg);
    let p = plan::diff(&want, &view, &cfg, false);
    let idle = t.elapsed();
    assert!(p.ops.is_empty());
    let t = Instant::now();
    for r in view.routes.into_iter().filter(|r| plan::is_ours(r, &cfg)) {
        k.apply(&Op::Delete(r), &cfg).await.unwrap();
    }
    let del = t.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("{n} two-path routes:");
    println!(
        "  added        {:>8.1} ms  ({:.1} µs per route)",
        add.as_secs_f64() * 1e3,
        per(add)
    );
    println!("  dumped       {:>8.1} ms", dump.as_secs_f64() * 1e3);
    println!(
        "  idle reconcile (dump + plan, nothing to do) {:.1} ms",
        idle.as_secs_f64() * 1e3
    );
    println!(
        "  deleted      {:>8.1} ms  ({:.1} µs per route)",
        del.as_secs_f64() * 1e3,
        per(del)
    );
}
