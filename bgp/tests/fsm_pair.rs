//! FSM pair tests: two `Session`s wired through the real codec on a simulated clock, and a
//! property test that no input sequence makes a session send an UPDATE outside Established.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use bgp::fsm::collision::{self, Initiator, Verdict};
use bgp::fsm::{Action, Input, Restart, Session, SessionConfig, State};
use bgp::wire::{
    Announce, AsPath, DecodeContext, EncodeContext, Family, Message, NextHop, Nlri, Notification,
    Origin, PathAttributes, pack_updates,
};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

const A_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn cfg(local_as: u32, id: Ipv4Addr, peer_as: u32, seed: u64) -> SessionConfig {
    let mut c = SessionConfig::new(local_as, id, peer_as);
    c.hold_time = 9;
    c.keepalive = Some(3);
    c.connect_retry = Duration::from_secs(2);
    c.jitter_seed = seed;
    c
}

/// One end of a TCP connection: a session, its codec contexts and the bytes it received.
struct End {
    s: Session,
    dec: DecodeContext,
    enc: EncodeContext,
    inbox: VecDeque<Bytes>,
    updates: Vec<bgp::wire::Update>,
    /// Mutes the end: it stops sending anything (a peer whose process hangs).
    mute: bool,
}

impl End {
    fn new(s: Session) -> End {
        End {
            s,
            dec: DecodeContext::default(),
            enc: EncodeContext::default(),
            inbox: VecDeque::new(),
            updates: Vec::new(),
            mute: false,
        }
    }
}

/// What an end's actions mean for the wire: bytes for the other end, a dial, a close.
#[derive(Default)]
struct Effects {
    out: Vec<Bytes>,
    connect: bool,
    disconnect: bool,
}

fn apply(end: &mut End, acts: Vec<Action>) -> Effects {
    let mut fx = Effects::default();
    for a in acts {
        match a {
            Action::Send(m) => {
                let mut b = BytesMut::new();
                m.encode(&end.enc, &mut b).unwrap();
                fx.out.push(b.freeze());
            }
            Action::SendUpdates(v) => fx.out.extend(v),
            Action::OpenAccepted(info) => {
                end.dec = info.negotiated.decode;
                end.enc = info.negotiated.encode;
            }
            Action::Update(u) => end.updates.push(u),
            Action::Connect => fx.connect = true,
            Action::Disconnect => fx.disconnect = true,
            _ => {}
        }
    }
    if end.mute {
        fx.out.clear();
    }
    fx
}

/// Two ends joined by one connection that A dials.
struct Pair {
    a: End,
    b: End,
    up: bool,
    now: Duration,
}

impl Pair {
    fn new(a: Session, b: Session) -> Pair {
        Pair {
            a: End::new(a),
            b: End::new(b),
            up: false,
            now: Duration::ZERO,
        }
    }

    fn input(&mut self, to_a: bool, input: Input) {
        let (me, other) = if to_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        let acts = me.s.handle(self.now, input);
        let fx = apply(me, acts);
        if self.up {
            other.inbox.extend(fx.out);
        }
        if fx.disconnect && self.up {
            self.up = false;
            other.inbox.clear();
            let acts = other.s.handle(self.now, Input::TcpConnectionFails);
            apply(other, acts);
            // Our own end of the connection is gone too.
            me.inbox.clear();
        }
        if fx.connect
            && to_a
            && !self.up
            && matches!(self.b.s.state(), State::Active | State::Connect)
        {
            self.up = true;
            self.input(true, Input::TcpConnected(Initiator::Local));
            self.input(false, Input::TcpConnected(Initiator::Remote));
        }
    }

    /// Delivers every queued message, then advances the clock by `step` with ticks.
    fn run(&mut self, until: Duration, step: Duration) {
        while self.now < until {
            for to_a in [true, false] {
                loop {
                    let end = if to_a { &mut self.a } else { &mut self.b };
                    let Some(bytes) = end.inbox.pop_front() else {
                        break;
                    };
                    let input = match Message::decode(&bytes, &end.dec) {
                        Ok(m) => Input::Message(m),
                        Err(e) => Input::DecodeError(e),
                    };
                    self.input(to_a, input);
                }
            }
            self.now += step;
            self.input(true, Input::Tick);
            self.input(false, Input::Tick);
        }
    }
}

fn start_pair(b_passive: bool) -> Pair {
    let a = Session::new(cfg(65001, A_ID, 65000, 1));
    let mut bc = cfg(65000, B_ID, 65001, 2);
    bc.passive = b_passive;
    let b = Session::new(bc);
    let mut p = Pair::new(a, b);
    p.input(false, Input::ManualStart { passive: true });
    p.input(true, Input::ManualStart { passive: false });
    p
}

#[test]
fn two_sessions_reach_established_through_the_codec_and_carry_an_update() {
    let mut p = start_pair(true);
    p.run(Duration::from_millis(500), Duration::from_millis(100));
    assert_eq!(p.a.s.state(), State::Established);
    assert_eq!(p.b.s.state(), State::Established);
    assert!(p.a.enc.four_octet_as && p.b.dec.four_octet_as);
    let info = p.b.s.info().unwrap();
    assert_eq!(
        (info.peer_as, info.hold_time, info.keepalive),
        (65001, 9, 3)
    );

    let attrs = PathAttributes::new(Origin::Igp, AsPath::sequence([65001]));
    let nlri: Vec<Nlri> = (0..2000u32)
        .map(|i| Nlri::new(format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()))
        .collect();
    let msgs = pack_updates(
        &p.a.enc,
        Family::IPV4_UNICAST,
        Some(Announce {
            attributes: &attrs,
            next_hop: NextHop::Ipv4(A_ID),
            nlri: &nlri,
        }),
        &[],
    )
    .unwrap();
    let n_msgs = msgs.len();
    p.input(true, Input::SendUpdates(msgs));
    p.run(
        p.now + Duration::from_millis(200),
        Duration::from_millis(100),
    );
    let received: usize =
        p.b.updates
            .iter()
            .map(|u| u.announced_routes().count())
            .sum();
    assert_eq!(received, 2000);
    assert_eq!(p.b.updates.len(), n_msgs);
    assert!(
        n_msgs <= 3,
        "{n_msgs} UPDATEs for 2000 prefixes of one attribute set"
    );
    // And they stay up on keepalives alone.
    p.run(p.now + Duration::from_secs(60), Duration::from_millis(100));
    assert_eq!(p.a.s.state(), State::Established);
    assert_eq!(p.b.s.state(), State::Established);
}

#[test]
fn a_peer_that_goes_silent_is_dropped_after_the_hold_time_and_the_session_comes_back() {
    let mut p = start_pair(true);
    p.run(Duration::from_millis(500), Duration::from_millis(100));
    assert_eq!(p.b.s.state(), State::Established);
    p.a.mute = true;
    let muted_at = p.now;
    while p.b.s.state() == State::Established {
        p.run(
            p.now + Duration::from_millis(100),
            Duration::from_millis(100),
        );
        assert!(p.now - muted_at < Duration::from_secs(10));
    }
    let down_after = p.now - muted_at;
    assert!(down_after >= Duration::from_secs(6), "{down_after:?}");
    p.a.mute = false;
    p.run(p.now + Duration::from_secs(10), Duration::from_millis(100));
    assert_eq!(p.a.s.state(), State::Established);
    assert_eq!(p.b.s.state(), State::Established);
}

#[test]
fn an_administrative_shutdown_reaches_the_peer_with_its_communication() {
    let mut p = start_pair(true);
    p.run(Duration::from_millis(500), Duration::from_millis(100));
    let n = Notification::cease(2, Some("node drained"));
    p.input(
        true,
        Input::ManualStop {
            notification: Some(n),
        },
    );
    // B saw the NOTIFICATION before the connection closed? It was queued first: deliver it.
    assert_eq!(p.a.s.state(), State::Idle);
    assert_ne!(p.b.s.state(), State::Established);
    p.run(p.now + Duration::from_secs(30), Duration::from_millis(100));
    assert_eq!(p.a.s.state(), State::Idle, "a manual stop does not restart");
}

/// Both speakers dial at the same time: each holds two sessions (one per connection), and
/// collision detection must keep the same TCP connection on both sides.
#[test]
fn simultaneous_dials_keep_the_connection_of_the_higher_identifier_on_both_sides() {
    // Connection 1 is dialled by A (A's session a1, B's session b1), connection 2 by B.
    let mk = |asn, id, peer, seed| Session::new(cfg(asn, id, peer, seed));
    let mut a1 = End::new(mk(65001, A_ID, 65000, 1));
    let mut a2 = End::new(mk(65001, A_ID, 65000, 3));
    let mut b1 = End::new(mk(65000, B_ID, 65001, 2));
    let mut b2 = End::new(mk(65000, B_ID, 65001, 4));
    let t = Duration::ZERO;
    for e in [&mut a1, &mut a2, &mut b1, &mut b2] {
        let acts = e.s.handle(
            t,
            Input::AutomaticStart {
                passive: true,
                damped: false,
            },
        );
        apply(e, acts);
    }
    // Both connections come up; each side sends its OPEN on each.
    let mut wire: Vec<(usize, Bytes)> = Vec::new(); // (destination index, bytes)
    let ends = [&mut a1, &mut a2, &mut b1, &mut b2];
    let [a1, a2, b1, b2] = ends;
    let initiators = [
        Initiator::Local,
        Initiator::Remote,
        Initiator::Remote,
        Initiator::Local,
    ];
    // Destination of each end's output: a1<->b1, a2<->b2.
    let dest = [2usize, 3, 0, 1];
    let mut all = [a1, a2, b1, b2];
    for (i, e) in all.iter_mut().enumerate() {
        let acts = e.s.handle(t, Input::TcpConnected(initiators[i]));
        for b in apply(e, acts).out {
            wire.push((dest[i], b));
        }
    }
    let ids = [A_ID, A_ID, B_ID, B_ID];
    let ases = [65001u32, 65001, 65000, 65000];
    for _round in 0..10 {
        let batch: Vec<(usize, Bytes)> = std::mem::take(&mut wire);
        for (to, bytes) in batch {
            let e = &mut all[to];
            if e.s.state() == State::Idle {
                continue;
            }
            let m = Message::decode(&bytes, &e.dec).unwrap();
            let acts = e.s.handle(t, Input::Message(m));
            let fx = apply(e, acts);
            for b in fx.out {
                wire.push((dest[to], b));
            }
            // Collision detection on the side that just learnt the peer's identifier.
            if all[to].s.state() == State::OpenConfirm {
                let sibling = match to {
                    0 => 1,
                    1 => 0,
                    2 => 3,
                    _ => 2,
                };
                let other_state = all[sibling].s.state();
                let remote = all[to].s.info().unwrap().peer_id;
                let verdict = collision::decide(
                    initiators[to],
                    other_state == State::Established,
                    matches!(other_state, State::OpenSent | State::OpenConfirm),
                    ids[to],
                    remote,
                    ases[to],
                    all[to].s.info().unwrap().peer_as,
                );
                if let Verdict::Dump(who) = verdict {
                    let loser = if who == initiators[to] { to } else { sibling };
                    let acts = all[loser].s.handle(t, Input::OpenCollisionDump);
                    for b in apply(all[loser], acts).out {
                        wire.push((dest[loser], b));
                    }
                }
            }
        }
    }
    let states: Vec<State> = all.iter().map(|e| e.s.state()).collect();
    // B has the higher identifier: the connection B dialled (connection 2: a2, b2) survives.
    assert_eq!(
        states,
        vec![
            State::Idle,
            State::Established,
            State::Idle,
            State::Established
        ],
        "{states:?}"
    );
}

fn arb_input() -> impl Strategy<Value = Input> {
    let keepalive = Just(Input::Message(Message::Keepalive));
    let open = (any::<u16>(), 3u16..200, any::<u32>()).prop_map(|(asn, hold, id)| {
        Input::Message(Message::Open(bgp::wire::Open::new(
            u32::from(asn).max(1),
            hold,
            Ipv4Addr::from(id.max(1)),
            vec![],
        )))
    });
    prop_oneof![
        Just(Input::ManualStart { passive: false }),
        Just(Input::ManualStart { passive: true }),
        Just(Input::AutomaticStart {
            passive: false,
            damped: true
        }),
        Just(Input::ManualStop { notification: None }),
        Just(Input::AutomaticStop {
            notification: Notification::cease(8, None),
            restart: Restart::Damped
        }),
        Just(Input::Tick),
        Just(Input::TcpConnected(Initiator::Local)),
        Just(Input::TcpConnected(Initiator::Remote)),
        Just(Input::TcpConnectionFails),
        Just(Input::OpenCollisionDump),
        Just(Input::SendUpdates(vec![Bytes::from_static(b"update")])),
        Just(Input::Message(
            Message::Update(bgp::wire::Update::default())
        )),
        Just(Input::Message(Message::Notification(Notification::cease(
            2, None
        )))),
        keepalive.clone(),
        keepalive,
        open,
    ]
}

proptest! {
    #[test]
    fn no_input_sequence_sends_an_update_outside_established(
        inputs in proptest::collection::vec((0u64..20_000, arb_input()), 1..200),
        peer_as in prop_oneof![Just(0u32), Just(65000u32)],
    ) {
        let mut s = Session::new(cfg(65001, A_ID, peer_as, 9));
        let mut now = Duration::ZERO;
        for (dt, input) in inputs {
            now += Duration::from_millis(dt);
            let before = s.state();
            let acts = s.handle(now, input);
            for a in &acts {
                let is_update = matches!(a, Action::SendUpdates(_) | Action::Send(Message::Update(_)));
                prop_assert!(!is_update || (before == State::Established && s.state() == State::Established),
                    "UPDATE sent in {before:?} -> {:?}", s.state());
            }
            if let Some(d) = s.next_deadline() {
                prop_assert!(d >= now);
            }
        }
    }
}
