//! BFD sessions for the BGP peers that ask for one, and what their failure does to BGP.
//!
//! [`BfdManager::start`] binds the control port and runs one task for every session (a
//! `select!` over the listeners, the next deadline of any session and a command channel).
//! [`BfdManager::set_peers`] is level-triggered: the peers given are the peers served.
//! Several BGP peers on the same path (remote, local address, interface) share one session.
//!
//! What a session's state does to BGP (RFC 5882):
//! - **Up → Down** because the detection time passed or the remote said Down: every BGP peer
//!   of that path is reset at once through [`BfdClient::session_down`] (for the speaker:
//!   [`Speaker::reset_peer`] with [`ResetReason::BfdDown`], Cease / BFD Down of RFC 9384, when
//!   the session is Established). BGP then restarts by itself, with its own damped idle hold.
//! - **Up → Down because the remote said AdminDown** (its operator, or its BFD being turned
//!   off): nothing happens to BGP (RFC 5882 §3.2).
//! - **Never Up** (the peer runs no BFD, or it is misconfigured): nothing happens to BGP;
//!   the session keeps trying at the slow rate.
//! - BGP is **not held down while BFD is Down**. Holding it would turn a BFD-only problem
//!   (BFD filtered, a peer that stopped running BFD) into a BGP outage, and when the path is
//!   really down TCP cannot connect anyway. A path that flaps is handled by flap damping
//!   instead: after a failure beyond the free ones the BFD session is held Down (2, 4, ... 120 s
//!   by default), so it cannot take BGP down again until it has been stable; meanwhile BGP,
//!   if it re-establishes, is guarded by its hold timer only.
//!
//! [`Speaker::reset_peer`]: crate::speaker::Speaker::reset_peer
//! [`ResetReason::BfdDown`]: crate::speaker::ResetReason::BfdDown

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::damping::DampingConfig;
use super::packet::{BfdState, ControlPacket, Diagnostic};
use super::session::{Action, Input, SLOW_TX, Session, SessionConfig, SessionStatus};
use super::transport::{CONTROL_PORT, Listener, Received, Sender};
use crate::fsm::State;
use crate::speaker::{PeerConfig, ResetReason, Speaker};

/// What the manager refuses, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BfdError {
    /// A profile value out of range.
    #[error("BFD profile: {0}")]
    Profile(String),
    /// A peer that single-hop BFD cannot serve.
    #[error("BFD for peer {peer:?}: {message}")]
    Peer {
        /// The BGP peer.
        peer: String,
        /// Why.
        message: String,
    },
    /// No listening socket could be opened.
    #[error("cannot listen for BFD on port {port}: {source}")]
    Listen {
        /// The port.
        port: u16,
        /// Why (the last failure).
        source: std::io::Error,
    },
    /// The manager's task has ended.
    #[error("the BFD manager is stopped")]
    Stopped,
}

/// How a session's timers are set (the `BFDProfile` resource carries these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct BfdProfile {
    /// bfd.DesiredMinTxInterval once Up, milliseconds in files.
    #[serde(with = "super::millis")]
    pub transmit_interval: Duration,
    /// bfd.RequiredMinRxInterval.
    #[serde(with = "super::millis")]
    pub receive_interval: Duration,
    /// bfd.DetectMult.
    pub detect_multiplier: u8,
    /// Wait for the remote to speak first.
    pub passive: bool,
    /// Flap damping.
    pub damping: DampingConfig,
}

impl Default for BfdProfile {
    /// 300 ms x 3, active, damping on (the defaults of issue 13 and of FRR's bfdd).
    fn default() -> BfdProfile {
        BfdProfile {
            transmit_interval: Duration::from_millis(300),
            receive_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            passive: false,
            damping: DampingConfig::default(),
        }
    }
}

/// Shortest interval accepted (FRR's bfdd has the same bounds).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl BfdProfile {
    /// Intervals 10 ms to 60 s, multiplier 1 to 255, damping holds not shorter than 0 and the
    /// maximum not below the initial.
    pub fn validate(&self) -> Result<(), BfdError> {
        for (name, v) in [
            ("transmit-interval", self.transmit_interval),
            ("receive-interval", self.receive_interval),
        ] {
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&v) {
                return Err(BfdError::Profile(format!(
                    "{name} {} ms must be between 10 ms and 60000 ms",
                    v.as_millis()
                )));
            }
        }
        if self.detect_multiplier == 0 {
            return Err(BfdError::Profile(
                "detect-multiplier must be between 1 and 255".into(),
            ));
        }
        let d = &self.damping;
        if d.max_hold < d.initial_hold {
            return Err(BfdError::Profile(format!(
                "damping max-hold {} ms is below initial-hold {} ms",
                d.max_hold.as_millis(),
                d.initial_hold.as_millis()
            )));
        }
        Ok(())
    }

    /// The detection time this profile gives when the remote uses the same values.
    pub fn detection_time(&self) -> Duration {
        self.transmit_interval
            .max(self.receive_interval)
            .saturating_mul(u32::from(self.detect_multiplier))
    }
}

/// One BGP peer that wants BFD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BfdPeer {
    /// The speaker instance.
    pub instance: String,
    /// The BGP peer's name in it.
    pub peer: String,
    /// The remote address (the BGP peer's).
    pub remote: IpAddr,
    /// Our address on the path (the kernel's choice when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    /// The interface (required for IPv6 link-local remotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The remote's control port (3784; tests on one loopback use others).
    #[serde(default = "control_port")]
    pub remote_port: u16,
    /// Timers and damping.
    #[serde(default)]
    pub profile: BfdProfile,
}

fn control_port() -> u16 {
    CONTROL_PORT
}

impl BfdPeer {
    /// BFD toward a configured BGP peer: its address, its local address. Refused for a
    /// multihop eBGP peer (`ebgp_multihop` above 1): multihop BFD (RFC 5883) is not
    /// implemented, and single-hop packets would be discarded by a multihop session.
    pub fn for_bgp_peer(
        instance: &str,
        peer: &PeerConfig,
        profile: BfdProfile,
    ) -> Result<BfdPeer, BfdError> {
        if peer.ebgp_multihop.is_some_and(|t| t > 1) {
            return Err(BfdError::Peer {
                peer: peer.name.clone(),
                message: "multihop BFD (RFC 5883) is not implemented; the peer has ebgp-multihop"
                    .into(),
            });
        }
        profile.validate()?;
        Ok(BfdPeer {
            instance: instance.to_owned(),
            peer: peer.name.clone(),
            remote: peer.address,
            local: peer.local_address,
            interface: None,
            remote_port: CONTROL_PORT,
            profile,
        })
    }
}

/// The manager's sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct BfdManagerConfig {
    /// The control port to listen on (3784).
    pub port: u16,
    /// Addresses to listen on: the wildcard of each family by default. A family that cannot
    /// be bound (no IPv6 in the kernel) is skipped with a warning; none at all is an error.
    pub listen_addresses: Vec<IpAddr>,
}

impl Default for BfdManagerConfig {
    fn default() -> BfdManagerConfig {
        BfdManagerConfig {
            port: CONTROL_PORT,
            listen_addresses: vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        }
    }
}

/// Who is told when a session fails: the BGP speaker, or a test's recorder.
pub trait BfdClient: Send + Sync + 'static {
    /// The BFD session of this BGP peer went from Up to Down (not by the remote's AdminDown).
    fn session_down<'a>(
        &'a self,
        instance: &'a str,
        peer: &'a str,
        diag: Diagnostic,
    ) -> BoxFuture<'a, ()>;
}

impl BfdClient for Speaker {
    /// Resets the BGP session with Cease / BFD Down when it is Established.
    fn session_down<'a>(
        &'a self,
        instance: &'a str,
        peer: &'a str,
        diag: Diagnostic,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match self.peer_state(instance, peer).await {
                Ok(s) if s.state == State::Established => {
                    match self.reset_peer(instance, peer, ResetReason::BfdDown).await {
                        Ok(()) => info!(instance, peer, %diag, "BFD down: BGP session reset"),
                        Err(e) => warn!(instance, peer, error = %e, "BFD down: reset failed"),
                    }
                }
                Ok(s) => debug!(
                    instance,
                    peer,
                    state = s.state.name(),
                    "BFD down: BGP not up"
                ),
                Err(e) => warn!(instance, peer, error = %e, "BFD down for an unknown BGP peer"),
            }
        })
    }
}

/// A BGP peer served by a session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BgpPeerRef {
    /// Instance.
    pub instance: String,
    /// Peer.
    pub peer: String,
}

/// One session as `lbspeaker bfd` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BfdSessionInfo {
    /// The remote address.
    pub remote: IpAddr,
    /// Our address, when configured.
    pub local: Option<IpAddr>,
    /// The interface, when configured.
    pub interface: Option<String>,
    /// Our source port.
    pub source_port: Option<u16>,
    /// The BGP peers it serves.
    pub clients: Vec<BgpPeerRef>,
    /// Its profile.
    pub profile: BfdProfile,
    /// The state machine's view (times in it are the manager's clock, microseconds).
    pub status: SessionStatus,
    /// How long it has been Up.
    #[serde(with = "opt_millis")]
    pub up_for: Option<Duration>,
    /// How long damping still holds it Down.
    #[serde(with = "opt_millis")]
    pub held_for: Option<Duration>,
    /// BGP resets it caused.
    pub bgp_resets: u32,
    /// Why it cannot send (its socket could not be opened), if so.
    pub error: Option<String>,
}

mod opt_millis {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }
}

/// Something that happened to a session.
#[derive(Debug, Clone, Serialize)]
pub struct BfdEvent {
    /// The remote address.
    pub remote: IpAddr,
    /// The BGP peers of the session.
    pub clients: Vec<BgpPeerRef>,
    /// When (wall clock).
    pub at: SystemTime,
    /// What.
    pub kind: BfdEventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum BfdEventKind {
    /// A state change.
    StateChanged {
        /// Before.
        from: BfdState,
        /// After.
        to: BfdState,
        /// Our diagnostic.
        diag: Diagnostic,
    },
    /// Damping holds the session Down.
    HeldDown {
        /// For this long, milliseconds.
        ms: u64,
    },
    /// The BGP peers were told (reset).
    BgpReset,
}

/// Receive-side counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BfdCounters {
    /// Datagrams with a TTL other than 255 (RFC 5881 §5).
    pub bad_ttl: u64,
    /// Datagrams that are no valid Control packet.
    pub malformed: u64,
    /// Valid packets that match no session.
    pub unknown_session: u64,
    /// Packets that could not be sent.
    pub send_errors: u64,
}

enum Command {
    SetPeers(Vec<BfdPeer>, oneshot::Sender<()>),
    Sessions(oneshot::Sender<(Vec<BfdSessionInfo>, BfdCounters)>),
    Shutdown(oneshot::Sender<()>),
}

/// The handle (cheap to clone); the task ends with [`BfdManager::shutdown`] or when every
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct BfdManager {
    cmd: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<BfdEvent>,
    listening: Vec<SocketAddr>,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl BfdManager {
    /// Binds the control port and starts the task; `client` is told about failures.
    pub fn start(
        config: BfdManagerConfig,
        client: Arc<dyn BfdClient>,
    ) -> Result<BfdManager, BfdError> {
        let mut listeners = Vec::new();
        let mut last = None;
        for a in &config.listen_addresses {
            match Listener::bind(SocketAddr::new(*a, config.port)) {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    warn!(address = %a, port = config.port, error = %e, "cannot listen for BFD");
                    last = Some(e);
                }
            }
        }
        if listeners.is_empty() {
            return Err(BfdError::Listen {
                port: config.port,
                source: last.unwrap_or_else(|| std::io::Error::other("no listen address")),
            });
        }
        let listening = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let (cmd, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let seed = RandomState::new().hash_one(SystemTime::now());
        let task = Task {
            epoch: Instant::now(),
            entries: BTreeMap::new(),
            client,
            events: events.clone(),
            rng: seed | 1,
            counters: BfdCounters::default(),
        };
        let handle = tokio::spawn(task.run(listeners, rx));
        Ok(BfdManager {
            cmd,
            events,
            listening,
            task: Arc::new(std::sync::Mutex::new(Some(handle))),
        })
    }

    /// Where the control port is bound.
    pub fn listening(&self) -> &[SocketAddr] {
        &self.listening
    }

    /// Makes these the peers served: sessions are created, updated (new timers start a Poll
    /// Sequence) and removed (AdminDown is sent first). Nothing changes when one is invalid.
    pub async fn set_peers(&self, peers: Vec<BfdPeer>) -> Result<(), BfdError> {
        for p in &peers {
            p.profile.validate()?;
            if let IpAddr::V6(a) = p.remote
                && a.is_unicast_link_local()
                && p.interface.is_none()
            {
                return Err(BfdError::Peer {
                    peer: p.peer.clone(),
                    message: format!("link-local remote {a} needs an interface"),
                });
            }
        }
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::SetPeers(peers, tx))
            .map_err(|_| BfdError::Stopped)?;
        rx.await.map_err(|_| BfdError::Stopped)
    }

    /// Every session.
    pub async fn sessions(&self) -> Result<Vec<BfdSessionInfo>, BfdError> {
        Ok(self.sessions_and_counters().await?.0)
    }

    /// Every session, and the receive counters.
    pub async fn sessions_and_counters(
        &self,
    ) -> Result<(Vec<BfdSessionInfo>, BfdCounters), BfdError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Sessions(tx))
            .map_err(|_| BfdError::Stopped)?;
        rx.await.map_err(|_| BfdError::Stopped)
    }

    /// State changes, hold-downs and BGP resets (1024 buffered).
    pub fn subscribe(&self) -> broadcast::Receiver<BfdEvent> {
        self.events.subscribe()
    }

    /// Sends AdminDown on every session (the peers' BGP must not take that as a failure) and
    /// ends the task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
    }
}

impl BfdManager {
    /// Ends the task at once, telling no peer: what a crash of this process looks like to
    /// them (tests and benchmarks use it; the daemon calls [`BfdManager::shutdown`]).
    pub fn kill(&self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

type Key = (IpAddr, Option<IpAddr>, Option<String>);

struct Entry {
    clients: BTreeSet<BgpPeerRef>,
    profile: BfdProfile,
    remote_port: u16,
    session: Session,
    sender: Option<Sender>,
    ifindex: Option<u32>,
    error: Option<String>,
    retry_at: Option<Duration>,
    bgp_resets: u32,
}

impl Entry {
    fn deadline(&self) -> Option<Duration> {
        match (self.session.next_deadline(), self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

struct Task {
    epoch: Instant,
    entries: BTreeMap<Key, Entry>,
    client: Arc<dyn BfdClient>,
    events: broadcast::Sender<BfdEvent>,
    rng: u64,
    counters: BfdCounters,
}

async fn recv_on(l: Option<&Listener>, buf: &mut [u8]) -> std::io::Result<Received> {
    match l {
        Some(l) => l.recv(buf).await,
        None => std::future::pending().await,
    }
}

fn session_config(discr: u32, p: &BfdProfile) -> SessionConfig {
    SessionConfig {
        local_discriminator: discr,
        desired_min_tx: p.transmit_interval,
        required_min_rx: p.receive_interval,
        detect_mult: p.detect_multiplier,
        passive: p.passive,
        slow_tx: SLOW_TX,
        damping: p.damping,
        jitter_seed: u64::from(discr),
    }
}

impl Task {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// A non-zero discriminator no session has (§6.8.1: unique, and random helps).
    fn new_discriminator(&mut self) -> u32 {
        loop {
            let d = (self.random() >> 16) as u32;
            if d != 0
                && self
                    .entries
                    .values()
                    .all(|e| e.session.local_discriminator() != d)
            {
                return d;
            }
        }
    }

    async fn run(mut self, listeners: Vec<Listener>, mut rx: mpsc::UnboundedReceiver<Command>) {
        let v4 = listeners
            .iter()
            .find(|l| l.local_addr().is_ok_and(|a| a.is_ipv4()));
        let v6 = listeners
            .iter()
            .find(|l| l.local_addr().is_ok_and(|a| a.is_ipv6()));
        let mut buf4 = [0u8; 128];
        let mut buf6 = [0u8; 128];
        loop {
            let deadline = self
                .entries
                .values()
                .filter_map(Entry::deadline)
                .min()
                .map(|d| self.epoch + d);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                c = rx.recv() => match c {
                    Some(Command::SetPeers(peers, done)) => {
                        self.set_peers(peers);
                        let _ = done.send(());
                    }
                    Some(Command::Sessions(reply)) => {
                        let _ = reply.send((self.infos(), self.counters));
                    }
                    Some(Command::Shutdown(done)) => {
                        self.shutdown();
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.shutdown();
                        return;
                    }
                },
                r = recv_on(v4, &mut buf4) => self.received(r, &buf4),
                r = recv_on(v6, &mut buf6) => self.received(r, &buf6),
                () = sleep => self.tick(),
            }
        }
    }

    fn received(&mut self, r: std::io::Result<Received>, buf: &[u8]) {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "BFD receive failed");
                return;
            }
        };
        if !r.single_hop() {
            self.counters.bad_ttl += 1;
            debug!(from = %r.from, ttl = ?r.ttl, "BFD packet with a TTL other than 255 discarded");
            return;
        }
        let data = buf.get(..r.len).unwrap_or(buf);
        let p = match ControlPacket::decode(data) {
            Ok(p) => p,
            Err(e) => {
                self.counters.malformed += 1;
                debug!(from = %r.from, error = %e, "BFD packet discarded");
                return;
            }
        };
        let Some(key) = self.demux(&r, &p) else {
            self.counters.unknown_session += 1;
            debug!(from = %r.from, discr = p.your_discriminator, "BFD packet for no session");
            return;
        };
        let now = self.now();
        if let Some(e) = self.entries.get_mut(&key) {
            let actions = e.session.handle(now, Input::Packet(p));
            self.apply(&key, actions);
        }
    }

    /// RFC 5880 §6.8.6: by Your Discriminator when set, else by source address (and the
    /// interface and destination, when the session is bound to them).
    fn demux(&self, r: &Received, p: &ControlPacket) -> Option<Key> {
        if p.your_discriminator != 0 {
            return self
                .entries
                .iter()
                .find(|(_, e)| e.session.local_discriminator() == p.your_discriminator)
                .map(|(k, _)| k.clone());
        }
        let from = match r.from.ip() {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
            a => a,
        };
        self.entries
            .iter()
            .find(|((remote, local, _), e)| {
                *remote == from
                    && (e.ifindex.is_none() || e.ifindex == r.ifindex)
                    && (local.is_none() || *local == r.to)
            })
            .map(|(k, _)| k.clone())
    }

    fn tick(&mut self) {
        let now = self.now();
        let due: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.retry_at.is_some_and(|t| t <= now) {
                e.retry_at = None;
                Self::open_sender(&key, e, now, self.rng >> 7);
            }
            if e.session.next_deadline().is_some_and(|d| d <= now) {
                let actions = e.session.handle(now, Input::Tick);
                self.apply(&key, actions);
            }
        }
    }

    fn open_sender(key: &Key, e: &mut Entry, now: Duration, seed: u64) {
        let (remote, local, interface) = key;
        e.ifindex = interface
            .as_deref()
            .and_then(|i| nix::net::if_::if_nametoindex(i).ok());
        let to = match (remote, e.ifindex) {
            (IpAddr::V6(a), Some(idx)) => {
                SocketAddr::V6(SocketAddrV6::new(*a, e.remote_port, 0, idx))
            }
            (a, _) => SocketAddr::new(*a, e.remote_port),
        };
        match Sender::open(*local, to, interface.as_deref(), seed) {
            Ok(s) => {
                debug!(%remote, source = ?s.local_addr().ok(), "BFD session socket open");
                e.sender = Some(s);
                e.error = None;
            }
            Err(err) => {
                warn!(%remote, error = %err, "cannot open the BFD session's socket; retrying in 5 s");
                e.error = Some(err.to_string());
                e.retry_at = Some(now + Duration::from_secs(5));
            }
        }
    }

    fn apply(&mut self, key: &Key, actions: Vec<Action>) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let clients: Vec<BgpPeerRef> = e.clients.iter().cloned().collect();
        let remote = key.0;
        let mut events = Vec::new();
        for a in actions {
            match a {
                Action::Send(p) => match &e.sender {
                    Some(s) => {
                        if let Err(err) = s.send(&p) {
                            self.counters.send_errors += 1;
                            debug!(%remote, error = %err, "BFD send failed");
                        }
                    }
                    None => self.counters.send_errors += 1,
                },
                Action::StateChange { from, to, diag } => {
                    info!(%remote, %from, %to, %diag, "BFD session state");
                    events.push(BfdEventKind::StateChanged { from, to, diag });
                    let remote_admin_down =
                        e.session.status(Duration::ZERO).remote_state == BfdState::AdminDown;
                    if from == BfdState::Up
                        && to == BfdState::Down
                        && !remote_admin_down
                        && diag != Diagnostic::AdministrativelyDown
                    {
                        e.bgp_resets = e.bgp_resets.saturating_add(1);
                        events.push(BfdEventKind::BgpReset);
                        for c in &clients {
                            let client = self.client.clone();
                            let c = c.clone();
                            tokio::spawn(async move {
                                client.session_down(&c.instance, &c.peer, diag).await;
                            });
                        }
                    }
                }
                Action::HeldDown(d) => {
                    warn!(%remote, hold_ms = d.as_millis() as u64, "BFD session flapping: held down");
                    events.push(BfdEventKind::HeldDown {
                        ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                    });
                }
            }
        }
        for kind in events {
            let _ = self.events.send(BfdEvent {
                remote,
                clients: clients.clone(),
                at: SystemTime::now(),
                kind,
            });
        }
    }

    fn set_peers(&mut self, peers: Vec<BfdPeer>) {
        let now = self.now();
        let mut wanted: BTreeMap<Key, (BTreeSet<BgpPeerRef>, BfdProfile, u16)> = BTreeMap::new();
        for p in peers {
            let key = (p.remote, p.local, p.interface.clone());
            let client = BgpPeerRef {
                instance: p.instance.clone(),
                peer: p.peer.clone(),
            };
            let w = wanted
                .entry(key)
                .or_insert_with(|| (BTreeSet::new(), p.profile, p.remote_port));
            if w.1 != p.profile {
                warn!(remote = %p.remote, peer = %p.peer, "peers on one BFD path ask for different profiles; the first one is used");
            }
            w.0.insert(client);
        }
        let gone: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(e) = self.entries.get_mut(&key) {
                info!(remote = %key.0, "BFD session removed");
                let actions = e.session.handle(now, Input::AdminDown);
                self.apply(&key, actions);
            }
            self.entries.remove(&key);
        }
        for (key, (clients, profile, port)) in wanted {
            let rebuild = self
                .entries
                .get(&key)
                .is_some_and(|e| e.profile.passive != profile.passive || e.remote_port != port);
            if rebuild {
                self.entries.remove(&key);
            }
            if let Some(e) = self.entries.get_mut(&key) {
                e.clients = clients;
                if e.profile != profile {
                    e.profile = profile;
                    let mut actions = e.session.handle(
                        now,
                        Input::SetTimers {
                            desired_min_tx: profile.transmit_interval,
                            required_min_rx: profile.receive_interval,
                            detect_mult: profile.detect_multiplier,
                        },
                    );
                    actions.extend(e.session.handle(now, Input::SetDamping(profile.damping)));
                    self.apply(&key, actions);
                }
                continue;
            }
            let discr = self.new_discriminator();
            let seed = self.random();
            let mut e = Entry {
                clients,
                profile,
                remote_port: port,
                session: Session::new(session_config(discr, &profile), now),
                sender: None,
                ifindex: None,
                error: None,
                retry_at: None,
                bgp_resets: 0,
            };
            Self::open_sender(&key, &mut e, now, seed);
            info!(remote = %key.0, local = ?key.1, discr, "BFD session created");
            self.entries.insert(key, e);
        }
    }

    fn infos(&self) -> Vec<BfdSessionInfo> {
        let now = self.now();
        self.entries
            .iter()
            .map(|((remote, local, interface), e)| {
                let status = e.session.status(now);
                BfdSessionInfo {
                    remote: *remote,
                    local: *local,
                    interface: interface.clone(),
                    source_port: e
                        .sender
                        .as_ref()
                        .and_then(|s| s.local_addr().ok())
                        .map(|a| a.port()),
                    clients: e.clients.iter().cloned().collect(),
                    profile: e.profile,
                    up_for: status.up_since.map(|t| now.saturating_sub(t)),
                    held_for: status.held_until.map(|t| t.saturating_sub(now)),
                    status,
                    bgp_resets: e.bgp_resets,
                    error: e.error.clone(),
                }
            })
            .collect()
    }

    fn shutdown(&mut self) {
        let now = self.now();
        let keys: Vec<Key> = self.entries.keys().cloned().collect();
        for key in keys {
            if let Some(e) = self.entries.get_mut(&key) {
                let actions = e.session.handle(now, Input::AdminDown);
                self.apply(&key, actions);
            }
        }
        self.entries.clear();
    }
}
