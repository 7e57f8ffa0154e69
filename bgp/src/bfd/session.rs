//! One BFD session in asynchronous mode (RFC 5880 §6), sans-IO like the BGP FSM: the driver
//! feeds [`Input`]s with the time (a [`Duration`] since an epoch of its choosing), carries out
//! the [`Action`]s and comes back with [`Input::Tick`] at [`Session::next_deadline`].
//!
//! ```text
//!            remote Down               remote Init/Up
//!   Down ───────────────────► Init ───────────────────► Up
//!    │ ▲  remote Init: straight to Up                    │
//!    │ └──── detection time expired, remote Down/AdminDown ┘
//!    └─ AdminDown (local) ─► AdminDown ─ enable ─► Down
//! ```
//!
//! What §6.8 asks and how it is done here:
//! - timers: while not Up the Desired Min TX we send is at least `slow_tx` (1 s, §6.8.3); the
//!   transmit interval is the larger of our Desired Min TX and the remote's Required Min RX,
//!   less 0-25 % jitter (at most 90 % of it with a detect multiplier of 1, §6.8.7); none at
//!   all when the remote wants 0, when we are passive and have not heard it, or when the
//!   remote runs Demand mode;
//! - the detection time is the remote's Detect Mult times the larger of our Required Min RX
//!   and its Desired Min TX (§6.8.4); when it passes in Init or Up the session goes Down with
//!   diagnostic 1, and in any state the remote's discriminator is forgotten;
//! - a change of our intervals while Up (going Up is one: 1 s to the configured rate) starts
//!   a Poll Sequence (P until an F comes back); a larger TX interval and a smaller RX interval
//!   take effect locally only when it ends (§6.8.3); a P from the remote is answered at once
//!   with F;
//! - a state change sends a packet at once rather than waiting for the next interval;
//! - flap damping ([`super::damping`]) may hold the session Down after a failure.

use std::time::Duration;

use serde::Serialize;

use super::damping::{Damping, DampingConfig};
use super::packet::{BfdState, ControlPacket, Diagnostic};

/// RFC 5880 §6.8.3: the Desired Min TX while the session is not Up, at least.
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// What one session needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our discriminator: non-zero, unique on this system.
    pub local_discriminator: u32,
    /// bfd.DesiredMinTxInterval once Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult.
    pub detect_mult: u8,
    /// Passive role (§6.1): send nothing until the remote has been heard.
    pub passive: bool,
    /// Desired Min TX while not Up (at least 1 s by §6.8.3; tests may use less).
    pub slow_tx: Duration,
    /// Flap damping.
    pub damping: DampingConfig,
    /// Seed of the transmit jitter, so runs replay exactly.
    pub jitter_seed: u64,
}

impl SessionConfig {
    /// The defaults of issue 13: 300 ms x 3, active, damping on.
    pub fn new(local_discriminator: u32) -> SessionConfig {
        SessionConfig {
            local_discriminator,
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
            slow_tx: SLOW_TX,
            damping: DampingConfig::default(),
            jitter_seed: u64::from(local_discriminator),
        }
    }
}

/// What happens to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A Control packet that passed [`ControlPacket::decode`] and was demultiplexed to this
    /// session (its Your Discriminator is ours, or 0 and it came from the remote's address).
    Packet(ControlPacket),
    /// Time passed (call at [`Session::next_deadline`]).
    Tick,
    /// Take the session administratively down (§6.8.16): diagnostic 7, packets say AdminDown.
    AdminDown,
    /// Leave AdminDown.
    Enable,
    /// New intervals or multiplier (a Poll Sequence when Up).
    SetTimers {
        /// bfd.DesiredMinTxInterval.
        desired_min_tx: Duration,
        /// bfd.RequiredMinRxInterval.
        required_min_rx: Duration,
        /// bfd.DetectMult.
        detect_mult: u8,
    },
    /// New damping parameters (the flap history stays).
    SetDamping(DampingConfig),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the remote.
    Send(ControlPacket),
    /// The session changed state.
    StateChange {
        /// Before.
        from: BfdState,
        /// After.
        to: BfdState,
        /// Our diagnostic now (why it went down).
        diag: Diagnostic,
    },
    /// Flap damping holds the session Down for this long.
    HeldDown(Duration),
}

/// A session as `lbspeaker bfd` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// Our state.
    pub state: BfdState,
    /// The remote's state, as last heard.
    pub remote_state: BfdState,
    /// Our discriminator.
    pub local_discriminator: u32,
    /// The remote's (0: not known).
    pub remote_discriminator: u32,
    /// Why we last went down.
    pub local_diag: Diagnostic,
    /// Why the remote last went down.
    pub remote_diag: Diagnostic,
    /// The transmit interval in use, before jitter (None: not sending periodically).
    #[serde(with = "super::opt_micros")]
    pub transmit_interval: Option<Duration>,
    /// The detection time in use (None: nothing heard yet).
    #[serde(with = "super::opt_micros")]
    pub detection_time: Option<Duration>,
    /// The remote's Detect Mult.
    pub remote_detect_mult: u8,
    /// The remote's Desired Min TX.
    #[serde(with = "super::micros")]
    pub remote_desired_min_tx: Duration,
    /// The remote's Required Min RX.
    #[serde(with = "super::micros")]
    pub remote_required_min_rx: Duration,
    /// A Poll Sequence of ours is under way.
    pub poll: bool,
    /// When the session came Up (driver time), while it is Up.
    #[serde(with = "super::opt_micros")]
    pub up_since: Option<Duration>,
    /// When a damping hold-down ends, while one runs.
    #[serde(with = "super::opt_micros")]
    pub held_until: Option<Duration>,
    /// Flaps of the current damping series.
    pub recent_flaps: u32,
    /// Flaps since the session was created.
    pub flaps: u32,
    /// Control packets accepted.
    pub packets_in: u64,
    /// Control packets sent.
    pub packets_out: u64,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn from_micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

/// A small deterministic generator (xorshift64*) for the transmit jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        Jitter(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// A fraction in [0, 1).
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One session (see the module documentation).
#[derive(Debug, Clone)]
pub struct Session {
    cfg: SessionConfig,
    state: BfdState,
    remote_state: BfdState,
    remote_discr: u32,
    local_diag: Diagnostic,
    remote_diag: Diagnostic,
    /// bfd.RemoteMinRxInterval, µs (1 until heard, §6.8.1).
    remote_min_rx: u32,
    remote_desired_min_tx: u32,
    remote_detect_mult: u8,
    remote_demand: bool,
    /// Our Desired Min TX and Required Min RX in effect locally (may lag behind what we send
    /// while a Poll Sequence runs).
    tx_in_use: Duration,
    rx_in_use: Duration,
    poll: bool,
    next_tx: Option<Duration>,
    /// When the last packet was accepted (None: nothing since the last detection expiry).
    last_rx: Option<Duration>,
    up_since: Option<Duration>,
    damping: Damping,
    jitter: Jitter,
    packets_in: u64,
    packets_out: u64,
}

impl Session {
    /// A session in Down; an active one sends its first packet at once (the first `Tick`).
    pub fn new(cfg: SessionConfig, now: Duration) -> Session {
        let tx = cfg.desired_min_tx.max(cfg.slow_tx);
        let rx = cfg.required_min_rx;
        Session {
            damping: Damping::new(cfg.damping),
            jitter: Jitter::new(cfg.jitter_seed),
            next_tx: (!cfg.passive).then_some(now),
            cfg,
            state: BfdState::Down,
            remote_state: BfdState::Down,
            remote_discr: 0,
            local_diag: Diagnostic::None,
            remote_diag: Diagnostic::None,
            remote_min_rx: 1,
            remote_desired_min_tx: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            tx_in_use: tx,
            rx_in_use: rx,
            poll: false,
            last_rx: None,
            up_since: None,
            packets_in: 0,
            packets_out: 0,
        }
    }

    /// Our state.
    pub fn state(&self) -> BfdState {
        self.state
    }

    /// Our discriminator.
    pub fn local_discriminator(&self) -> u32 {
        self.cfg.local_discriminator
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// When to come back with [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Duration> {
        match (self.next_tx, self.detect_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The session's state for display.
    pub fn status(&self, now: Duration) -> SessionStatus {
        SessionStatus {
            state: self.state,
            remote_state: self.remote_state,
            local_discriminator: self.cfg.local_discriminator,
            remote_discriminator: self.remote_discr,
            local_diag: self.local_diag,
            remote_diag: self.remote_diag,
            transmit_interval: self.transmit_interval(),
            detection_time: self.detection_time(),
            remote_detect_mult: self.remote_detect_mult,
            remote_desired_min_tx: from_micros(self.remote_desired_min_tx),
            remote_required_min_rx: from_micros(self.remote_min_rx),
            poll: self.poll,
            up_since: self.up_since,
            held_until: self.damping.held_until(now),
            recent_flaps: self.damping.series(),
            flaps: self.damping.total(),
            packets_in: self.packets_in,
            packets_out: self.packets_out,
        }
    }

    /// The Desired Min TX we advertise: the configured one when Up, at least `slow_tx`
    /// otherwise.
    fn advertised_tx(&self) -> Duration {
        if self.state == BfdState::Up {
            self.cfg.desired_min_tx
        } else {
            self.cfg.desired_min_tx.max(self.cfg.slow_tx)
        }
    }

    /// The periodic transmit interval before jitter, or None when none is due.
    fn transmit_interval(&self) -> Option<Duration> {
        if self.remote_min_rx == 0 {
            return None;
        }
        if self.cfg.passive && self.remote_discr == 0 {
            return None;
        }
        let remote_demand_active =
            self.remote_demand && self.state == BfdState::Up && self.remote_state == BfdState::Up;
        if remote_demand_active && !self.poll {
            return None;
        }
        Some(self.tx_in_use.max(from_micros(self.remote_min_rx)))
    }

    fn detect_deadline(&self) -> Option<Duration> {
        let last = self.last_rx?;
        Some(last.saturating_add(self.detection_time()?))
    }

    fn detection_time(&self) -> Option<Duration> {
        if self.remote_detect_mult == 0 {
            return None;
        }
        let per = self.rx_in_use.max(from_micros(self.remote_desired_min_tx));
        Some(per.saturating_mul(u32::from(self.remote_detect_mult)))
    }

    /// The jittered interval from now to the next periodic packet.
    fn jittered(&mut self, interval: Duration) -> Duration {
        let top = if self.cfg.detect_mult == 1 { 0.9 } else { 1.0 };
        let f = 0.75 + (top - 0.75) * self.jitter.next();
        interval.mul_f64(f)
    }

    fn schedule_tx(&mut self, now: Duration) {
        self.next_tx = self
            .transmit_interval()
            .map(|i| now.saturating_add(self.jittered(i)));
    }

    /// Brings a scheduled packet forward when the interval got shorter than the wait.
    fn reschedule_if_sooner(&mut self, now: Duration) {
        match (self.transmit_interval(), self.next_tx) {
            (None, _) => self.next_tx = None,
            (Some(i), Some(t)) if t <= now.saturating_add(i) => {}
            (Some(_), _) => self.schedule_tx(now),
        }
    }

    fn packet(&self, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.cfg.detect_mult,
            my_discriminator: self.cfg.local_discriminator,
            your_discriminator: self.remote_discr,
            desired_min_tx: micros(self.advertised_tx()),
            required_min_rx: micros(self.cfg.required_min_rx),
            required_min_echo_rx: 0,
        }
    }

    fn send(&mut self, out: &mut Vec<Action>, final_: bool) {
        if self.cfg.passive && self.remote_discr == 0 && !final_ {
            return;
        }
        self.packets_out = self.packets_out.saturating_add(1);
        out.push(Action::Send(self.packet(final_)));
    }

    fn set_state(&mut self, now: Duration, to: BfdState, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        if to == BfdState::Up {
            self.local_diag = Diagnostic::None;
            self.up_since = Some(now);
            self.damping.up(now);
            // Leaving the slow rate is a change of Desired Min TX: poll for it. A smaller
            // interval takes effect at once.
            if self.cfg.desired_min_tx < self.cfg.slow_tx {
                self.poll = true;
            }
            self.tx_in_use = self.cfg.desired_min_tx;
            self.rx_in_use = self.cfg.required_min_rx;
        } else {
            // Not Up: no Poll Sequence, the slow rate applies at once.
            self.poll = false;
            self.tx_in_use = self.advertised_tx();
            self.rx_in_use = self.cfg.required_min_rx;
        }
        out.push(Action::StateChange {
            from,
            to,
            diag: self.local_diag,
        });
        if from == BfdState::Up {
            self.up_since = None;
            if let Some(hold) = self.damping.down(now) {
                out.push(Action::HeldDown(hold));
            }
        }
        // Tell the remote at once; then the periodic schedule from here.
        self.send(out, false);
        self.schedule_tx(now);
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Packet(p) => self.receive(now, p, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::AdminDown => {
                if self.state != BfdState::AdminDown {
                    self.local_diag = Diagnostic::AdministrativelyDown;
                    self.set_state(now, BfdState::AdminDown, &mut out);
                }
            }
            Input::Enable => {
                if self.state == BfdState::AdminDown {
                    self.set_state(now, BfdState::Down, &mut out);
                }
            }
            Input::SetTimers {
                desired_min_tx,
                required_min_rx,
                detect_mult,
            } => self.set_timers(now, desired_min_tx, required_min_rx, detect_mult, &mut out),
            Input::SetDamping(d) => {
                self.cfg.damping = d;
                self.damping.set_config(d);
            }
        }
        out
    }

    fn set_timers(
        &mut self,
        now: Duration,
        tx: Duration,
        rx: Duration,
        mult: u8,
        out: &mut Vec<Action>,
    ) {
        let intervals_changed = tx != self.cfg.desired_min_tx || rx != self.cfg.required_min_rx;
        self.cfg.desired_min_tx = tx;
        self.cfg.required_min_rx = rx;
        self.cfg.detect_mult = mult.max(1);
        if self.state == BfdState::Up {
            // §6.8.3: a larger TX interval and a smaller RX interval wait for the poll's end.
            if tx < self.tx_in_use {
                self.tx_in_use = tx;
            }
            if rx > self.rx_in_use {
                self.rx_in_use = rx;
            }
            if intervals_changed {
                self.poll = true;
                self.send(out, false);
            }
        } else {
            self.tx_in_use = self.advertised_tx();
            self.rx_in_use = rx;
        }
        self.reschedule_if_sooner(now);
    }

    fn receive(&mut self, now: Duration, p: ControlPacket, out: &mut Vec<Action>) {
        if p.your_discriminator != 0 && p.your_discriminator != self.cfg.local_discriminator {
            return;
        }
        self.packets_in = self.packets_in.saturating_add(1);
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_demand = p.demand;
        self.remote_min_rx = p.required_min_rx;
        self.remote_desired_min_tx = p.desired_min_tx;
        self.remote_detect_mult = p.detect_mult;
        if self.poll && p.final_ {
            self.poll = false;
            self.tx_in_use = self.advertised_tx();
            self.rx_in_use = self.cfg.required_min_rx;
        }
        self.last_rx = Some(now);
        if self.state != BfdState::AdminDown {
            self.transition_on(now, p.state, out);
        }
        if p.poll {
            self.send(out, true);
        }
        self.reschedule_if_sooner(now);
    }

    fn transition_on(&mut self, now: Duration, remote: BfdState, out: &mut Vec<Action>) {
        let held = self.damping.held(now);
        match (self.state, remote) {
            (BfdState::Init, BfdState::AdminDown) => {
                self.local_diag = Diagnostic::NeighborSignaledSessionDown;
                self.set_state(now, BfdState::Down, out);
            }
            (BfdState::Up, BfdState::AdminDown | BfdState::Down) => {
                self.local_diag = Diagnostic::NeighborSignaledSessionDown;
                self.set_state(now, BfdState::Down, out);
            }
            (BfdState::Down, BfdState::Down) if !held => {
                self.set_state(now, BfdState::Init, out);
            }
            (BfdState::Down, BfdState::Init) if !held => {
                self.set_state(now, BfdState::Up, out);
            }
            (BfdState::Init, BfdState::Init | BfdState::Up) => {
                self.set_state(now, BfdState::Up, out);
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.detect_deadline().is_some_and(|d| d <= now) {
            self.last_rx = None;
            self.remote_discr = 0;
            self.remote_state = BfdState::Down;
            self.remote_min_rx = 1;
            self.remote_demand = false;
            if matches!(self.state, BfdState::Init | BfdState::Up) {
                self.local_diag = Diagnostic::ControlDetectionTimeExpired;
                self.set_state(now, BfdState::Down, out);
            } else {
                self.reschedule_if_sooner(now);
            }
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            self.send(out, false);
            self.schedule_tx(now);
        }
    }
}
