//! The L2 lab for tests and the failover bench: frr-lab's `l2` topology (a client and three
//! nodes on one bridge) with plain hosts for nodes, `l2announce-lab node` processes in the node namespaces sharing a
//! lease directory, and the client's tools (arping, ndisc6, tcpdump, ip neigh) to look at
//! what really goes over the wire.

#![allow(dead_code, clippy::unwrap_used)] // each test uses part of it; a failed unwrap fails it

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use frr_lab::{Lab, LabOptions, NodeKind, Topology, lab_available, unique_prefix};
use l2announce::wire::{
    ArpPacket, ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetFrame, MacAddr, NdpMessage,
};
use l2announce::{DesiredAnnouncement, FileBackend, Lease, LeaseName};
use nix::sys::signal::Signal;

pub const NODES: [&str; 3] = ["node1", "node2", "node3"];

/// How a node process runs.
#[derive(Debug, Clone)]
pub struct NodeOpts {
    /// DURATION/RENEW/RETRY seconds.
    pub timers: String,
    pub announce_count: u32,
    pub announce_interval: f64,
    pub link_grace: f64,
    pub liveness: bool,
}

impl NodeOpts {
    /// Short timers so tests stay quick: 2 s / 1 s / 0.25 s, three announcements 0.3 s apart.
    pub fn quick() -> NodeOpts {
        NodeOpts {
            timers: "2/1/0.25".into(),
            announce_count: 3,
            announce_interval: 0.3,
            link_grace: 0.5,
            liveness: true,
        }
    }
}

pub struct L2Lab {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    pub macs: BTreeMap<String, MacAddr>,
    pub pids: BTreeMap<String, u32>,
    backend: FileBackend,
}

pub fn desired(addr: &str, services: &[&str], eligible: bool) -> DesiredAnnouncement {
    DesiredAnnouncement {
        address: addr.parse().unwrap(),
        services: services.iter().map(|s| s.parse().unwrap()).collect(),
        interfaces: ["eth1".to_owned()].into(),
        eligible,
    }
}

pub fn lease(name: &str) -> LeaseName {
    LeaseName::new(name).unwrap()
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// frr-lab's `l2` topology with its lbspeaker nodes turned into plain hosts and no
/// manifests: these tests start `l2announce-lab node` in them instead of the daemon.
pub fn bare_topology() -> Topology {
    let mut t = Topology::load("l2").unwrap();
    for n in t.nodes.values_mut() {
        if n.kind == NodeKind::Lbspeaker {
            n.kind = NodeKind::Host;
            n.lbspeaker = None;
        }
    }
    t.manifests.clear();
    t
}

impl L2Lab {
    /// The lab, or `None` when labs cannot run here (a failure under FRR_LAB_REQUIRED=1).
    pub fn up(tag: &str) -> Option<L2Lab> {
        if !lab_available() {
            return None;
        }
        for tool in ["arping", "ndisc6", "tcpdump"] {
            let found = std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is needed by the L2 lab (scripts/setup.sh installs it)"
            );
        }
        let lab = Lab::up(bare_topology(), LabOptions::with_prefix(unique_prefix(tag))).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("leases")).unwrap();
        let backend = FileBackend::open(dir.path().join("leases"), None)
            .unwrap()
            .without_liveness();
        let mut macs = BTreeMap::new();
        for n in NODES.iter().chain(&["client"]) {
            let out = lab
                .exec_ok(n, "cat", &["/sys/class/net/eth1/address"])
                .unwrap();
            macs.insert(n.to_string(), out.trim().parse().unwrap());
        }
        Some(L2Lab {
            lab,
            dir,
            macs,
            pids: BTreeMap::new(),
            backend,
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a node's desired announcements (its process picks them up within 20 ms).
    pub fn set_desired(&self, node: &str, d: &[DesiredAnnouncement]) {
        let path = self.file(&format!("{node}-desired.json"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string(d).unwrap()).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    /// Starts (or restarts) a node's announcer.
    pub fn start_node(&mut self, node: &str, d: &[DesiredAnnouncement], o: &NodeOpts) -> u32 {
        self.set_desired(node, d);
        let (leases, desired, state) = (
            self.file("leases"),
            self.file(&format!("{node}-desired.json")),
            self.file(&format!("{node}-state.json")),
        );
        let _ = std::fs::remove_file(&state);
        let (count, interval, grace) = (
            o.announce_count.to_string(),
            o.announce_interval.to_string(),
            o.link_grace.to_string(),
        );
        let mut args = vec![
            "node",
            "--node",
            node,
            "--leases",
            leases.to_str().unwrap(),
            "--desired",
            desired.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--timers",
            &o.timers,
            "--announce-count",
            &count,
            "--announce-interval",
            &interval,
            "--link-grace",
            &grace,
        ];
        if !o.liveness {
            args.push("--no-liveness");
        }
        let pid = self
            .lab
            .spawn(
                node,
                "l2announce",
                env!("CARGO_BIN_EXE_l2announce-lab"),
                &args,
            )
            .unwrap();
        self.pids.insert(node.to_owned(), pid);
        wait("the node's first state", Duration::from_secs(10), || {
            self.state(node)
        });
        pid
    }

    /// The state a node last wrote (`{"node", "state": [...], "counters": {...}}`).
    pub fn state(&self, node: &str) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.file(&format!("{node}-state.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The row of `addr` in a node's state.
    pub fn row(&self, node: &str, addr: &str) -> Option<serde_json::Value> {
        let s = self.state(node)?;
        s["state"]
            .as_array()?
            .iter()
            .find(|r| r["address"] == addr)
            .cloned()
    }

    pub fn lease(&self, name: &str) -> Option<Lease> {
        self.backend.get_blocking(&lease(name)).unwrap()
    }

    pub fn holder(&self, name: &str) -> Option<String> {
        self.lease(name).and_then(|l| l.record.holder)
    }

    /// Waits until a lease has a holder that also announces (its state says so).
    pub fn wait_holder(&self, name: &str, timeout: Duration) -> String {
        wait(&format!("a holder of {name}"), timeout, || {
            let h = self.holder(name)?;
            let s = self.state(&h)?;
            let announcing = s["state"]
                .as_array()?
                .iter()
                .any(|r| r["lease"] == name && r["announcing"] == true);
            announcing.then_some(h)
        })
    }

    /// Waits until `node` has sent every round of announcements for `v4` IPv4 and `v6` IPv6
    /// addresses (two gratuitous ARPs per IPv4 address and one NA per IPv6 address a round),
    /// and checks it sent no more.
    pub fn wait_announcements(&self, node: &str, v4: u64, v6: u64, rounds: u32) {
        let want = (2 * v4 * u64::from(rounds), v6 * u64::from(rounds));
        let got = wait(
            &format!("{node}'s announcements"),
            Duration::from_secs(10),
            || {
                let s = self.state(node)?;
                let c = &s["counters"];
                let got = (c["gratuitous_arp"].as_u64()?, c["unsolicited_na"].as_u64()?);
                (got.0 >= want.0 && got.1 >= want.1).then_some(got)
            },
        );
        assert_eq!(got, want, "{node}: (gratuitous ARP, unsolicited NA) sent");
    }

    pub fn kill(&mut self, node: &str) {
        let pid = self.pids.remove(node).unwrap();
        self.lab.signal(pid, Signal::SIGKILL).unwrap();
        wait("the killed process to go", Duration::from_secs(5), || {
            (!self.lab.is_running(pid)).then_some(())
        });
    }

    pub fn stop(&mut self, node: &str) {
        let pid = self.pids.remove(node).unwrap();
        self.lab.stop_process(pid, Duration::from_secs(5)).unwrap();
    }

    pub fn link(&self, node: &str, up: bool) {
        self.lab
            .exec_ok(
                node,
                "ip",
                &["link", "set", "eth1", if up { "up" } else { "down" }],
            )
            .unwrap();
    }

    /// The MACs that answered `arping -c COUNT` for `addr` from the client, one per reply.
    pub fn arping(&self, addr: &str, count: u32) -> Vec<MacAddr> {
        let out = self
            .lab
            .exec(
                "client",
                "arping",
                &["-c", &count.to_string(), "-W", "0.3", "-i", "eth1", addr],
            )
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once(" bytes from ")?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// The link-layer addresses of every advertisement `ndisc6 -m` got for `addr`.
    pub fn ndisc(&self, addr: &str) -> Vec<MacAddr> {
        let out = self
            .lab
            .exec(
                "client",
                "ndisc6",
                &["-m", "-n", "-r", "1", "-w", "500", addr, "eth1"],
            )
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("Target link-layer address: ")?
                    .trim()
                    .to_lowercase()
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// The client's neighbour cache entry for `addr`.
    pub fn client_neighbour(&self, addr: &str) -> Option<MacAddr> {
        let out = self
            .lab
            .exec_ok(
                "client",
                "ip",
                &["-j", "neigh", "show", addr, "dev", "eth1"],
            )
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v.as_array()?.first()?["lladdr"].as_str()?.parse().ok()
    }

    /// Makes the client's kernel resolve `addr` (the ping itself gets no answer: nobody owns
    /// the address), so it has a neighbour entry to move.
    pub fn client_resolves(&self, addr: &str) {
        let _ = self
            .lab
            .exec("client", "ping", &["-c", "1", "-W", "1", addr]);
    }

    pub fn mac(&self, node: &str) -> MacAddr {
        self.macs[node]
    }

    pub fn node_of(&self, mac: MacAddr) -> Option<String> {
        self.macs
            .iter()
            .find(|(_, m)| **m == mac)
            .map(|(n, _)| n.clone())
    }

    /// Starts tcpdump on the client's eth1 (ARP and ICMPv6), ready when this returns.
    /// Immediate mode: without it libpcap hands frames over in blocks up to a second late
    /// and loses the last block when tcpdump is stopped.
    pub fn capture(&mut self, name: &str) -> Capture {
        let path = self.file(&format!("{name}.pcap"));
        let pid = self
            .lab
            .spawn(
                "client",
                name,
                "tcpdump",
                &[
                    "-i",
                    "eth1",
                    "--immediate-mode",
                    "-U",
                    "-n",
                    "-w",
                    path.to_str().unwrap(),
                    "arp or icmp6",
                ],
            )
            .unwrap();
        let log = self
            .lab
            .node_dir("client")
            .unwrap()
            .join(format!("{name}.log"));
        wait("tcpdump to listen", Duration::from_secs(10), || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("listening on"))
                .map(|_| ())
        });
        Capture { pid, path }
    }
}

pub struct Capture {
    pid: u32,
    path: PathBuf,
}

/// A frame the client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// When (CLOCK_REALTIME, as tcpdump stamps it).
    pub at: SystemTime,
    pub src: MacAddr,
    pub kind: Kind,
    pub addr: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Gratuitous ARP (announcement or reply).
    GratuitousArp,
    ArpRequest,
    ArpReply,
    UnsolicitedNa,
    SolicitedNa,
    Solicitation,
}

impl Capture {
    /// Stops tcpdump and decodes what it saw with our own parsers.
    pub fn finish(self, lab: &mut L2Lab) -> Vec<Seen> {
        lab.lab
            .stop_process(self.pid, Duration::from_secs(5))
            .unwrap();
        let data = std::fs::read(&self.path).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(data.as_slice()).unwrap();
        let mut out = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            let at = SystemTime::UNIX_EPOCH + p.timestamp;
            let Ok(eth) = EthernetFrame::parse(&p.data) else {
                continue;
            };
            let seen = match eth.ethertype {
                ETHERTYPE_ARP => ArpPacket::parse(eth.payload).ok().map(|a| {
                    let kind = if a.is_gratuitous() {
                        Kind::GratuitousArp
                    } else if a.operation == l2announce::wire::ArpOperation::Request {
                        Kind::ArpRequest
                    } else {
                        Kind::ArpReply
                    };
                    (
                        kind,
                        IpAddr::V4(if kind == Kind::ArpRequest {
                            a.target_ip
                        } else {
                            a.sender_ip
                        }),
                    )
                }),
                ETHERTYPE_IPV6 => match NdpMessage::parse(eth.payload) {
                    Ok(NdpMessage::Advertisement(na)) => Some((
                        if na.solicited {
                            Kind::SolicitedNa
                        } else {
                            Kind::UnsolicitedNa
                        },
                        IpAddr::V6(na.target),
                    )),
                    Ok(NdpMessage::Solicitation(ns)) => {
                        Some((Kind::Solicitation, IpAddr::V6(ns.target)))
                    }
                    Err(_) => None,
                },
                _ => None,
            };
            if let Some((kind, addr)) = seen {
                out.push(Seen {
                    at,
                    src: eth.src,
                    kind,
                    addr,
                });
            }
        }
        out
    }
}

/// The first announcement (gratuitous ARP or unsolicited NA) of `addr` from `mac` at or after
/// `after`.
pub fn first_announcement(
    seen: &[Seen],
    addr: &str,
    mac: MacAddr,
    after: SystemTime,
) -> Option<SystemTime> {
    let addr: IpAddr = addr.parse().unwrap();
    seen.iter()
        .filter(|s| {
            s.addr == addr
                && s.src == mac
                && s.at >= after
                && matches!(s.kind, Kind::GratuitousArp | Kind::UnsolicitedNa)
        })
        .map(|s| s.at)
        .min()
}
