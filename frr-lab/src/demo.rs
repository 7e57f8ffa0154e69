//! `frr-lab demo`: the seed lab from the field, brought up, checked and shown the way the
//! engineer saw it on the tor.

use std::io::Write;
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
}

/// The PodCIDRs the seed's four nodes advertise.
pub const SEED_POD_CIDRS: [&str; 4] = [
    "172.20.0.0/24",
    "172.20.1.0/24",
    "172.20.2.0/24",
    "172.20.3.0/24",
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

/// Runs the demo, writing what it shows to `out`.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<(), LabError> {
    let topology = Topology::load("seed")?;
    let w = |out: &mut dyn Write, s: &str| {
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    };
    w(
        out,
        "Bringing up the seed lab: FRR tor (AS 65000), node1..node4 running gobgpd (AS 65001)...",
    );
    let started = Instant::now();
    let lab = Lab::up(
        topology,
        LabOptions {
            prefix: opts.prefix.clone(),
            root: opts.root.clone(),
            start_daemons: true,
        },
    )?;
    w(
        out,
        &format!(
            "Lab {} up in {:.1} s; waiting for the sessions...",
            lab.prefix(),
            started.elapsed().as_secs_f64()
        ),
    );
    let (sessions, routes) = wait_for_seed(&lab, Duration::from_secs(60))?;
    w(
        out,
        &format!(
            "Four sessions Established after {:.1} s, the PodCIDRs in the tor's kernel after {:.1} s.\n",
            sessions.as_secs_f64(),
            routes.as_secs_f64()
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
    w(out, "");
    if opts.keep {
        let prefix = lab.prefix().to_owned();
        lab.persist()?;
        w(
            out,
            &format!(
                "The lab stays up. Try:\n  frr-lab vtysh --prefix {prefix} tor -c 'show bgp neighbors'\n  frr-lab exec --prefix {prefix} node1 -- gobgp neighbor\n  frr-lab status\nand take it down with: frr-lab down seed --prefix {prefix}"
            ),
        );
    } else {
        lab.down()?;
        w(out, "Lab taken down.");
    }
    Ok(())
}
