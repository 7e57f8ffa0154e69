//! Flap damping: a BFD session that keeps failing is held Down for longer and longer before it
//! may come Up again — and so before it can take BGP down again.
//!
//! RFC 5880 §6.8.18 lets a system hold a session in Down; this is the policy for when:
//!
//! - every Up→Down transition is a flap; the first `free_flaps` of a series cost nothing;
//! - the next one holds the session Down for `initial_hold`, each one after that for twice as
//!   long as the one before, never more than `max_hold`;
//! - a session that then stays Up for `decay` starts a new series (its count goes back to 0).
//!
//! With the defaults (1 free flap, 2 s, 120 s, 60 s) a link that flaps every few seconds costs
//! BGP one reset, then BFD waits 2, 4, 8 ... 120 s after each further failure before it trusts
//! the path again; one quiet minute forgives everything. While BFD is held down the BGP session
//! is protected only by its hold timer (see `manager` for why BGP is not held with it).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The damping parameters (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DampingConfig {
    /// Flaps of a series that are not held down.
    pub free_flaps: u32,
    /// Hold-down after the first flap beyond the free ones.
    #[serde(with = "crate::bfd::millis")]
    pub initial_hold: Duration,
    /// Longest hold-down.
    #[serde(with = "crate::bfd::millis")]
    pub max_hold: Duration,
    /// Time Up after which the series starts again.
    #[serde(with = "crate::bfd::millis")]
    pub decay: Duration,
}

impl Default for DampingConfig {
    fn default() -> DampingConfig {
        DampingConfig {
            free_flaps: 1,
            initial_hold: Duration::from_secs(2),
            max_hold: Duration::from_secs(120),
            decay: Duration::from_secs(60),
        }
    }
}

impl DampingConfig {
    /// No damping: every flap is free.
    pub fn off() -> DampingConfig {
        DampingConfig {
            free_flaps: u32::MAX,
            ..DampingConfig::default()
        }
    }

    /// The hold-down after the `n`-th flap of a series (1-based).
    pub fn hold_after(&self, n: u32) -> Option<Duration> {
        let beyond = n.checked_sub(self.free_flaps)?.checked_sub(1)?;
        let factor = 1u32 << beyond.min(30);
        Some(self.initial_hold.saturating_mul(factor).min(self.max_hold))
    }
}

/// One session's flap history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damping {
    config: DampingConfig,
    series: u32,
    total: u32,
    up_since: Option<Duration>,
    hold_until: Option<Duration>,
}

impl Damping {
    /// No flaps yet.
    pub fn new(config: DampingConfig) -> Damping {
        Damping {
            config,
            series: 0,
            total: 0,
            up_since: None,
            hold_until: None,
        }
    }

    /// New parameters; the history stays.
    pub fn set_config(&mut self, config: DampingConfig) {
        self.config = config;
    }

    /// The session came Up.
    pub fn up(&mut self, now: Duration) {
        self.up_since = Some(now);
    }

    /// The session went from Up to Down: counts the flap and returns the hold-down, if any.
    pub fn down(&mut self, now: Duration) -> Option<Duration> {
        if let Some(since) = self.up_since.take()
            && now.saturating_sub(since) >= self.config.decay
        {
            self.series = 0;
        }
        self.series = self.series.saturating_add(1);
        self.total = self.total.saturating_add(1);
        let hold = self.config.hold_after(self.series)?;
        self.hold_until = Some(now.saturating_add(hold));
        Some(hold)
    }

    /// Whether the session must stay Down at `now`.
    pub fn held(&self, now: Duration) -> bool {
        self.hold_until.is_some_and(|t| now < t)
    }

    /// When the current hold-down ends, if one is running at `now`.
    pub fn held_until(&self, now: Duration) -> Option<Duration> {
        self.hold_until.filter(|t| now < *t)
    }

    /// Flaps of the current series (what the next hold-down is computed from).
    pub fn series(&self) -> u32 {
        self.series
    }

    /// Flaps since the session was created.
    pub fn total(&self) -> u32 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn the_first_flap_is_free_and_later_ones_double_up_to_the_maximum() {
        let c = DampingConfig::default();
        let holds: Vec<Option<Duration>> = (1..=10).map(|n| c.hold_after(n)).collect();
        assert_eq!(
            holds,
            [
                None,
                Some(s(2)),
                Some(s(4)),
                Some(s(8)),
                Some(s(16)),
                Some(s(32)),
                Some(s(64)),
                Some(s(120)),
                Some(s(120)),
                Some(s(120))
            ]
        );
        assert_eq!(c.hold_after(u32::MAX), Some(s(120)));
        assert_eq!(DampingConfig::off().hold_after(1_000_000), None);
    }

    #[test]
    fn a_flapping_session_is_held_down_for_longer_each_time() {
        let mut d = Damping::new(DampingConfig::default());
        d.up(s(0));
        assert_eq!(d.down(s(5)), None);
        assert!(!d.held(s(5)));
        d.up(s(7));
        assert_eq!(d.down(s(10)), Some(s(2)));
        assert!(d.held(s(11)));
        assert_eq!(d.held_until(s(11)), Some(s(12)));
        assert!(!d.held(s(12)));
        d.up(s(12));
        assert_eq!(d.down(s(13)), Some(s(4)));
        assert_eq!((d.series(), d.total()), (3, 3));
    }

    #[test]
    fn a_quiet_minute_up_starts_a_new_series() {
        let mut d = Damping::new(DampingConfig::default());
        d.up(s(0));
        d.down(s(1));
        d.up(s(2));
        assert_eq!(d.down(s(3)), Some(s(2)));
        d.up(s(5));
        assert_eq!(d.down(s(65)), None, "up for 60 s: forgiven");
        assert_eq!((d.series(), d.total()), (1, 3));
    }
}
