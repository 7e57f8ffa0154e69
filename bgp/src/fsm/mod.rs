//! One BGP connection's finite state machine (RFC 4271 §8), sans-IO.
//!
//! ```text
//!            ManualStart / AutomaticStart          TCP up, OPEN sent
//!   Idle ─────────────────────────────► Connect ──────────────────► OpenSent
//!    ▲  ◄── IdleHoldTimer (auto restart)   │ ▲ ConnectRetryTimer       │ OPEN ok,
//!    │                                     ▼ │                         ▼ KEEPALIVE sent
//!    │        any error: NOTIFICATION,   Active ──────────────────► OpenConfirm
//!    └────────── close, Down ◄────────────────────────────────────────┤ KEEPALIVE
//!                                                                    ▼
//!                                                               Established
//! ```
//!
//! A [`Session`] has no sockets, no clock and no tokio: the driver feeds it [`Input`]s with the
//! current time (a [`Duration`] since an epoch of its choosing) and carries out the
//! [`Action`]s it returns; [`Session::next_deadline`] says when to come back with
//! [`Input::Tick`]. Every state handles every event of §8.1 as §8.2.2 says, with these
//! choices where the RFC leaves room:
//!
//! - Automatic restart is the IdleHoldTimer (events 6/7/13, "DampPeerOscillations"): after a
//!   failure the session waits in Idle, for the connect-retry time after a failed connection
//!   and for `idle_hold` doubled per consecutive failure (up to `idle_hold_max`) after a
//!   failed session, then starts again. [`Input::ManualStop`] ends that.
//! - A [`SessionConfig::passive`] session never dials: ConnectRetryTimer expiry in Active just
//!   restarts the timer.
//! - Header and OPEN errors in Established send their own NOTIFICATION (RFC 4271 §6.1, §6.2)
//!   rather than a Finite State Machine Error.
//! - UPDATEs to send come in as [`Input::SendUpdates`] and leave as [`Action::SendUpdates`]
//!   only in Established; in any other state they are dropped. The FSM never emits an UPDATE
//!   outside Established, whatever the input sequence.
//!
//! Each connection has its own `Session`; when both sides dial, the driver holds two and
//! [`collision`] decides which one gets [`Input::OpenCollisionDump`].

pub mod collision;
mod open;
mod states;
mod timers;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

pub use collision::Initiator;
pub use open::{PeerGracefulRestart, SessionInfo};
pub use timers::Timer;

use crate::wire::{
    DecodeError, ErrorCode, FamilySet, Message, Notification, Open, RouteRefresh, Update,
};
use timers::{Jitter, Timers};

/// The six states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Refusing connections; waiting for a start event.
    Idle,
    /// Dialling the peer.
    Connect,
    /// Waiting for the peer to connect (or for the next dial).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// UPDATEs flow.
    Established,
}

impl State {
    /// Lower-case name, as `cilium bgp peers` shows it.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connect => "connect",
            State::Active => "active",
            State::OpenSent => "opensent",
            State::OpenConfirm => "openconfirm",
            State::Established => "established",
        }
    }
}

/// Graceful restart as we offer it (RFC 4724, RFC 8538).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GracefulRestartCapability {
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Set N (RFC 8538).
    pub notification: bool,
    /// Set F for every family: our forwarding state survives a restart of this process.
    pub forwarding_preserved: bool,
}

/// What one session needs to know. Built by the speaker from a validated `PeerConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's AS; 0 accepts any.
    pub peer_as: u32,
    /// Hold time we propose (0 or at least 3).
    pub hold_time: u16,
    /// Keepalive interval wanted; `None` means a third of the hold time.
    pub keepalive: Option<u16>,
    /// ConnectRetryTime.
    pub connect_retry: Duration,
    /// The "large value" of the HoldTimer in OpenSent (RFC 4271 suggests 4 minutes).
    pub open_hold_time: Duration,
    /// DelayOpenTime, when DelayOpen is on.
    pub delay_open: Option<Duration>,
    /// First automatic restart delay after a failed session.
    pub idle_hold: Duration,
    /// Largest automatic restart delay (damping doubles `idle_hold` up to this).
    pub idle_hold_max: Duration,
    /// Never dial; only accept (PassiveTcpEstablishment).
    pub passive: bool,
    /// Families offered (multiprotocol capabilities).
    pub families: FamilySet,
    /// IPv4 families for which we offer IPv6 next hops (RFC 8950).
    pub extended_next_hop: FamilySet,
    /// Offer extended messages (RFC 8654).
    pub extended_message: bool,
    /// Offer graceful restart.
    pub graceful_restart: Option<GracefulRestartCapability>,
    /// Set the R bit in the first OPEN of this session (we have just restarted).
    pub restarting: bool,
    /// SendNOTIFICATIONwithoutOPEN (RFC 4271 §8.1.1).
    pub send_notification_without_open: bool,
    /// Seed of the timer jitter.
    pub jitter_seed: u64,
}

impl SessionConfig {
    /// A configuration with the RFC's and Cilium's defaults (hold 90 s, connect retry 120 s,
    /// IPv4 and IPv6 unicast).
    pub fn new(local_as: u32, router_id: Ipv4Addr, peer_as: u32) -> SessionConfig {
        SessionConfig {
            local_as,
            router_id,
            peer_as,
            hold_time: 90,
            keepalive: None,
            connect_retry: Duration::from_secs(120),
            open_hold_time: Duration::from_secs(240),
            delay_open: None,
            idle_hold: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(60),
            passive: false,
            families: FamilySet::of(&[
                crate::wire::Family::IPV4_UNICAST,
                crate::wire::Family::IPV6_UNICAST,
            ]),
            extended_next_hop: FamilySet::EMPTY,
            extended_message: true,
            graceful_restart: None,
            restarting: false,
            send_notification_without_open: false,
            jitter_seed: 0,
        }
    }
}

/// When to start again after going Idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Restart {
    /// After the damped idle hold time.
    Damped,
    /// After this long.
    After(Duration),
    /// Not until the next start event.
    Never,
}

/// What happens to the session: RFC 4271 §8.1 events, as the driver sees them.
// UPDATEs are the common case: boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Events 1 and 4: start (listen only when `passive`).
    ManualStart {
        /// PassiveTcpEstablishment.
        passive: bool,
    },
    /// Events 3, 5, 6 and 7: automatic start, optionally through the IdleHoldTimer.
    AutomaticStart {
        /// PassiveTcpEstablishment.
        passive: bool,
        /// DampPeerOscillations: wait the idle hold time first.
        damped: bool,
    },
    /// Event 2: stop; the NOTIFICATION (a Cease) is sent where a connection is open. `None`
    /// just drops the connection (what a graceful restart of our own needs).
    ManualStop {
        /// The Cease to send.
        notification: Option<Notification>,
    },
    /// Event 8: stop because of something outside the FSM (max-prefix, BFD, a configuration
    /// change), with the Cease to send and when to start again.
    AutomaticStop {
        /// The Cease to send.
        notification: Notification,
        /// When to start again.
        restart: Restart,
    },
    /// Time has passed: expire due timers (events 9-13).
    Tick,
    /// Event 14: a connection request from the peer's address was accepted elsewhere.
    TcpConnectionValid,
    /// Event 15: a connection request that is not for this peer.
    TcpConnectionInvalid,
    /// Events 16 and 17: our connection was established (`Local`) or the peer's accepted.
    TcpConnected(Initiator),
    /// Event 18: the connection failed or closed.
    TcpConnectionFails,
    /// Events 19, 20, 24-27: a message arrived.
    Message(Message),
    /// Events 21, 22, 28: a message that could not be decoded.
    DecodeError(DecodeError),
    /// Event 23: collision detection dumps this connection.
    OpenCollisionDump,
    /// UPDATEs from the Adj-RIB-Out, sent only in Established.
    SendUpdates(Vec<Bytes>),
    /// A ROUTE-REFRESH (request, BoRR, EoRR) to send, only in Established.
    SendRouteRefresh(RouteRefresh),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "notification")]
pub enum DownReason {
    /// We sent this NOTIFICATION.
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The TCP connection failed or closed without a NOTIFICATION.
    ConnectionLost,
    /// Stopped without a NOTIFICATION (our own graceful restart).
    Stopped,
    /// An event the state does not expect, before any OPEN was sent.
    Unexpected(&'static str),
}

impl DownReason {
    /// One line for logs and peer state.
    pub fn describe(&self) -> String {
        match self {
            DownReason::NotificationSent(n) => format!("sent NOTIFICATION {}", describe(n)),
            DownReason::NotificationReceived(n) => {
                format!("received NOTIFICATION {}", describe(n))
            }
            DownReason::ConnectionLost => "connection lost".into(),
            DownReason::Stopped => "stopped".into(),
            DownReason::Unexpected(what) => format!("unexpected {what}"),
        }
    }
}

fn describe(n: &Notification) -> String {
    match n.shutdown_communication() {
        Some(text) => format!("{}: {text:?}", n.describe()),
        None => n.describe(),
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer, abandoning any attempt in progress.
    Connect,
    /// Close the TCP connection (or the attempt in progress) once queued messages are out.
    Disconnect,
    /// Write a message (OPEN, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH).
    Send(Message),
    /// Write these encoded UPDATEs (only ever in Established).
    SendUpdates(Vec<Bytes>),
    /// The state changed.
    StateChange {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
    /// The peer's OPEN was accepted: decode and encode with what was negotiated from now on.
    OpenAccepted(Box<SessionInfo>),
    /// The session is Established.
    Established,
    /// A received UPDATE, for the Adj-RIB-In.
    Update(Update),
    /// A received ROUTE-REFRESH (request, BoRR or EoRR).
    RouteRefresh(RouteRefresh),
    /// The connection is gone; `established` says the session had been Established (its
    /// routes must be removed, or kept stale under graceful restart).
    Down {
        /// Why.
        reason: DownReason,
        /// The session had been Established.
        established: bool,
    },
}

/// Internal events, numbered as in RFC 4271 §8.1.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Event {
    Start {
        passive: bool,
        manual: bool,
        damped: bool,
    },
    ManualStop(Option<Notification>),
    AutomaticStop(Notification, Restart),
    ConnectRetryExpires,
    HoldExpires,
    KeepaliveExpires,
    DelayOpenExpires,
    IdleHoldExpires,
    TcpValid,
    TcpInvalid,
    TcpUp(Initiator),
    TcpFails,
    Open(Open),
    HeaderErr(Notification),
    OpenMsgErr(Notification),
    CollisionDump,
    NotifVerErr(Notification),
    Notif(Notification),
    Keepalive,
    Update(Update),
    RouteRefresh(RouteRefresh),
    UpdateErr(Notification),
    SendUpdates(Vec<Bytes>),
    SendRouteRefresh(RouteRefresh),
}

/// One connection's state machine. See the module documentation.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    timers: Timers,
    jitter: Jitter,
    connect_retry_counter: u32,
    /// Consecutive failed sessions, for damping; reset when Established.
    failures: u32,
    /// Started and not manually stopped: failures restart automatically.
    auto: bool,
    /// The passive flag of the current start.
    passive: bool,
    initiator: Option<Initiator>,
    local_open: Option<Open>,
    info: Option<SessionInfo>,
    established_at: Option<Duration>,
    was_established: bool,
}

impl Session {
    /// A session in Idle.
    pub fn new(config: SessionConfig) -> Session {
        let jitter = Jitter::new(config.jitter_seed);
        let passive = config.passive;
        Session {
            config,
            state: State::Idle,
            timers: Timers::default(),
            jitter,
            connect_retry_counter: 0,
            failures: 0,
            auto: false,
            passive,
            initiator: None,
            local_open: None,
            info: None,
            established_at: None,
            was_established: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Changes the configuration for the next connection (the current one keeps what it
    /// negotiated).
    pub fn set_config(&mut self, config: SessionConfig) {
        self.config = config;
    }

    /// What the OPEN exchange negotiated, from OpenConfirm on.
    pub fn info(&self) -> Option<&SessionInfo> {
        self.info.as_ref()
    }

    /// Who opened the current connection.
    pub fn initiator(&self) -> Option<Initiator> {
        self.initiator
    }

    /// When the session became Established, on the driver's clock.
    pub fn established_at(&self) -> Option<Duration> {
        self.established_at
    }

    /// The ConnectRetryCounter.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Whether a timer is running.
    pub fn timer_running(&self, t: Timer) -> bool {
        self.timers.running(t)
    }

    /// When the next timer expires; call [`Session::handle`] with [`Input::Tick`] then.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.next()
    }

    /// Feeds one input at time `now`; timers that are due expire first.
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let mut acts = Vec::new();
        while let Some(t) = self.timers.first_expired(now) {
            self.timers.stop(t);
            let ev = match t {
                Timer::ConnectRetry => Event::ConnectRetryExpires,
                Timer::Hold => Event::HoldExpires,
                Timer::Keepalive => Event::KeepaliveExpires,
                Timer::DelayOpen => Event::DelayOpenExpires,
                Timer::IdleHold => Event::IdleHoldExpires,
            };
            self.step(now, ev, &mut acts);
        }
        if let Some(ev) = self.event_of(input) {
            self.step(now, ev, &mut acts);
        }
        acts
    }

    fn event_of(&self, input: Input) -> Option<Event> {
        Some(match input {
            Input::ManualStart { passive } => Event::Start {
                passive,
                manual: true,
                damped: false,
            },
            Input::AutomaticStart { passive, damped } => Event::Start {
                passive,
                manual: false,
                damped,
            },
            Input::ManualStop { notification } => Event::ManualStop(notification),
            Input::AutomaticStop {
                notification,
                restart,
            } => Event::AutomaticStop(notification, restart),
            Input::Tick => return None,
            Input::TcpConnectionValid => Event::TcpValid,
            Input::TcpConnectionInvalid => Event::TcpInvalid,
            Input::TcpConnected(i) => Event::TcpUp(i),
            Input::TcpConnectionFails => Event::TcpFails,
            Input::Message(m) => match m {
                Message::Open(o) => Event::Open(o),
                Message::Update(u) => Event::Update(u),
                Message::Notification(n) => {
                    if n.code == ErrorCode::OpenMessage as u8
                        && n.subcode == crate::wire::notification::open::UNSUPPORTED_VERSION_NUMBER
                    {
                        Event::NotifVerErr(n)
                    } else {
                        Event::Notif(n)
                    }
                }
                Message::Keepalive => Event::Keepalive,
                Message::RouteRefresh(r) => Event::RouteRefresh(r),
            },
            Input::DecodeError(e) => {
                let n = e.notification();
                match n.error_code() {
                    Some(ErrorCode::MessageHeader) => Event::HeaderErr(n),
                    Some(ErrorCode::OpenMessage) => Event::OpenMsgErr(n),
                    _ => Event::UpdateErr(n),
                }
            }
            Input::OpenCollisionDump => Event::CollisionDump,
            Input::SendUpdates(u) => Event::SendUpdates(u),
            Input::SendRouteRefresh(r) => Event::SendRouteRefresh(r),
        })
    }

    fn set_state(&mut self, to: State, acts: &mut Vec<Action>) {
        if self.state != to {
            acts.push(Action::StateChange {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    fn start_connect_retry(&mut self, now: Duration) {
        let d = self.jitter.apply(self.config.connect_retry);
        self.timers.start(Timer::ConnectRetry, now, d);
    }

    fn start_keepalive(&mut self, now: Duration) {
        let k = self.info.as_ref().map_or(0, |i| i.keepalive);
        if k == 0 {
            self.timers.stop(Timer::Keepalive);
        } else {
            let d = self.jitter.apply(Duration::from_secs(u64::from(k)));
            self.timers.start(Timer::Keepalive, now, d);
        }
    }

    fn restart_hold(&mut self, now: Duration) {
        let h = self.info.as_ref().map_or(0, |i| i.hold_time);
        if h == 0 {
            self.timers.stop(Timer::Hold);
        } else {
            self.timers
                .start(Timer::Hold, now, Duration::from_secs(u64::from(h)));
        }
    }

    /// Starting from Idle: dial (Connect) or wait (Active).
    fn begin(&mut self, now: Duration, acts: &mut Vec<Action>) {
        self.start_connect_retry(now);
        if self.passive {
            self.set_state(State::Active, acts);
        } else {
            acts.push(Action::Connect);
            self.set_state(State::Connect, acts);
        }
    }

    fn send_open(&mut self, now: Duration, acts: &mut Vec<Action>) {
        let open = open::local_open(&self.config, self.config.restarting);
        acts.push(Action::Send(Message::Open(open.clone())));
        self.local_open = Some(open);
        self.timers
            .start(Timer::Hold, now, self.config.open_hold_time);
    }

    /// The OPEN exchange: validate, answer with KEEPALIVE, go to OpenConfirm.
    fn receive_open(&mut self, now: Duration, theirs: Open, acts: &mut Vec<Action>) {
        let ours = match &self.local_open {
            Some(o) => o.clone(),
            None => {
                // Event 20 in Connect/Active: our OPEN goes out now.
                self.send_open(now, acts);
                self.local_open
                    .clone()
                    .unwrap_or_else(|| open::local_open(&self.config, false))
            }
        };
        match open::accept(&self.config, &ours, &theirs) {
            Err(n) => {
                self.fail(
                    now,
                    acts,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    true,
                    Restart::Damped,
                );
            }
            Ok(info) => {
                self.timers.stop(Timer::ConnectRetry);
                self.timers.stop(Timer::DelayOpen);
                acts.push(Action::OpenAccepted(Box::new(info.clone())));
                self.info = Some(info);
                acts.push(Action::Send(Message::Keepalive));
                self.start_keepalive(now);
                self.restart_hold(now);
                self.set_state(State::OpenConfirm, acts);
            }
        }
    }

    /// Leaves for Idle: optionally a NOTIFICATION, always a close, the Down action, and the
    /// automatic restart.
    fn fail(
        &mut self,
        now: Duration,
        acts: &mut Vec<Action>,
        notification: Option<Notification>,
        reason: DownReason,
        count: bool,
        restart: Restart,
    ) {
        let established = self.state == State::Established;
        if let Some(n) = notification {
            acts.push(Action::Send(Message::Notification(n)));
        }
        if self.state != State::Idle {
            acts.push(Action::Disconnect);
        }
        self.timers.stop_all();
        if count {
            self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
        }
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            self.failures = self.failures.saturating_add(1);
        }
        if self.state != State::Idle {
            acts.push(Action::Down {
                reason,
                established,
            });
        }
        self.release();
        self.set_state(State::Idle, acts);
        if self.auto {
            let wait = match restart {
                Restart::Never => None,
                Restart::After(d) => Some(d),
                Restart::Damped => Some(self.damped_idle_hold()),
            };
            if let Some(d) = wait {
                self.passive = self.config.passive;
                self.timers.start(Timer::IdleHold, now, d);
            }
        }
    }

    fn damped_idle_hold(&mut self) -> Duration {
        let shift = self.failures.saturating_sub(1).min(16);
        let d = self
            .config
            .idle_hold
            .saturating_mul(1u32 << shift)
            .min(self.config.idle_hold_max.max(self.config.idle_hold));
        self.jitter.apply(d)
    }

    /// The wait after a connection that could not be made: the connect-retry time.
    fn retry_wait(&mut self) -> Restart {
        Restart::After(self.jitter.apply(self.config.connect_retry))
    }

    fn release(&mut self) {
        if self.info.is_some() {
            // Our R bit is only for the first session after our own restart.
            if self.state == State::Established {
                self.config.restarting = false;
            }
        }
        self.info = None;
        self.local_open = None;
        self.initiator = None;
        self.established_at = None;
    }
}

fn fsm_error(subcode: u8) -> Notification {
    Notification::new(ErrorCode::FiniteStateMachine, subcode, Vec::new())
}

fn event_name(ev: &Event) -> &'static str {
    match ev {
        Event::Start { .. } => "start",
        Event::ManualStop(_) => "manual stop",
        Event::AutomaticStop(..) => "automatic stop",
        Event::ConnectRetryExpires => "ConnectRetryTimer expiry",
        Event::HoldExpires => "HoldTimer expiry",
        Event::KeepaliveExpires => "KeepaliveTimer expiry",
        Event::DelayOpenExpires => "DelayOpenTimer expiry",
        Event::IdleHoldExpires => "IdleHoldTimer expiry",
        Event::TcpValid | Event::TcpInvalid => "connection request",
        Event::TcpUp(_) => "connection",
        Event::TcpFails => "connection failure",
        Event::Open(_) => "OPEN",
        Event::HeaderErr(_) => "header error",
        Event::OpenMsgErr(_) => "OPEN error",
        Event::CollisionDump => "collision dump",
        Event::NotifVerErr(_) | Event::Notif(_) => "NOTIFICATION",
        Event::Keepalive => "KEEPALIVE",
        Event::Update(_) => "UPDATE",
        Event::RouteRefresh(_) => "ROUTE-REFRESH",
        Event::UpdateErr(_) => "UPDATE error",
        Event::SendUpdates(_) => "updates to send",
        Event::SendRouteRefresh(_) => "route refresh to send",
    }
}
