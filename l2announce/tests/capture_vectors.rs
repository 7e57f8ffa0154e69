//! Captures the golden frames of `tests/vectors/frames.txt` from real tools and a real kernel
//! in a two-namespace lab. Ignored by default: it rewrites the committed vectors. Run it as
//! root with
//!
//! ```sh
//! cargo test -p l2announce --test capture_vectors -- --ignored --nocapture
//! ```
//!
//! `a` (192.168.77.1, fd00:77::1) and `b` (192.168.77.2, fd00:77::2) share a veth. From `a`:
//! arping (Thomas Habets' 2.23) asks for b's address and b's kernel replies; `arping -U`
//! sends a gratuitous request; ndisc6 solicits b's IPv6 address and b's kernel advertises it;
//! a ping makes a's kernel solicit and b's kernel answer; then b's kernel
//! announces a new address (`ndisc_notify`) and a link flap (`arp_notify`). tcpdump records a's side; every
//! distinct ARP and neighbour discovery frame is written out as `name hex`, named by what it is.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use frr_lab::{Lab, LabOptions, Topology, lab_available, unique_prefix};
use l2announce::wire::{
    ArpOperation, ArpPacket, ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetFrame, NdpMessage,
};

const TOPOLOGY: &str = r#"
name: vectors
description: two hosts on one veth, for ARP and NDP frames from real tools
nodes:
  a:
    interfaces: { eth1: [192.168.77.1/24, "fd00:77::1/64"] }
  b:
    interfaces: { eth1: [192.168.77.2/24, "fd00:77::2/64"] }
links:
  - endpoints: [a:eth1, b:eth1]
"#;

fn name_of(frame: &[u8]) -> Option<&'static str> {
    let eth = EthernetFrame::parse(frame).ok()?;
    match eth.ethertype {
        ETHERTYPE_ARP => {
            let arp = ArpPacket::parse(eth.payload).ok()?;
            Some(match (arp.operation, arp.is_gratuitous()) {
                (ArpOperation::Request, true) => "arp-gratuitous-request",
                (ArpOperation::Request, false) => "arp-request",
                (ArpOperation::Reply, _) => "arp-reply",
            })
        }
        ETHERTYPE_IPV6 => match NdpMessage::parse(eth.payload) {
            Ok(NdpMessage::Solicitation(ns)) if ns.dst.is_multicast() => {
                Some("ndp-solicitation-multicast")
            }
            Ok(NdpMessage::Solicitation(_)) => Some("ndp-solicitation-unicast"),
            Ok(NdpMessage::Advertisement(na)) if na.solicited => {
                Some("ndp-advertisement-solicited")
            }
            Ok(NdpMessage::Advertisement(_)) => Some("ndp-advertisement-unsolicited"),
            Err(_) => None,
        },
        _ => None,
    }
}

#[test]
#[ignore = "rewrites tests/vectors/frames.txt; run by hand as root"]
fn capture_frames_from_arping_ndisc6_and_the_kernel() {
    if !lab_available() {
        return;
    }
    let topology = Topology::from_yaml(TOPOLOGY, "vectors", |_| {
        Err(std::io::Error::other("no files"))
    })
    .unwrap();
    let mut lab = Lab::up(topology, LabOptions::with_prefix(unique_prefix("vec"))).unwrap();
    let pcap = lab.node_dir("a").unwrap().join("a.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let dump = lab
        .spawn(
            "a",
            "tcpdump",
            "tcpdump",
            &[
                "-i",
                "eth1",
                "--immediate-mode",
                "-U",
                "-w",
                &pcap_s,
                "arp or icmp6",
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let run = |program: &str, args: &[&str]| {
        let out = lab.exec("a", program, args).unwrap();
        println!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    run("arping", &["-c", "1", "-i", "eth1", "192.168.77.2"]);
    run(
        "arping",
        &[
            "-U",
            "-c",
            "1",
            "-i",
            "eth1",
            "-S",
            "192.168.77.1",
            "192.168.77.1",
        ],
    );
    run("ndisc6", &["-1", "-r", "1", "fd00:77::2", "eth1"]);
    run("ping", &["-c", "1", "-W", "1", "fd00:77::2"]);
    run("ping", &["-c", "1", "-W", "1", "192.168.77.2"]);
    // b's kernel announces: a new address with ndisc_notify, a link flap with arp_notify.
    for (program, args) in [
        ("sysctl", &["-qw", "net.ipv6.conf.eth1.ndisc_notify=1"][..]),
        ("sysctl", &["-qw", "net.ipv4.conf.eth1.arp_notify=1"]),
        (
            "ip",
            &["addr", "add", "fd00:77::3/64", "dev", "eth1", "nodad"],
        ),
        ("ip", &["link", "set", "eth1", "down"]),
        ("ip", &["link", "set", "eth1", "up"]),
    ] {
        lab.exec_ok("b", program, args).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    std::thread::sleep(Duration::from_millis(500));
    lab.stop_process(dump, Duration::from_secs(2)).unwrap();

    let out = std::process::Command::new("tcpdump")
        .args(["-r", &pcap_s, "-xx", "-n"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("0x") {
            let hex: String = rest
                .split_once(':')
                .map(|x| x.1)
                .unwrap_or("")
                .split_whitespace()
                .collect();
            frames.last_mut().unwrap().extend(hex::decode(hex).unwrap());
        } else {
            frames.push(Vec::new());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut count = std::collections::BTreeMap::<&str, usize>::new();
    let mut file = String::from(
        "# Captured by tests/capture_vectors.rs: arping 2.23, ndisc6 1.0.5 and Linux's own ARP and\n\
         # neighbour discovery between two namespaces. One Ethernet frame per line: name, hex.\n",
    );
    for f in frames.iter().filter(|f| !f.is_empty()) {
        if let Some(name) = name_of(f)
            && seen.insert(f.clone())
        {
            let n = count.entry(name).or_default();
            *n += 1;
            writeln!(file, "{name}-{n} {}", hex::encode(f)).unwrap();
        }
    }
    println!("{file}");
    std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/frames.txt"),
        file,
    )
    .unwrap();
}
