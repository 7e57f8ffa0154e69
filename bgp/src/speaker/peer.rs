//! One tokio task per peer: a `select!` over the control channel, the next FSM deadline, the
//! dial in progress, framed reads and buffered writes of up to two connections (the second
//! only during a connection collision), and the RIB's "you have updates" signal.
//!
//! Writes go through one buffer per connection. UPDATEs are pulled from the Adj-RIB-Out only
//! while that buffer holds less than [`LOW_WATER`] octets, a batch at a time, so a KEEPALIVE
//! or NOTIFICATION never queues behind more than a batch, and a peer that stops reading
//! costs its buffer and one pending entry per changed prefix, nothing more, while the other
//! peers go on.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::codec::{BgpCodec, CodecError};
use super::config::PeerConfig;
use super::{Instance, PeerEvent, PeerEventKind, transport};
use crate::fsm::collision::{self, Verdict};
use crate::fsm::{Action, DownReason, Initiator, Input, Restart, Session, SessionInfo, State};
use crate::rib::{PeerIdx, PeerSession};
use crate::wire::notification::cease;
use crate::wire::{EncodeContext, ErrorCode, Family, Message, Notification, RouteRefreshSubtype};

/// Pull UPDATEs only while the write buffer holds less than this.
pub(crate) const LOW_WATER: usize = 64 * 1024;
/// Prefixes per family per pull from the Adj-RIB-Out.
const PULL_BUDGET: usize = 8192;
/// The shortest send hold time (RFC 9687 §3: 8 minutes or twice the hold time).
const SEND_HOLD_MIN: Duration = Duration::from_secs(480);
/// How long a NOTIFICATION may take to leave before the connection is dropped anyway.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What the handle tells a peer task.
#[derive(Debug)]
pub(crate) enum Control {
    /// A connection from the peer's address was accepted.
    Incoming(TcpStream),
    /// New configuration.
    Reconfigure(Box<PeerConfig>),
    /// Force the session down (BFD, an operator) with this NOTIFICATION.
    Reset(Notification, Restart),
    /// Stop for good: send this Cease (or nothing) and end the task.
    Stop(Option<Notification>, oneshot::Sender<()>),
}

/// What a peer's state looks like from outside (kept up to date by the task).
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) state: Option<State>,
    pub(crate) established_at: Option<(SystemTime, std::time::Instant)>,
    pub(crate) info: Option<SessionInfo>,
    pub(crate) last_error: Option<String>,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) flaps: u32,
    pub(crate) received: u64,
    pub(crate) sent: u64,
    /// Octets waiting in our write buffer (FRR's OutQ, in octets).
    pub(crate) out_queue: usize,
}

struct Conn {
    reader: FramedRead<OwnedReadHalf, BgpCodec>,
    writer: OwnedWriteHalf,
    out: BytesMut,
    enc: EncodeContext,
    local: SocketAddr,
    remote: SocketAddr,
    info: Option<SessionInfo>,
}

impl Conn {
    fn new(stream: TcpStream) -> io::Result<Conn> {
        let local = stream.local_addr()?;
        let remote = stream.peer_addr()?;
        let (r, w) = stream.into_split();
        Ok(Conn {
            reader: FramedRead::new(r, BgpCodec::new()),
            writer: w,
            out: BytesMut::new(),
            enc: EncodeContext::default(),
            local,
            remote,
            info: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Main,
    Extra,
}

type Dial = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

pub(crate) struct PeerTask {
    pub(crate) inst: Arc<Instance>,
    pub(crate) idx: PeerIdx,
    pub(crate) cfg: PeerConfig,
    pub(crate) ctl: mpsc::UnboundedReceiver<Control>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) status: Arc<Mutex<Status>>,
    epoch: Instant,
    main: Session,
    conn: Option<Conn>,
    extra: Option<(Session, Conn)>,
    dial: Option<Dial>,
    /// Families whose paths are kept stale for a restarting peer, and until when.
    stale: Vec<Family>,
    stale_until: Option<Instant>,
    want_pull: bool,
    stopping: bool,
    /// When the main connection's writes last made progress (or its buffer was empty).
    write_progress: Instant,
    /// Why the last dial failed, for the Down that follows.
    dial_error: Option<String>,
}

// Short-lived, one at a time: boxing the message would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Io {
    Read(Option<Result<Message, CodecError>>),
    Wrote(io::Result<usize>),
}

/// The next thing a connection does: a write completes (writes first, so KEEPALIVEs and
/// NOTIFICATIONs leave even while the peer floods us) or a message arrives.
async fn conn_io(c: Option<&mut Conn>) -> Io {
    let Some(c) = c else {
        return std::future::pending().await;
    };
    let Conn {
        reader,
        writer,
        out,
        ..
    } = c;
    if out.is_empty() {
        return Io::Read(reader.next().await);
    }
    tokio::select! {
        biased;
        r = writer.write_buf(out) => Io::Wrote(r),
        m = reader.next() => Io::Read(m),
    }
}

async fn dialled(d: &mut Option<Dial>) -> io::Result<TcpStream> {
    match d {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Wraps a Cease in Hard Reset where RFC 8538 says so (the N bit was exchanged and the reason
/// is one that must not leave the peer keeping our routes).
pub(crate) fn hard_reset(n: Notification, info: Option<&SessionInfo>) -> Notification {
    let n_bit = info
        .and_then(|i| i.graceful_restart.as_ref())
        .is_some_and(|g| g.notification);
    wrap_in_hard_reset(n, n_bit)
}

/// The Ceases after which the peer must not keep our routes: we mean to withdraw them, or
/// (BFD Down, RFC 9384) the path they use is dead, so keeping them stale would blackhole
/// traffic for the whole restart time.
const HARD_CEASES: [u8; 5] = [
    cease::MAXIMUM_PREFIXES_REACHED,
    cease::ADMINISTRATIVE_SHUTDOWN,
    cease::PEER_DECONFIGURED,
    cease::ADMINISTRATIVE_RESET,
    cease::BFD_DOWN,
];

fn wrap_in_hard_reset(n: Notification, n_bit: bool) -> Notification {
    if n_bit && n.code == ErrorCode::Cease as u8 && HARD_CEASES.contains(&n.subcode) {
        let mut data = vec![n.code, n.subcode];
        data.extend_from_slice(&n.data);
        Notification::new(ErrorCode::Cease, cease::HARD_RESET, data)
    } else {
        n
    }
}

/// Whether the peer's routes are kept (stale) after this end of an Established session
/// (RFC 4724 §4.2; RFC 8538 §4 with the N bit).
fn keeps_routes(reason: &DownReason, info: &SessionInfo) -> bool {
    let Some(gr) = &info.graceful_restart else {
        return false;
    };
    if gr.restart_time == 0 {
        return false;
    }
    match reason {
        DownReason::ConnectionLost => true,
        DownReason::NotificationSent(n) | DownReason::NotificationReceived(n) => {
            gr.notification && !(n.code == ErrorCode::Cease as u8 && n.subcode == cease::HARD_RESET)
        }
        DownReason::Stopped | DownReason::Unexpected(_) => false,
    }
}

impl PeerTask {
    pub(crate) fn new(
        inst: Arc<Instance>,
        idx: PeerIdx,
        cfg: PeerConfig,
        ctl: mpsc::UnboundedReceiver<Control>,
        wake: Arc<Notify>,
        status: Arc<Mutex<Status>>,
    ) -> PeerTask {
        let seed = u64::from(idx) ^ (std::process::id() as u64).rotate_left(17);
        let main = Session::new(cfg.session_config(&inst.config, seed));
        PeerTask {
            inst,
            idx,
            cfg,
            ctl,
            wake,
            status,
            epoch: Instant::now(),
            main,
            conn: None,
            extra: None,
            dial: None,
            stale: Vec::new(),
            stale_until: None,
            want_pull: false,
            stopping: false,
            write_progress: Instant::now(),
            dial_error: None,
        }
    }

    fn now(&self) -> Duration {
        Instant::now().duration_since(self.epoch)
    }

    fn event(&self, kind: PeerEventKind) {
        let _ = self.inst.events.send(PeerEvent {
            instance: self.inst.config.name.clone(),
            peer: self.cfg.name.clone(),
            address: self.cfg.address,
            kind,
        });
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    pub(crate) async fn run(mut self) {
        let start = Input::ManualStart {
            passive: self.cfg.passive,
        };
        self.feed(Slot::Main, start).await;
        loop {
            let queued = self.conn.as_ref().map_or(0, |c| c.out.len());
            self.set_status(|s| s.out_queue = queued);
            if queued == 0 {
                self.write_progress = Instant::now();
            }
            let send_hold = self.send_hold_deadline();
            if self.want_pull
                && self.main.state() == State::Established
                && self.conn.as_ref().is_some_and(|c| c.out.len() < LOW_WATER)
            {
                self.pull().await;
            }
            let deadline = [
                self.main.next_deadline(),
                self.extra.as_ref().and_then(|(s, _)| s.next_deadline()),
            ]
            .into_iter()
            .flatten()
            .map(|d| self.epoch + d)
            .chain(self.stale_until)
            .chain(send_hold)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let (conn, extra) = (self.conn.as_mut(), self.extra.as_mut().map(|(_, c)| c));
            tokio::select! {
                biased;
                c = self.ctl.recv() => {
                    match c {
                        Some(c) => {
                            if self.control(c).await {
                                return;
                            }
                        }
                        // The handle is gone: stop without a word.
                        None => {
                            self.stopping = true;
                            self.feed(Slot::Main, Input::ManualStop { notification: None }).await;
                            return;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => self.tick().await,
                r = dialled(&mut self.dial) => {
                    self.dial = None;
                    match r.and_then(Conn::new) {
                        Ok(c) => {
                            debug!(local = %c.local, "connected");
                            self.conn = Some(c);
                            self.feed(Slot::Main, Input::TcpConnected(Initiator::Local)).await;
                        }
                        Err(e) => {
                            debug!(error = %e, "connection failed");
                            self.dial_error = Some(format!("connect: {e}"));
                            self.feed(Slot::Main, Input::TcpConnectionFails).await;
                        }
                    }
                }
                io = conn_io(conn) => self.io(Slot::Main, io).await,
                io = conn_io(extra) => self.io(Slot::Extra, io).await,
                _ = self.wake.notified() => self.want_pull = true,
            }
        }
    }

    /// RFC 9687: a peer that takes nothing we write for twice the hold time (at least 8
    /// minutes) is dropped with Send Hold Timer Expired.
    fn send_hold_deadline(&self) -> Option<Instant> {
        let c = self.conn.as_ref()?;
        if c.out.is_empty() || self.main.state() != State::Established {
            return None;
        }
        let hold = c.info.as_ref().map_or(0, |i| i.hold_time);
        if hold == 0 {
            return None;
        }
        let wait = Duration::from_secs(u64::from(hold) * 2).max(SEND_HOLD_MIN);
        Some(self.write_progress + wait)
    }

    async fn tick(&mut self) {
        if self
            .send_hold_deadline()
            .is_some_and(|d| d <= Instant::now())
        {
            warn!("the peer has not read anything for the send hold time");
            let n = Notification::new(ErrorCode::SendHoldTimerExpired, 0, Vec::new());
            self.feed(
                Slot::Main,
                Input::AutomaticStop {
                    notification: n,
                    restart: Restart::Damped,
                },
            )
            .await;
        }
        self.feed(Slot::Main, Input::Tick).await;
        if self.extra.is_some() {
            self.feed(Slot::Extra, Input::Tick).await;
        }
        if self.stale_until.is_some_and(|t| t <= Instant::now()) {
            self.stale_until = None;
            let families = std::mem::take(&mut self.stale);
            for f in families {
                self.sweep(f, "restart timer expired");
            }
        }
    }

    fn sweep(&mut self, f: Family, why: &str) {
        let n = match self.inst.rib.lock() {
            Ok(mut rib) => rib.sweep_stale(self.idx, f),
            Err(_) => 0,
        };
        if n > 0 {
            info!(family = %f, count = n, why, "stale routes removed");
            self.inst.wake_all();
        }
        self.event(PeerEventKind::StaleSwept {
            family: f,
            count: n,
        });
    }

    async fn io(&mut self, slot: Slot, io: Io) {
        match io {
            Io::Read(m) => self.received(slot, m).await,
            Io::Wrote(Ok(n)) => {
                if n > 0 && slot == Slot::Main {
                    self.write_progress = Instant::now();
                }
            }
            Io::Wrote(Err(e)) => {
                debug!(error = %e, "write failed");
                self.feed(slot, Input::TcpConnectionFails).await;
            }
        }
    }

    async fn received(&mut self, slot: Slot, m: Option<Result<Message, CodecError>>) {
        let input = match m {
            Some(Ok(m)) => {
                self.set_status(|s| s.received += 1);
                Input::Message(m)
            }
            Some(Err(CodecError::Decode(e))) => {
                warn!(error = %e, "undecodable message");
                Input::DecodeError(e)
            }
            Some(Err(e)) => {
                debug!(error = %e, "read failed");
                Input::TcpConnectionFails
            }
            None => Input::TcpConnectionFails,
        };
        self.feed(slot, input).await;
    }

    /// Returns true when the task must end.
    async fn control(&mut self, c: Control) -> bool {
        match c {
            Control::Incoming(stream) => self.incoming(stream).await,
            Control::Reconfigure(cfg) => {
                let reset = self.cfg.needs_reset(&cfg);
                let settings_changed = self.cfg.rib_settings() != cfg.rib_settings();
                let seed = u64::from(self.idx) ^ 0x5eed;
                let mut sc = cfg.session_config(&self.inst.config, seed);
                sc.restarting = self.main.config().restarting && sc.restarting;
                self.main.set_config(sc);
                if settings_changed && let Ok(mut rib) = self.inst.rib.lock() {
                    rib.update_peer_settings(self.idx, cfg.rib_settings());
                }
                self.cfg = *cfg;
                self.want_pull = true;
                if reset && self.main.state() != State::Idle {
                    info!("configuration changed: resetting the session");
                    let n = Notification::cease(cease::OTHER_CONFIGURATION_CHANGE, None);
                    let input = Input::AutomaticStop {
                        notification: n,
                        restart: Restart::After(Duration::from_millis(100)),
                    };
                    self.feed(Slot::Main, input).await;
                }
            }
            Control::Reset(n, restart) => {
                let n = hard_reset(n, self.conn.as_ref().and_then(|c| c.info.as_ref()));
                self.feed(
                    Slot::Main,
                    Input::AutomaticStop {
                        notification: n,
                        restart,
                    },
                )
                .await;
            }
            Control::Stop(n, done) => {
                self.stopping = true;
                let info = self.conn.as_ref().and_then(|c| c.info.clone());
                let n = n.map(|n| hard_reset(n, info.as_ref()));
                if self.extra.is_some() {
                    self.feed(
                        Slot::Extra,
                        Input::ManualStop {
                            notification: n.clone(),
                        },
                    )
                    .await;
                }
                self.feed(Slot::Main, Input::ManualStop { notification: n })
                    .await;
                let _ = done.send(());
                return true;
            }
        }
        false
    }

    async fn incoming(&mut self, stream: TcpStream) {
        if let Err(e) = transport::accepted(&stream, &self.cfg, self.inst.config.local_as.get()) {
            debug!(error = %e, "cannot set options of an accepted connection");
        }
        let conn = match Conn::new(stream) {
            Ok(c) => c,
            Err(_) => return,
        };
        match self.main.state() {
            State::Idle => debug!(remote = %conn.remote, "refused: session idle"),
            State::Connect | State::Active if self.conn.is_none() => {
                self.dial = None;
                self.conn = Some(conn);
                self.feed(Slot::Main, Input::TcpConnected(Initiator::Remote))
                    .await;
            }
            State::OpenSent | State::OpenConfirm if self.extra.is_none() => {
                let mut s = Session::new(self.main.config().clone());
                let _ = s.handle(
                    self.now(),
                    Input::AutomaticStart {
                        passive: true,
                        damped: false,
                    },
                );
                self.extra = Some((s, conn));
                self.feed(Slot::Extra, Input::TcpConnected(Initiator::Remote))
                    .await;
            }
            State::Established
                if self
                    .conn
                    .as_ref()
                    .and_then(|c| c.info.as_ref())
                    .is_some_and(|i| i.graceful_restart.is_some()) =>
            {
                // RFC 4724 §4.2: the peer restarted while we still thought it up.
                info!("new connection from a restarting peer replaces the old one");
                self.feed(Slot::Main, Input::TcpConnectionFails).await;
                self.feed(
                    Slot::Main,
                    Input::AutomaticStart {
                        passive: true,
                        damped: false,
                    },
                )
                .await;
                self.conn = Some(conn);
                self.feed(Slot::Main, Input::TcpConnected(Initiator::Remote))
                    .await;
            }
            _ => debug!(remote = %conn.remote, "refused: a session is already in progress"),
        }
    }

    fn session(&mut self, slot: Slot) -> Option<&mut Session> {
        match slot {
            Slot::Main => Some(&mut self.main),
            Slot::Extra => self.extra.as_mut().map(|(s, _)| s),
        }
    }

    fn conn_mut(&mut self, slot: Slot) -> Option<&mut Conn> {
        match slot {
            Slot::Main => self.conn.as_mut(),
            Slot::Extra => self.extra.as_mut().map(|(_, c)| c),
        }
    }

    /// Feeds an input and carries out every resulting action (and the actions of inputs those
    /// actions cause), without recursion.
    async fn feed(&mut self, slot: Slot, input: Input) {
        let now = self.now();
        let Some(s) = self.session(slot) else { return };
        let acts = s.handle(now, input);
        let mut queue = std::collections::VecDeque::from([(slot, acts)]);
        while let Some((slot, acts)) = queue.pop_front() {
            for a in acts {
                self.apply(slot, a, &mut queue).await;
            }
        }
        // A lone second connection becomes the main one.
        if self.main.state() == State::Idle
            && let Some((s, c)) = self.extra.take()
        {
            if s.state() == State::Idle {
                return;
            }
            debug!("the colliding connection carries on");
            self.main = s;
            self.conn = Some(c);
        }
        if let Some((s, _)) = &self.extra
            && s.state() == State::Idle
        {
            self.extra = None;
        }
    }

    async fn apply(
        &mut self,
        slot: Slot,
        a: Action,
        queue: &mut std::collections::VecDeque<(Slot, Vec<Action>)>,
    ) {
        match a {
            Action::Connect => {
                if slot == Slot::Main {
                    self.conn = None;
                    let cfg = self.cfg.clone();
                    let las = self.inst.config.local_as.get();
                    self.dial = Some(Box::pin(async move { transport::dial(&cfg, las).await }));
                }
            }
            Action::Disconnect => match slot {
                Slot::Main => {
                    self.dial = None;
                    if let Some(mut c) = self.conn.take() {
                        flush(&mut c).await;
                    }
                }
                Slot::Extra => {
                    // The session stays until it is Idle (then `feed` drops it).
                    if let Some((_, c)) = self.extra.as_mut() {
                        flush(c).await;
                    }
                }
            },
            Action::Send(m) => {
                let is_keepalive = m == Message::Keepalive;
                if let Some(c) = self.conn_mut(slot) {
                    let enc = c.enc;
                    if let Err(e) = m.encode(&enc, &mut c.out) {
                        warn!(error = %e, "cannot encode message");
                    }
                }
                if !is_keepalive {
                    debug!(message = ?m.type_code(), "sent");
                }
                self.set_status(|s| s.sent += 1);
            }
            Action::SendUpdates(v) => {
                let n = v.len() as u64;
                if let Some(c) = self.conn_mut(slot) {
                    for b in v {
                        c.out.extend_from_slice(&b);
                    }
                }
                self.set_status(|s| s.sent += n);
            }
            Action::StateChange { from, to } => {
                if slot == Slot::Main {
                    info!(from = from.name(), to = to.name(), "state changed");
                    self.set_status(|s| s.state = Some(to));
                    self.event(PeerEventKind::StateChanged { from, to });
                }
                if to == State::OpenConfirm {
                    self.collide(slot, queue);
                }
            }
            Action::OpenAccepted(info) => {
                // Be liberal in what we accept: some speakers (GoBGP 3.10 on IPv6 sessions)
                // send IPv4 routes with IPv6 next hops (RFC 8950) without the capability
                // exchange; the RIB handles them, and they are never passed on to a peer that
                // cannot take them (see rib::export).
                let mut decode = info.negotiated.decode;
                decode.extended_next_hop.insert(Family::IPV4_UNICAST);
                if let Some(c) = self.conn_mut(slot) {
                    c.reader
                        .decoder_mut()
                        .set_contexts(decode, info.negotiated.encode);
                    c.enc = info.negotiated.encode;
                    c.info = Some(*info);
                }
            }
            Action::Established => {
                if slot == Slot::Extra {
                    // Should not happen (collisions resolve at the OPEN), but keep one session.
                    let now = self.now();
                    let acts = self.main.handle(now, Input::OpenCollisionDump);
                    queue.push_back((Slot::Main, acts));
                    return;
                }
                self.established();
            }
            Action::Update(u) => self.update(u, queue),
            Action::RouteRefresh(rr) => self.route_refresh(rr),
            Action::Down {
                reason,
                established,
            } => self.down(slot, reason, established),
        }
    }

    /// RFC 4271 §6.8 once a session has the peer's identifier.
    fn collide(&mut self, slot: Slot, queue: &mut std::collections::VecDeque<(Slot, Vec<Action>)>) {
        let Some((extra, _)) = &self.extra else {
            return;
        };
        let (me, other) = match slot {
            Slot::Main => (&self.main, extra),
            Slot::Extra => (extra, &self.main),
        };
        let (Some(info), Some(initiator)) = (me.info(), me.initiator()) else {
            return;
        };
        let other_state = other.state();
        let verdict = collision::decide(
            initiator,
            other_state == State::Established,
            matches!(other_state, State::OpenSent | State::OpenConfirm),
            self.inst.config.router_id.get(),
            info.peer_id,
            self.inst.config.local_as.get(),
            info.peer_as,
        );
        if let Verdict::Dump(who) = verdict {
            let loser = if who == initiator {
                slot
            } else if slot == Slot::Main {
                Slot::Extra
            } else {
                Slot::Main
            };
            info!(loser = ?loser, "connection collision resolved");
            let now = self.now();
            if let Some(s) = self.session(loser) {
                let acts = s.handle(now, Input::OpenCollisionDump);
                queue.push_back((loser, acts));
            }
        }
    }

    fn established(&mut self) {
        let Some(c) = self.conn.as_ref() else { return };
        let Some(info) = c.info.clone() else { return };
        let (local_sa, remote_sa) = (c.local, c.remote);
        let local = transport::canonical(local_sa.ip());
        let (if4, if6, ll) = transport::interface_addresses(local);
        let (nh4, nh6) = match local {
            IpAddr::V4(a) => (Some(a), self.cfg.next_hop_ipv6.or(if6).map(|g| (g, None))),
            IpAddr::V6(a) => {
                let is_ll = (a.segments()[0] & 0xffc0) == 0xfe80;
                let global = if is_ll { if6.unwrap_or(a) } else { a };
                (
                    self.cfg.next_hop_ipv4.or(if4),
                    Some((global, ll.filter(|l| *l != global))),
                )
            }
        };
        let session = PeerSession {
            ebgp: info.ebgp,
            peer_as: info.peer_as,
            router_id: info.peer_id,
            families: info.families,
            encode: info.negotiated.encode,
            next_hop_v4: nh4.or(self.cfg.next_hop_ipv4),
            next_hop_v6: nh6,
            ipv6_session: local.is_ipv6(),
        };
        // Stale routes of families the peer did not preserve go now (RFC 4724 §4.2).
        let preserved = info.graceful_restart.as_ref().map(|g| g.preserved);
        let gone: Vec<Family> = self
            .stale
            .iter()
            .copied()
            .filter(|f| !preserved.is_some_and(|p| p.contains(*f)))
            .collect();
        for f in gone {
            self.stale.retain(|x| *x != f);
            self.sweep(f, "not preserved by the restarting peer");
        }
        if !self.stale.is_empty() {
            let t = info.graceful_restart.as_ref().map_or(0, |g| g.restart_time);
            self.stale_until = Some(Instant::now() + Duration::from_secs(u64::from(t.max(1))));
        }
        if let Ok(mut rib) = self.inst.rib.lock() {
            rib.peer_up(self.idx, session);
        }
        info!(
            peer_as = info.peer_as,
            hold = info.hold_time,
            keepalive = info.keepalive,
            "established"
        );
        let families: Vec<Family> = info.families.iter().collect();
        let (local, remote) = (local_sa, remote_sa);
        self.set_status(|s| {
            s.established_at = Some((SystemTime::now(), std::time::Instant::now()));
            s.info = Some(info.clone());
            s.local = Some(local);
            s.remote = Some(remote);
        });
        self.event(PeerEventKind::Established {
            peer_as: info.peer_as,
            hold_time: info.hold_time,
            keepalive: info.keepalive,
            families,
        });
        self.want_pull = true;
    }

    fn update(
        &mut self,
        u: crate::wire::Update,
        queue: &mut std::collections::VecDeque<(Slot, Vec<Action>)>,
    ) {
        log_malformations(&u);
        let outcome = match self.inst.rib.lock() {
            Ok(mut rib) => rib.apply_update(self.idx, &u),
            Err(_) => return,
        };
        if outcome.changed {
            self.inst.wake_all();
        }
        if let Some(f) = outcome.end_of_rib {
            debug!(family = %f, "End-of-RIB received");
            if self.stale.contains(&f) {
                self.stale.retain(|x| *x != f);
                self.sweep(f, "End-of-RIB");
                if self.stale.is_empty() {
                    self.stale_until = None;
                }
            }
            self.event(PeerEventKind::EndOfRib { family: f });
        }
        if let Some((f, limit)) = outcome.max_prefix {
            warn!(family = %f, limit, "max-prefix limit reached");
            let mut data = f.afi.to_be_bytes().to_vec();
            data.push(f.safi);
            data.extend_from_slice(&limit.to_be_bytes());
            let n = Notification::new(ErrorCode::Cease, cease::MAXIMUM_PREFIXES_REACHED, data);
            let n = hard_reset(n, self.conn.as_ref().and_then(|c| c.info.as_ref()));
            let restart = match self.cfg.max_prefixes.get(&f).and_then(|m| m.restart_after) {
                Some(s) => Restart::After(Duration::from_secs(u64::from(s))),
                None => Restart::Never,
            };
            self.event(PeerEventKind::MaxPrefixReached { family: f, limit });
            let now = self.now();
            let acts = self.main.handle(
                now,
                Input::AutomaticStop {
                    notification: n,
                    restart,
                },
            );
            queue.push_back((Slot::Main, acts));
        }
    }

    fn route_refresh(&mut self, rr: crate::wire::RouteRefresh) {
        let enhanced = self
            .conn
            .as_ref()
            .and_then(|c| c.info.as_ref())
            .is_some_and(|i| i.enhanced_route_refresh);
        let Ok(mut rib) = self.inst.rib.lock() else {
            return;
        };
        match rr.subtype {
            RouteRefreshSubtype::Request => {
                debug!(family = %rr.family, "route refresh requested");
                rib.route_refresh(self.idx, rr.family, enhanced);
                self.want_pull = true;
            }
            RouteRefreshSubtype::BeginningOfRouteRefresh => {
                rib.mark_stale(self.idx, rr.family);
            }
            RouteRefreshSubtype::EndOfRouteRefresh => {
                if rib.sweep_stale(self.idx, rr.family) > 0 {
                    drop(rib);
                    self.inst.wake_all();
                }
            }
            RouteRefreshSubtype::Reserved(_) => {}
        }
    }

    fn down(&mut self, slot: Slot, reason: DownReason, established: bool) {
        let dial_error = self.dial_error.take();
        let text = match (&reason, dial_error) {
            (DownReason::ConnectionLost, Some(e)) if !established => e,
            _ => reason.describe(),
        };
        if slot == Slot::Extra || !established {
            debug!(reason = %text, "connection ended");
            if slot == Slot::Main && !matches!(reason, DownReason::Stopped) {
                self.set_status(|s| s.last_error = Some(text.clone()));
            }
            if slot == Slot::Main {
                self.event(PeerEventKind::Down {
                    reason: text,
                    graceful: false,
                    established: false,
                });
            }
            return;
        }
        let info = self
            .conn
            .as_ref()
            .and_then(|c| c.info.clone())
            .or_else(|| self.status.lock().ok().and_then(|s| s.info.clone()));
        let graceful = !self.stopping && info.as_ref().is_some_and(|i| keeps_routes(&reason, i));
        let keep = match (&info, graceful) {
            (Some(i), true) => i
                .graceful_restart
                .as_ref()
                .map_or(crate::wire::FamilySet::EMPTY, |g| {
                    g.families.intersection(i.families)
                }),
            _ => crate::wire::FamilySet::EMPTY,
        };
        let changed = match self.inst.rib.lock() {
            Ok(mut rib) => rib.peer_down(self.idx, keep),
            Err(_) => false,
        };
        if changed {
            self.inst.wake_all();
        }
        if graceful {
            self.stale = keep.iter().collect();
            let t = info
                .as_ref()
                .and_then(|i| i.graceful_restart.as_ref())
                .map_or(0, |g| g.restart_time);
            self.stale_until = Some(Instant::now() + Duration::from_secs(u64::from(t)));
            info!(reason = %text, restart_time = t, "session down, keeping the peer's routes stale");
        } else {
            info!(reason = %text, "session down");
        }
        self.conn = None;
        self.want_pull = false;
        self.set_status(|s| {
            s.established_at = None;
            s.info = None;
            if !matches!(reason, DownReason::Stopped) {
                s.last_error = Some(text.clone());
            }
            s.flaps += 1;
        });
        self.event(PeerEventKind::Down {
            reason: text,
            graceful,
            established: true,
        });
    }

    async fn pull(&mut self) {
        let msgs = match self.inst.rib.lock() {
            Ok(mut rib) => rib.take_updates(self.idx, PULL_BUDGET),
            Err(_) => return,
        };
        match msgs {
            Ok(m) if m.is_empty() => self.want_pull = false,
            Ok(m) => self.feed(Slot::Main, Input::SendUpdates(m)).await,
            Err(e) => {
                warn!(error = %e, "cannot encode UPDATEs");
                self.set_status(|s| s.last_error = Some(format!("encoding UPDATEs: {e}")));
                self.want_pull = false;
            }
        }
    }
}

/// One line per UPDATE that RFC 7606 lets the session survive (treat-as-withdraw or
/// attribute-discard): no NOTIFICATION tells the peer, so the log is the only trace.
fn log_malformations(u: &crate::wire::Update) {
    use crate::wire::Rfc7606Action;
    let Some(action) = u.rfc7606_action() else {
        return;
    };
    let errors = u
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    match action {
        Rfc7606Action::TreatAsWithdraw => warn!(
            prefixes = u.withdrawn_routes().count(),
            %errors,
            "malformed UPDATE: its prefixes are treated as withdrawn (RFC 7606)"
        ),
        _ => warn!(
            discarded = ?u.discarded_attributes().collect::<Vec<_>>(),
            %errors,
            "malformed UPDATE: attributes discarded, prefixes kept (RFC 7606)"
        ),
    }
}

async fn flush(c: &mut Conn) {
    if !c.out.is_empty() {
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, c.writer.write_all(&c.out)).await;
    }
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, c.writer.shutdown()).await;
}

#[cfg(test)]
mod hard_reset_tests {
    use super::*;

    #[test]
    fn a_bfd_down_cease_is_a_hard_reset_when_the_n_bit_was_exchanged() {
        let bfd = Notification::new(ErrorCode::Cease, cease::BFD_DOWN, Vec::new());
        let wrapped = wrap_in_hard_reset(bfd.clone(), true);
        assert_eq!(wrapped.subcode, cease::HARD_RESET);
        assert_eq!(wrapped.data, vec![ErrorCode::Cease as u8, cease::BFD_DOWN]);
        assert_eq!(wrap_in_hard_reset(bfd.clone(), false), bfd);
    }

    #[test]
    fn other_ceases_stay_as_they_are_so_the_peer_may_keep_our_routes() {
        let other = Notification::new(ErrorCode::Cease, cease::OTHER_CONFIGURATION_CHANGE, vec![]);
        assert_eq!(wrap_in_hard_reset(other.clone(), true), other);
    }
}
