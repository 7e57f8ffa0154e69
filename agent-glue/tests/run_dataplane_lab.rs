//! `lbspeaker run --dataplane on` end to end: the seed lab with the eBPF dataplane on every
//! node (topology `seed-dataplane`), BGP bringing the tor's packets for 172.16.1.1 to the four
//! nodes over ECMP and the dataplane delivering them to the webpod backends, real processes in
//! namespaces behind node2..node4 (an HTTP server and a UDP echo answering "NAME PEER BYTES").
//!
//! ```text
//!                    tor (FRR, AS 65000; ECMP hashed on ports)       curl http://172.16.1.1/
//!          eth1 192.168.10.200/24   eth2 192.168.20.200/24
//!       ┌───────── sw1 ─────────┐          │
//!    node1      node2      node3        node4           lbspeaker run --dataplane on (eth1)
//!               │pod0      │pod0        │pod0           172.20.0.0/16 via the tor (static)
//!            webpod-1   webpod-2     webpod-3           172.20.1.10, .2.10, .3.10
//! ```
//!
//! Checksum offload is off on the tor's and the webpods' interfaces, so their stacks verify
//! every checksum the dataplane rewrote (`*InCsumErrors` must stay 0).

#![allow(clippy::unwrap_used)]

mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use frr_lab::{Lab, Topology, daemons, lab_available};
use lab::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const VIP: &str = "172.16.1.1";
const UDP_VIP: &str = "172.16.1.2";
const ALL_NODES: [&str; 4] = [
    "192.168.10.100",
    "192.168.10.101",
    "192.168.10.102",
    "192.168.20.100",
];
/// The tor's own addresses (a client address the backends may see).
const TOR: [&str; 2] = ["192.168.10.200", "192.168.20.200"];
const WEBPODS: [(&str, &str, &str); 3] = [
    ("webpod-1", "node2", "172.20.1.10"),
    ("webpod-2", "node3", "172.20.2.10"),
    ("webpod-3", "node4", "172.20.3.10"),
];
const ENDPOINTS: &str = "cluster/webpod-endpoints.yaml";

/// The lab, converged: four sessions, the VIPs as 4-way ECMP in the tor's kernel, every
/// node's dataplane attached and holding both frontends with their three backends.
fn up_converged(tag: &str) -> Lab {
    let lab = up(tag, Topology::load("seed-dataplane").unwrap());
    for dev in ["eth1", "eth2"] {
        lab.exec_ok("tor", "ethtool", &["-K", dev, "tx", "off"])
            .unwrap();
    }
    for (pod, _, _) in WEBPODS {
        lab.exec_ok(pod, "ethtool", &["-K", "eth0", "tx", "off"])
            .unwrap();
    }
    all_established(&lab, "tor", 4);
    wait_kernel(&lab, VIP, &ALL_NODES);
    wait_kernel(&lab, UDP_VIP, &ALL_NODES);
    for (node, _) in NODES {
        wait(&format!("{node}'s dataplane"), TIMEOUT, |last| {
            let l = lbspeaker_json(&lab, node, &["lb", "list"]);
            *last = l.to_string();
            let ready = l["kernel"] == true
                && l["services"].as_array().is_some_and(|s| {
                    s.len() == 2
                        && s.iter()
                            .all(|s| s["backends"].as_array().map(Vec::len) == Some(3))
                });
            ready.then_some(())
        });
        let status = lbspeaker_json(&lab, node, &["status"]);
        assert!(
            status["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "dataplane on (attached: eth1)"),
            "{status}"
        );
    }
    lab
}

/// What a webpod answered: its name, the client address it saw, the bytes it received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    backend: String,
    peer: SocketAddr,
    got: usize,
}

fn parse_answer(text: &str) -> Answer {
    let w: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(w.len(), 3, "answer {text:?}");
    Answer {
        backend: w[0].to_owned(),
        peer: w[1].parse().unwrap(),
        got: w[2].parse().unwrap(),
    }
}

/// `curl http://VIP/` from the tor (with `extra` arguments).
fn curl(lab: &Lab, extra: &[&str]) -> Answer {
    let url = format!("http://{VIP}/");
    let mut args = vec!["-s", "-S", "-m", "5"];
    args.extend_from_slice(extra);
    args.push(&url);
    parse_answer(&lab.exec_ok("tor", "curl", &args).unwrap())
}

/// Asks `n` times with curl; the answers.
fn curls(lab: &Lab, n: usize) -> Vec<Answer> {
    (0..n).map(|_| curl(lab, &[])).collect()
}

fn netns(lab: &Lab, node: &str) -> PathBuf {
    ebpf::netns::named(&lab.namespace(node))
}

/// A keep-alive HTTP connection from the tor (a socket made in its namespace), for several
/// requests over one flow.
struct Conn {
    s: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(lab: &Lab) -> Conn {
        let to: SocketAddr = format!("{VIP}:80").parse().unwrap();
        let s = ebpf::netns::run_in(Some(&netns(lab, "tor")), || {
            TcpStream::connect_timeout(&to, Duration::from_secs(3))
        })
        .unwrap()
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        Conn { s, r }
    }

    fn request(&mut self) -> std::io::Result<Answer> {
        self.s
            .write_all(b"GET / HTTP/1.1\r\nHost: webpod\r\n\r\n")?;
        let mut len = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body)?;
        Ok(parse_answer(&String::from_utf8_lossy(&body)))
    }
}

/// One UDP exchange from the tor: the answer and where it came from.
fn udp_ask(lab: &Lab) -> (Answer, SocketAddr) {
    let to: SocketAddr = format!("{UDP_VIP}:5353").parse().unwrap();
    let s = ebpf::netns::run_in(Some(&netns(lab, "tor")), || UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(b"hello webpod", to).unwrap();
    let mut buf = [0u8; 512];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    (parse_answer(&String::from_utf8_lossy(&buf[..n])), from)
}

/// A metric of a node's daemon (`/metrics` on its own loopback), summed over label sets
/// containing `labels`.
fn metric(lab: &Lab, node: &str, name: &str, labels: &str) -> f64 {
    let text = lab
        .exec_ok(node, "curl", &["-s", "http://127.0.0.1:9962/metrics"])
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `nstat` counters of a node whose name ends in `InCsumErrors`, summed.
fn checksum_errors(lab: &Lab, node: &str) -> u64 {
    let out = lab.exec_ok(node, "nstat", &["-az"]).unwrap_or_default();
    out.lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.ends_with("InCsumErrors"))
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn no_checksum_errors(lab: &Lab) {
    for node in ["tor", "webpod-1", "webpod-2", "webpod-3"] {
        assert_eq!(checksum_errors(lab, node), 0, "checksum errors on {node}");
    }
}

/// The backend addresses a node's dataplane lists for the webpod frontend (active and
/// terminating slots).
fn listed_backends(lab: &Lab, node: &str) -> Vec<String> {
    let l = lbspeaker_json(lab, node, &["lb", "list"]);
    l["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["address"] == VIP)
        .flat_map(|s| s["backends"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["address"].as_str().map(str::to_owned))
        .collect()
}

/// webpod's EndpointSlice without one endpoint.
fn endpoints_without(text: &str, address: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("- addresses:") {
            skipping = line.contains(address);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_ne!(out, text, "{address} is in the EndpointSlice");
    out
}

#[test]
fn curl_from_the_tor_reaches_every_backend_over_ecmp_and_udp_and_path_mtu_work() {
    if !lab_available() {
        return;
    }
    let lab = up_converged("dpa");

    // `lb list` in the form users know.
    let table = lab.exec_ok("node1", "lbspeaker", &["lb", "list"]).unwrap();
    assert_eq!(
        table,
        "\
SERVICE ADDRESS       BACKEND ADDRESS (REVNAT_ID) (SLOT)
172.16.1.1:80/TCP     0.0.0.0:0 (1) (0) [LoadBalancer]
                      172.20.1.10:80/TCP (1) (1)
                      172.20.2.10:80/TCP (1) (2)
                      172.20.3.10:80/TCP (1) (3)
172.16.1.2:5353/UDP   0.0.0.0:0 (2) (0) [LoadBalancer]
                      172.20.1.10:5353/UDP (2) (1)
                      172.20.2.10:5353/UDP (2) (2)
                      172.20.3.10:5353/UDP (2) (3)
",
        "\n{table}"
    );

    // TCP: every backend answers, through every node (the tor hashes on ports).
    let translated_before: Vec<f64> = NODES
        .iter()
        .map(|(n, _)| {
            metric(
                &lab,
                n,
                "lbspeaker_dataplane_packets_total",
                "counter=\"translated\"",
            )
        })
        .collect();
    let answers = curls(&lab, 40);
    let by_backend: BTreeMap<&str, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.backend.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        by_backend.keys().copied().collect::<Vec<_>>(),
        ["webpod-1", "webpod-2", "webpod-3"],
        "{by_backend:?}"
    );
    for (i, (node, _)) in NODES.iter().enumerate() {
        let t = metric(
            &lab,
            node,
            "lbspeaker_dataplane_packets_total",
            "counter=\"translated\"",
        );
        assert!(
            t > translated_before[i],
            "{node} translated nothing: ECMP sent it no flow"
        );
    }
    // A backend on the node that translated sees the tor; others see that node (SNAT).
    for a in &answers {
        let local_node = WEBPODS.iter().find(|w| w.0 == a.backend).unwrap().1;
        let local_addr = NODES.iter().find(|n| n.0 == local_node).unwrap().1;
        let peer = a.peer.ip().to_string();
        assert!(
            TOR.contains(&peer.as_str())
                || (ALL_NODES.contains(&peer.as_str()) && peer != local_addr),
            "{a:?}"
        );
        if ALL_NODES.contains(&peer.as_str()) {
            assert!(a.peer.port() >= 61000, "SNAT ports are 61000-65535: {a:?}");
        }
    }

    // UDP: every backend, and the answer comes from the service address.
    let mut udp_backends = BTreeSet::new();
    for _ in 0..30 {
        let (a, from) = udp_ask(&lab);
        assert_eq!(from, format!("{UDP_VIP}:5353").parse().unwrap());
        assert_eq!(a.got, "hello webpod".len());
        udp_backends.insert(a.backend);
    }
    assert_eq!(udp_backends.len(), 3, "{udp_backends:?}");

    // Path-MTU discovery: a 1280-byte hop between each node and its webpod (the webpods
    // themselves, and so their MSS, think 1500). A 6000-byte request in full-size segments
    // only arrives if the fragmentation-needed errors reach the tor, translated.
    //
    // The tor hashes on addresses only for this part: with ports in the hash, the tor's own
    // TCP stack was seen to send a connection's retransmission after a fragmentation-needed
    // error through another next hop than its first packets (Linux 6.18: the socket's route
    // is looked up again), and a node that never saw the flow cannot continue it (a remote
    // backend SNATed by another node resets it). Traffic the tor forwards is hashed on its
    // packets and does not move; the tor's own sockets are this lab's artefact. The two
    // source addresses of the tor still use two nodes.
    lab.exec_ok(
        "tor",
        "sysctl",
        &["-q", "-w", "net.ipv4.fib_multipath_hash_policy=0"],
    )
    .unwrap();
    for (_, node, _) in WEBPODS {
        lab.exec_ok(node, "ip", &["link", "set", "dev", "pod0", "mtu", "1280"])
            .unwrap();
    }
    let body = lab.node_dir("tor").unwrap().join("body");
    std::fs::write(&body, vec![b'x'; 6000]).unwrap();
    let data = format!("@{}", body.display());
    let mut big = BTreeSet::new();
    for i in 0..16 {
        let a = curl(&lab, &["--interface", TOR[i % 2], "--data-binary", &data]);
        assert_eq!(a.got, 6000, "{a:?}");
        big.insert(a.backend);
    }
    assert!(big.len() >= 2, "{big:?}");
    let cache = lab
        .exec_ok("tor", "ip", &["route", "show", "cache", VIP])
        .unwrap();
    assert!(
        cache.contains("mtu 1280"),
        "the tor learnt the path MTU: {cache}"
    );
    let icmp: f64 = NODES
        .iter()
        .map(|(n, _)| {
            metric(
                &lab,
                n,
                "lbspeaker_dataplane_packets_total",
                "counter=\"icmp\"",
            )
        })
        .sum();
    assert!(icmp >= 1.0, "ICMP errors translated: {icmp}");
    no_checksum_errors(&lab);
    lab.down().unwrap();
}

#[test]
fn removing_an_endpoint_stops_new_connections_to_it_while_an_open_one_keeps_working() {
    if !lab_available() {
        return;
    }
    let lab = up_converged("dpr");
    // An open connection, and the backend it reached.
    let mut conn = Conn::open(&lab);
    let first = conn.request().unwrap();
    let (_, _, address) = *WEBPODS.iter().find(|w| w.0 == first.backend).unwrap();
    assert_eq!(conn.request().unwrap().backend, first.backend);

    // Its endpoint leaves the EndpointSlice (the pod is deleted).
    let original = read_manifest(&lab, ENDPOINTS);
    let t = Instant::now();
    write_manifest(&lab, ENDPOINTS, &endpoints_without(&original, address));
    let mut seen_at = BTreeMap::new();
    wait(
        &format!("{address} gone from every node's lb list"),
        TIMEOUT,
        |last| {
            for (node, _) in NODES {
                if !seen_at.contains_key(node)
                    && !listed_backends(&lab, node).contains(&address.to_owned())
                {
                    seen_at.insert(node, t.elapsed());
                }
            }
            *last = format!("{seen_at:?}");
            (seen_at.len() == 4).then_some(())
        },
    );
    eprintln!(
        "manifest edit (one endpoint removed) to the maps of each node, polled through the API: {:?}",
        seen_at
            .iter()
            .map(|(n, d)| format!("{n} {:.0} ms", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
    );
    // One frontend changed: one slot rewritten (no full rewrite), on every node.
    for (node, _) in NODES {
        let v = lbspeaker_json(&lab, node, &["lb", "list"]);
        let web = v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["address"] == VIP)
            .unwrap();
        assert_eq!(web["count"], 2, "{node}: {web}");
    }

    // New connections never reach it.
    for a in curls(&lab, 30) {
        assert_ne!(
            a.backend, first.backend,
            "a new connection reached the removed backend"
        );
    }
    // The open one still does.
    for _ in 0..3 {
        assert_eq!(conn.request().unwrap().backend, first.backend);
    }
    drop(conn);

    // Back in the EndpointSlice: new connections reach it again.
    write_manifest(&lab, ENDPOINTS, &original);
    wait("the endpoint back on every node", TIMEOUT, |_| {
        NODES
            .iter()
            .all(|(n, _)| listed_backends(&lab, n).contains(&address.to_owned()))
            .then_some(())
    });
    wait(
        &format!("{} answering again", first.backend),
        TIMEOUT,
        |_| (curl(&lab, &[]).backend == first.backend).then_some(()),
    );
    no_checksum_errors(&lab);
    lab.down().unwrap();
}

#[test]
fn a_local_service_shows_the_clients_address_and_is_served_only_where_an_endpoint_is() {
    if !lab_available() {
        return;
    }
    let lab = up_converged("dpl");
    let webpod = read_manifest(&lab, "webpod.yaml");
    write_manifest(
        &lab,
        "webpod.yaml",
        &webpod.replace(
            "  type: LoadBalancer",
            "  type: LoadBalancer\n  externalTrafficPolicy: Local",
        ),
    );
    // node1 has no webpod: it withdraws, the others keep advertising.
    wait_kernel(&lab, VIP, &ALL_NODES[1..]);
    // node1 still holds the frontend (flagged Local) but with no backend to use: what reaches
    // it anyway is dropped; the others list their own webpod only.
    wait("Local frontends on every node", TIMEOUT, |last| {
        let ok = NODES.iter().all(|(node, _)| {
            let v = lbspeaker_json(&lab, node, &["lb", "list"]);
            *last = v.to_string();
            let web = v["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["address"] == VIP && s["scope"] == "external")
                .cloned()
                .unwrap_or(Value::Null);
            let flags_ok = web["flags"].as_array().is_some_and(|f| {
                f.iter().any(|x| x == "Local") && f.iter().any(|x| x == "LoadBalancer")
            });
            let active: Vec<&str> = web["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["state"] == "active")
                .filter_map(|b| b["address"].as_str())
                .collect();
            let want: Vec<&str> = WEBPODS
                .iter()
                .filter(|w| w.1 == *node)
                .map(|w| w.2)
                .collect();
            flags_ok && web["count"].as_u64() == Some(want.len() as u64) && active == want
        });
        ok.then_some(())
    });
    let table = lab.exec_ok("node1", "lbspeaker", &["lb", "list"]).unwrap();
    assert!(
        table.contains("[LoadBalancer, Local, two-scopes]"),
        "{table}"
    );

    // Every backend answers, and sees the tor itself: the client's address is preserved.
    let answers = curls(&lab, 30);
    let backends: BTreeSet<&str> = answers.iter().map(|a| a.backend.as_str()).collect();
    assert_eq!(backends.len(), 3, "{answers:?}");
    for a in &answers {
        assert!(TOR.contains(&a.peer.ip().to_string().as_str()), "{a:?}");
    }
    no_checksum_errors(&lab);
    lab.down().unwrap();
}

#[test]
fn a_restart_of_every_daemon_keeps_forwarding_and_adopts_the_pinned_maps() {
    if !lab_available() {
        return;
    }
    let mut lab = up_converged("dps");
    wait("End-of-RIB from every node", TIMEOUT, |_| {
        neighbors(&lab, "tor")
            .values()
            .all(|v| v["gracefulRestartInfo"]["endOfRibRecv"]["ipv4Unicast"] == Value::Bool(true))
            .then_some(())
    });
    let tables: Vec<String> = NODES
        .iter()
        .map(|(n, _)| lab.exec_ok(n, "lbspeaker", &["lb", "list"]).unwrap())
        .collect();
    let mut conn = Conn::open(&lab);
    let first = conn.request().unwrap();

    // Every daemon stops (graceful restart keeps the tor's routes, the pins keep the
    // programs and maps).
    let pids = lbspeaker_pids(&lab);
    for pid in pids.values() {
        lab.signal(*pid, Signal::SIGTERM).unwrap();
    }
    wait("every lbspeaker to exit", TIMEOUT, |_| {
        pids.values().all(|p| !lab.is_running(*p)).then_some(())
    });
    let answers = curls(&lab, 20);
    assert_eq!(
        answers
            .iter()
            .map(|a| a.backend.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        3,
        "no daemon runs, every backend answers: {answers:?}"
    );
    assert_eq!(conn.request().unwrap().backend, first.backend);
    let (udp, _) = udp_ask(&lab);
    assert!(udp.backend.starts_with("webpod-"));

    for (node, _) in NODES {
        daemons::restart(&mut lab, node).unwrap();
    }
    for (i, (node, _)) in NODES.iter().enumerate() {
        wait(&format!("{node} attached again"), TIMEOUT, |_| {
            let s = lbspeaker_json(&lab, node, &["status"]);
            s["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "dataplane on (attached: eth1)")
                .then_some(())
        });
        // Adopted: the same table and not a single map operation to get there.
        assert_eq!(
            lab.exec_ok(node, "lbspeaker", &["lb", "list"]).unwrap(),
            tables[i]
        );
        for op in ["update", "delete"] {
            assert_eq!(
                metric(
                    &lab,
                    node,
                    "lbspeaker_dataplane_map_operations_total",
                    &format!("op=\"{op}\"")
                ),
                0.0,
                "{node}: {op}s after adopting the pinned maps"
            );
        }
    }
    // The connection opened before the restarts still works, and new ones too.
    assert_eq!(conn.request().unwrap().backend, first.backend);
    assert_eq!(
        curls(&lab, 20)
            .iter()
            .map(|a| a.backend.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        3
    );
    no_checksum_errors(&lab);
    lab.down().unwrap();
}
