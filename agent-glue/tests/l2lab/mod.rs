//! Helpers of the L2 lab tests and the failover bench through the daemon: frr-lab's `l2`
//! topology (a client and three `lbspeaker run` nodes on one bridge, the seed's l2.yaml), the
//! daemons' `lbspeaker l2 leases`, the lease files, and the client's own tools as witnesses
//! (arping, ndisc6, its neighbour cache, a tcpdump capture decoded with l2announce's parsers).

#![allow(dead_code, clippy::unwrap_used)] // each test uses part of it; a failed unwrap fails it

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use agent_glue::api::LeaseView;
use frr_lab::{Lab, LabOptions, NodeKind, Topology, lab_available, unique_prefix};
use l2announce::wire::{
    ArpOperation, ArpPacket, ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetFrame, MacAddr, NdpMessage,
};
use l2announce::{FileBackend, Lease, LeaseName};
use nix::sys::signal::Signal;
use serde_json::Value;

pub const NODES: [&str; 3] = ["node1", "node2", "node3"];
/// The ingress service's lease (the seed README's).
pub const INGRESS_LEASE: &str = "cilium-l2announce-kube-system-cilium-ingress";
pub const INGRESS_IP: &str = "192.168.10.211";

/// Short timers so tests stay quick: 2 s / 1 s / 0.25 s, three announcements 0.3 s apart,
/// 0.5 s of link grace.
pub const QUICK: &[&str] = &[
    "--l2-lease-duration",
    "2s",
    "--l2-lease-renew-deadline",
    "1s",
    "--l2-lease-retry-period",
    "250ms",
    "--l2-announce-count",
    "3",
    "--l2-announce-interval",
    "300ms",
    "--l2-link-down-grace",
    "500ms",
];

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

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub struct L2Lab {
    pub lab: Lab,
    pub macs: BTreeMap<String, MacAddr>,
    leases: FileBackend,
}

fn tool_present(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl L2Lab {
    /// The lab with every node's `lbspeaker run` given `args`, or `None` when labs cannot run
    /// here (a failure under FRR_LAB_REQUIRED=1).
    pub fn up(tag: &str, args: &[&str]) -> Option<L2Lab> {
        if !lab_available() {
            return None;
        }
        for tool in ["arping", "ndisc6", "tcpdump", "curl"] {
            assert!(
                tool_present(tool),
                "{tool} is needed by the L2 lab (scripts/setup.sh installs it)"
            );
        }
        let mut t = Topology::load("l2").unwrap();
        for n in t.nodes.values_mut() {
            if n.kind == NodeKind::Lbspeaker {
                n.lbspeaker.get_or_insert_with(Default::default).args =
                    args.iter().map(|a| (*a).to_owned()).collect();
            }
        }
        let opts = LabOptions {
            lbspeaker: Some(PathBuf::from(env!("CARGO_BIN_EXE_lbspeaker"))),
            ..LabOptions::with_prefix(unique_prefix(tag))
        };
        let lab = Lab::up(t, opts).unwrap();
        let leases = FileBackend::open(lab.manifest_dir().join(".lbspeaker/leases"), None)
            .unwrap()
            .without_liveness();
        let mut macs = BTreeMap::new();
        for n in NODES.iter().chain(&["client"]) {
            let out = lab
                .exec_ok(n, "cat", &["/sys/class/net/eth1/address"])
                .unwrap();
            macs.insert(n.to_string(), out.trim().parse().unwrap());
        }
        Some(L2Lab { lab, macs, leases })
    }

    /// Replaces (or creates) a manifest the way an editor would (written aside, renamed).
    pub fn write_manifest(&self, name: &str, text: &str) {
        let path = self.lab.manifest_dir().join(name);
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = path.with_file_name(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// A file under the manifest directory, if it exists.
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.lab.manifest_dir().join(rel)).ok()
    }

    /// The addresses LB-IPAM gave a service (its status file).
    pub fn service_ips(&self, namespace: &str, name: &str) -> Vec<String> {
        let Some(text) = self.read(&format!("status/services/{namespace}/{name}.yaml")) else {
            return Vec::new();
        };
        let v: Value = serde_saphyr::from_str(&text).unwrap_or(Value::Null);
        v["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["ip"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until a service has exactly these addresses.
    pub fn wait_service_ips(&self, namespace: &str, name: &str, want: &[&str]) {
        wait(
            &format!("{namespace}/{name} to get {want:?}"),
            secs(20.0),
            || (self.service_ips(namespace, name) == want).then_some(()),
        );
    }

    /// `lbspeaker -o json l2 leases` of a node's daemon.
    pub fn leases(&self, node: &str) -> Option<Vec<LeaseView>> {
        let out = self
            .lab
            .exec(node, "lbspeaker", &["-o", "json", "l2", "leases"])
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// A node's row for `addr`.
    pub fn row(&self, node: &str, addr: &str) -> Option<LeaseView> {
        self.leases(node)?.into_iter().find(|r| r.address == addr)
    }

    /// `lbspeaker ARGS` of a node's daemon, as text.
    pub fn cli(&self, node: &str, args: &[&str]) -> String {
        self.lab.exec_ok(node, "lbspeaker", args).unwrap()
    }

    /// A node's `/metrics`.
    pub fn metrics(&self, node: &str) -> String {
        self.lab
            .exec_ok(
                node,
                "curl",
                &["-s", "--max-time", "2", "http://127.0.0.1:9962/metrics"],
            )
            .unwrap()
    }

    /// The value of a metric line (`name{node="node1"}`) in a node's `/metrics`.
    pub fn metric(&self, node: &str, name: &str) -> Option<f64> {
        let want = format!("{name}{{node=\"{node}\"}} ");
        self.metrics(node)
            .lines()
            .find_map(|l| l.strip_prefix(&want)?.trim().parse().ok())
    }

    /// The lease file as stored.
    pub fn lease(&self, name: &str) -> Option<Lease> {
        self.leases
            .get_blocking(&LeaseName::new(name).unwrap())
            .unwrap()
    }

    pub fn holder(&self, name: &str) -> Option<String> {
        self.lease(name).and_then(|l| l.record.holder)
    }

    /// Waits until a lease has a holder whose daemon says it answers for `addr`.
    pub fn wait_holder(&self, lease: &str, addr: &str, timeout: Duration) -> String {
        wait(&format!("a holder of {lease}"), timeout, || {
            let h = self.holder(lease)?;
            let r = self.row(&h, addr)?;
            (r.lease == lease && r.announcing).then_some(h)
        })
    }

    /// The lbspeaker process of a node.
    pub fn pid(&self, node: &str) -> u32 {
        self.lab
            .state()
            .processes
            .iter()
            .rev()
            .find(|p| p.name == "lbspeaker" && p.node == node)
            .map(|p| p.pid)
            .unwrap()
    }

    /// SIGKILL to a node's daemon; returns once it is gone.
    pub fn kill(&mut self, node: &str) {
        let pid = self.pid(node);
        self.lab.signal(pid, Signal::SIGKILL).unwrap();
        wait("the killed daemon to go", secs(5.0), || {
            (!self.lab.is_running(pid)).then_some(())
        });
    }

    /// Starts a node's daemon again (returns once its API answers).
    pub fn restart(&mut self, node: &str) {
        frr_lab::daemons::restart(&mut self.lab, node).unwrap();
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
        let v: Value = serde_json::from_str(&out).ok()?;
        v.as_array()?.first()?["lladdr"].as_str()?.parse().ok()
    }

    /// Makes the client's kernel resolve `addr` (the ping itself may get no answer), so it has
    /// a neighbour entry to move.
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

    /// Serves `GET /node` (the node's name) on `addr`:8080 on every node, the way kube-proxy's
    /// IPVS mode holds a service address: on `lo`, with `arp_ignore=1` so the kernel itself
    /// never answers ARP for it (only lbspeaker's responder does).
    pub fn listen_everywhere(&mut self, addr: &str) {
        let v6 = addr.contains(':');
        for n in NODES {
            let prefix = if v6 { "128" } else { "32" };
            let a = format!("{addr}/{prefix}");
            let mut cmds: Vec<Vec<&str>> = vec![
                vec!["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"],
                vec!["sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"],
                vec!["ip", "addr", "add", &a, "dev", "lo"],
            ];
            if v6 {
                cmds[2].push("nodad");
            }
            for c in cmds {
                self.lab.exec_ok(n, c[0], &c[1..]).unwrap();
            }
            let www = self.lab.node_dir(n).unwrap().join("www");
            std::fs::create_dir_all(&www).unwrap();
            std::fs::write(www.join("node"), n).unwrap();
            let www = www.to_string_lossy().into_owned();
            self.lab
                .spawn(
                    n,
                    &format!("http-{addr}"),
                    "/usr/bin/python3",
                    &[
                        "-m",
                        "http.server",
                        "8080",
                        "--bind",
                        addr,
                        "--directory",
                        &www,
                    ],
                )
                .unwrap();
        }
    }

    /// What `GET http://ADDR:8080/node` from the client answers (the serving node's name).
    pub fn http_from_client(&self, addr: &str) -> String {
        let url = if addr.contains(':') {
            format!("http://[{addr}]:8080/node")
        } else {
            format!("http://{addr}:8080/node")
        };
        wait(&format!("an HTTP answer from {addr}"), secs(10.0), || {
            self.lab
                .exec_ok("client", "curl", &["-s", "-g", "--max-time", "2", &url])
                .ok()
                .filter(|b| !b.is_empty())
        })
    }

    /// Starts tcpdump on the client's eth1 (ARP and ICMPv6), ready when this returns.
    pub fn capture(&mut self, name: &str) -> Capture {
        let path = self
            .lab
            .node_dir("client")
            .unwrap()
            .join(format!("{name}.pcap"));
        let _ = std::fs::remove_file(&path);
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
        wait("tcpdump to listen", secs(10.0), || {
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
    /// Stops tcpdump and decodes what it saw.
    pub fn finish(self, lab: &mut L2Lab) -> Vec<Seen> {
        lab.lab.stop_process(self.pid, secs(5.0)).unwrap();
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
                    } else if a.operation == ArpOperation::Request {
                        Kind::ArpRequest
                    } else {
                        Kind::ArpReply
                    };
                    let ip = if kind == Kind::ArpRequest {
                        a.target_ip
                    } else {
                        a.sender_ip
                    };
                    (kind, IpAddr::V4(ip))
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

/// The announcements (gratuitous ARP or unsolicited NA) of `addr` from `mac` at or after
/// `after`, by time.
pub fn announcements(seen: &[Seen], addr: &str, mac: MacAddr, after: SystemTime) -> Vec<Seen> {
    let addr: IpAddr = addr.parse().unwrap();
    let mut v: Vec<Seen> = seen
        .iter()
        .filter(|s| {
            s.addr == addr
                && s.src == mac
                && s.at >= after
                && matches!(s.kind, Kind::GratuitousArp | Kind::UnsolicitedNa)
        })
        .cloned()
        .collect();
    v.sort_by_key(|s| s.at);
    v
}

/// Frames answering for `addr` (ARP replies, solicited NAs, announcements) from anyone.
pub fn answers_for(seen: &[Seen], addr: &str) -> Vec<Seen> {
    let addr: IpAddr = addr.parse().unwrap();
    seen.iter()
        .filter(|s| s.addr == addr && !matches!(s.kind, Kind::ArpRequest | Kind::Solicitation))
        .cloned()
        .collect()
}
