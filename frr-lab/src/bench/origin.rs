//! How each DUT is told to originate or withdraw service addresses while it runs, each
//! through its own interface, as its users would:
//!
//! - lbspeaker: the Services are written to the manifest directory (one file, renamed into
//!   place: the moment of the rename is the change);
//! - gobgpd: its gRPC API, one `AddPathStream` call with every path ([`super::gobgp_api`]),
//!   and `gobgp global rib -a ipv4 del all` to withdraw;
//! - BIRD: its configuration rewritten with the static routes, then `birdc configure`;
//! - FRR: `network` statements through `vtysh -f` (and `no network` to withdraw).
//!
//! Client programs (and this process) run on the helpers' CPU, not the DUT's.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::IpNet;

use super::gobgp_api;
use super::labs::{BenchLab, DUT_AS, services_yaml};
use super::sys::unix_now;
use super::{BenchError, BenchOptions, Dut};
use crate::{daemons, render};

/// Runs a client program in the DUT's namespace on the helpers' CPU; returns its stdout.
fn client(
    b: &BenchLab,
    opts: &BenchOptions,
    program: &str,
    args: &[&str],
) -> Result<String, BenchError> {
    let mut all: Vec<&str> = Vec::new();
    let cpu = opts.helper_cpu().map(|c| c.to_string());
    let program = match &cpu {
        Some(c) => {
            all.extend(["-c", c, program]);
            "taskset"
        }
        None => program,
    };
    all.extend_from_slice(args);
    Ok(b.lab.exec_ok("dut", program, &all)?)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, bytes).map_err(BenchError::io(format!("cannot write {}", path.display())))
}

fn frr_networks(prefixes: &[IpNet], remove: bool) -> String {
    let mut s = format!("router bgp {DUT_AS}\n address-family ipv4 unicast\n");
    for p in prefixes {
        if remove {
            s.push_str("  no ");
        } else {
            s.push_str("  ");
        }
        s.push_str(&format!("network {p}\n"));
    }
    s.push_str(" exit-address-family\nexit\n");
    s
}

/// Makes the DUT originate exactly `prefixes` (the services `0..count` of workload 1,
/// through `address`), or nothing when empty. Returns the moment the change was made: the
/// rename of the manifest, or the start of the client command.
pub fn set_routes(
    b: &BenchLab,
    opts: &BenchOptions,
    prefixes: &[IpNet],
    previous: &[IpNet],
) -> Result<f64, BenchError> {
    let dir = b.lab.node_dir("dut")?;
    match b.dut {
        Dut::Lbspeaker => {
            let addrs: Vec<IpAddr> = prefixes.iter().map(IpNet::addr).collect();
            let text = services_yaml(addrs.len(), !opts.lb_ipam, |i| {
                addrs
                    .get(i)
                    .copied()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            });
            let manifests = b.lab.manifest_dir();
            // Hidden names are not read; the rename makes the whole file appear at once.
            let tmp = manifests.join(".services.yaml.tmp");
            write(&tmp, text.as_bytes())?;
            let at = unix_now();
            std::fs::rename(&tmp, manifests.join("services.yaml"))
                .map_err(BenchError::io("cannot rename the services file into place"))?;
            Ok(at)
        }
        Dut::Gobgpd => {
            if prefixes.is_empty() {
                let api = ["-u", "127.0.0.1", "-p", daemons::GOBGP_API_PORT];
                let mut args = api.to_vec();
                args.extend(["global", "rib", "-a", "ipv4", "del", "all"]);
                let at = unix_now();
                client(b, opts, "gobgp", &args)?;
                return Ok(at);
            }
            let port: u16 = daemons::GOBGP_API_PORT.parse().unwrap_or(50051);
            let api = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let ns = b.lab.namespace("dut");
            let at = unix_now();
            gobgp_api::add_paths(&ns, api, prefixes)?;
            Ok(at)
        }
        Dut::Bird => {
            let Some(spec) = &b.spec else {
                return Err(BenchError::Failed("BIRD without a bgp block".into()));
            };
            let mut spec = spec.clone();
            spec.announce = prefixes.to_vec();
            let log = dir.join("bird.log");
            write(
                &dir.join("bird.conf"),
                render::bird_conf(&spec, &log.to_string_lossy()).as_bytes(),
            )?;
            let ctl = dir.join("bird.ctl").to_string_lossy().into_owned();
            let at = unix_now();
            let out = client(b, opts, "birdc", &["-s", &ctl, "configure"])?;
            if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
                return Err(BenchError::Failed(format!("birdc configure: {out}")));
            }
            Ok(at)
        }
        Dut::Frr => {
            let (list, remove) = if prefixes.is_empty() {
                (previous, true)
            } else {
                (prefixes, false)
            };
            let file = dir.join("networks.conf");
            write(&file, frr_networks(list, remove).as_bytes())?;
            let f = file.to_string_lossy().into_owned();
            let vty = dir.to_string_lossy().into_owned();
            let at = unix_now();
            let out = client(b, opts, "vtysh", &["--vty_socket", &vty, "-f", &f])?;
            if out.contains("Unknown command") || out.contains("% ") {
                return Err(BenchError::Failed(format!("vtysh -f: {out}")));
            }
            Ok(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frr_networks_go_into_the_dut_bgp_instance() {
        let p: Vec<IpNet> = vec!["10.96.0.1/32".parse().unwrap()];
        let add = frr_networks(&p, false);
        assert!(add.starts_with("router bgp 65001\n address-family ipv4 unicast\n"));
        assert!(add.contains("  network 10.96.0.1/32\n"));
        assert!(frr_networks(&p, true).contains("  no network 10.96.0.1/32\n"));
    }
}
