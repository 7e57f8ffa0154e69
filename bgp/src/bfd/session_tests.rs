//! The session state machine on a simulated clock: two sessions wired together through the
//! real codec, with a link that can be cut.

use std::time::Duration;

use super::damping::DampingConfig;
use super::packet::{BfdState, ControlPacket, Diagnostic};
use super::session::{Action, Input, Session, SessionConfig};

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Two sessions and a wire between them (1 ms one way).
struct Pair {
    a: Session,
    b: Session,
    now: Duration,
    delay: Duration,
    cut: bool,
    /// Packets with F are kept back here instead of delivered.
    hold_finals: bool,
    held: Vec<(Side, ControlPacket)>,
    in_flight: Vec<(Duration, Side, ControlPacket)>,
    /// Every action, with when and where.
    log: Vec<(Duration, Side, Action)>,
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        Pair {
            a: Session::new(a, Duration::ZERO),
            b: Session::new(b, Duration::ZERO),
            now: Duration::ZERO,
            delay: ms(1),
            cut: false,
            hold_finals: false,
            held: Vec::new(),
            in_flight: Vec::new(),
            log: Vec::new(),
        }
    }

    fn default_pair() -> Pair {
        Pair::new(SessionConfig::new(0x11), SessionConfig::new(0x22))
    }

    fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn feed(&mut self, side: Side, input: Input) {
        let now = self.now;
        let actions = self.session(side).handle(now, input);
        for a in actions {
            if let Action::Send(p) = &a
                && !self.cut
            {
                // Through the real codec, as the transport does.
                let wire = ControlPacket::decode(&p.encode()).unwrap();
                let to = if side == Side::A { Side::B } else { Side::A };
                if wire.final_ && self.hold_finals {
                    self.held.push((to, wire));
                } else {
                    self.in_flight.push((now + self.delay, to, wire));
                }
            }
            self.log.push((now, side, a));
        }
    }

    /// Runs every event up to and including `until`.
    fn run_until(&mut self, until: Duration) {
        loop {
            let next_packet = self.in_flight.iter().map(|(t, _, _)| *t).min();
            let candidates = [next_packet, self.a.next_deadline(), self.b.next_deadline()];
            let Some(next) = candidates.into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            self.now = next.max(self.now);
            if let Some(i) = self.in_flight.iter().position(|(t, _, _)| *t <= self.now) {
                let (_, to, p) = self.in_flight.remove(i);
                self.feed(to, Input::Packet(p));
                continue;
            }
            for side in [Side::A, Side::B] {
                if self
                    .session(side)
                    .next_deadline()
                    .is_some_and(|d| d <= self.now)
                {
                    self.feed(side, Input::Tick);
                }
            }
        }
        self.now = until.max(self.now);
    }

    fn release_finals(&mut self) {
        self.hold_finals = false;
        let at = self.now + self.delay;
        for (to, p) in std::mem::take(&mut self.held) {
            self.in_flight.push((at, to, p));
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn sent_by(&self, side: Side, after: Duration) -> Vec<(Duration, ControlPacket)> {
        self.log
            .iter()
            .filter(|(t, s, _)| *s == side && *t >= after)
            .filter_map(|(t, _, a)| match a {
                Action::Send(p) => Some((*t, *p)),
                _ => None,
            })
            .collect()
    }

    fn changes(&self, side: Side) -> Vec<(Duration, BfdState, BfdState, Diagnostic)> {
        self.log
            .iter()
            .filter(|(_, s, _)| *s == side)
            .filter_map(|(t, _, a)| match a {
                Action::StateChange { from, to, diag } => Some((*t, *from, *to, *diag)),
                _ => None,
            })
            .collect()
    }

    fn up_at(&self, side: Side) -> Option<Duration> {
        self.changes(side)
            .iter()
            .find(|c| c.2 == BfdState::Up)
            .map(|c| c.0)
    }
}

#[test]
fn two_sessions_come_up_through_the_three_way_handshake() {
    let mut p = Pair::default_pair();
    p.run_for(ms(100));
    assert_eq!(p.a.state(), BfdState::Up);
    assert_eq!(p.b.state(), BfdState::Up);
    let a: Vec<(BfdState, BfdState)> = p.changes(Side::A).iter().map(|c| (c.1, c.2)).collect();
    let b: Vec<(BfdState, BfdState)> = p.changes(Side::B).iter().map(|c| (c.1, c.2)).collect();
    // Both start at once: each hears the other's Down, goes Init, hears Init, goes Up.
    assert_eq!(
        a,
        [
            (BfdState::Down, BfdState::Init),
            (BfdState::Init, BfdState::Up)
        ]
    );
    assert_eq!(b, a);
    // State changes are sent at once, not at the next (1 s) interval.
    assert!(
        p.up_at(Side::A).unwrap() < ms(5),
        "{:?}",
        p.changes(Side::A)
    );
    let first = p.sent_by(Side::A, Duration::ZERO)[0].1;
    assert_eq!(first.state, BfdState::Down);
    assert_eq!(first.your_discriminator, 0);
    assert_eq!(first.desired_min_tx, 1_000_000, "slow start: 1 s until Up");
    assert_eq!(first.required_min_rx, 300_000);
    assert_eq!(first.required_min_echo_rx, 0, "no echo, please");
    assert_eq!(first.detect_mult, 3);
}

#[test]
fn a_session_whose_peer_starts_later_goes_straight_from_down_to_up_on_init() {
    let mut b = SessionConfig::new(0x22);
    b.passive = true;
    let mut p = Pair::new(SessionConfig::new(0x11), b);
    p.run_for(ms(50));
    // B (passive) answered A's Down with Init; A went Down -> Up directly.
    let a: Vec<(BfdState, BfdState)> = p.changes(Side::A).iter().map(|c| (c.1, c.2)).collect();
    assert_eq!(a, [(BfdState::Down, BfdState::Up)]);
    assert_eq!(p.b.state(), BfdState::Up);
}

#[test]
fn going_up_polls_for_the_fast_rate_and_both_sides_then_send_every_300_ms() {
    let mut p = Pair::default_pair();
    p.run_for(ms(100));
    // After Up the packets carry P until the F comes back.
    let up = p.up_at(Side::A).unwrap();
    let after = p.sent_by(Side::A, up);
    assert!(after.iter().any(|(_, pk)| pk.poll), "{after:?}");
    assert!(
        p.sent_by(Side::B, up).iter().any(|(_, pk)| pk.final_),
        "B answered the poll"
    );
    let st = p.a.status(p.now);
    assert!(!st.poll, "the poll ended");
    assert_eq!(st.transmit_interval, Some(ms(300)));
    assert_eq!(st.detection_time, Some(ms(900)));
    // Steady state: every interval between 75 % and 100 % of 300 ms.
    let t0 = p.now;
    p.run_for(ms(30_000));
    let sent = p.sent_by(Side::A, t0);
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.len() > 100, "{}", gaps.len());
    assert!(
        gaps.iter().all(|g| *g >= ms(225) && *g <= ms(300)),
        "{gaps:?}"
    );
    let min = gaps.iter().min().unwrap();
    let max = gaps.iter().max().unwrap();
    assert!(
        *min < ms(235) && *max > ms(290),
        "jitter spans the range: {min:?}..{max:?}"
    );
    assert!(
        sent.iter()
            .all(|(_, pk)| !pk.poll && pk.state == BfdState::Up)
    );
}

#[test]
fn with_a_detect_multiplier_of_one_packets_leave_at_most_90_percent_into_the_interval() {
    let mut a = SessionConfig::new(1);
    a.detect_mult = 1;
    let mut p = Pair::new(a, SessionConfig::new(2));
    p.run_for(ms(1000));
    let t0 = p.now;
    p.run_for(ms(20_000));
    let sent = p.sent_by(Side::A, t0);
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.iter().all(|g| *g >= ms(225) && *g <= ms(270)),
        "{gaps:?}"
    );
}

#[test]
fn a_cut_link_takes_both_sides_down_after_the_detection_time_with_diagnostic_1() {
    let mut p = Pair::default_pair();
    p.run_for(ms(2000));
    let last_b = p.sent_by(Side::B, Duration::ZERO).last().unwrap().0;
    p.cut = true;
    let cut_at = p.now;
    p.run_for(ms(3000));
    let down = p
        .changes(Side::A)
        .into_iter()
        .find(|c| c.2 == BfdState::Down)
        .unwrap();
    assert_eq!(down.3, Diagnostic::ControlDetectionTimeExpired);
    // Exactly the detection time (3 x 300 ms) after the last packet A received.
    assert_eq!(down.0, last_b + p.delay + ms(900));
    assert!(down.0 - cut_at <= ms(900));
    assert_eq!(p.b.state(), BfdState::Down);
    let st = p.a.status(p.now);
    assert_eq!(
        st.remote_discriminator, 0,
        "forgotten after the detection time"
    );
    assert_eq!(
        st.transmit_interval,
        Some(ms(1000)),
        "back to the slow rate"
    );
    assert_eq!(st.flaps, 1);
}

#[test]
fn the_link_coming_back_brings_the_session_up_again() {
    let mut p = Pair::default_pair();
    p.run_for(ms(1000));
    p.cut = true;
    p.run_for(ms(2000));
    assert_eq!(p.a.state(), BfdState::Down);
    p.cut = false;
    p.run_for(ms(2500));
    assert_eq!(p.a.state(), BfdState::Up);
    assert_eq!(p.b.state(), BfdState::Up);
}

#[test]
fn a_remote_taken_administratively_down_takes_us_down_with_diagnostic_3() {
    let mut p = Pair::default_pair();
    p.run_for(ms(1000));
    p.feed(Side::B, Input::AdminDown);
    p.run_for(ms(10));
    let last = *p.changes(Side::A).last().unwrap();
    assert_eq!(
        (last.1, last.2, last.3),
        (
            BfdState::Up,
            BfdState::Down,
            Diagnostic::NeighborSignaledSessionDown
        )
    );
    assert_eq!(
        p.b.status(p.now).local_diag,
        Diagnostic::AdministrativelyDown
    );
    assert_eq!(p.a.status(p.now).remote_state, BfdState::AdminDown);
    // A stays Down while B is AdminDown, and comes back when B is enabled.
    p.run_for(ms(5000));
    assert_eq!(p.a.state(), BfdState::Down);
    p.feed(Side::B, Input::Enable);
    p.run_for(ms(3000));
    assert_eq!((p.a.state(), p.b.state()), (BfdState::Up, BfdState::Up));
}

#[test]
fn a_remote_down_while_up_takes_us_down_at_once() {
    let mut p = Pair::default_pair();
    p.run_for(ms(1000));
    // B loses A for its detection time (A's packets dropped) while A still hears B.
    let mut b_down = None;
    for _ in 0..2000 {
        p.in_flight.retain(|(_, to, _)| *to != Side::B);
        p.run_for(ms(1));
        if p.b.state() != BfdState::Up && b_down.is_none() {
            b_down = Some(p.now);
        }
        if p.a.state() == BfdState::Down {
            break;
        }
    }
    let a_down = *p.changes(Side::A).last().unwrap();
    assert_eq!(a_down.3, Diagnostic::NeighborSignaledSessionDown);
    assert!(
        a_down.0 - b_down.unwrap() <= ms(2),
        "B's Down packet is sent at once"
    );
}

#[test]
fn detection_uses_the_remotes_multiplier_and_the_larger_of_the_two_intervals() {
    let mut b = SessionConfig::new(2);
    b.desired_min_tx = ms(100);
    b.required_min_rx = ms(100);
    b.detect_mult = 5;
    let mut p = Pair::new(SessionConfig::new(1), b);
    p.run_for(ms(1000));
    // A: B's multiplier 5 x max(A's rx 300 ms, B's tx 100 ms) = 1.5 s.
    assert_eq!(p.a.status(p.now).detection_time, Some(ms(1500)));
    // B: A's multiplier 3 x max(B's rx 100 ms, A's tx 300 ms) = 900 ms.
    assert_eq!(p.b.status(p.now).detection_time, Some(ms(900)));
    // Transmit intervals: A max(300, 100) = 300; B max(100, A's rx 300) = 300.
    assert_eq!(p.a.status(p.now).transmit_interval, Some(ms(300)));
    assert_eq!(p.b.status(p.now).transmit_interval, Some(ms(300)));
}

#[test]
fn a_slower_transmit_interval_waits_for_the_end_of_its_poll_sequence() {
    let mut p = Pair::default_pair();
    p.run_for(ms(1000));
    // Keep B's answer back so that A's poll cannot end.
    p.hold_finals = true;
    p.feed(
        Side::A,
        Input::SetTimers {
            desired_min_tx: ms(1000),
            required_min_rx: ms(300),
            detect_mult: 3,
        },
    );
    let t0 = p.now;
    p.run_for(ms(2000));
    let sent = p.sent_by(Side::A, t0);
    assert!(
        sent.iter()
            .all(|(_, pk)| pk.poll && pk.desired_min_tx == 1_000_000),
        "{sent:?}"
    );
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.iter().all(|g| *g <= ms(300)),
        "old rate until F: {gaps:?}"
    );
    assert!(p.a.status(p.now).poll);
    // Let the answers through: the poll ends and A slows down.
    p.release_finals();
    p.run_for(ms(1000));
    let st = p.a.status(p.now);
    assert!(!st.poll);
    assert_eq!(st.transmit_interval, Some(ms(1000)));
    // B's detection time of A follows A's new Desired Min TX: 3 x 1 s.
    assert_eq!(p.b.status(p.now).detection_time, Some(ms(3000)));
    assert_eq!(p.a.state(), BfdState::Up, "no false failure on either side");
    assert_eq!(p.b.state(), BfdState::Up);
}

#[test]
fn a_faster_receive_interval_keeps_the_old_detection_time_until_the_poll_ends() {
    let mut b = SessionConfig::new(0x22);
    b.desired_min_tx = ms(100);
    let mut p = Pair::new(SessionConfig::new(0x11), b);
    p.run_for(ms(1000));
    assert_eq!(p.a.status(p.now).detection_time, Some(ms(900)));
    p.hold_finals = true;
    p.feed(
        Side::A,
        Input::SetTimers {
            desired_min_tx: ms(300),
            required_min_rx: ms(100),
            detect_mult: 3,
        },
    );
    p.run_for(ms(500));
    assert_eq!(
        p.a.status(p.now).detection_time,
        Some(ms(900)),
        "the old Required Min RX until F"
    );
    p.release_finals();
    p.run_for(ms(500));
    // Now A expects B every max(100 ms, B's tx 100 ms): detection 300 ms, and B sends that
    // often.
    assert!(!p.a.status(p.now).poll);
    assert_eq!(p.a.status(p.now).detection_time, Some(ms(300)));
    assert_eq!(p.b.status(p.now).transmit_interval, Some(ms(100)));
    p.run_for(ms(5000));
    assert_eq!((p.a.state(), p.b.state()), (BfdState::Up, BfdState::Up));
}

#[test]
fn a_poll_from_the_remote_is_answered_at_once_with_final() {
    let mut p = Pair::default_pair();
    p.run_for(ms(1000));
    let t0 = p.now;
    p.feed(
        Side::B,
        Input::SetTimers {
            desired_min_tx: ms(200),
            required_min_rx: ms(200),
            detect_mult: 3,
        },
    );
    p.run_for(ms(5));
    let answers: Vec<_> = p
        .sent_by(Side::A, t0)
        .into_iter()
        .filter(|(_, pk)| pk.final_)
        .collect();
    assert_eq!(answers.len(), 1, "{:?}", p.sent_by(Side::A, t0));
    assert!(answers[0].0 - t0 <= ms(2));
    assert!(!answers[0].1.poll, "never P and F together");
}

#[test]
fn a_passive_session_sends_nothing_until_it_hears_the_remote() {
    let mut cfg = SessionConfig::new(7);
    cfg.passive = true;
    let mut s = Session::new(cfg, Duration::ZERO);
    assert_eq!(s.next_deadline(), None);
    assert!(s.handle(ms(5000), Input::Tick).is_empty());
}

#[test]
fn a_remote_asking_for_no_packets_gets_none() {
    let mut s = Session::new(SessionConfig::new(7), Duration::ZERO);
    let mut pk = ControlPacket::decode(
        &s.handle(Duration::ZERO, Input::Tick)
            .into_iter()
            .find_map(|a| match a {
                Action::Send(p) => Some(p),
                _ => None,
            })
            .unwrap()
            .encode(),
    )
    .unwrap();
    pk.my_discriminator = 9;
    pk.your_discriminator = 0;
    pk.required_min_rx = 0;
    let out = s.handle(ms(10), Input::Packet(pk));
    // Down -> Init is told (a state change), then silence.
    assert!(out.iter().any(|a| matches!(a, Action::StateChange { .. })));
    assert_eq!(s.status(ms(10)).transmit_interval, None);
    // Until the detection time (3 x 1 s) passes without a packet and the remote's wish is
    // forgotten.
    let sends = (1..29)
        .flat_map(|i| s.handle(ms(10 + i * 100), Input::Tick))
        .filter(|a| matches!(a, Action::Send(_)))
        .count();
    assert_eq!(sends, 0);
}

fn from_remote(state: BfdState, your: u32) -> ControlPacket {
    ControlPacket {
        diag: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 9,
        your_discriminator: your,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    }
}

fn sends(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Send(_)))
        .count()
}

#[test]
fn a_remote_in_demand_mode_stops_our_periodic_packets_but_not_our_detection() {
    let mut s = Session::new(SessionConfig::new(7), Duration::ZERO);
    s.handle(ms(0), Input::Tick);
    s.handle(ms(1), Input::Packet(from_remote(BfdState::Down, 0)));
    s.handle(ms(2), Input::Packet(from_remote(BfdState::Init, 7)));
    assert_eq!(s.state(), BfdState::Up);
    let mut up = from_remote(BfdState::Up, 7);
    up.final_ = true;
    up.demand = true;
    let mut t = ms(3);
    let mut sent = 0;
    while t < ms(3000) {
        let mut out = s.handle(t, Input::Packet(up));
        up.final_ = false;
        for i in 1..25 {
            out.extend(s.handle(t + ms(i * 10), Input::Tick));
        }
        sent += sends(&out);
        t += ms(250);
    }
    assert_eq!(
        sent, 0,
        "no periodic packets while the remote runs Demand mode"
    );
    assert_eq!(s.status(t).transmit_interval, None);
    // The remote still sends to us, and its silence is still noticed.
    let last = t - ms(250);
    let down = s.handle(last + ms(900), Input::Tick);
    assert!(down.iter().any(|a| matches!(
        a,
        Action::StateChange {
            to: BfdState::Down,
            diag: Diagnostic::ControlDetectionTimeExpired,
            ..
        }
    )));
}

#[test]
fn an_up_session_forgets_its_last_diagnostic() {
    let mut s = Session::new(SessionConfig::new(7), Duration::ZERO);
    s.handle(ms(1), Input::Packet(from_remote(BfdState::Down, 0)));
    s.handle(ms(2), Input::Packet(from_remote(BfdState::Up, 7)));
    assert_eq!(s.state(), BfdState::Up);
    s.handle(ms(2000), Input::Tick);
    assert_eq!(
        s.status(ms(2000)).local_diag,
        Diagnostic::ControlDetectionTimeExpired
    );
    s.handle(ms(2001), Input::Packet(from_remote(BfdState::Down, 0)));
    s.handle(ms(2002), Input::Packet(from_remote(BfdState::Up, 7)));
    assert_eq!(s.status(ms(2002)).local_diag, Diagnostic::None);
}

#[test]
fn packets_for_another_discriminator_are_ignored() {
    let mut s = Session::new(SessionConfig::new(7), Duration::ZERO);
    let pk = ControlPacket {
        diag: Diagnostic::None,
        state: BfdState::Up,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 9,
        your_discriminator: 8,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    };
    assert!(s.handle(ms(1), Input::Packet(pk)).is_empty());
    assert_eq!(s.status(ms(1)).packets_in, 0);
}

fn fast_damping() -> DampingConfig {
    DampingConfig {
        free_flaps: 1,
        initial_hold: ms(5000),
        max_hold: ms(20_000),
        decay: ms(60_000),
    }
}

#[test]
fn a_flapping_session_is_held_down_with_an_exponential_back_off() {
    let mut a = SessionConfig::new(1);
    a.damping = fast_damping();
    let mut b = SessionConfig::new(2);
    b.damping = DampingConfig::off();
    let mut p = Pair::new(a, b);
    let mut ups = Vec::new();
    for _ in 0..4 {
        p.run_for(ms(10_000));
        assert_eq!(p.a.state(), BfdState::Up);
        p.cut = true;
        p.run_for(ms(2000));
        assert_eq!(p.a.state(), BfdState::Down);
        let restored = p.now;
        p.cut = false;
        p.run_for(ms(25_000));
        let up = p
            .changes(Side::A)
            .into_iter()
            .rev()
            .find(|c| c.2 == BfdState::Up)
            .unwrap()
            .0;
        ups.push(up - restored);
    }
    // First flap free (up within the slow interval); then held 5, 10, 20 s after the failure
    // (which came about 1 s before the link was restored).
    assert!(ups[0] < ms(2000), "{ups:?}");
    for (i, hold) in [(1, 5000u64), (2, 10_000), (3, 20_000)] {
        assert!(
            ups[i] >= ms(hold - 1500) && ups[i] < ms(hold + 1000),
            "{ups:?}"
        );
    }
    let held = p
        .log
        .iter()
        .filter_map(|(_, s, a)| match (s, a) {
            (Side::A, Action::HeldDown(d)) => Some(*d),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(held, [ms(5000), ms(10_000), ms(20_000)]);
    // While held, A kept saying Down (B never came Up meanwhile).
    assert_eq!(p.a.status(p.now).flaps, 4);
}
