//! Shared by the lab tests and the benchmark harness: a bpffs of the test's own, a node lab
//! (client — node with the dataplane — local and remote backends), and small HTTP/UDP
//! servers and clients that run in the lab's namespaces from threads of this process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ebpf::netns;
use frr_lab::{Lab, LabOptions, Topology, unique_prefix};

/// Whether lab tests can run here (root); with `FRR_LAB_REQUIRED=1` a missing prerequisite is
/// a failure instead of a skip.
pub fn required() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("FRR_LAB_REQUIRED").as_deref() == Ok("1") {
        panic!("dataplane lab tests are required (FRR_LAB_REQUIRED=1) but need root");
    }
    eprintln!("skipping dataplane lab test: not root");
    false
}

/// A bpffs mounted for one test, unmounted and removed when dropped.
pub struct Bpffs {
    pub path: PathBuf,
}

impl Bpffs {
    pub fn mount(tag: &str) -> Bpffs {
        let path = PathBuf::from("/run/lbspeaker-test").join(tag);
        std::fs::create_dir_all(&path).expect("create bpffs mount point");
        nix::mount::mount(
            Some("bpf"),
            &path,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount bpffs");
        Bpffs { path }
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The lab: a client, the node (the dataplane on `up0`, `be1`, `be2`, `hop0`), two local
/// backends b1 and b2 on their own veths, and a remote backend b3 behind a router `hop`.
pub const TOPOLOGY: &str = r#"
name: dp
description: client, a node with the dataplane, local and remote backends
nodes:
  client:
    interfaces: { eth0: [192.168.1.2/24, "fd01::2/64"] }
    routes: ["default via 192.168.1.1", "default via fd01::1"]
  node:
    sysctls: { net.ipv4.ip_forward: "1", net.ipv6.conf.all.forwarding: "1" }
    interfaces:
      up0: [192.168.1.1/24, "fd01::1/64"]
      be1: [10.0.1.1/24, "fd10:1::1/64"]
      be2: [10.0.2.1/24, "fd10:2::1/64"]
      hop0: [10.0.9.1/24, "fd10:9::1/64"]
    routes: ["10.0.3.0/24 via 10.0.9.2", "fd10:3::/64 via fd10:9::2"]
  b1:
    interfaces: { eth0: [10.0.1.2/24, "fd10:1::2/64"] }
    routes: ["default via 10.0.1.1", "default via fd10:1::1"]
  b2:
    interfaces: { eth0: [10.0.2.2/24, "fd10:2::2/64"] }
    routes: ["default via 10.0.2.1", "default via fd10:2::1"]
  hop:
    sysctls: { net.ipv4.ip_forward: "1", net.ipv6.conf.all.forwarding: "1" }
    interfaces: { eth0: [10.0.9.2/24, "fd10:9::2/64"], eth1: [10.0.3.1/24, "fd10:3::1/64"] }
    routes: ["default via 10.0.9.1", "default via fd10:9::1"]
  b3:
    interfaces: { eth0: [10.0.3.2/24, "fd10:3::2/64"] }
    routes: ["default via 10.0.3.1", "default via fd10:3::1"]
links:
  - endpoints: [client:eth0, node:up0]
  - endpoints: [node:be1, b1:eth0]
  - endpoints: [node:be2, b2:eth0]
  - endpoints: [node:hop0, hop:eth0]
  - endpoints: [hop:eth1, b3:eth0]
"#;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

/// The lab with its namespaces (removed on drop, with everything in them).
pub struct NodeLab {
    pub lab: Lab,
    pub servers: Vec<Server>,
}

impl NodeLab {
    pub fn up(tag: &str) -> NodeLab {
        let topology = Topology::from_yaml(TOPOLOGY, "dataplane lab", |_| {
            Err(std::io::Error::other("no files"))
        })
        .expect("topology");
        let opts = LabOptions {
            start_daemons: false,
            ..LabOptions::with_prefix(unique_prefix(tag))
        };
        let lab = Lab::up(topology, opts).expect("lab up");
        // Software checksums everywhere: the receiving stacks then verify every checksum the
        // dataplane rewrote (with offload, veths would carry unverified partial checksums).
        for (node, dev) in [
            ("client", "eth0"),
            ("b1", "eth0"),
            ("b2", "eth0"),
            ("b3", "eth0"),
            ("hop", "eth0"),
            ("hop", "eth1"),
        ] {
            lab.exec_ok(node, "ethtool", &["-K", dev, "tx", "off"])
                .expect("ethtool -K tx off");
        }
        NodeLab {
            lab,
            servers: Vec::new(),
        }
    }

    pub fn ns(&self, node: &str) -> PathBuf {
        netns::named(&self.lab.namespace(node))
    }

    /// An HTTP server in a backend node answering `NAME PEER` (its name, the client
    /// address it sees), on all addresses of the namespace.
    pub fn http(&mut self, node: &str, port: u16) {
        let s = Server::http(&self.ns(node), node, port);
        self.servers.push(s);
    }

    pub fn udp(&mut self, node: &str, port: u16) {
        let s = Server::udp(&self.ns(node), node, port);
        self.servers.push(s);
    }

    /// The dataplane configuration of the node: pinned under `bpffs`, SNAT to the uplink's
    /// addresses, small maps.
    pub fn config(bpffs: &Bpffs) -> ebpf::DataplaneConfig {
        ebpf::DataplaneConfig {
            bpffs_root: bpffs.path.join("lbspeaker"),
            snat_v4: Some("192.168.1.1".parse().expect("v4")),
            snat_v6: Some("fd01::1".parse().expect("v6")),
            sizes: ebpf::MapSizes {
                services: 4096,
                backends: 4096,
                rev_nat: 4096,
                conntrack_tcp: 16384,
                conntrack_other: 16384,
                maglev_tables: 4,
                interfaces: 16,
            },
            maglev_m: 1021,
            ..Default::default()
        }
    }

    /// Loads the dataplane and attaches it to the node's interfaces.
    pub fn dataplane(&self, bpffs: &Bpffs) -> ebpf::Dataplane {
        let mut dp = ebpf::Dataplane::load(Self::config(bpffs)).expect("load the dataplane");
        self.attach(&mut dp);
        dp
    }

    pub fn attach(&self, dp: &mut ebpf::Dataplane) {
        let ns = self.ns("node");
        dp.attach(&ebpf::Attachment::uplink("up0").in_netns(&ns))
            .expect("attach up0");
        for be in ["be1", "be2"] {
            dp.attach(&ebpf::Attachment::backend_facing(be).in_netns(&ns))
                .expect("attach a backend interface");
        }
        let mut hop = ebpf::Attachment::backend_facing("hop0").in_netns(&ns);
        hop.internal = false;
        dp.attach(&hop).expect("attach hop0");
    }

    /// `nstat -az` counters of a node (checksum errors and such).
    pub fn nstat(&self, node: &str, name: &str) -> u64 {
        let out = self
            .lab
            .exec_ok(node, "nstat", &["-az", name])
            .unwrap_or_default();
        out.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .next()
            .unwrap_or(0)
    }
}

fn sa(a: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(a, port)
}

/// A server thread in a namespace; stopped when dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve_http(mut s: TcpStream, name: String, stop: Arc<AtomicBool>) {
    let peer = s.peer_addr().map(|p| p.to_string()).unwrap_or_default();
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_nodelay(true);
    let Ok(read_half) = s.try_clone() else { return };
    let mut r = BufReader::new(read_half);
    while !stop.load(Ordering::Relaxed) {
        // Request line and headers; a body of Content-Length bytes.
        let mut len = 0usize;
        let mut close = false;
        let mut got_line = false;
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
            if line == "\r\n" || line == "\n" {
                if got_line {
                    break;
                }
                continue;
            }
            got_line = true;
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut body = vec![0u8; len];
        let mut off = 0;
        while off < len {
            match r.read(&mut body[off..]) {
                Ok(0) => return,
                Ok(n) => off += n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let text = format!("{name} {peer} {len}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{}\r\n{text}",
            text.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if s.write_all(resp.as_bytes()).is_err() || close {
            return;
        }
    }
}

impl Server {
    pub fn http(ns: &Path, name: &str, port: u16) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let l = netns::run_in(Some(ns), || {
            let l = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
            l.set_only_v6(false)?;
            l.set_reuse_address(true)?;
            l.bind(&sa(ip("::"), port).into())?;
            l.listen(1024)?;
            let l: TcpListener = l.into();
            l.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(l)
        })
        .expect("enter namespace")
        .expect("listen");
        let (name, s2) = (name.to_owned(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let (n, st) = (name.clone(), s2.clone());
                        conns.push(std::thread::spawn(move || serve_http(s, n, st)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
                conns.retain(|h: &JoinHandle<()>| !h.is_finished());
            }
            for h in conns {
                let _ = h.join();
            }
        });
        Server {
            stop,
            handle: Some(handle),
        }
    }

    pub fn udp(ns: &Path, name: &str, port: u16) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let sock = netns::run_in(Some(ns), || {
            let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)?;
            s.set_only_v6(false)?;
            s.bind(&sa(ip("::"), port).into())?;
            let s: UdpSocket = s.into();
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            Ok::<_, std::io::Error>(s)
        })
        .expect("enter namespace")
        .expect("bind udp");
        let (name, s2) = (name.to_owned(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                    let peer = match peer.ip() {
                        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                            Some(v4) => SocketAddr::new(IpAddr::V4(v4), peer.port()),
                            None => peer,
                        },
                        IpAddr::V4(_) => peer,
                    };
                    let _ = sock.send_to(format!("{name} {peer} {n}\n").as_bytes(), peer);
                }
            }
        });
        Server {
            stop,
            handle: Some(handle),
        }
    }
}

/// A client connection from a namespace, for several requests.
pub struct Conn {
    s: TcpStream,
    r: BufReader<TcpStream>,
}

/// What a backend answered: its name, the client address it saw, the body length it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub backend: String,
    pub peer: SocketAddr,
    pub got: usize,
}

fn parse_answer(text: &str) -> std::io::Result<Answer> {
    let mut w = text.split_whitespace();
    let bad = || std::io::Error::other(format!("bad answer {text:?}"));
    let backend = w.next().ok_or_else(bad)?.to_owned();
    let peer: SocketAddr = w.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let peer = match peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), peer.port()),
            None => peer,
        },
        _ => peer,
    };
    let got = w.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    Ok(Answer { backend, peer, got })
}

impl Conn {
    pub fn open(ns: &Path, to: SocketAddr) -> std::io::Result<Conn> {
        let s = netns::run_in(Some(ns), || {
            TcpStream::connect_timeout(&to, Duration::from_millis(1500))
        })??;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.set_nodelay(true)?;
        let r = BufReader::new(s.try_clone()?);
        Ok(Conn { s, r })
    }

    /// One request with a body of `body` bytes.
    pub fn request(&mut self, body: usize) -> std::io::Result<Answer> {
        let head = format!("POST / HTTP/1.1\r\nHost: lab\r\nContent-Length: {body}\r\n\r\n");
        self.s.write_all(head.as_bytes())?;
        self.s.write_all(&vec![b'x'; body])?;
        let mut len = 0usize;
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
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body)?;
        parse_answer(&String::from_utf8_lossy(&body))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.s.local_addr().expect("local address")
    }
}

/// One request on a new connection.
pub fn get(ns: &Path, to: SocketAddr) -> std::io::Result<Answer> {
    Conn::open(ns, to)?.request(0)
}

/// One UDP exchange from a namespace: the answer and the address it came from.
pub fn udp_ask(ns: &Path, to: SocketAddr) -> std::io::Result<(Answer, SocketAddr)> {
    let s = netns::run_in(Some(ns), || {
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        UdpSocket::bind(bind)
    })??;
    s.set_read_timeout(Some(Duration::from_millis(1500)))?;
    s.send_to(b"hello", to)?;
    let mut buf = [0u8; 512];
    let (n, from) = s.recv_from(&mut buf)?;
    Ok((parse_answer(&String::from_utf8_lossy(&buf[..n]))?, from))
}

/// Retries `f` until it succeeds or `timeout` passes (for the first packets after attaching,
/// while neighbours resolve).
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> std::io::Result<T>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if start.elapsed() > timeout => panic!("gave up after {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
