//! Captures the golden wire vectors of `tests/vectors/` from real FRR 8.4, GoBGP 3.10 and
//! BIRD 2.0.12 sessions in a namespace lab. Ignored by default: it rewrites the committed
//! vectors. Run it as root with
//!
//! ```sh
//! cargo test -p bgp --test capture_golden -- --ignored --nocapture
//! ```
//!
//! The lab: `frr` (AS 65001) peers with `gobgp` (AS 4200000002) and `bird` (AS 65003) over
//! IPv4 and IPv6 each, and `gobgp` peers with `bird` over IPv4. Every daemon originates
//! routes with MED, communities, large and extended communities; FRR sends IPv6 with a
//! global and link-local next hop and IPv4 with an IPv6 next hop to BIRD (RFC 8950);
//! add-path is on where the daemons support it; graceful restart makes them send
//! End-of-RIB. Then FRR and GoBGP ask for route refreshes, some routes are withdrawn, and
//! each session is shut down with an RFC 9003 shutdown communication. tcpdump records the
//! three links; tshark extracts the TCP payloads, which are cut into messages and written
//! one per line (`stream src dst hex`) next to the pcap files (and `frr-bird` also as
//! pcapng).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};

const TOPOLOGY: &str = r#"
name: golden
description: FRR, GoBGP and BIRD peering with each other, for wire vectors
nodes:
  frr:
    kind: frr
    config: frr.conf
    interfaces:
      eth1: [10.0.1.1/24, "fd00:1::1/64"]
      eth2: [10.0.2.1/24, "fd00:2::1/64"]
  gobgp:
    kind: host
    interfaces:
      eth1: [10.0.1.2/24, "fd00:1::2/64"]
      eth2: [10.0.3.1/24]
  bird:
    kind: host
    interfaces:
      eth1: [10.0.2.2/24, "fd00:2::2/64"]
      eth2: [10.0.3.2/24]
links:
  - endpoints: [frr:eth1, gobgp:eth1]
  - endpoints: [frr:eth2, bird:eth1]
  - endpoints: [gobgp:eth2, bird:eth2]
"#;

const FRR_CONF: &str = r#"frr defaults traditional
hostname frr
!
route-map SET-ATTRS permit 10
 set community 65001:100 65001:200
 set large-community 65001:1:2
 set extcommunity rt 65001:7
 set metric 50
 set as-path prepend 65001 65001
!
router bgp 65001
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 neighbor 10.0.1.2 remote-as 4200000002
 neighbor 10.0.1.2 timers connect 1
 neighbor fd00:1::2 remote-as 4200000002
 neighbor fd00:1::2 timers connect 1
 neighbor 10.0.2.2 remote-as 65003
 neighbor 10.0.2.2 timers connect 1
 neighbor fd00:2::2 remote-as 65003
 neighbor fd00:2::2 timers connect 1
 neighbor fd00:2::2 capability extended-nexthop
 !
 address-family ipv4 unicast
  network 10.101.0.0/24 route-map SET-ATTRS
  network 10.101.1.0/24
  network 10.101.2.0/25
  neighbor 10.0.1.2 addpath-tx-all-paths
  neighbor 10.0.2.2 addpath-tx-all-paths
  no neighbor fd00:1::2 activate
 exit-address-family
 !
 address-family ipv6 unicast
  network fd00:101::/48 route-map SET-ATTRS
  network fd00:101:1::/48
  neighbor fd00:1::2 activate
  neighbor fd00:2::2 activate
 exit-address-family
exit
"#;

const GOBGPD_TOML: &str = r#"[global.config]
  as = 4200000002
  router-id = "10.0.0.2"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.1.1"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 1
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4

[[neighbors]]
  [neighbors.config]
    neighbor-address = "fd00:1::1"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 1
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true

[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.3.2"
    peer-as = 65003
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#;

const BIRD_CONF: &str = r#"log "LOGFILE" all;
router id 10.0.0.3;
protocol device { scan time 10; }
protocol static s4 {
  ipv4;
  route 10.103.0.0/24 blackhole;
  route 10.200.0.0/24 blackhole;
}
protocol static s6 {
  ipv6;
  route fd00:103::/48 blackhole;
}
filter tag_routes {
  if proto = "s4" || proto = "s6" then {
    bgp_community.add((65003, 300));
    bgp_large_community.add((65003, 5, 6));
    bgp_ext_community.add((rt, 65003, 9));
    bgp_med = 30;
  }
  accept;
}
protocol bgp frr4 {
  local 10.0.2.2 as 65003;
  neighbor 10.0.2.1 as 65001;
  connect delay time 1; connect retry time 1; error wait time 1, 10;
  graceful restart on;
  ipv4 { import all; export filter tag_routes; add paths on; };
}
protocol bgp frr6 {
  local fd00:2::2 as 65003;
  neighbor fd00:2::1 as 65001;
  connect delay time 1; connect retry time 1; error wait time 1, 10;
  graceful restart on;
  ipv4 { import all; export filter tag_routes; extended next hop on; };
  ipv6 { import all; export filter tag_routes; };
}
protocol bgp gobgp {
  local 10.0.3.2 as 65003;
  neighbor 10.0.3.1 as 4200000002;
  connect delay time 1; connect retry time 1; error wait time 1, 10;
  ipv4 { import all; export filter tag_routes; };
}
"#;

/// The links captured: (file stem, node, interface).
const CAPTURES: [(&str, &str, &str); 3] = [
    ("frr-gobgp", "frr", "eth1"),
    ("frr-bird", "frr", "eth2"),
    ("gobgp-bird", "gobgp", "eth2"),
];

fn gobgp(lab: &Lab, args: &[&str]) -> Result<String, frr_lab::LabError> {
    frr_lab::daemons::gobgp(lab, "gobgp", args)
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "rewrites tests/vectors from a live lab; run by hand as root"]
fn capture_golden_vectors() {
    if !lab_available() {
        return;
    }
    let topology = Topology::from_yaml(TOPOLOGY, "golden", |f| {
        assert_eq!(f, "frr.conf");
        Ok(FRR_CONF.to_owned())
    })
    .unwrap();
    let opts = LabOptions {
        start_daemons: false,
        ..LabOptions::with_prefix(unique_prefix("gv"))
    };
    let mut lab = Lab::up(topology, opts).unwrap();

    // 1. tcpdump on the three links before any daemon starts, to catch the OPENs.
    let mut dumps = Vec::new();
    for (stem, node, ifname) in CAPTURES {
        let file = lab.node_dir(node).unwrap().join(format!("{stem}.pcap"));
        let f = file.to_string_lossy().into_owned();
        let pid = lab
            .spawn(
                node,
                &format!("tcpdump-{stem}"),
                "tcpdump",
                &[
                    "-i",
                    ifname,
                    "-U",
                    "-s",
                    "0",
                    "-Z",
                    "root",
                    "-w",
                    &f,
                    "tcp port 179",
                ],
            )
            .unwrap();
        let log = lab
            .node_dir(node)
            .unwrap()
            .join(format!("tcpdump-{stem}.log"));
        wait("tcpdump", Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains("listening on"))
        });
        dumps.push((stem, file, pid));
    }

    // 2. BIRD and gobgpd, then FRR (which dials once at start).
    let bird_dir = lab.node_dir("bird").unwrap();
    let _ = std::fs::set_permissions(
        &bird_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let bird_conf = bird_dir.join("bird.conf");
    let bird_log = bird_dir.join("bird.log");
    std::fs::write(
        &bird_conf,
        BIRD_CONF.replace("LOGFILE", &bird_log.to_string_lossy()),
    )
    .unwrap();
    let ctl = bird_dir.join("bird.ctl").to_string_lossy().into_owned();
    lab.spawn(
        "bird",
        "bird",
        "bird",
        &["-f", "-c", &bird_conf.to_string_lossy(), "-s", &ctl],
    )
    .unwrap();
    let birdc = |cmd: &str| -> String {
        let mut args = vec!["-s", ctl.as_str()];
        args.extend(cmd.split_whitespace());
        run("birdc", &args)
    };
    wait("bird", Duration::from_secs(10), || {
        std::process::Command::new("birdc")
            .args(["-s", &ctl, "show", "status"])
            .output()
            .is_ok_and(|o| o.status.success())
    });

    let gobgp_dir = lab.node_dir("gobgp").unwrap();
    let gobgp_conf = gobgp_dir.join("gobgpd.toml");
    std::fs::write(&gobgp_conf, GOBGPD_TOML).unwrap();
    lab.spawn(
        "gobgp",
        "gobgpd",
        "gobgpd",
        &[
            "-f",
            &gobgp_conf.to_string_lossy(),
            "-p",
            "--api-hosts",
            "127.0.0.1:50051",
            "--pprof-disable",
        ],
    )
    .unwrap();
    wait("gobgpd", Duration::from_secs(10), || {
        gobgp(&lab, &["global"]).is_ok()
    });
    for route in [
        "-a ipv4 add 10.102.0.0/24 origin igp med 20 community 4200:1,65535:65281 large-community 4200000002:3:4",
        "-a ipv4 add 10.102.1.0/24 origin incomplete",
        "-a ipv4 add 10.200.0.0/24 identifier 1 origin igp med 5",
        "-a ipv4 add 10.200.0.0/24 identifier 2 origin igp med 6",
        "-a ipv6 add fd00:102::/48 origin igp med 20 community 4200:2 large-community 4200000002:7:8",
    ] {
        let mut args = vec!["global", "rib"];
        args.extend(route.split_whitespace());
        gobgp(&lab, &args).unwrap_or_else(|e| panic!("gobgp {route}: {e}"));
    }

    let frr_dir = lab.node_dir("frr").unwrap();
    std::fs::write(frr_dir.join("bgpd.conf"), FRR_CONF).unwrap();
    std::fs::write(frr_dir.join("zebra.conf"), "hostname frr\n").unwrap();
    run("chown", &["-R", "frr:frr", &frr_dir.to_string_lossy()]);
    for daemon in ["zebra", "bgpd"] {
        frr_lab::daemons::start_frr_daemon(&mut lab, "frr", &frr_dir, daemon).unwrap();
    }

    // 3. Every session up, routes exchanged (End-of-RIB sent).
    wait("FRR's four sessions", Duration::from_secs(60), || {
        lab.frr_neighbor_states("frr")
            .is_ok_and(|s| s.len() == 4 && s.values().all(|v| v == "Established"))
    });
    wait("BIRD's session with GoBGP", Duration::from_secs(60), || {
        birdc("show protocols gobgp").contains("Established")
    });
    std::thread::sleep(Duration::from_secs(4));

    // 4. Withdrawals, route refreshes, then shutdowns with a shutdown communication.
    gobgp(
        &lab,
        &["global", "rib", "-a", "ipv4", "del", "10.102.1.0/24"],
    )
    .unwrap();
    lab.vtysh(
        "frr",
        "configure terminal\nrouter bgp 65001\naddress-family ipv4 unicast\nno network 10.101.2.0/25\nend",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for cmd in [
        "clear bgp ipv4 unicast 10.0.2.2 soft in",
        "clear bgp ipv4 unicast 10.0.1.2 soft in",
        "clear bgp ipv6 unicast fd00:1::2 soft in",
    ] {
        lab.vtysh("frr", cmd).unwrap();
    }
    gobgp(&lab, &["neighbor", "10.0.3.2", "softresetin"]).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    lab.vtysh(
        "frr",
        "configure terminal\nrouter bgp 65001\nneighbor 10.0.2.2 shutdown message lbspeaker golden vector: planned maintenance\nend",
    )
    .unwrap();
    gobgp(
        &lab,
        &[
            "neighbor",
            "fd00:1::1",
            "shutdown",
            "--reason",
            "gobgp going down for a golden vector",
        ],
    )
    .unwrap();
    birdc("disable gobgp \"bird says goodbye\"");
    std::thread::sleep(Duration::from_secs(2));

    // 5. Stop the captures and turn them into vector files.
    let dir = vectors_dir();
    std::fs::create_dir_all(dir.join("pcap")).unwrap();
    for (stem, file, pid) in dumps {
        lab.stop_process(pid, Duration::from_secs(5)).unwrap();
        let pcap = dir.join("pcap").join(format!("{stem}.pcap"));
        std::fs::copy(&file, &pcap).unwrap();
        if stem == "frr-bird" {
            // The same capture as pcapng, for the pcapng reader of `lbspeaker bgp decode`.
            let ng = dir.join("pcap").join(format!("{stem}.pcapng"));
            run(
                "tshark",
                &[
                    "-r",
                    &pcap.to_string_lossy(),
                    "-F",
                    "pcapng",
                    "-w",
                    &ng.to_string_lossy(),
                ],
            );
        }
        let text = extract(&pcap);
        std::fs::write(dir.join(format!("{stem}.txt")), text).unwrap();
    }
}

/// The BGP messages of a capture, one per line: `stream src dst hex`.
fn extract(pcap: &Path) -> String {
    let fields = run(
        "tshark",
        &[
            "-r",
            &pcap.to_string_lossy(),
            "-Y",
            "tcp.len > 0 && !tcp.analysis.retransmission",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "tcp.stream",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.payload",
        ],
    );
    // Payloads per (stream, direction), in capture order.
    let mut streams: BTreeMap<(u32, String, String), Vec<u8>> = BTreeMap::new();
    let mut order = Vec::new();
    for line in fields.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let [stream, s4, s6, sp, d4, d6, dp, payload] = f[..] else {
            panic!("unexpected tshark line {line:?}");
        };
        let host = |a: &str, b: &str| {
            if a.is_empty() {
                format!("[{b}]")
            } else {
                a.to_owned()
            }
        };
        let key = (
            stream.parse::<u32>().unwrap(),
            format!("{}:{sp}", host(s4, s6)),
            format!("{}:{dp}", host(d4, d6)),
        );
        let bytes = hex::decode(payload.replace(':', "")).unwrap();
        order.push((key.clone(), bytes.len()));
        streams.entry(key).or_default().extend(bytes);
    }
    // Cut into messages, and emit them in the order their last byte was captured.
    let mut consumed: BTreeMap<(u32, String, String), usize> = BTreeMap::new();
    let mut seen: BTreeMap<(u32, String, String), usize> = BTreeMap::new();
    let mut out = String::from(
        "# Captured from FRR 8.4, GoBGP 3.10 and BIRD 2.0.12 by tests/capture_golden.rs.\n\
         # One BGP message per line: TCP stream, source, destination, message in hex.\n",
    );
    for (key, n) in order {
        *seen.entry(key.clone()).or_default() += n;
        let data = &streams[&key];
        let avail = seen[&key];
        let pos = consumed.entry(key.clone()).or_default();
        while *pos + 19 <= avail {
            let len = usize::from(u16::from_be_bytes([data[*pos + 16], data[*pos + 17]]));
            if *pos + len > avail {
                break;
            }
            let _ = writeln!(
                out,
                "{} {} {} {}",
                key.0,
                key.1,
                key.2,
                hex::encode(&data[*pos..*pos + len])
            );
            *pos += len;
        }
    }
    out
}
