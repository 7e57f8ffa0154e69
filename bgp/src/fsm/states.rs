//! The state handlers of RFC 4271 §8.2.2: one function per state (Connect and Active share
//! one), each handling every event as the RFC says.

use std::time::Duration;

use super::{Action, DownReason, Event, Restart, Session, State, Timer, event_name, fsm_error};
use crate::wire::notification::{cease, fsm as fsm_sub};
use crate::wire::{ErrorCode, Message, Notification};

impl Session {
    pub(super) fn step(&mut self, now: Duration, ev: Event, acts: &mut Vec<Action>) {
        match self.state {
            State::Idle => self.idle(now, ev, acts),
            State::Connect | State::Active => self.connecting(now, ev, acts),
            State::OpenSent => self.open_sent(now, ev, acts),
            State::OpenConfirm => self.open_confirm(now, ev, acts),
            State::Established => self.established(now, ev, acts),
        }
    }

    fn idle(&mut self, now: Duration, ev: Event, acts: &mut Vec<Action>) {
        match ev {
            Event::Start {
                passive,
                manual,
                damped,
            } => {
                self.auto = true;
                self.passive = passive || self.config.passive;
                if manual {
                    self.connect_retry_counter = 0;
                    self.failures = 0;
                }
                if damped {
                    let d = self.damped_idle_hold();
                    self.timers.start(Timer::IdleHold, now, d);
                } else {
                    self.timers.stop(Timer::IdleHold);
                    self.begin(now, acts);
                }
            }
            Event::IdleHoldExpires => self.begin(now, acts),
            Event::ManualStop(_) => {
                self.auto = false;
                self.timers.stop_all();
            }
            // Everything else is ignored in Idle (connections are refused by the driver).
            _ => {}
        }
    }

    /// Connect and Active share most of their handling; differences are spelled out.
    fn connecting(&mut self, now: Duration, ev: Event, acts: &mut Vec<Action>) {
        let active = self.state == State::Active;
        let delay_open = self.timers.running(Timer::DelayOpen);
        match ev {
            Event::Start { .. } | Event::TcpValid | Event::TcpInvalid => {}
            Event::SendUpdates(_) | Event::SendRouteRefresh(_) => {}
            Event::ManualStop(n) => {
                self.auto = false;
                let send = n
                    .filter(|_| active && delay_open && self.config.send_notification_without_open);
                let reason = match &send {
                    Some(n) => DownReason::NotificationSent(n.clone()),
                    None => DownReason::Stopped,
                };
                self.connect_retry_counter = 0;
                self.fail(now, acts, send, reason, false, Restart::Never);
            }
            Event::ConnectRetryExpires => {
                self.timers.stop(Timer::DelayOpen);
                self.start_connect_retry(now);
                if active && self.config.passive {
                    return;
                }
                if !active {
                    acts.push(Action::Disconnect);
                }
                acts.push(Action::Connect);
                self.set_state(State::Connect, acts);
            }
            Event::DelayOpenExpires => {
                self.timers.stop(Timer::ConnectRetry);
                self.send_open(now, acts);
                self.set_state(State::OpenSent, acts);
            }
            Event::TcpUp(who) => {
                self.initiator = Some(who);
                self.timers.stop(Timer::ConnectRetry);
                match self.config.delay_open {
                    Some(d) => self.timers.start(Timer::DelayOpen, now, d),
                    None => {
                        self.send_open(now, acts);
                        self.set_state(State::OpenSent, acts);
                    }
                }
            }
            Event::TcpFails => {
                if !active && delay_open {
                    self.start_connect_retry(now);
                    self.timers.stop(Timer::DelayOpen);
                    self.initiator = None;
                    acts.push(Action::Down {
                        reason: DownReason::ConnectionLost,
                        established: false,
                    });
                    self.set_state(State::Active, acts);
                } else {
                    let wait = self.retry_wait();
                    self.fail(now, acts, None, DownReason::ConnectionLost, active, wait);
                }
            }
            Event::Open(o) if delay_open => {
                // Event 20: the peer's OPEN before our DelayOpenTimer ran out.
                self.receive_open(now, o, acts);
            }
            Event::HeaderErr(n) | Event::OpenMsgErr(n) => {
                let send = self
                    .config
                    .send_notification_without_open
                    .then(|| n.clone());
                self.fail(
                    now,
                    acts,
                    send,
                    DownReason::NotificationSent(n),
                    true,
                    Restart::Damped,
                );
            }
            Event::NotifVerErr(n) => {
                let count = !delay_open;
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::NotificationReceived(n),
                    count,
                    Restart::Damped,
                );
            }
            Event::AutomaticStop(n, restart) => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::NotificationSent(n),
                    true,
                    restart,
                );
            }
            Event::Notif(n) => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::NotificationReceived(n),
                    true,
                    Restart::Damped,
                );
            }
            other => {
                let what = event_name(&other);
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::Unexpected(what),
                    true,
                    Restart::Damped,
                );
            }
        }
    }

    fn open_sent(&mut self, now: Duration, ev: Event, acts: &mut Vec<Action>) {
        match ev {
            Event::Start { .. } | Event::TcpValid | Event::TcpInvalid | Event::TcpUp(_) => {}
            Event::SendUpdates(_) | Event::SendRouteRefresh(_) => {}
            Event::ManualStop(n) => self.manual_stop(now, n, acts),
            Event::AutomaticStop(n, restart) => {
                self.fail(
                    now,
                    acts,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    true,
                    restart,
                );
            }
            Event::HoldExpires => self.hold_expired(now, acts),
            Event::TcpFails => {
                // Back to Active: the peer may connect again.
                self.timers.stop_all();
                acts.push(Action::Disconnect);
                acts.push(Action::Down {
                    reason: DownReason::ConnectionLost,
                    established: false,
                });
                self.release();
                self.start_connect_retry(now);
                self.set_state(State::Active, acts);
            }
            Event::Open(o) => self.receive_open(now, o, acts),
            Event::HeaderErr(n) | Event::OpenMsgErr(n) => {
                self.fail(
                    now,
                    acts,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    true,
                    Restart::Damped,
                );
            }
            Event::CollisionDump => self.collision_dump(now, acts),
            Event::NotifVerErr(n) => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::NotificationReceived(n),
                    false,
                    Restart::Damped,
                );
            }
            Event::Notif(n) => {
                // RFC 4271 §8.2.2: events 25 in OpenSent answer with an FSM error.
                let fsm = fsm_error(fsm_sub::UNEXPECTED_IN_OPEN_SENT);
                self.fail(
                    now,
                    acts,
                    Some(fsm),
                    DownReason::NotificationReceived(n),
                    true,
                    Restart::Damped,
                );
            }
            _ => {
                let fsm = fsm_error(fsm_sub::UNEXPECTED_IN_OPEN_SENT);
                self.fail(
                    now,
                    acts,
                    Some(fsm.clone()),
                    DownReason::NotificationSent(fsm),
                    true,
                    Restart::Damped,
                );
            }
        }
    }

    fn open_confirm(&mut self, now: Duration, ev: Event, acts: &mut Vec<Action>) {
        match ev {
            Event::Start { .. } | Event::TcpValid | Event::TcpInvalid | Event::TcpUp(_) => {}
            Event::SendUpdates(_) | Event::SendRouteRefresh(_) => {}
            Event::ManualStop(n) => self.manual_stop(now, n, acts),
            Event::AutomaticStop(n, restart) => {
                self.fail(
                    now,
                    acts,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    true,
                    restart,
                );
            }
            Event::HoldExpires => self.hold_expired(now, acts),
            Event::KeepaliveExpires => {
                acts.push(Action::Send(Message::Keepalive));
                self.start_keepalive(now);
            }
            Event::TcpFails => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::ConnectionLost,
                    true,
                    Restart::Damped,
                );
            }
            Event::Notif(n) => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::NotificationReceived(n),
                    true,
                    Restart::Damped,
                );
            }
            Event::NotifVerErr(n) => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::NotificationReceived(n),
                    false,
                    Restart::Damped,
                );
            }
            Event::HeaderErr(n) | Event::OpenMsgErr(n) => {
                self.fail(
                    now,
                    acts,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    true,
                    Restart::Damped,
                );
            }
            Event::CollisionDump => self.collision_dump(now, acts),
            Event::Keepalive => {
                self.restart_hold(now);
                self.failures = 0;
                self.was_established = true;
                self.established_at = Some(now);
                self.set_state(State::Established, acts);
                acts.push(Action::Established);
            }
            _ => {
                let fsm = fsm_error(fsm_sub::UNEXPECTED_IN_OPEN_CONFIRM);
                self.fail(
                    now,
                    acts,
                    Some(fsm.clone()),
                    DownReason::NotificationSent(fsm),
                    true,
                    Restart::Damped,
                );
            }
        }
    }

    fn established(&mut self, now: Duration, ev: Event, acts: &mut Vec<Action>) {
        match ev {
            Event::Start { .. } | Event::TcpValid | Event::TcpInvalid | Event::TcpUp(_) => {}
            Event::ManualStop(n) => self.manual_stop(now, n, acts),
            Event::AutomaticStop(n, restart) => {
                self.fail(
                    now,
                    acts,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    true,
                    restart,
                );
            }
            Event::HoldExpires => self.hold_expired(now, acts),
            Event::KeepaliveExpires => {
                acts.push(Action::Send(Message::Keepalive));
                self.start_keepalive(now);
            }
            Event::TcpFails => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::ConnectionLost,
                    true,
                    Restart::Damped,
                );
            }
            Event::Notif(n) | Event::NotifVerErr(n) => {
                self.fail(
                    now,
                    acts,
                    None,
                    DownReason::NotificationReceived(n),
                    true,
                    Restart::Damped,
                );
            }
            Event::Keepalive => self.restart_hold(now),
            Event::Update(u) => {
                self.restart_hold(now);
                acts.push(Action::Update(u));
            }
            Event::RouteRefresh(r) => {
                self.restart_hold(now);
                acts.push(Action::RouteRefresh(r));
            }
            Event::UpdateErr(n) | Event::HeaderErr(n) | Event::OpenMsgErr(n) => {
                self.fail(
                    now,
                    acts,
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                    true,
                    Restart::Damped,
                );
            }
            Event::CollisionDump => self.collision_dump(now, acts),
            Event::SendUpdates(u) => {
                if !u.is_empty() {
                    acts.push(Action::SendUpdates(u));
                    self.start_keepalive(now);
                }
            }
            Event::SendRouteRefresh(r) => {
                acts.push(Action::Send(Message::RouteRefresh(r)));
            }
            _ => {
                let fsm = fsm_error(fsm_sub::UNEXPECTED_IN_ESTABLISHED);
                self.fail(
                    now,
                    acts,
                    Some(fsm.clone()),
                    DownReason::NotificationSent(fsm),
                    true,
                    Restart::Damped,
                );
            }
        }
    }

    fn manual_stop(&mut self, now: Duration, n: Option<Notification>, acts: &mut Vec<Action>) {
        self.auto = false;
        self.connect_retry_counter = 0;
        let reason = match &n {
            Some(n) => DownReason::NotificationSent(n.clone()),
            None => DownReason::Stopped,
        };
        self.fail(now, acts, n, reason, false, Restart::Never);
    }

    fn hold_expired(&mut self, now: Duration, acts: &mut Vec<Action>) {
        let n = Notification::new(ErrorCode::HoldTimerExpired, 0, Vec::new());
        self.fail(
            now,
            acts,
            Some(n.clone()),
            DownReason::NotificationSent(n),
            true,
            Restart::Damped,
        );
    }

    fn collision_dump(&mut self, now: Duration, acts: &mut Vec<Action>) {
        let n = Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION, None);
        // The surviving connection carries on: no damping for the loser.
        self.fail(
            now,
            acts,
            Some(n.clone()),
            DownReason::NotificationSent(n),
            true,
            Restart::Never,
        );
    }
}
