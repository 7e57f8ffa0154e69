//! A raw BGP peer for hostile-input tests: a blocking TCP client, opened inside a lab
//! namespace, that completes an OPEN exchange and then sends whatever octets a test crafts
//! (malformed UPDATEs, floods, one byte a second), and reads what our speaker answers, so a
//! test can assert on the very NOTIFICATION that arrives on the wire.
//!
//! ```text
//!  test thread ──setns(lab namespace)──► socket ──TCP──► bgp-harness (our speaker)
//!                                          ▲ send_raw(crafted UPDATE)
//!                                          └ next_message() / expect_notification()
//! ```
//!
//! Sockets belong to the namespace they were created in, so only the creation runs in a
//! thread that entered the namespace ([`in_netns`]); the socket is then used from anywhere.
//! Also: helpers that build attributes and UPDATEs octet by octet ([`attr`], [`update`]),
//! and process measurements ([`rss_kib`], [`open_fds`]).

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bgp::wire::{
    Capability, DecodeContext, EncodeContext, Family, Message, Negotiated, Notification, Open,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub use frr_lab::lab::in_netns;

/// How to open the TCP connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Source address (any of the namespace's when `None`).
    pub local: Option<IpAddr>,
    /// IP TTL of what we send (GTSM tests send 254 to look one hop further away).
    pub ttl: Option<u32>,
    /// Receive buffer size (a peer that stops reading wants it small).
    pub recv_buffer: Option<usize>,
    /// Give up connecting after this long.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            local: None,
            ttl: None,
            recv_buffer: None,
            timeout: Duration::from_secs(3),
        }
    }
}

/// Opens a TCP connection from inside namespace `ns`.
pub fn connect_in(ns: &str, remote: SocketAddr, opts: ConnectOptions) -> io::Result<TcpStream> {
    in_netns(ns, move || {
        let domain = if remote.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        if let Some(local) = opts.local {
            s.bind(&SockAddr::from(SocketAddr::new(local, 0)))?;
        }
        if let Some(ttl) = opts.ttl {
            if remote.is_ipv6() {
                s.set_unicast_hops_v6(ttl)?;
            } else {
                s.set_ttl_v4(ttl)?;
            }
        }
        if let Some(n) = opts.recv_buffer {
            s.set_recv_buffer_size(n)?;
        }
        s.connect_timeout(&SockAddr::from(remote), opts.timeout)?;
        s.set_tcp_nodelay(true)?;
        Ok(s.into())
    })
}

/// What the peer (our speaker) did with what the injector sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A NOTIFICATION came.
    Notification(Notification),
    /// The connection closed (or reset) without one.
    Closed,
    /// Nothing but KEEPALIVEs and UPDATEs within the time given.
    Quiet,
}

/// One raw BGP connection.
#[derive(Debug)]
pub struct Injector {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Context for decoding what our speaker sends (switched after the OPEN exchange).
    pub decode: DecodeContext,
    /// Context for encoding what we send.
    pub encode: EncodeContext,
    /// The speaker's OPEN, once received.
    pub their_open: Option<Open>,
    /// UPDATEs received so far (they are counted, not kept).
    pub updates_received: usize,
}

/// Our OPEN: AS, hold time, identifier, IPv4 and IPv6 unicast, route refresh, 4-octet AS.
pub fn open(asn: u32, hold_time: u16, id: Ipv4Addr) -> Open {
    Open::new(
        asn,
        hold_time,
        id,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    )
}

impl Injector {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Injector {
        Injector {
            stream,
            buf: Vec::new(),
            decode: DecodeContext::default(),
            encode: EncodeContext::default(),
            their_open: None,
            updates_received: 0,
        }
    }

    /// Connects from namespace `ns` with the default options.
    pub fn connect(ns: &str, local: IpAddr, remote: SocketAddr) -> io::Result<Injector> {
        let opts = ConnectOptions {
            local: Some(local),
            ..ConnectOptions::default()
        };
        connect_in(ns, remote, opts).map(Injector::new)
    }

    /// The socket (to clone it for a second thread, or to shut it down).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes octets as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Encodes and writes a message.
    pub fn send(&mut self, m: &Message) -> io::Result<()> {
        let b = m
            .to_bytes(&self.encode)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.stream.write_all(&b)
    }

    /// The next whole message, or `Ok(None)` when `timeout` passes first. A connection that
    /// closes (or resets) is `Err` with `ConnectionAborted`/`ConnectionReset`.
    pub fn next_message(&mut self, timeout: Duration) -> io::Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                if len < 19 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("length {len} from our own speaker"),
                    ));
                }
                if self.buf.len() >= len {
                    let frame: Vec<u8> = self.buf.drain(..len).collect();
                    let m = Message::decode(&frame, &self.decode).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("{e}: {frame:02x?}"))
                    })?;
                    if matches!(m, Message::Update(_)) {
                        self.updates_received += 1;
                    }
                    return Ok(Some(m));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "closed by the peer",
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads until a NOTIFICATION arrives, the connection ends, or `timeout` passes,
    /// skipping KEEPALIVEs and UPDATEs.
    pub fn outcome(&mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left) {
                Ok(Some(Message::Notification(n))) => return Outcome::Notification(n),
                Ok(Some(_)) => {}
                Ok(None) => return Outcome::Quiet,
                Err(_) => return Outcome::Closed,
            }
        }
    }

    /// The OPEN exchange: send ours, read theirs, send KEEPALIVE, wait for theirs. Switches
    /// the contexts to what the two OPENs negotiated.
    pub fn establish(&mut self, ours: &Open, timeout: Duration) -> io::Result<()> {
        self.send(&Message::Open(ours.clone()))?;
        let deadline = Instant::now() + timeout;
        let theirs = match self.next_message(timeout)? {
            Some(Message::Open(o)) => o,
            Some(Message::Notification(n)) => {
                return Err(io::Error::other(format!(
                    "NOTIFICATION instead of OPEN: {}",
                    n.describe()
                )));
            }
            Some(other) => return Err(io::Error::other(format!("{other:?} instead of OPEN"))),
            None => return Err(io::Error::new(io::ErrorKind::TimedOut, "no OPEN")),
        };
        let n = Negotiated::from_opens(ours, &theirs);
        self.decode = n.decode;
        self.encode = n.encode;
        self.their_open = Some(theirs);
        self.send(&Message::Keepalive)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left)? {
                Some(Message::Keepalive) => return Ok(()),
                Some(Message::Notification(n)) => {
                    return Err(io::Error::other(format!(
                        "NOTIFICATION instead of KEEPALIVE: {}",
                        n.describe()
                    )));
                }
                Some(_) => {}
                None => return Err(io::Error::new(io::ErrorKind::TimedOut, "no KEEPALIVE")),
            }
        }
    }

    /// Connects from `ns` and completes the OPEN exchange, retrying for up to `timeout` while
    /// our speaker still refuses (a passive session waits out its idle hold time after a
    /// reset before it accepts again).
    pub fn establish_in(
        ns: &str,
        local: IpAddr,
        remote: SocketAddr,
        ours: &Open,
        timeout: Duration,
    ) -> io::Result<Injector> {
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = Injector::connect(ns, local, remote).and_then(|mut i| {
                i.establish(ours, Duration::from_secs(3))?;
                Ok(i)
            });
            match attempt {
                Ok(i) => return Ok(i),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// One path attribute: flags, type code, value (the extended-length flag 0x10 picks a
/// two-octet length field). The length written is the value's unless `len` overrides it.
pub fn attr(flags: u8, code: u8, value: &[u8], len: Option<u16>) -> Vec<u8> {
    let n = len.unwrap_or(value.len() as u16);
    let mut a = vec![flags, code];
    if flags & 0x10 != 0 {
        a.extend_from_slice(&n.to_be_bytes());
    } else {
        a.push(n as u8);
    }
    a.extend_from_slice(value);
    a
}

/// ORIGIN IGP.
pub fn origin_igp() -> Vec<u8> {
    attr(0x40, 1, &[0], None)
}

/// AS_PATH of one AS_SEQUENCE, 4-octet ASNs.
pub fn as_path(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0x40, 2, &v, None)
}

/// NEXT_HOP.
pub fn next_hop(a: Ipv4Addr) -> Vec<u8> {
    attr(0x40, 3, &a.octets(), None)
}

/// MULTI_EXIT_DISC.
pub fn med(v: u32) -> Vec<u8> {
    attr(0x80, 4, &v.to_be_bytes(), None)
}

/// An IPv4 prefix as NLRI octets.
pub fn prefix4(p: &str) -> Vec<u8> {
    let net: ipnet::Ipv4Net = p.parse().unwrap_or_default();
    let len = net.prefix_len();
    let octets = usize::from(len).div_ceil(8);
    let mut v = vec![len];
    v.extend_from_slice(&net.network().octets()[..octets]);
    v
}

/// An UPDATE from its three fields; the lengths are computed unless overridden
/// (`withdrawn_len`, `attrs_len`) to make them lie.
pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    update_with_lengths(withdrawn, attrs, nlri, None, None)
}

/// [`update`] with lying length fields.
pub fn update_with_lengths(
    withdrawn: &[u8],
    attrs: &[u8],
    nlri: &[u8],
    withdrawn_len: Option<u16>,
    attrs_len: Option<u16>,
) -> Vec<u8> {
    let body = 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body) as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(
        &withdrawn_len
            .unwrap_or(withdrawn.len() as u16)
            .to_be_bytes(),
    );
    m.extend_from_slice(withdrawn);
    m.extend_from_slice(&attrs_len.unwrap_or(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(attrs);
    m.extend_from_slice(nlri);
    m
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// The peak resident memory of a process in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// How many file descriptors a process has open.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// The `i`-th of up to 16 M distinct IPv4 /24s (1.0.0.0/24, 1.0.1.0/24, ...), as NLRI octets.
pub fn nth_slash24(i: u32) -> [u8; 4] {
    let n = i + (1 << 16);
    [24, (n >> 16) as u8, (n >> 8) as u8, n as u8]
}

/// A table of `count` distinct /24s with one attribute set, packed 1000 prefixes to an UPDATE
/// (4,000 octets of NLRI: as full as a 4,096-octet message gets).
pub fn table_updates(count: u32, attrs: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < count {
        let end = (i + 1000).min(count);
        let nlri: Vec<u8> = (i..end).flat_map(nth_slash24).collect();
        out.push(update(&[], attrs, &nlri));
        i = end;
    }
    out
}
