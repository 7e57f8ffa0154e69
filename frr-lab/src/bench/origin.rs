//! How each DUT is told to originate or withdraw service addresses while it runs, each
//! through its own interface, as its users would:
//!
//! - lbspeaker: the Services are written to the manifest directory (one file, renamed into
//!   place: the moment of the rename is the change);
//! - gobgpd: its gRPC API, through `gobgp mrt inject global` (one client streaming every path
//!   from an MRT file: `gobgp global rib add` would start a process per route), and `gobgp
//!   global rib del all`;
//! - BIRD: its configuration rewritten with the static routes, then `birdc configure`;
//! - FRR: `network` statements through `vtysh -f` (and `no network` to withdraw).
//!
//! Client programs run on the helpers' CPU, not the DUT's.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnet::IpNet;

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

/// An MRT file (RFC 6396, TABLE_DUMP_V2) holding one path per prefix: origin IGP, empty AS
/// path, next hop 0.0.0.0 (gobgpd's own address when it sends), as `gobgp global rib add`
/// would make them.
pub fn mrt_table(prefixes: &[IpNet]) -> Vec<u8> {
    fn record(out: &mut Vec<u8>, subtype: u16, body: &[u8]) {
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&13u16.to_be_bytes()); // TABLE_DUMP_V2
        out.extend_from_slice(&subtype.to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut out = Vec::new();
    // PEER_INDEX_TABLE: collector id, no view name, one IPv4 peer with a 4-octet AS.
    let mut peers = Vec::new();
    peers.extend_from_slice(&[10, 0, 0, 2]);
    peers.extend_from_slice(&0u16.to_be_bytes());
    peers.extend_from_slice(&1u16.to_be_bytes());
    peers.push(0x02);
    peers.extend_from_slice(&[10, 0, 0, 2]);
    peers.extend_from_slice(&[10, 0, 0, 2]);
    peers.extend_from_slice(&DUT_AS.to_be_bytes());
    record(&mut out, 1, &peers);
    let attrs: [u8; 14] = [
        0x40, 1, 1, 0, // ORIGIN IGP
        0x40, 2, 0, // AS_PATH, empty
        0x40, 3, 4, 0, 0, 0, 0, // NEXT_HOP 0.0.0.0
    ];
    for (seq, p) in prefixes.iter().enumerate() {
        let IpNet::V4(v4) = p else { continue };
        let len = v4.prefix_len();
        let octets = usize::from(len).div_ceil(8);
        let mut body = Vec::new();
        body.extend_from_slice(&(seq as u32).to_be_bytes());
        body.push(len);
        body.extend_from_slice(v4.network().octets().get(..octets).unwrap_or_default());
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes()); // peer index
        body.extend_from_slice(&0u32.to_be_bytes()); // originated time
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(&attrs);
        record(&mut out, 2, &body); // RIB_IPV4_UNICAST
    }
    out
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
            let api = ["-u", "127.0.0.1", "-p", daemons::GOBGP_API_PORT];
            if prefixes.is_empty() {
                let mut args = api.to_vec();
                args.extend(["global", "rib", "-a", "ipv4", "del", "all"]);
                let at = unix_now();
                client(b, opts, "gobgp", &args)?;
                return Ok(at);
            }
            let file = dir.join("routes.mrt");
            write(&file, &mrt_table(prefixes))?;
            let f = file.to_string_lossy().into_owned();
            let mut args = api.to_vec();
            args.extend(["mrt", "inject", "global", f.as_str()]);
            let at = unix_now();
            client(b, opts, "gobgp", &args)?;
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
    fn an_mrt_table_has_a_peer_index_and_one_rib_entry_per_prefix() {
        let p: Vec<IpNet> = vec![
            "10.96.0.1/32".parse().unwrap(),
            "10.96.0.0/24".parse().unwrap(),
        ];
        let m = mrt_table(&p);
        // Header (12) + peer index (4 + 2 + 2 + 1 + 4 + 4 + 4 = 21).
        assert_eq!(&m[4..6], &13u16.to_be_bytes());
        assert_eq!(&m[6..8], &1u16.to_be_bytes());
        assert_eq!(u32::from_be_bytes([m[8], m[9], m[10], m[11]]), 21);
        let first = 12 + 21;
        assert_eq!(&m[first + 6..first + 8], &2u16.to_be_bytes());
        // A /32 entry: seq 4, len 1, prefix 4, count 2, peer 2, time 4, attr len 2, attrs 14.
        let body = u32::from_be_bytes([m[first + 8], m[first + 9], m[first + 10], m[first + 11]]);
        assert_eq!(body, 4 + 1 + 4 + 2 + 2 + 4 + 2 + 14);
        assert_eq!(m[first + 12 + 4], 32);
        assert_eq!(&m[first + 12 + 5..first + 12 + 9], &[10, 96, 0, 1]);
        let second = first + 12 + body as usize;
        assert_eq!(m[second + 12 + 4], 24);
        assert_eq!(m.len(), second + 12 + 4 + 1 + 3 + 2 + 2 + 4 + 2 + 14);
    }

    #[test]
    fn frr_networks_go_into_the_dut_bgp_instance() {
        let p: Vec<IpNet> = vec!["10.96.0.1/32".parse().unwrap()];
        let add = frr_networks(&p, false);
        assert!(add.starts_with("router bgp 65001\n address-family ipv4 unicast\n"));
        assert!(add.contains("  network 10.96.0.1/32\n"));
        assert!(frr_networks(&p, true).contains("  no network 10.96.0.1/32\n"));
    }
}
