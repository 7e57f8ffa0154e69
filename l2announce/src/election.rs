//! Lease election as a pure function of the clock, the lease last read and this node, with
//! client-go's `leaderelection` semantics, so Kubernetes users' expectations hold:
//!
//! - a candidate takes a lease that does not exist, is free (released), names itself (a
//!   restart), or whose record has not changed for `leaseDurationSeconds` as measured on the
//!   candidate's own clock from when it first saw that version (no clock synchronisation
//!   needed);
//! - the holder renews every retry period and stops announcing once it has gone a renew
//!   deadline without a successful renewal, before anybody else can take over (renew
//!   deadline < lease duration);
//! - a holder that may no longer announce (not eligible) stops at once and releases, so the
//!   others take over at their next look instead of a lease duration later;
//! - a backend that knows the holder's process is gone ([`LeaseBackend::holder_alive`]) lets
//!   candidates take over at their next look too.
//!
//! [`decide`] holds the rules; [`Elector`] is the small memory around it (what was seen when,
//! when we last renewed) that the runner drives, and that tests drive on a simulated clock.
//!
//! [`LeaseBackend::holder_alive`]: crate::lease::LeaseBackend::holder_alive

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::lease::{Lease, LeaseRecord, ResourceVersion};

/// Lease duration, renew deadline and retry period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

/// Timers that break client-go's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimersError {
    /// The rule broken, with the values.
    #[error("lease timers {duration:?}/{renew:?}/{retry:?}: {why}")]
    Invalid {
        /// Lease duration.
        duration: Duration,
        /// Renew deadline.
        renew: Duration,
        /// Retry period.
        retry: Duration,
        /// The rule.
        why: &'static str,
    },
}

impl Timers {
    /// Checks client-go's rules: all positive, lease duration > renew deadline > 1.2 × retry
    /// period (client-go's jitter factor), so a holder always gets a retry in before its
    /// deadline and stops before others may take over.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Timers, TimersError> {
        let bad = |why| {
            Err(TimersError::Invalid {
                duration: lease_duration,
                renew: renew_deadline,
                retry: retry_period,
                why,
            })
        };
        if retry_period.is_zero() {
            return bad("the retry period must be positive");
        }
        if lease_duration <= renew_deadline {
            return bad("the lease duration must be longer than the renew deadline");
        }
        if renew_deadline.as_secs_f64() <= retry_period.as_secs_f64() * 1.2 {
            return bad("the renew deadline must be longer than 1.2 retry periods");
        }
        Ok(Timers {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// How long a lease lasts without renewal.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How long a holder keeps announcing without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// How often candidates look and holders renew.
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }
}

impl Default for Timers {
    /// Cilium's defaults: 15 s, 5 s, 2 s.
    fn default() -> Self {
        Timers {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write a record naming us (create the lease if there is none); announce once written.
    Acquire,
    /// We hold the lease: write a new renew time.
    Renew,
    /// We hold the lease, or its record still names us, but may not announce: stop
    /// answering at once, then clear the holder.
    Release,
    /// We held it but went a renew deadline without renewing, or someone else holds it now:
    /// stop answering at once. Nothing to write.
    StepDown,
    /// Nothing to do before `until`, unless the inputs change.
    Wait {
        /// When to look again.
        until: Instant,
    },
}

/// What [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The time now.
    pub now: Instant,
    /// This node's name (the holder identity).
    pub me: &'a str,
    /// The timers.
    pub timers: &'a Timers,
    /// Whether this node may announce the addresses (selected by a policy, a ready local
    /// endpoint for `externalTrafficPolicy: Local`, an interface that is up).
    pub eligible: bool,
    /// The record last read, `None` if there was no lease.
    pub record: Option<&'a LeaseRecord>,
    /// When this node first saw that version of the record.
    pub observed_at: Instant,
    /// When our last successful acquire or renew started, while we lead.
    pub leading_since_renew: Option<Instant>,
    /// When our last write failed (a conflict or an outage), to wait a retry period.
    pub last_failure: Option<Instant>,
    /// The backend says the holder's process is gone.
    pub holder_gone: bool,
}

/// The rules of the election (module documentation).
pub fn decide(i: Inputs<'_>) -> Decision {
    let t = i.timers;
    let holder = i.record.and_then(|r| r.holder.as_deref());
    if let Some(renewed) = i.leading_since_renew {
        if holder != Some(i.me) || i.now >= renewed + t.renew_deadline {
            return Decision::StepDown;
        }
        if !i.eligible {
            return Decision::Release;
        }
        let mut next = renewed + t.retry_period;
        if let Some(failed) = i.last_failure {
            next = next.max(failed + t.retry_period);
        }
        return if i.now >= next {
            Decision::Renew
        } else {
            Decision::Wait {
                until: next.min(renewed + t.renew_deadline),
            }
        };
    }
    if let Some(failed) = i.last_failure
        && i.now < failed + t.retry_period
    {
        return Decision::Wait {
            until: failed + t.retry_period,
        };
    }
    if !i.eligible {
        return if holder == Some(i.me) {
            Decision::Release
        } else {
            // Only to keep the visible holder fresh.
            Decision::Wait {
                until: i.now + t.lease_duration,
            }
        };
    }
    match i.record {
        None => Decision::Acquire,
        Some(r) if r.holder.is_none() || holder == Some(i.me) => Decision::Acquire,
        Some(r) => {
            let expiry = i.observed_at + r.duration;
            if i.holder_gone || i.now >= expiry {
                Decision::Acquire
            } else {
                Decision::Wait {
                    until: expiry.min(i.now + t.retry_period),
                }
            }
        }
    }
}

/// Kubernetes `MicroTime` precision, so a record reads back equal to what was written.
pub fn micros(t: SystemTime) -> SystemTime {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64)
}

/// The record an acquire or renew writes: holder us, renewed now; acquire time and
/// transitions kept if we already held it, else acquired now and one more transition.
pub fn acquired_record(
    now: SystemTime,
    previous: Option<&LeaseRecord>,
    me: &str,
    timers: &Timers,
) -> LeaseRecord {
    let now = micros(now);
    match previous {
        Some(p) if p.holder.as_deref() == Some(me) => LeaseRecord {
            holder: Some(me.to_owned()),
            duration: timers.lease_duration,
            acquire_time: p.acquire_time.or(Some(now)),
            renew_time: Some(now),
            transitions: p.transitions,
        },
        Some(p) => LeaseRecord {
            holder: Some(me.to_owned()),
            duration: timers.lease_duration,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: p.transitions.saturating_add(1),
        },
        None => LeaseRecord {
            holder: Some(me.to_owned()),
            duration: timers.lease_duration,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: 0,
        },
    }
}

/// The record a release writes (client-go's): no holder, one second, transitions kept.
pub fn released_record(now: SystemTime, previous: &LeaseRecord) -> LeaseRecord {
    let now = micros(now);
    LeaseRecord {
        holder: None,
        duration: Duration::from_secs(1),
        acquire_time: Some(now),
        renew_time: Some(now),
        transitions: previous.transitions,
    }
}

/// One node's view of one lease: what it saw when, and whether it leads.
#[derive(Debug, Clone)]
pub struct Elector {
    me: String,
    timers: Timers,
    seen: Option<Lease>,
    seen_version: Option<ResourceVersion>,
    observed_at: Instant,
    leading_since_renew: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Elector {
    /// A node that has seen nothing yet.
    pub fn new(me: impl Into<String>, timers: Timers, now: Instant) -> Elector {
        Elector {
            me: me.into(),
            timers,
            seen: None,
            seen_version: None,
            observed_at: now,
            leading_since_renew: None,
            last_failure: None,
        }
    }

    /// Records what a read returned. A new version (or the lease appearing or vanishing)
    /// restarts the expiry clock.
    pub fn observe(&mut self, now: Instant, lease: Option<&Lease>) {
        let version = lease.map(|l| l.resource_version.clone());
        if version != self.seen_version {
            self.observed_at = now;
            self.seen_version = version;
        }
        self.seen = lease.cloned();
    }

    /// What to do now, given eligibility and the backend's word on the holder's liveness.
    pub fn decide(&self, now: Instant, eligible: bool, holder_gone: bool) -> Decision {
        decide(Inputs {
            now,
            me: &self.me,
            timers: &self.timers,
            eligible,
            record: self.seen.as_ref().map(|l| &l.record),
            observed_at: self.observed_at,
            leading_since_renew: self.leading_since_renew,
            last_failure: self.last_failure,
            holder_gone,
        })
    }

    /// An acquire or renew that started at `started` succeeded with `lease`.
    pub fn written(&mut self, started: Instant, lease: &Lease) {
        self.observe(started, Some(lease));
        self.leading_since_renew = Some(started);
        self.last_failure = None;
    }

    /// A write failed (conflict or outage): wait a retry period before the next.
    pub fn write_failed(&mut self, now: Instant) {
        self.last_failure = Some(now);
    }

    /// We stopped announcing (step down or release).
    pub fn stop_leading(&mut self) {
        self.leading_since_renew = None;
    }

    /// A release that succeeded with `lease`.
    pub fn released(&mut self, now: Instant, lease: &Lease) {
        self.stop_leading();
        self.observe(now, Some(lease));
        self.last_failure = None;
    }

    /// Whether we lead (and so may announce) at `now`.
    pub fn is_leading(&self, now: Instant) -> bool {
        match self.leading_since_renew {
            Some(renewed) => {
                now < renewed + self.timers.renew_deadline
                    && self.seen.as_ref().is_some_and(|l| l.held_by(&self.me))
            }
            None => false,
        }
    }

    /// The lease last seen.
    pub fn lease(&self) -> Option<&Lease> {
        self.seen.as_ref()
    }

    /// The timers.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }
}

#[cfg(test)]
mod tests;
