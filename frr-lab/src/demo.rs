//! `frr-lab demo`: the seed lab from the field with lbspeaker on every node, brought up,
//! checked and shown the way the engineer saw it: on the tor (`show ip bgp summary`, `show ip
//! bgp`, the kernel's BGP routes with 172.16.1.1 as ECMP), and from a node (`lbspeaker bgp
//! peers`, the service's address).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::LabError;
use crate::lab::{Lab, LabOptions};
use crate::topology::Topology;

/// How `frr-lab demo` runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Namespace prefix (default `seed`).
    pub prefix: Option<String>,
    /// Lab root directory.
    pub root: PathBuf,
    /// Leave the lab up afterwards (take it down with `frr-lab down seed`).
    pub keep: bool,
    /// The lbspeaker binary (default: found as [`crate::lab::find_lbspeaker`] says).
    pub lbspeaker: Option<PathBuf>,
}

/// The PodCIDRs the seed's four nodes advertise.
pub const SEED_POD_CIDRS: [&str; 4] = [
    "172.20.0.0/24",
    "172.20.1.0/24",
    "172.20.2.0/24",
    "172.20.3.0/24",
];

/// The webpod service's address in the seed lab (the first of 172.16.1.0/24 with
/// `allowFirstLastIPs: No`).
pub const SEED_SERVICE_IP: &str = "172.16.1.1";

/// The seed nodes' addresses toward the tor: the next hops of their routes.
pub const SEED_NODE_ADDRESSES: [&str; 4] = [
    "192.168.10.100",
    "192.168.10.101",
    "192.168.10.102",
    "192.168.20.100",
];

/// Waits until the tor of a seed lab has `sessions` Established neighbors and the four
/// PodCIDRs in its kernel; returns the time each took from the call.
pub fn wait_for_seed(lab: &Lab, timeout: Duration) -> Result<(Duration, Duration), LabError> {
    let start = Instant::now();
    Lab::wait_for("four Established sessions on the tor", timeout, |last| {
        let states = lab.frr_neighbor_states("tor")?;
        *last = Some(format!("{states:?}"));
        Ok((states.len() == 4 && states.values().all(|s| s == "Established")).then_some(()))
    })?;
    let sessions = start.elapsed();
    Lab::wait_for("the four PodCIDRs in the tor's kernel", timeout, |last| {
        let routes = lab.kernel_routes("tor", false, Some("bgp"))?;
        let dsts: Vec<&str> = routes.iter().map(|r| r.dst.as_str()).collect();
        *last = Some(format!("{dsts:?}"));
        Ok(SEED_POD_CIDRS
            .iter()
            .all(|p| dsts.contains(p))
            .then_some(()))
    })?;
    Ok((sessions, start.elapsed()))
}

/// Waits until the tor's kernel routes `dst` over exactly these gateways (ECMP when several).
pub fn wait_for_kernel_route(
    lab: &Lab,
    dst: &str,
    gateways: &[&str],
    timeout: Duration,
) -> Result<Duration, LabError> {
    let start = Instant::now();
    let mut want: Vec<IpAddr> = gateways.iter().filter_map(|g| g.parse().ok()).collect();
    want.sort();
    Lab::wait_for(
        &format!("{dst} via {gateways:?} in the tor's kernel"),
        timeout,
        |last| {
            let routes = lab.kernel_routes("tor", false, Some("bgp"))?;
            let got = routes
                .iter()
                .find(|r| r.dst == dst)
                .map(|r| r.gateways.clone());
            *last = Some(format!("{got:?}"));
            Ok((got.as_deref() == Some(&want[..])).then_some(()))
        },
    )?;
    Ok(start.elapsed())
}

/// Waits until the tor has sent every neighbor `prefixes` prefixes (FRR's PfxSnt).
pub fn wait_for_tor_sent(lab: &Lab, prefixes: u64, timeout: Duration) -> Result<(), LabError> {
    Lab::wait_for(
        &format!("the tor to send {prefixes} prefixes to every neighbor"),
        timeout,
        |last| {
            let v = lab.vtysh_json("tor", "show ip bgp summary json")?;
            let peers = v
                .get("peers")
                .or_else(|| v.get("ipv4Unicast").and_then(|u| u.get("peers")))
                .and_then(|p| p.as_object())
                .cloned()
                .unwrap_or_default();
            let sent: Vec<u64> = peers
                .values()
                .map(|p| p.get("pfxSnt").and_then(|n| n.as_u64()).unwrap_or(0))
                .collect();
            *last = Some(format!("{sent:?}"));
            Ok((!sent.is_empty() && sent.iter().all(|n| *n == prefixes)).then_some(()))
        },
    )
}

/// Runs the demo, writing what it shows to `out`.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<(), LabError> {
    let topology = Topology::load("seed")?;
    let w = |out: &mut dyn Write, s: &str| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    w(
        out,
        "Bringing up the seed lab: FRR tor (AS 65000) with the field's frr-tor.conf, node1..node4 each running `lbspeaker run` (AS 65001) on the seed's manifests...",
    );
    let started = Instant::now();
    let lab = Lab::up(
        topology,
        LabOptions {
            prefix: opts.prefix.clone(),
            root: opts.root.clone(),
            start_daemons: true,
            lbspeaker: opts.lbspeaker.clone(),
        },
    )?;
    let last_start = lab
        .state()
        .processes
        .iter()
        .filter(|p| p.name == "lbspeaker")
        .filter_map(|p| lab.started_at(p.pid))
        .max()
        .unwrap_or(started);
    w(
        out,
        &format!(
            "Lab {} up in {:.1} s (manifests in {}); waiting for the sessions...",
            lab.prefix(),
            started.elapsed().as_secs_f64(),
            lab.manifest_dir().display()
        ),
    );
    wait_for_seed(&lab, Duration::from_secs(60))?;
    let sessions = last_start.elapsed();
    wait_for_kernel_route(
        &lab,
        SEED_SERVICE_IP,
        &SEED_NODE_ADDRESSES,
        Duration::from_secs(60),
    )?;
    let ecmp = last_start.elapsed();
    // What the field saw was a settled lab: let the tor send every node its table.
    wait_for_tor_sent(&lab, 5, Duration::from_secs(30))?;
    w(
        out,
        &format!(
            "From the start of the last lbspeaker: four sessions Established and the PodCIDRs in the tor's kernel within {:.2} s, {SEED_SERVICE_IP} as 4-way ECMP within {:.2} s.\n",
            sessions.as_secs_f64(),
            ecmp.as_secs_f64()
        ),
    );
    for command in ["show ip bgp summary", "show ip bgp"] {
        w(out, &format!("tor$ vtysh -c '{command}'"));
        w(out, lab.vtysh("tor", command)?.trim_end());
        w(out, "");
    }
    w(out, "tor$ ip route show proto bgp");
    let ns = lab.namespace("tor");
    let kernel = crate::cmd::run("ip", &["-n", &ns, "route", "show", "proto", "bgp"])?;
    w(out, kernel.trim_end());
    w(
        out,
        "(webpod is externalTrafficPolicy: Cluster, so every selected node advertises 172.16.1.1: one next hop per node.)\n",
    );
    for (title, args) in [
        ("node1$ lbspeaker bgp peers", &["bgp", "peers"][..]),
        (
            "node1$ lbspeaker bgp routes available ipv4 unicast",
            &["bgp", "routes", "available", "ipv4", "unicast"][..],
        ),
        ("node1$ lbspeaker ipam services", &["ipam", "services"][..]),
    ] {
        w(out, title);
        w(out, lab.exec_ok("node1", "lbspeaker", args)?.trim_end());
        w(out, "");
    }
    let status = lab
        .manifest_dir()
        .join("status/services/default/webpod.yaml");
    w(out, &format!("$ cat {}", status.display()));
    let text = std::fs::read_to_string(&status)
        .map_err(LabError::io(format!("cannot read {}", status.display())))?;
    w(out, text.trim_end());
    w(out, "");
    if opts.keep {
        let prefix = lab.prefix().to_owned();
        lab.persist()?;
        w(
            out,
            &format!(
                "The lab stays up. Try:\n  frr-lab vtysh --prefix {prefix} tor -c 'show bgp neighbors'\n  frr-lab exec --prefix {prefix} node1 -- lbspeaker bgp peers\n  frr-lab exec --prefix {prefix} node2 -- lbspeaker bgp routes advertised ipv4 unicast\n  frr-lab status\nand take it down with: frr-lab down seed --prefix {prefix}"
            ),
        );
    } else {
        lab.down()?;
        w(out, "Lab taken down.");
    }
    Ok(())
}
