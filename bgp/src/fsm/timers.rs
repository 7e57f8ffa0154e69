//! The five timers of RFC 4271 §8 as deadlines on the driver's clock, and the jitter of §10.
//!
//! Time is a [`Duration`] since an epoch the driver chooses; the FSM never reads a clock.
//! Jitter comes from a small deterministic generator seeded by the configuration, so a test
//! (or a fuzzer) replays exactly.

use std::time::Duration;

/// Which timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// ConnectRetryTimer (events 9).
    ConnectRetry,
    /// HoldTimer (event 10).
    Hold,
    /// KeepaliveTimer (event 11).
    Keepalive,
    /// DelayOpenTimer (event 12).
    DelayOpen,
    /// IdleHoldTimer (event 13).
    IdleHold,
}

impl Timer {
    /// In the order expired timers are processed.
    pub const ALL: [Timer; 5] = [
        Timer::ConnectRetry,
        Timer::DelayOpen,
        Timer::IdleHold,
        Timer::Hold,
        Timer::Keepalive,
    ];
}

/// Deadlines of the running timers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Timers {
    deadlines: [Option<Duration>; 5],
}

fn slot(t: Timer) -> usize {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
        Timer::DelayOpen => 3,
        Timer::IdleHold => 4,
    }
}

impl Timers {
    pub(crate) fn start(&mut self, t: Timer, now: Duration, after: Duration) {
        if let Some(d) = self.deadlines.get_mut(slot(t)) {
            *d = Some(now.saturating_add(after));
        }
    }

    pub(crate) fn stop(&mut self, t: Timer) {
        if let Some(d) = self.deadlines.get_mut(slot(t)) {
            *d = None;
        }
    }

    pub(crate) fn running(&self, t: Timer) -> bool {
        self.deadline(t).is_some()
    }

    pub(crate) fn deadline(&self, t: Timer) -> Option<Duration> {
        self.deadlines.get(slot(t)).copied().flatten()
    }

    /// The first timer (in [`Timer::ALL`] order) whose deadline has passed.
    pub(crate) fn first_expired(&self, now: Duration) -> Option<Timer> {
        Timer::ALL
            .into_iter()
            .find(|t| self.deadline(*t).is_some_and(|d| d <= now))
    }

    pub(crate) fn next(&self) -> Option<Duration> {
        self.deadlines.iter().flatten().min().copied()
    }

    pub(crate) fn stop_all(&mut self) {
        self.deadlines = [None; 5];
    }
}

/// SplitMix64: tiny, deterministic, good enough for timer jitter.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `d` multiplied by a factor in [0.75, 1.0] (RFC 4271 §10).
    pub(crate) fn apply(&mut self, d: Duration) -> Duration {
        let permille = 750 + (self.next_u64() % 251) as u32;
        d * permille / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_three_quarters_and_the_whole() {
        let mut j = Jitter::new(7);
        let d = Duration::from_secs(120);
        for _ in 0..1000 {
            let v = j.apply(d);
            assert!(v >= Duration::from_secs(90) && v <= d, "{v:?}");
        }
    }

    #[test]
    fn expired_timers_come_out_in_a_fixed_order() {
        let mut t = Timers::default();
        let now = Duration::from_secs(10);
        t.start(Timer::Keepalive, now, Duration::from_secs(1));
        t.start(Timer::Hold, now, Duration::from_secs(1));
        assert_eq!(t.next(), Some(Duration::from_secs(11)));
        assert_eq!(t.first_expired(Duration::from_secs(10)), None);
        assert_eq!(t.first_expired(Duration::from_secs(11)), Some(Timer::Hold));
        t.stop(Timer::Hold);
        assert_eq!(
            t.first_expired(Duration::from_secs(11)),
            Some(Timer::Keepalive)
        );
    }
}
