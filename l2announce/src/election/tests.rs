//! The election on a simulated clock: nodes share one linearizable lease store; time only
//! moves when the simulation says so.

use super::*;
use crate::lease::LeaseName;
use proptest::prelude::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// One lease, versioned, with conditional writes.
#[derive(Default)]
struct Store {
    lease: Option<Lease>,
    version: u64,
}

impl Store {
    fn write(&mut self, expected: Option<&ResourceVersion>, record: LeaseRecord) -> Option<Lease> {
        if self.lease.as_ref().map(|l| &l.resource_version) != expected {
            return None;
        }
        self.version += 1;
        let lease = Lease {
            name: LeaseName::new("cilium-l2announce-default-web").unwrap(),
            record,
            resource_version: ResourceVersion(self.version.to_string()),
        };
        self.lease = Some(lease.clone());
        Some(lease)
    }
}

struct Node {
    e: Elector,
    alive: bool,
    eligible: bool,
    can_write: bool,
    wake: Instant,
}

struct Sim {
    t0: Instant,
    now: Instant,
    store: Store,
    nodes: Vec<Node>,
    /// Moments at which a node started leading, by node.
    acquisitions: Vec<(Instant, usize)>,
    /// Whether the backend tells candidates that a holder's process is gone.
    liveness: bool,
}

impl Sim {
    fn new(n: usize, timers: Timers) -> Sim {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            store: Store::default(),
            nodes: (0..n)
                .map(|i| Node {
                    e: Elector::new(format!("node{}", i + 1), timers, t0),
                    alive: true,
                    eligible: true,
                    can_write: true,
                    wake: t0,
                })
                .collect(),
            acquisitions: Vec::new(),
            liveness: false,
        }
    }

    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + (self.now - self.t0)
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive && self.nodes[*i].e.is_leading(self.now))
            .collect()
    }

    /// One loop of node `i`: read, decide, act; as the runner does.
    fn step(&mut self, i: usize) {
        let now = self.now;
        let wall = self.wall();
        let lease = self.store.lease.clone();
        let known = self.liveness;
        let gone = known
            && lease
                .as_ref()
                .and_then(|l| l.record.holder.as_deref())
                .is_some_and(|h| self.nodes.iter().any(|n| n.e.me() == h && !n.alive));
        let node = &mut self.nodes[i];
        node.e.observe(now, lease.as_ref());
        let was_leading = node.e.is_leading(now);
        let d = node.e.decide(now, node.eligible, gone);
        let node = &mut self.nodes[i];
        match d {
            Decision::Acquire | Decision::Renew => {
                let record = acquired_record(
                    wall,
                    lease.as_ref().map(|l| &l.record),
                    node.e.me(),
                    node.e.timers(),
                );
                let written = if node.can_write {
                    self.store
                        .write(lease.as_ref().map(|l| &l.resource_version), record)
                } else {
                    None
                };
                let node = &mut self.nodes[i];
                match written {
                    Some(l) => {
                        node.e.written(now, &l);
                        if !was_leading {
                            self.acquisitions.push((now, i));
                        }
                    }
                    None => node.e.write_failed(now),
                }
                let node = &mut self.nodes[i];
                node.wake = now + secs(0.001);
            }
            Decision::Release => {
                node.e.stop_leading();
                if let Some(l) = &lease {
                    let record = released_record(wall, &l.record);
                    let written = if node.can_write {
                        self.store.write(Some(&l.resource_version), record)
                    } else {
                        None
                    };
                    let node = &mut self.nodes[i];
                    match written {
                        Some(l) => node.e.released(now, &l),
                        None => node.e.write_failed(now),
                    }
                }
                self.nodes[i].wake = now + secs(0.001);
            }
            Decision::StepDown => {
                node.e.stop_leading();
                node.wake = now + secs(0.001);
            }
            Decision::Wait { until } => {
                assert!(until > now, "waiting into the past: {d:?}");
                node.wake = until;
            }
        }
    }

    /// Runs until `t0 + until`, checking that at no moment two nodes lead.
    fn run_until(&mut self, until: f64) {
        let end = self.t0 + secs(until);
        loop {
            let next = (0..self.nodes.len())
                .filter(|i| self.nodes[*i].alive)
                .min_by_key(|i| self.nodes[*i].wake);
            let Some(i) = next else { break };
            let at = self.nodes[i].wake;
            if at > end {
                break;
            }
            self.now = at;
            self.step(i);
            let leaders = self.leaders();
            assert!(
                leaders.len() <= 1,
                "two leaders at {:?}: {leaders:?}",
                self.now - self.t0
            );
        }
        self.now = end;
    }

    fn holder(&self) -> Option<String> {
        self.store
            .lease
            .as_ref()
            .and_then(|l| l.record.holder.clone())
    }

    fn since_start(&self, t: Instant) -> f64 {
        (t - self.t0).as_secs_f64()
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    fn restart(&mut self, i: usize) {
        let timers = *self.nodes[i].e.timers();
        let me = self.nodes[i].e.me().to_owned();
        self.nodes[i] = Node {
            e: Elector::new(me, timers, self.now),
            alive: true,
            eligible: true,
            can_write: true,
            wake: self.now,
        };
    }
}

#[test]
fn the_first_candidate_takes_a_missing_lease_and_the_others_wait() {
    let mut sim = Sim::new(3, Timers::default());
    sim.run_until(1.0);
    assert_eq!(sim.holder().as_deref(), Some("node1"));
    assert_eq!(sim.leaders(), vec![0]);
    assert_eq!(sim.acquisitions.len(), 1);
    assert_eq!(sim.store.lease.as_ref().unwrap().record.transitions, 0);
}

#[test]
fn a_holder_renews_every_retry_period_and_keeps_the_lease() {
    let mut sim = Sim::new(3, Timers::default());
    sim.run_until(120.0);
    assert_eq!(sim.leaders(), vec![0]);
    assert_eq!(sim.acquisitions.len(), 1);
    let l = sim.store.lease.as_ref().unwrap();
    assert_eq!(l.record.transitions, 0);
    assert_eq!(
        l.record.acquire_time,
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    // One create plus one renewal per retry period.
    assert_eq!(sim.store.version, 1 + 120 / 2);
}

#[test]
fn when_the_holder_dies_another_takes_over_within_a_retry_period_of_the_duration() {
    for kill_at in [10.0, 10.5, 11.0, 11.9] {
        let mut sim = Sim::new(3, Timers::default());
        sim.run_until(kill_at);
        sim.kill(0);
        sim.run_until(kill_at + 30.0);
        let (at, who) = *sim.acquisitions.last().unwrap();
        assert_ne!(who, 0);
        let failover = sim.since_start(at) - kill_at;
        assert!(
            (15.0 - 2.0..=15.0 + 2.0).contains(&failover),
            "killed at {kill_at}: failover {failover}"
        );
        assert_eq!(sim.store.lease.as_ref().unwrap().record.transitions, 1);
    }
}

#[test]
fn a_holder_that_cannot_write_stops_announcing_before_anybody_else_starts() {
    let mut sim = Sim::new(3, Timers::default());
    sim.run_until(9.0);
    let last_renew = sim.nodes[0].e.leading_since_renew.unwrap();
    sim.nodes[0].can_write = false;
    sim.run_until(12.0);
    // At the renew deadline after its last renewal it stops; nobody else leads yet.
    let deadline = sim.since_start(last_renew) + 5.0;
    sim.run_until(deadline - 0.01);
    assert_eq!(sim.leaders(), vec![0]);
    sim.run_until(deadline + 0.001);
    assert_eq!(sim.leaders(), Vec::<usize>::new());
    sim.run_until(40.0);
    let (at, who) = *sim.acquisitions.last().unwrap();
    assert_ne!(who, 0);
    assert!(sim.since_start(at) >= sim.since_start(last_renew) + 15.0);
}

#[test]
fn an_ineligible_holder_releases_and_another_takes_over_at_its_next_look() {
    let timers = Timers::default();
    let mut sim = Sim::new(3, timers);
    sim.run_until(7.3);
    sim.nodes[0].eligible = false;
    sim.nodes[0].wake = sim.now; // the runner wakes the task when eligibility changes
    sim.run_until(7.3 + 2.0 + 0.01);
    let (at, who) = *sim.acquisitions.last().unwrap();
    assert_ne!(who, 0);
    assert!(sim.since_start(at) - 7.3 <= timers.retry_period().as_secs_f64() + 0.01);
    assert!(!sim.nodes[0].e.is_leading(sim.now));
}

#[test]
fn an_ineligible_node_never_acquires_even_a_missing_lease() {
    let mut sim = Sim::new(1, Timers::default());
    sim.nodes[0].eligible = false;
    sim.run_until(60.0);
    assert!(sim.store.lease.is_none());
    assert!(sim.acquisitions.is_empty());
}

#[test]
fn an_ineligible_node_releases_a_stale_lease_that_still_names_it() {
    let mut sim = Sim::new(2, Timers::default());
    sim.run_until(3.0);
    sim.kill(0);
    sim.restart(0);
    sim.nodes[0].eligible = false;
    sim.run_until(3.0 + 2.0 + 0.01);
    assert_eq!(
        sim.holder().as_deref(),
        Some("node2"),
        "released by node1, taken by node2 at once"
    );
}

#[test]
fn a_restarted_holder_reclaims_its_lease_at_once_keeping_acquire_time_and_transitions() {
    let mut sim = Sim::new(3, Timers::default());
    sim.run_until(10.0);
    let before = sim.store.lease.clone().unwrap();
    sim.kill(0);
    sim.run_until(11.0);
    sim.restart(0);
    sim.run_until(11.0 + 0.5);
    let after = sim.store.lease.clone().unwrap();
    assert_eq!(after.record.holder.as_deref(), Some("node1"));
    assert_eq!(after.record.acquire_time, before.record.acquire_time);
    assert_eq!(after.record.transitions, 0);
    assert_eq!(sim.leaders(), vec![0]);
}

#[test]
fn a_holder_known_to_be_gone_is_replaced_at_the_next_look() {
    let timers = Timers::default();
    let t0 = Instant::now();
    let rec = acquired_record(SystemTime::now(), None, "node1", &timers);
    let base = Inputs {
        now: t0 + secs(1.0),
        me: "node2",
        timers: &timers,
        eligible: true,
        record: Some(&rec),
        observed_at: t0,
        leading_since_renew: None,
        last_failure: None,
        holder_gone: false,
    };
    assert_eq!(
        decide(base),
        Decision::Wait {
            until: t0 + secs(3.0)
        }
    );
    assert_eq!(
        decide(Inputs {
            holder_gone: true,
            ..base
        }),
        Decision::Acquire
    );
    // Not for the holder itself, and not if we may not announce.
    assert_eq!(
        decide(Inputs {
            holder_gone: true,
            eligible: false,
            ..base
        }),
        Decision::Wait {
            until: t0 + secs(16.0)
        }
    );
}

#[test]
fn with_a_backend_that_knows_liveness_a_killed_holder_is_replaced_within_a_retry_period() {
    let timers = Timers::new(secs(3.0), secs(1.0), secs(0.5)).unwrap();
    for kill_at in [5.0, 5.2, 5.45] {
        let mut sim = Sim::new(3, timers);
        sim.liveness = true;
        sim.run_until(kill_at);
        sim.kill(0);
        sim.run_until(kill_at + 5.0);
        let (at, who) = *sim.acquisitions.last().unwrap();
        assert_ne!(who, 0);
        let failover = sim.since_start(at) - kill_at;
        assert!(
            failover <= 0.5 + 1e-6,
            "killed at {kill_at}: failover {failover}"
        );
    }
}

#[test]
fn leadership_ends_at_the_renew_deadline_even_if_nobody_asks() {
    let timers = Timers::default();
    let t0 = Instant::now();
    let mut e = Elector::new("node1", timers, t0);
    let mut store = Store::default();
    let l = store
        .write(
            None,
            acquired_record(SystemTime::now(), None, "node1", &timers),
        )
        .unwrap();
    e.written(t0, &l);
    assert!(e.is_leading(t0 + secs(4.99)));
    assert!(!e.is_leading(t0 + secs(5.0)));
    // And a read showing another holder ends it at once.
    let other = store
        .write(
            Some(&l.resource_version),
            acquired_record(SystemTime::now(), Some(&l.record), "node2", &timers),
        )
        .unwrap();
    e.written(t0 + secs(2.0), &l);
    e.observe(t0 + secs(2.5), Some(&other));
    assert!(!e.is_leading(t0 + secs(2.5)));
    assert_eq!(e.decide(t0 + secs(2.5), true, false), Decision::StepDown);
}

#[test]
fn a_candidate_waits_at_most_until_the_lease_expires() {
    let timers = Timers::default();
    let t0 = Instant::now();
    let rec = acquired_record(SystemTime::now(), None, "node1", &timers);
    let at = |now: f64| {
        decide(Inputs {
            now: t0 + secs(now),
            me: "node2",
            timers: &timers,
            eligible: true,
            record: Some(&rec),
            observed_at: t0,
            leading_since_renew: None,
            last_failure: None,
            holder_gone: false,
        })
    };
    assert_eq!(
        at(0.0),
        Decision::Wait {
            until: t0 + secs(2.0)
        }
    );
    assert_eq!(
        at(14.0),
        Decision::Wait {
            until: t0 + secs(15.0)
        }
    );
    assert_eq!(at(15.0), Decision::Acquire);
}

#[test]
fn a_failed_write_waits_a_retry_period_before_the_next() {
    let timers = Timers::default();
    let t0 = Instant::now();
    let i = Inputs {
        now: t0 + secs(0.5),
        me: "node2",
        timers: &timers,
        eligible: true,
        record: None,
        observed_at: t0,
        leading_since_renew: None,
        last_failure: Some(t0),
        holder_gone: false,
    };
    assert_eq!(
        decide(i),
        Decision::Wait {
            until: t0 + secs(2.0)
        }
    );
    assert_eq!(
        decide(Inputs {
            now: t0 + secs(2.0),
            ..i
        }),
        Decision::Acquire
    );
    // A leader whose renewal failed retries a period later, and steps down at its deadline.
    let mine = acquired_record(SystemTime::now(), None, "node2", &timers);
    let l = Inputs {
        record: Some(&mine),
        leading_since_renew: Some(t0),
        last_failure: Some(t0 + secs(2.0)),
        now: t0 + secs(2.5),
        ..i
    };
    assert_eq!(
        decide(l),
        Decision::Wait {
            until: t0 + secs(4.0)
        }
    );
    assert_eq!(
        decide(Inputs {
            now: t0 + secs(4.0),
            ..l
        }),
        Decision::Renew
    );
    assert_eq!(
        decide(Inputs {
            now: t0 + secs(5.0),
            ..l
        }),
        Decision::StepDown
    );
}

#[test]
fn two_candidates_of_one_version_cannot_both_win() {
    let mut sim = Sim::new(2, Timers::default());
    // Both read "no lease" before either writes.
    let now = sim.now;
    for n in &mut sim.nodes {
        n.e.observe(now, None);
    }
    let r1 = acquired_record(sim.wall(), None, "node1", &Timers::default());
    let r2 = acquired_record(sim.wall(), None, "node2", &Timers::default());
    assert!(sim.store.write(None, r1).is_some());
    assert!(sim.store.write(None, r2).is_none());
}

#[test]
fn acquiring_from_another_holder_counts_a_transition_and_resets_acquire_time() {
    let timers = Timers::default();
    let t = UNIX_EPOCH + Duration::from_secs(100);
    let first = acquired_record(t, None, "node1", &timers);
    assert_eq!(
        (first.transitions, first.acquire_time, first.renew_time),
        (0, Some(t), Some(t))
    );
    let renewed = acquired_record(t + secs(2.0), Some(&first), "node1", &timers);
    assert_eq!(
        (
            renewed.transitions,
            renewed.acquire_time,
            renewed.renew_time
        ),
        (0, Some(t), Some(t + secs(2.0)))
    );
    let taken = acquired_record(t + secs(20.0), Some(&renewed), "node2", &timers);
    assert_eq!(
        (
            taken.transitions,
            taken.acquire_time,
            taken.holder.as_deref()
        ),
        (1, Some(t + secs(20.0)), Some("node2"))
    );
    let released = released_record(t + secs(21.0), &taken);
    assert_eq!(
        (
            released.holder.clone(),
            released.duration,
            released.transitions
        ),
        (None, secs(1.0), 1)
    );
    let again = acquired_record(t + secs(22.0), Some(&released), "node3", &timers);
    assert_eq!(again.transitions, 2);
}

#[test]
fn records_keep_microsecond_precision_like_kubernetes_micro_time() {
    let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    assert_eq!(
        micros(t),
        UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_000)
    );
}

#[test]
fn timers_follow_client_go_rules() {
    let s = secs;
    assert!(Timers::new(s(15.0), s(5.0), s(2.0)).is_ok());
    assert!(Timers::new(s(3.0), s(1.0), s(0.5)).is_ok());
    assert!(
        Timers::new(s(5.0), s(5.0), s(1.0)).is_err(),
        "duration must exceed the deadline"
    );
    assert!(
        Timers::new(s(15.0), s(2.0), s(2.0)).is_err(),
        "deadline must exceed 1.2 retries"
    );
    assert!(Timers::new(s(15.0), s(5.0), s(0.0)).is_err());
    assert_eq!(
        Timers::default(),
        Timers::new(s(15.0), s(5.0), s(2.0)).unwrap()
    );
}

#[derive(Debug, Clone)]
enum Event {
    Kill(usize),
    Restart(usize),
    Eligible(usize, bool),
    CanWrite(usize, bool),
    Run(f64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0usize..3).prop_map(Event::Kill),
        (0usize..3).prop_map(Event::Restart),
        (0usize..3, any::<bool>()).prop_map(|(i, b)| Event::Eligible(i, b)),
        (0usize..3, any::<bool>()).prop_map(|(i, b)| Event::CanWrite(i, b)),
        (0.01f64..20.0).prop_map(Event::Run),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever fails, two nodes never announce at the same moment, and when every node is
    /// alive, eligible and able to write, somebody leads again within a lease duration and
    /// two retry periods.
    #[test]
    fn never_two_leaders_and_always_one_again(events in proptest::collection::vec(event(), 1..40), short: bool) {
        let timers = if short { Timers::new(secs(3.0), secs(1.0), secs(0.5)).unwrap() } else { Timers::default() };
        let mut sim = Sim::new(3, timers);
        let mut t = 0.0;
        for e in events {
            match e {
                Event::Kill(i) => sim.kill(i),
                Event::Restart(i) => if !sim.nodes[i].alive { sim.restart(i) },
                Event::Eligible(i, b) => { sim.nodes[i].eligible = b; sim.nodes[i].wake = sim.now; }
                Event::CanWrite(i, b) => sim.nodes[i].can_write = b,
                Event::Run(d) => { t += d; sim.run_until(t); }
            }
        }
        for i in 0..3 {
            if !sim.nodes[i].alive { sim.restart(i); }
            sim.nodes[i].eligible = true;
            sim.nodes[i].can_write = true;
            sim.nodes[i].wake = sim.now;
        }
        let horizon = (timers.lease_duration() + timers.retry_period() * 2).as_secs_f64();
        sim.run_until(t + horizon + 0.01);
        prop_assert_eq!(sim.leaders().len(), 1);
    }
}
