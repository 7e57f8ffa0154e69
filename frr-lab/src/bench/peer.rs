//! A raw BGP peer for the benchmarks, on `bgp::wire`: as a route generator it writes
//! pre-encoded UPDATEs as fast as the device under test takes them; as a monitor it decodes
//! what the DUT sends, keeps the table it has been given, and timestamps every message on
//! arrival, so convergence is read from the monitor's own clock rather than by polling a
//! CLI.
//!
//! ```text
//!  bench thread ──setns(ns)──► TCP socket ──► DUT
//!     reader thread: frame, decode, apply to PeerLog, check goals, notify waiters
//!     keepalive thread: a KEEPALIVE every negotiated hold time / 3
//!     callers: send_all(UPDATEs) / wait(goal) / shut()
//! ```
//!
//! Every message is stamped with the wall-clock time its bytes were read (Unix seconds, the
//! clock `ip -ts monitor` uses too). Goals (a table size, a count of prefixes from one feed)
//! are checked by the reader after each UPDATE, so the time a goal is reached is the time of
//! the very message that reached it, not of a later look.

use std::collections::HashMap;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bgp::wire::{
    Capability, DecodeContext, EncodeContext, Family, Message, Negotiated, Notification, Open,
    Update,
};
use bytes::Bytes;
use ipnet::IpNet;
use serde::Serialize;

use super::BenchError;
use super::sys::unix_now;
use crate::lab::in_netns;

/// How to reach the DUT and what to say in the OPEN.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// For messages.
    pub name: String,
    /// The namespace the connection is made from.
    pub ns: String,
    /// Our address.
    pub local: IpAddr,
    /// The DUT's address and port.
    pub remote: SocketAddr,
    /// Our AS.
    pub asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The hold time we offer.
    pub hold_time: u16,
    /// Decode UPDATEs and keep the table (a monitor); otherwise only count messages.
    pub track_table: bool,
}

/// A condition on what a monitor holds, checked after every UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Exactly this many prefixes held.
    TableSize(usize),
    /// This many prefixes held whose path came through this AS (the AS after the DUT's).
    FromAs(u32, usize),
}

/// What a peer has seen since it was established, or since the last [`RawPeer::mark`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    /// When the window began.
    pub since: f64,
    /// UPDATEs received.
    pub updates: u64,
    /// Prefixes announced in them.
    pub announced: u64,
    /// Prefixes withdrawn in them.
    pub withdrawn: u64,
    /// KEEPALIVEs received.
    pub keepalives: u64,
    /// The first and last UPDATE.
    pub first_update: Option<f64>,
    /// The last UPDATE.
    pub last_update: Option<f64>,
    /// The longest silence between two messages (any type), seconds, and when it ended.
    pub max_gap: f64,
    /// When the longest silence ended.
    pub max_gap_at: f64,
    /// The longest time between two KEEPALIVEs, seconds.
    pub max_keepalive_gap: f64,
}

/// Everything the reader thread keeps.
#[derive(Debug, Default)]
pub struct PeerLog {
    /// When the session came up.
    pub established_at: f64,
    /// The DUT's OPEN.
    pub their_open: Option<Open>,
    /// Why the session ended, if it did (NOTIFICATION received, connection closed).
    pub closed: Option<String>,
    /// End-of-RIB markers received, with their times.
    pub end_of_rib: Vec<(Family, f64)>,
    /// The window of counters.
    pub window: Window,
    last_message: Option<f64>,
    last_keepalive: Option<f64>,
    table: HashMap<IpNet, u32>,
    from_as: HashMap<u32, usize>,
    goals: Vec<(Goal, Option<f64>)>,
}

impl PeerLog {
    /// Prefixes held now.
    pub fn table_size(&self) -> usize {
        self.table.len()
    }

    /// Prefixes held whose path came through `asn`.
    pub fn from_as(&self, asn: u32) -> usize {
        self.from_as.get(&asn).copied().unwrap_or(0)
    }

    /// When a registered goal was first met.
    pub fn goal_met(&self, goal: Goal) -> Option<f64> {
        self.goals
            .iter()
            .find(|(g, _)| *g == goal)
            .and_then(|g| g.1)
    }

    fn goal_holds(&self, goal: Goal) -> bool {
        match goal {
            Goal::TableSize(n) => self.table.len() == n,
            Goal::FromAs(asn, n) => self.from_as(asn) == n,
        }
    }

    fn message(&mut self, at: f64) {
        if let Some(prev) = self.last_message {
            let gap = at - prev;
            if gap > self.window.max_gap {
                self.window.max_gap = gap;
                self.window.max_gap_at = at;
            }
        }
        self.last_message = Some(at);
    }

    fn keepalive(&mut self, at: f64) {
        self.window.keepalives += 1;
        if let Some(prev) = self.last_keepalive {
            self.window.max_keepalive_gap = self.window.max_keepalive_gap.max(at - prev);
        }
        self.last_keepalive = Some(at);
    }

    fn update(&mut self, u: &Update, at: f64, track: bool) {
        let w = &mut self.window;
        w.updates += 1;
        w.first_update.get_or_insert(at);
        w.last_update = Some(at);
        if let Some(f) = u.end_of_rib_family() {
            self.end_of_rib.push((f, at));
            return;
        }
        let withdrawn = u.withdrawn_routes().count() as u64;
        let announced = u.announced_routes().count() as u64;
        w.withdrawn += withdrawn;
        w.announced += announced;
        if !track {
            return;
        }
        for (_, n) in u.withdrawn_routes() {
            if let Some(old) = self.table.remove(&n.prefix) {
                decrement(&mut self.from_as, old);
            }
        }
        if announced > 0 {
            // The AS the route came through: the one after the DUT's own (0 if the DUT
            // originated it).
            let via = u
                .attributes
                .as_path
                .as_ref()
                .and_then(|p| {
                    p.segments
                        .iter()
                        .flat_map(|s| s.asns.iter())
                        .nth(1)
                        .copied()
                })
                .unwrap_or(0);
            for (_, n) in u.announced_routes() {
                if let Some(old) = self.table.insert(n.prefix, via) {
                    decrement(&mut self.from_as, old);
                }
                *self.from_as.entry(via).or_default() += 1;
            }
        }
        let pending: Vec<usize> = (0..self.goals.len())
            .filter(|i| self.goals[*i].1.is_none())
            .collect();
        for i in pending {
            let goal = self.goals[i].0;
            if self.goal_holds(goal) {
                self.goals[i].1 = Some(at);
            }
        }
    }
}

fn decrement(m: &mut HashMap<u32, usize>, k: u32) {
    if let Some(c) = m.get_mut(&k) {
        *c = c.saturating_sub(1);
    }
}

type Shared = Arc<(Mutex<PeerLog>, Condvar)>;

/// One BGP session from a lab namespace to the DUT.
#[derive(Debug)]
pub struct RawPeer {
    cfg: PeerConfig,
    writer: Arc<Mutex<TcpStream>>,
    shared: Shared,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    encode: EncodeContext,
}

/// When a batch of messages went out.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sent {
    /// Before the first octet was written.
    pub first: f64,
    /// After the last octet was accepted by the kernel.
    pub last: f64,
    /// Messages written.
    pub messages: usize,
    /// Octets written.
    pub octets: usize,
}

fn connect_once(cfg: &PeerConfig) -> io::Result<TcpStream> {
    let (local, remote) = (cfg.local, cfg.remote);
    in_netns(&cfg.ns, move || {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let domain = if remote.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        s.bind(&SockAddr::from(SocketAddr::new(local, 0)))?;
        s.connect_timeout(&SockAddr::from(remote), Duration::from_secs(2))?;
        s.set_tcp_nodelay(true)?;
        Ok(s.into())
    })
}

/// Reads whole messages from a blocking stream, keeping what is left over.
struct Framer {
    buf: Vec<u8>,
    start: usize,
    /// When the last read returned: the arrival time of the frames it completed.
    read_at: f64,
}

impl Framer {
    fn next(&mut self, ctx: &DecodeContext) -> Result<Option<Vec<u8>>, BenchError> {
        let avail = self.buf.get(self.start..).unwrap_or_default();
        match Message::frame_len(avail, ctx) {
            Ok(Some(len)) if avail.len() >= len => {
                let frame = avail.get(..len).unwrap_or_default().to_vec();
                self.start += len;
                if self.start > 1 << 20 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(Some(frame))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(BenchError::Failed(format!(
                "unframeable input from the DUT: {e}"
            ))),
        }
    }

    fn fill(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk)?;
        self.read_at = unix_now();
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n)
    }
}

fn our_open(cfg: &PeerConfig) -> Open {
    Open::new(
        cfg.asn,
        cfg.hold_time,
        cfg.router_id,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(cfg.asn),
        ],
    )
}

fn wire(m: &Message, ctx: &EncodeContext) -> Result<Vec<u8>, BenchError> {
    m.to_bytes(ctx)
        .map(|b| b.to_vec())
        .map_err(|e| BenchError::Failed(format!("cannot encode {m:?}: {e}")))
}

impl RawPeer {
    /// Connects (retrying while the DUT does not accept yet) and completes the OPEN
    /// exchange, then starts the reader and keepalive threads.
    pub fn connect(cfg: PeerConfig, timeout: Duration) -> Result<RawPeer, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match Self::try_establish(&cfg) {
                Ok(p) => return Ok(p),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("{} to establish with {}", cfg.name, cfg.remote),
                    after: timeout,
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn try_establish(cfg: &PeerConfig) -> Result<RawPeer, BenchError> {
        let mut stream = connect_once(cfg).map_err(BenchError::io("connect"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(BenchError::io("socket option"))?;
        let ours = our_open(cfg);
        stream
            .write_all(&wire(
                &Message::Open(ours.clone()),
                &EncodeContext::default(),
            )?)
            .map_err(BenchError::io("send OPEN"))?;
        let mut framer = Framer {
            buf: Vec::new(),
            start: 0,
            read_at: unix_now(),
        };
        let mut ctx = DecodeContext::default();
        let mut encode = EncodeContext::default();
        let mut their_open = None;
        let mut pending = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Until their KEEPALIVE after both OPENs: then the session is Established.
        loop {
            if Instant::now() > deadline {
                return Err(BenchError::Failed("no OPEN and KEEPALIVE in 10 s".into()));
            }
            let Some(frame) = framer.next(&ctx)? else {
                if framer
                    .fill(&mut stream)
                    .map_err(BenchError::io("read during OPEN"))?
                    == 0
                {
                    return Err(BenchError::Failed("closed during the OPEN exchange".into()));
                }
                continue;
            };
            let m = Message::decode(&frame, &ctx)
                .map_err(|e| BenchError::Failed(format!("bad message from the DUT: {e}")))?;
            match m {
                Message::Open(o) => {
                    let n = Negotiated::from_opens(&ours, &o);
                    ctx = n.decode;
                    encode = n.encode;
                    their_open = Some(o);
                    stream
                        .write_all(&wire(&Message::Keepalive, &encode)?)
                        .map_err(BenchError::io("send KEEPALIVE"))?;
                }
                Message::Keepalive if their_open.is_some() => break,
                Message::Notification(n) => {
                    return Err(BenchError::Failed(format!(
                        "NOTIFICATION during the OPEN exchange: {}",
                        n.describe()
                    )));
                }
                _ => pending.push(frame),
            }
        }
        let hold = their_open
            .as_ref()
            .map_or(cfg.hold_time, |o| o.hold_time.min(cfg.hold_time));
        let log = PeerLog {
            established_at: unix_now(),
            their_open,
            window: Window {
                since: unix_now(),
                ..Window::default()
            },
            ..PeerLog::default()
        };
        let shared: Shared = Arc::new((Mutex::new(log), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(BenchError::io("socket option"))?;
        let writer = Arc::new(Mutex::new(
            stream.try_clone().map_err(BenchError::io("clone socket"))?,
        ));
        let mut threads = Vec::new();
        {
            let (shared, stop, track) = (shared.clone(), stop.clone(), cfg.track_table);
            threads.push(std::thread::spawn(move || {
                read_loop(stream, framer, pending, ctx, shared, stop, track);
            }));
        }
        if hold > 0 {
            let (writer, stop) = (writer.clone(), stop.clone());
            let ka = wire(&Message::Keepalive, &encode)?;
            let every = Duration::from_secs_f64(f64::from(hold) / 3.0);
            threads.push(std::thread::spawn(move || {
                let mut next = Instant::now() + every;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        next += every;
                        let ok = writer.lock().map(|mut w| w.write_all(&ka).is_ok());
                        if !matches!(ok, Ok(true)) {
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }));
        }
        Ok(RawPeer {
            cfg: cfg.clone(),
            writer,
            shared,
            stop,
            threads,
            encode,
        })
    }

    /// What the OPEN exchange negotiated for what we send.
    pub fn encode_context(&self) -> EncodeContext {
        self.encode
    }

    /// The log (hold the guard briefly: the reader waits for it).
    pub fn log(&self) -> MutexGuard<'_, PeerLog> {
        match self.shared.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Starts a new window of counters and returns the one that ends.
    pub fn mark(&self) -> Window {
        let mut log = self.log();
        let now = unix_now();
        let old = std::mem::replace(
            &mut log.window,
            Window {
                since: now,
                ..Window::default()
            },
        );
        log.last_keepalive = None;
        log.last_message = Some(now);
        old
    }

    /// Registers a goal; its time is recorded by the reader when first met.
    pub fn add_goal(&self, goal: Goal) {
        let mut log = self.log();
        let met = log.goal_holds(goal).then(unix_now);
        log.goals.retain(|(g, _)| *g != goal);
        log.goals.push((goal, met));
    }

    /// Waits until `done` holds for the log (or the session closes, or `timeout` passes).
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&PeerLog) -> bool,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.shared;
        let mut log = match lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        loop {
            if done(&log) {
                return Ok(());
            }
            if let Some(why) = &log.closed {
                return Err(BenchError::Failed(format!(
                    "{}: session closed while waiting for {what}: {why}",
                    self.cfg.name
                )));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BenchError::Timeout {
                    what: format!("{} {what}", self.cfg.name),
                    after: timeout,
                    last: format!(
                        "{} prefixes held, {} UPDATEs in this window",
                        log.table.len(),
                        log.window.updates
                    ),
                });
            }
            log = match cv.wait_timeout(log, left.min(Duration::from_millis(500))) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Waits until a goal is met and returns when it was.
    pub fn wait_goal(&self, goal: Goal, timeout: Duration) -> Result<f64, BenchError> {
        self.add_goal(goal);
        self.wait(&format!("{goal:?}"), timeout, |l| {
            l.goal_met(goal).is_some()
        })?;
        Ok(self.log().goal_met(goal).unwrap_or(f64::NAN))
    }

    /// Waits until no UPDATE has arrived for `quiet`; returns the last UPDATE's time.
    pub fn wait_quiet(
        &self,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Option<f64>, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.log().window.last_update;
            let since = unix_now() - last.unwrap_or(self.log().window.since);
            if since >= quiet.as_secs_f64() {
                return Ok(last);
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("{} to go quiet", self.cfg.name),
                    after: timeout,
                    last: format!("last UPDATE {since:.1} s ago"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes messages back to back, in chunks of about 64 KiB so keepalives can go between.
    pub fn send_all(&self, messages: &[Bytes]) -> Result<Sent, BenchError> {
        let mut sent = Sent {
            first: unix_now(),
            ..Sent::default()
        };
        let mut chunk = Vec::with_capacity(70_000);
        let flush = |chunk: &mut Vec<u8>| -> Result<(), BenchError> {
            let mut w = self
                .writer
                .lock()
                .map_err(|_| BenchError::Failed("writer lock poisoned".into()))?;
            w.write_all(chunk)
                .map_err(BenchError::io(format!("{}: send", self.cfg.name)))?;
            chunk.clear();
            Ok(())
        };
        for m in messages {
            chunk.extend_from_slice(m);
            sent.messages += 1;
            sent.octets += m.len();
            if chunk.len() >= 65536 {
                flush(&mut chunk)?;
            }
        }
        if !chunk.is_empty() {
            flush(&mut chunk)?;
        }
        sent.last = unix_now();
        Ok(sent)
    }

    /// Ends the session: Cease / Administrative Shutdown, then the connection closes.
    pub fn shut(&self) -> Result<f64, BenchError> {
        let n = Message::Notification(Notification::cease(2, Some("frr-lab bench: feed shut")));
        let bytes = wire(&n, &self.encode)?;
        let at = unix_now();
        if let Ok(mut w) = self.writer.lock() {
            let _ = w.write_all(&bytes);
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        Ok(at)
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn read_loop(
    mut stream: TcpStream,
    mut framer: Framer,
    pending: Vec<Vec<u8>>,
    ctx: DecodeContext,
    shared: Shared,
    stop: Arc<AtomicBool>,
    track: bool,
) {
    let (lock, cv) = &*shared;
    let handle = |frame: &[u8], at: f64| -> Result<(), String> {
        let mut log = lock.lock().map_err(|_| "log lock poisoned".to_owned())?;
        log.message(at);
        let kind = frame.get(18).copied().unwrap_or(0);
        match kind {
            4 => log.keepalive(at),
            2 if track => match Message::decode(frame, &ctx) {
                Ok(Message::Update(u)) => log.update(&u, at, true),
                Ok(_) => {}
                Err(e) => return Err(format!("undecodable UPDATE: {e}")),
            },
            2 => {
                log.window.updates += 1;
                log.window.first_update.get_or_insert(at);
                log.window.last_update = Some(at);
            }
            3 => {
                let why = match Message::decode(frame, &ctx) {
                    Ok(Message::Notification(n)) => n.describe(),
                    _ => "an undecodable NOTIFICATION".into(),
                };
                return Err(format!("NOTIFICATION from the DUT: {why}"));
            }
            _ => {}
        }
        Ok(())
    };
    let mut result = Ok(());
    let t0 = unix_now();
    for f in &pending {
        if let Err(e) = handle(f, t0) {
            result = Err(e);
        }
    }
    cv.notify_all();
    while result.is_ok() && !stop.load(Ordering::Relaxed) {
        match framer.next(&ctx) {
            Ok(Some(frame)) => {
                // Stamped when read; the frames of one read share its time.
                if let Err(e) = handle(&frame, framer.read_at) {
                    result = Err(e);
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
        cv.notify_all();
        match framer.fill(&mut stream) {
            Ok(0) => result = Err("the DUT closed the connection".into()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => result = Err(format!("read: {e}")),
        }
    }
    if let Err(why) = result
        && !stop.load(Ordering::Relaxed)
        && let Ok(mut log) = lock.lock()
    {
        log.closed = Some(why);
    }
    cv.notify_all();
}
