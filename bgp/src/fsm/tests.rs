//! Deterministic tests of one session on a simulated clock.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::wire::notification::{cease, open as open_sub, update as update_sub};
use crate::wire::open::Capability;
use crate::wire::{DecodeContext, Family};

const ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn config() -> SessionConfig {
    let mut c = SessionConfig::new(65001, ID, 65000);
    c.hold_time = 9;
    c.keepalive = Some(3);
    c.connect_retry = s(5);
    c.jitter_seed = 42;
    c
}

fn peer_open(asn: u32, hold: u16, id: Ipv4Addr) -> Message {
    Message::Open(Open::new(
        asn,
        hold,
        id,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    ))
}

fn sent(acts: &[Action]) -> Vec<&Message> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn notification(acts: &[Action]) -> Option<(u8, u8)> {
    sent(acts).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some((n.code, n.subcode)),
        _ => None,
    })
}

/// A session brought to Established at t = 0 by the usual exchange.
fn established() -> Session {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    x.handle(s(0), Input::Message(peer_open(65000, 90, PEER_ID)));
    let acts = x.handle(s(0), Input::Message(Message::Keepalive));
    assert!(acts.contains(&Action::Established));
    x
}

#[test]
fn manual_start_dials_and_the_connect_retry_timer_dials_again() {
    let mut x = Session::new(config());
    let acts = x.handle(s(0), Input::ManualStart { passive: false });
    assert_eq!(acts.first(), Some(&Action::Connect));
    assert_eq!(x.state(), State::Connect);
    let deadline = x.next_deadline().unwrap();
    assert!(
        deadline >= Duration::from_millis(3750) && deadline <= s(5),
        "{deadline:?}"
    );
    let acts = x.handle(deadline, Input::Tick);
    assert_eq!(acts, vec![Action::Disconnect, Action::Connect]);
    assert_eq!(x.state(), State::Connect);
}

#[test]
fn a_passive_session_waits_in_active_and_never_dials() {
    let mut c = config();
    c.passive = true;
    let mut x = Session::new(c);
    let acts = x.handle(s(0), Input::ManualStart { passive: false });
    assert!(!acts.contains(&Action::Connect));
    assert_eq!(x.state(), State::Active);
    for t in 1..100 {
        let acts = x.handle(s(t * 5), Input::Tick);
        assert!(!acts.contains(&Action::Connect));
    }
    let acts = x.handle(s(600), Input::TcpConnected(Initiator::Remote));
    assert!(matches!(sent(&acts)[..], [Message::Open(_)]));
    assert_eq!(x.state(), State::OpenSent);
}

#[test]
fn the_open_carries_our_capabilities_and_a_four_minute_hold_timer_runs_in_open_sent() {
    let mut c = config();
    c.local_as = 4_200_000_001;
    c.graceful_restart = Some(GracefulRestartCapability {
        restart_time: 15,
        notification: true,
        forwarding_preserved: true,
    });
    c.restarting = true;
    c.extended_next_hop = FamilySet::of(&[Family::IPV4_UNICAST]);
    let mut x = Session::new(c);
    x.handle(s(0), Input::ManualStart { passive: false });
    let acts = x.handle(s(1), Input::TcpConnected(Initiator::Local));
    let Message::Open(o) = sent(&acts)[0] else {
        panic!()
    };
    assert_eq!(o.my_as, crate::wire::open::AS_TRANS);
    assert_eq!(o.asn(), 4_200_000_001);
    assert_eq!(o.hold_time, 9);
    assert!(o.capabilities().any(|c| matches!(c, Capability::GracefulRestart(g) if g.restart_state && g.notification && g.restart_time == 15)));
    assert!(
        o.capabilities()
            .any(|c| matches!(c, Capability::ExtendedNextHop(_)))
    );
    assert_eq!(o.multiprotocol().count(), 2);
    assert_eq!(x.next_deadline(), Some(s(241)));
    let acts = x.handle(s(241), Input::Tick);
    assert_eq!(notification(&acts), Some((4, 0)));
    assert_eq!(x.state(), State::Idle);
}

#[test]
fn the_open_exchange_applies_the_smaller_hold_time_and_the_keepalive() {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    let acts = x.handle(s(0), Input::Message(peer_open(65000, 6, PEER_ID)));
    assert!(matches!(sent(&acts)[..], [Message::Keepalive]));
    let info = x.info().unwrap();
    assert_eq!((info.hold_time, info.keepalive), (6, 2));
    assert!(info.ebgp);
    assert_eq!(info.families, FamilySet::of(&[Family::IPV4_UNICAST]));
    assert_eq!(x.state(), State::OpenConfirm);
    let acts = x.handle(s(1), Input::Message(Message::Keepalive));
    assert!(acts.contains(&Action::Established));
    assert_eq!(x.established_at(), Some(s(1)));
}

#[test]
fn keepalives_go_out_every_interval_and_the_hold_timer_ends_a_silent_session() {
    let mut x = established();
    let mut keepalives = 0;
    let mut t = Duration::ZERO;
    let mut last = Vec::new();
    while t < s(30) && x.state() == State::Established {
        t += Duration::from_millis(100);
        last = x.handle(t, Input::Tick);
        keepalives += sent(&last)
            .iter()
            .filter(|m| ***m == Message::Keepalive)
            .count();
    }
    // Hold 9 s with nothing received: the session ends at 9 s, after at least three keepalives
    // (every 2.25 to 3 s with jitter).
    assert_eq!(x.state(), State::Idle);
    assert!(
        (s(9)..s(9) + Duration::from_millis(100)).contains(&t),
        "{t:?}"
    );
    assert!((3..=4).contains(&keepalives), "{keepalives}");
    assert_eq!(notification(&last), Some((4, 0)));
    assert!(last.iter().any(|a| matches!(
        a,
        Action::Down {
            established: true,
            ..
        }
    )));
    // Then it starts again by itself, after the idle hold time.
    let restart = x.next_deadline().unwrap();
    assert!(x.timer_running(Timer::IdleHold));
    let acts = x.handle(restart, Input::Tick);
    assert_eq!(acts.first(), Some(&Action::Connect));
}

#[test]
fn a_hold_time_of_zero_means_no_keepalives_and_no_hold_timer() {
    let mut c = config();
    c.hold_time = 0;
    let mut x = Session::new(c);
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    x.handle(s(0), Input::Message(peer_open(65000, 90, PEER_ID)));
    x.handle(s(0), Input::Message(Message::Keepalive));
    assert_eq!(x.state(), State::Established);
    assert_eq!(x.info().unwrap().keepalive, 0);
    assert_eq!(x.next_deadline(), None);
    let acts = x.handle(s(10_000), Input::Tick);
    assert!(acts.is_empty());
}

#[test]
fn an_unexpected_peer_as_is_refused_with_bad_peer_as() {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    let acts = x.handle(s(0), Input::Message(peer_open(65099, 90, PEER_ID)));
    assert_eq!(notification(&acts), Some((2, open_sub::BAD_PEER_AS)));
    assert_eq!(x.state(), State::Idle);
}

#[test]
fn peer_as_zero_accepts_any_as_and_tells_ibgp_from_ebgp() {
    let mut c = config();
    c.peer_as = 0;
    for (asn, ebgp) in [(65099, true), (65001, false)] {
        let mut x = Session::new(c.clone());
        x.handle(s(0), Input::ManualStart { passive: false });
        x.handle(s(0), Input::TcpConnected(Initiator::Local));
        x.handle(s(0), Input::Message(peer_open(asn, 90, PEER_ID)));
        assert_eq!(x.state(), State::OpenConfirm);
        assert_eq!(x.info().unwrap().ebgp, ebgp);
        assert_eq!(x.info().unwrap().peer_as, asn);
    }
}

#[test]
fn ibgp_with_our_own_identifier_is_refused_with_bad_bgp_identifier() {
    let mut c = config();
    c.peer_as = 65001;
    let mut x = Session::new(c);
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    let acts = x.handle(s(0), Input::Message(peer_open(65001, 90, ID)));
    assert_eq!(notification(&acts), Some((2, open_sub::BAD_BGP_IDENTIFIER)));
}

#[test]
fn no_family_in_common_is_refused_with_unsupported_capability() {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    let open = Open::new(
        65000,
        90,
        PEER_ID,
        vec![Capability::Multiprotocol(Family::new(25, 70))],
    );
    let acts = x.handle(s(0), Input::Message(Message::Open(open)));
    assert_eq!(
        notification(&acts),
        Some((2, open_sub::UNSUPPORTED_CAPABILITY))
    );
}

#[test]
fn an_update_before_the_open_exchange_is_a_finite_state_machine_error() {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    let acts = x.handle(s(0), Input::Message(Message::Update(Update::default())));
    assert_eq!(notification(&acts), Some((5, 1)));
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    x.handle(s(0), Input::Message(peer_open(65000, 90, PEER_ID)));
    let acts = x.handle(s(0), Input::Message(Message::Update(Update::default())));
    assert_eq!(notification(&acts), Some((5, 2)));
}

#[test]
fn updates_to_send_are_dropped_outside_established() {
    let mut x = Session::new(config());
    let u = vec![Bytes::from_static(b"not really an update")];
    for input in [
        Input::ManualStart { passive: false },
        Input::SendUpdates(u.clone()),
        Input::TcpConnected(Initiator::Local),
        Input::SendUpdates(u.clone()),
        Input::Message(peer_open(65000, 90, PEER_ID)),
        Input::SendUpdates(u.clone()),
    ] {
        let acts = x.handle(s(0), input);
        assert!(!acts.iter().any(|a| matches!(a, Action::SendUpdates(_))));
    }
    x.handle(s(0), Input::Message(Message::Keepalive));
    let acts = x.handle(s(0), Input::SendUpdates(u.clone()));
    assert_eq!(acts, vec![Action::SendUpdates(u)]);
}

#[test]
fn manual_stop_in_established_sends_the_cease_and_stays_idle() {
    let mut x = established();
    let n = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN, Some("peer removed"));
    let acts = x.handle(
        s(1),
        Input::ManualStop {
            notification: Some(n.clone()),
        },
    );
    assert_eq!(acts[0], Action::Send(Message::Notification(n.clone())));
    assert!(acts.contains(&Action::Disconnect));
    assert!(acts.contains(&Action::Down {
        reason: DownReason::NotificationSent(n),
        established: true
    }));
    assert_eq!(x.state(), State::Idle);
    assert_eq!(x.next_deadline(), None);
}

#[test]
fn manual_stop_without_notification_just_drops_the_connection() {
    let mut x = established();
    let acts = x.handle(s(1), Input::ManualStop { notification: None });
    assert!(sent(&acts).is_empty());
    assert!(acts.contains(&Action::Down {
        reason: DownReason::Stopped,
        established: true
    }));
}

#[test]
fn automatic_stop_restarts_after_the_given_interval_or_never() {
    let mut x = established();
    let n = Notification::cease(cease::MAXIMUM_PREFIXES_REACHED, None);
    let acts = x.handle(
        s(1),
        Input::AutomaticStop {
            notification: n,
            restart: Restart::After(s(30)),
        },
    );
    assert_eq!(notification(&acts), Some((6, 1)));
    assert_eq!(x.next_deadline(), Some(s(31)));
    let mut x = established();
    x.handle(
        s(1),
        Input::AutomaticStop {
            notification: Notification::cease(cease::MAXIMUM_PREFIXES_REACHED, None),
            restart: Restart::Never,
        },
    );
    assert_eq!(x.next_deadline(), None);
}

#[test]
fn a_collision_dump_sends_cease_connection_collision_resolution() {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    x.handle(s(0), Input::Message(peer_open(65000, 90, PEER_ID)));
    let acts = x.handle(s(0), Input::OpenCollisionDump);
    assert_eq!(
        notification(&acts),
        Some((6, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    assert_eq!(x.state(), State::Idle);
}

#[test]
fn delay_open_waits_for_the_peer_and_answers_its_open_at_once() {
    let mut c = config();
    c.delay_open = Some(s(5));
    let mut x = Session::new(c.clone());
    x.handle(s(0), Input::ManualStart { passive: false });
    let acts = x.handle(s(0), Input::TcpConnected(Initiator::Local));
    assert!(sent(&acts).is_empty());
    assert!(x.timer_running(Timer::DelayOpen));
    let acts = x.handle(s(1), Input::Message(peer_open(65000, 90, PEER_ID)));
    assert!(matches!(
        sent(&acts)[..],
        [Message::Open(_), Message::Keepalive]
    ));
    assert_eq!(x.state(), State::OpenConfirm);
    // Without the peer's OPEN, ours goes out when the timer expires.
    let mut x = Session::new(c);
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    let acts = x.handle(s(5), Input::Tick);
    assert!(matches!(sent(&acts)[..], [Message::Open(_)]));
    assert_eq!(x.state(), State::OpenSent);
}

#[test]
fn a_notification_in_established_ends_the_session_with_its_reason() {
    let mut x = established();
    let n = Notification::cease(cease::ADMINISTRATIVE_RESET, Some("clear"));
    let acts = x.handle(s(2), Input::Message(Message::Notification(n.clone())));
    assert!(sent(&acts).is_empty());
    assert!(acts.contains(&Action::Down {
        reason: DownReason::NotificationReceived(n),
        established: true
    }));
}

#[test]
fn an_undecodable_update_in_established_sends_its_own_notification() {
    let mut x = established();
    // A withdrawn-routes length that overruns the message.
    let bytes = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0, 23, 2, 0, 9, 0, 0,
    ];
    let e = Message::decode(&bytes, &DecodeContext::default()).unwrap_err();
    let acts = x.handle(s(1), Input::DecodeError(e));
    assert_eq!(
        notification(&acts),
        Some((3, update_sub::MALFORMED_ATTRIBUTE_LIST))
    );
}

#[test]
fn a_refused_connection_goes_idle_and_dials_again_after_the_connect_retry_time() {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    let acts = x.handle(s(0), Input::TcpConnectionFails);
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Down {
            established: false,
            ..
        }
    )));
    assert_eq!(x.state(), State::Idle);
    let next = x.next_deadline().unwrap();
    assert!(next >= Duration::from_millis(3750) && next <= s(5));
    let acts = x.handle(next, Input::Tick);
    assert_eq!(acts.first(), Some(&Action::Connect));
}

#[test]
fn a_lost_connection_in_open_sent_goes_back_to_active() {
    let mut x = Session::new(config());
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    x.handle(s(0), Input::TcpConnectionFails);
    assert_eq!(x.state(), State::Active);
    assert!(x.timer_running(Timer::ConnectRetry));
}

#[test]
fn repeated_session_failures_double_the_idle_hold_time_up_to_the_maximum() {
    let mut c = config();
    c.idle_hold = s(1);
    c.idle_hold_max = s(8);
    let mut x = Session::new(c);
    x.handle(s(0), Input::ManualStart { passive: false });
    let mut waits = Vec::new();
    let mut t = s(0);
    for _ in 0..6 {
        x.handle(t, Input::TcpConnected(Initiator::Local));
        x.handle(t, Input::Message(Message::Keepalive)); // FSM error in OpenSent
        let restart = x.next_deadline().unwrap();
        waits.push((restart - t).as_millis());
        t = restart;
        x.handle(t, Input::Tick);
    }
    // 1, 2, 4, 8, 8, 8 s, each jittered to 75-100 %.
    let expected = [1000u128, 2000, 4000, 8000, 8000, 8000];
    for (w, e) in waits.iter().zip(expected) {
        assert!(*w >= e * 3 / 4 && *w <= e, "{waits:?}");
    }
}

#[test]
fn a_successful_session_resets_the_damping() {
    let mut x = established();
    x.handle(s(1), Input::TcpConnectionFails);
    let wait = x.next_deadline().unwrap() - s(1);
    assert!(wait <= s(1), "{wait:?}");
}

#[test]
fn the_restart_bit_is_only_set_until_a_session_was_established() {
    let mut c = config();
    c.graceful_restart = Some(GracefulRestartCapability {
        restart_time: 120,
        notification: false,
        forwarding_preserved: true,
    });
    c.restarting = true;
    let mut x = Session::new(c);
    x.handle(s(0), Input::ManualStart { passive: false });
    x.handle(s(0), Input::TcpConnected(Initiator::Local));
    x.handle(s(0), Input::Message(peer_open(65000, 90, PEER_ID)));
    x.handle(s(0), Input::Message(Message::Keepalive));
    x.handle(s(1), Input::TcpConnectionFails);
    let t = x.next_deadline().unwrap();
    x.handle(t, Input::Tick);
    let acts = x.handle(t, Input::TcpConnected(Initiator::Local));
    let Message::Open(o) = sent(&acts)[0] else {
        panic!()
    };
    let gr = o
        .capabilities()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!gr.restart_state);
}
