//! The check behind the `fsm_sequence` fuzz target: one `bgp::fsm::Session` driven by an
//! arbitrary sequence of inputs at arbitrary times. Panics when
//!
//! - an UPDATE is sent while the session is not Established (RFC 4271 §8.2.2: UPDATEs only
//!   flow in Established), tracked action by action through the `StateChange`s;
//! - a `StateChange` does not start from the state the session was in, or the last one does
//!   not end in the state the session reports;
//! - `Established` is announced other than on entering Established;
//! - a message the FSM asks to send cannot be encoded with the session's context;
//! - a timer deadline lies in the past after an input;
//! - or anything panics inside the FSM.
//!
//! Messages come from the fuzzer either built (a peer OPEN with chosen AS, hold time,
//! identifier and capabilities, so sessions do get Established) or as raw octets run through
//! the real decoder with the context the session negotiated, so decode errors of every kind
//! reach the FSM as well.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::Duration;

use bgp::fsm::{
    Action, GracefulRestartCapability, Initiator, Input, Restart, Session, SessionConfig, State,
};
use bgp::wire::open::{GracefulRestart, GracefulRestartFamily};
use bgp::wire::{
    Capability, DecodeContext, EncodeContext, Family, Message, Notification, Open, RouteRefresh,
    RouteRefreshSubtype, Update,
};
use bytes::Bytes;

const LOCAL_AS: u32 = 65001;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Octets consumed one at a time; an exhausted reader gives zeros.
struct Bytes8<'a>(&'a [u8]);

impl Bytes8<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn config(r: &mut Bytes8<'_>) -> SessionConfig {
    let flags = r.u8();
    let peer_as = match flags & 3 {
        0 => 0,
        1 => LOCAL_AS,
        _ => 65000,
    };
    let mut c = SessionConfig::new(LOCAL_AS, ROUTER_ID, peer_as);
    c.hold_time = match r.u8() % 4 {
        0 => 0,
        1 => 3,
        2 => 9,
        _ => 90,
    };
    c.keepalive = (flags & 4 != 0).then_some(1);
    c.connect_retry = Duration::from_secs(1 + u64::from(r.u8() % 120));
    c.delay_open = (flags & 8 != 0).then_some(Duration::from_secs(5));
    c.passive = flags & 16 != 0;
    c.graceful_restart = (flags & 32 != 0).then_some(GracefulRestartCapability {
        restart_time: 120,
        notification: flags & 64 != 0,
        forwarding_preserved: true,
    });
    c.send_notification_without_open = flags & 128 != 0;
    c.jitter_seed = u64::from(r.u8());
    c
}

fn peer_open(r: &mut Bytes8<'_>, cfg: &SessionConfig) -> Open {
    let which = r.u8();
    let asn = match which & 3 {
        0 => cfg.peer_as.max(1),
        1 => LOCAL_AS,
        2 => 65000,
        _ => r.u32(),
    };
    let hold = match (which >> 2) & 3 {
        0 => 0,
        1 => 3,
        2 => 90,
        _ => r.u16(),
    };
    let id = match (which >> 4) & 3 {
        0 => ROUTER_ID,
        _ => Ipv4Addr::from(r.u32()),
    };
    let caps_bits = r.u8();
    let mut caps = Vec::new();
    if caps_bits & 1 != 0 {
        caps.push(Capability::Multiprotocol(Family::IPV4_UNICAST));
    }
    if caps_bits & 2 != 0 {
        caps.push(Capability::Multiprotocol(Family::IPV6_UNICAST));
    }
    if caps_bits & 4 != 0 {
        caps.push(Capability::FourOctetAs(asn));
    }
    if caps_bits & 8 != 0 {
        caps.push(Capability::RouteRefresh);
        caps.push(Capability::EnhancedRouteRefresh);
    }
    if caps_bits & 16 != 0 {
        caps.push(Capability::ExtendedMessage);
    }
    if caps_bits & 32 != 0 {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: caps_bits & 64 != 0,
            notification: caps_bits & 128 != 0,
            restart_time: r.u16() & 0x0fff,
            families: vec![GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        }));
    }
    Open::new(asn, hold, id, caps)
}

/// A message from raw octets (type and body from the fuzzer, header built here), decoded
/// with the session's context: the message, or the decode error the FSM gets instead.
fn raw_message(r: &mut Bytes8<'_>, ctx: &DecodeContext) -> Input {
    let kind = r.u8();
    let len = usize::from(r.u8()) * 4;
    let body = r.take(len);
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind % 7);
    m.extend_from_slice(body);
    match Message::decode(&m, ctx) {
        Ok(msg) => Input::Message(msg),
        Err(e) => Input::DecodeError(e),
    }
}

fn notification(r: &mut Bytes8<'_>) -> Notification {
    Notification {
        code: r.u8() % 8,
        subcode: r.u8() % 12,
        data: Vec::new(),
    }
}

fn input(r: &mut Bytes8<'_>, cfg: &SessionConfig, dec: &DecodeContext) -> Input {
    let op = r.u8();
    match op % 18 {
        0 => Input::ManualStart {
            passive: op & 0x80 != 0,
        },
        1 => Input::AutomaticStart {
            passive: op & 0x80 != 0,
            damped: op & 0x40 != 0,
        },
        2 => Input::ManualStop {
            notification: (op & 0x80 != 0).then(|| Notification::cease(2, Some("bye"))),
        },
        3 => Input::AutomaticStop {
            notification: notification(r),
            restart: match r.u8() % 3 {
                0 => Restart::Damped,
                1 => Restart::After(Duration::from_millis(u64::from(r.u16()))),
                _ => Restart::Never,
            },
        },
        4 => Input::Tick,
        5 => Input::TcpConnectionValid,
        6 => Input::TcpConnectionInvalid,
        7 => Input::TcpConnected(if op & 0x80 != 0 {
            Initiator::Local
        } else {
            Initiator::Remote
        }),
        8 => Input::TcpConnectionFails,
        9 | 10 => Input::Message(Message::Open(peer_open(r, cfg))),
        11 | 12 => Input::Message(Message::Keepalive),
        13 => raw_message(r, dec),
        14 => Input::Message(Message::Notification(notification(r))),
        15 => Input::OpenCollisionDump,
        16 => {
            let n = usize::from(r.u8() % 4);
            Input::SendUpdates(vec![Bytes::from_static(b"an encoded UPDATE"); n])
        }
        _ => match op & 0xc0 {
            0 => Input::Message(Message::Update(Update::default())),
            0x40 => Input::Message(Message::Update(Update::end_of_rib(Family::IPV4_UNICAST))),
            _ => Input::SendRouteRefresh(RouteRefresh {
                family: Family::IPV4_UNICAST,
                subtype: match r.u8() % 3 {
                    0 => RouteRefreshSubtype::Request,
                    1 => RouteRefreshSubtype::BeginningOfRouteRefresh,
                    _ => RouteRefreshSubtype::EndOfRouteRefresh,
                },
            }),
        },
    }
}

/// How far a sequence got, so tests can tell that their seeds mean something.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// The session was Established at some point.
    pub established: bool,
    /// UPDATEs it sent.
    pub updates_sent: usize,
    /// NOTIFICATIONs it sent.
    pub notifications_sent: usize,
}

/// Runs one input sequence through a session; panics when a property fails.
pub fn fsm_sequence(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut r = Bytes8(data);
    let cfg = config(&mut r);
    let mut s = Session::new(cfg.clone());
    let mut now = Duration::ZERO;
    let mut dec = DecodeContext::default();
    let mut enc = EncodeContext::default();
    let mut steps = 0;
    while !r.is_empty() && steps < 4096 {
        steps += 1;
        // Up to about 11 minutes between inputs, in 10 ms steps: every timer can expire.
        now += Duration::from_millis(u64::from(r.u16()) * 10);
        let inp = input(&mut r, &cfg, &dec);
        let mut state = s.state();
        let acts = s.handle(now, inp);
        for a in &acts {
            match a {
                Action::StateChange { from, to } => {
                    assert_eq!(*from, state, "a state change from a state it was not in");
                    assert_ne!(from, to, "a state change to the same state");
                    state = *to;
                }
                Action::SendUpdates(u) => {
                    assert_eq!(state, State::Established, "an UPDATE sent in {state:?}");
                    reached.updates_sent += u.len();
                }
                Action::Send(Message::Update(_)) => {
                    assert_eq!(state, State::Established, "an UPDATE sent in {state:?}");
                    reached.updates_sent += 1;
                }
                Action::Send(Message::Notification(_)) => reached.notifications_sent += 1,
                Action::Established => {
                    assert_eq!(
                        state,
                        State::Established,
                        "Established announced in {state:?}"
                    );
                    reached.established = true;
                }
                Action::OpenAccepted(info) => {
                    dec = info.negotiated.decode;
                    enc = info.negotiated.encode;
                }
                Action::Down { .. } => {
                    dec = DecodeContext::default();
                }
                _ => {}
            }
            if let Action::Send(m) = a
                && let Err(e) = m.to_bytes(&enc)
            {
                // An OPEN, KEEPALIVE or NOTIFICATION always fits its 4096 octets.
                panic!("the FSM asked to send a message that cannot be encoded: {e}: {m:?}");
            }
            if matches!(a, Action::Down { .. } | Action::Disconnect) {
                enc = EncodeContext::default();
            }
        }
        assert_eq!(
            state,
            s.state(),
            "the actions do not end in the session's state"
        );
        if let Some(d) = s.next_deadline() {
            assert!(d >= now, "a deadline {d:?} before now {now:?}");
        }
    }
    // Whatever happened, a manual stop always brings the session to Idle without an UPDATE.
    now += Duration::from_millis(1);
    let acts = s.handle(now, Input::ManualStop { notification: None });
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::SendUpdates(_) | Action::Send(Message::Update(_)))),
        "an UPDATE on stop"
    );
    assert_eq!(s.state(), State::Idle);
    reached
}
