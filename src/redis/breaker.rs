//! A circuit breaker: stop calling a dependency that keeps failing, and find out cheaply when it
//! is back.
//!
//! ```text
//!            failure_threshold consecutive failures
//!   CLOSED ──────────────────────────────────────────► OPEN ◄──┐
//!     ▲                                                 │      │ the trial call fails
//!     │ the trial call succeeds          cool_down over │      │
//!     └──────────────────────────── HALF_OPEN ◄─────────┘──────┘
//! ```
//!
//! While OPEN every call is refused at once ([`Refused`], with the time left until the next
//! trial), so requests answer `503` in microseconds instead of each waiting for a network
//! timeout, and a Redis that is restarting is not hammered. After the cool-down exactly one call
//! is let through as a trial (HALF_OPEN); the others keep failing fast until it reports.
//!
//! Only failures of the dependency count (connection errors, timeouts); a request that is wrong
//! in itself (a business rule, a conflict) is a success as far as the breaker is concerned.
//!
//! Admission is a [`Permit`] that reports the call's outcome. A permit dropped without a report
//! (the caller's future was cancelled: a client hung up, a request or probe timed out) reports
//! nothing, except that an abandoned trial gives its place back: the next call becomes the trial.
//! Without that, one trial cancelled mid-flight would leave the breaker half open with a trial
//! "in flight" for ever, refusing every call, heartbeats included.
//!
//! When the connection is known to be back (the client reconnected), the open breaker does not
//! sit out the rest of its cool-down: [`Breaker::connection_restored`] lets the next call through
//! as the trial at once.
//!
//! The breaker is lock-free on the CLOSED path, which every Redis call takes: one atomic load to
//! admit, one atomic store to record a success. Transitions take a small mutex; they happen a
//! few times per outage.

use std::{
    sync::atomic::{AtomicU8, AtomicU32, Ordering},
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use crate::telemetry::metrics;

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before a trial call is let through.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// One trial call is (or may be) under way; others are refused.
    HalfOpen,
    /// Calls are refused until the cool-down is over.
    Open,
}

impl BreakerState {
    /// The name used in `/health` and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }

    /// The value of the `petstore_circuit_breaker_state` gauge: 0 closed, 1 half open, 2 open.
    #[must_use]
    pub fn gauge_value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// A call refused because the breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Time until the breaker lets a trial call through.
    pub retry_after: Duration,
}

/// What kind of call a [`Permit`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Normal,
    /// This call is the half-open trial.
    Trial,
}

/// Permission to make one call: report how it went with [`Permit::success`] or
/// [`Permit::failure`]. Dropped unreported, it gives back the trial it may hold.
#[derive(Debug)]
#[must_use = "report the call's outcome to the breaker"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    /// The number of the trial this call is, if it is one.
    trial: Option<u64>,
    reported: bool,
}

impl Permit<'_> {
    /// Whether this call is the half-open trial.
    #[must_use]
    pub fn admission(&self) -> Admission {
        if self.trial.is_some() {
            Admission::Trial
        } else {
            Admission::Normal
        }
    }

    /// The dependency answered.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.success();
    }

    /// The call failed because of the dependency (connection error, timeout).
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let (false, Some(trial)) = (self.reported, self.trial) {
            self.breaker.abandon_trial(trial);
        }
    }
}

/// A circuit breaker guarding one dependency, named for metrics and logs.
#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    settings: BreakerSettings,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    transitions: Mutex<Transitions>,
}

#[derive(Debug)]
struct Transitions {
    opened_at: Option<Instant>,
    /// The number of the trial under way, if one is.
    trial_in_flight: Option<u64>,
    /// Trials let through so far, to number them.
    trials: u64,
}

impl Breaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        let breaker = Self {
            name,
            settings: BreakerSettings {
                failure_threshold: settings.failure_threshold.max(1),
                ..settings
            },
            state: AtomicU8::new(BreakerState::Closed.to_u8()),
            consecutive_failures: AtomicU32::new(0),
            transitions: Mutex::new(Transitions {
                opened_at: None,
                trial_in_flight: None,
                trials: 0,
            }),
        };
        metrics::global()
            .redis
            .breaker_state(name, BreakerState::Closed.gauge_value());
        breaker
    }

    /// The breaker's name (`redis`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The current state. An open breaker whose cool-down is over still reads `Open` until a
    /// call takes the trial.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether a call may go out now.
    ///
    /// # Errors
    /// [`Refused`] while open (or half open with the trial under way).
    pub fn admit(&self) -> Result<Permit<'_>, Refused> {
        self.admit_at(Instant::now())
    }

    /// The connection to the dependency is back: an open breaker lets the next call through as
    /// its trial now rather than after the rest of its cool-down. A closed breaker, or one whose
    /// trial is under way, is left as it is.
    pub fn connection_restored(&self) {
        if self.state() != BreakerState::Open {
            return;
        }
        let mut transitions = self.transitions.lock();
        if self.state() == BreakerState::Open {
            transitions.trial_in_flight = None;
            tracing::info!(
                breaker = self.name,
                "connection restored; the next call is the breaker's trial"
            );
            self.move_to(BreakerState::HalfOpen);
        }
    }

    /// The call went through: the dependency answered.
    fn success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.state() != BreakerState::Closed {
            let mut transitions = self.transitions.lock();
            transitions.trial_in_flight = None;
            transitions.opened_at = None;
            self.move_to(BreakerState::Closed);
        }
    }

    /// The call failed because of the dependency (connection error, timeout).
    fn failure(&self) {
        self.failure_at(Instant::now());
    }

    /// Trial number `trial`'s caller went away before it knew the outcome: if it is still the
    /// trial under way, the next call takes its place.
    fn abandon_trial(&self, trial: u64) {
        let mut transitions = self.transitions.lock();
        if transitions.trial_in_flight == Some(trial) {
            transitions.trial_in_flight = None;
            tracing::info!(
                breaker = self.name,
                "the breaker's trial call was abandoned; the next call is the trial"
            );
        }
    }

    /// The time until a trial call will be let through, if the breaker is not closed.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Result<Permit<'_>, Refused> {
        if self.state() == BreakerState::Closed {
            return Ok(self.permit(None));
        }
        let mut transitions = self.transitions.lock();
        let trial = |transitions: &mut Transitions| {
            transitions.trials += 1;
            transitions.trial_in_flight = Some(transitions.trials);
            Ok(self.permit(Some(transitions.trials)))
        };
        match self.state() {
            BreakerState::Closed => Ok(self.permit(None)),
            BreakerState::HalfOpen if transitions.trial_in_flight.is_none() => {
                trial(&mut transitions)
            }
            BreakerState::HalfOpen => Err(Refused {
                retry_after: self.settings.cool_down,
            }),
            BreakerState::Open => {
                let opened_at = transitions.opened_at.unwrap_or(now);
                let reopens = opened_at + self.settings.cool_down;
                if now >= reopens {
                    self.move_to(BreakerState::HalfOpen);
                    trial(&mut transitions)
                } else {
                    Err(Refused {
                        retry_after: reopens - now,
                    })
                }
            }
        }
    }

    fn permit(&self, trial: Option<u64>) -> Permit<'_> {
        Permit {
            breaker: self,
            trial,
            reported: false,
        }
    }

    fn failure_at(&self, now: Instant) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let state = self.state();
        let trips = match state {
            BreakerState::Closed => failures >= self.settings.failure_threshold,
            // The trial failed (or a call admitted before the breaker opened did): stay away for
            // another cool-down.
            BreakerState::HalfOpen | BreakerState::Open => true,
        };
        if trips {
            let mut transitions = self.transitions.lock();
            transitions.trial_in_flight = None;
            if self.state() != BreakerState::Open || transitions.opened_at.is_none() {
                transitions.opened_at = Some(now);
                if self.state() != BreakerState::Open {
                    tracing::warn!(
                        breaker = self.name,
                        consecutive_failures = failures,
                        cool_down_ms = self.settings.cool_down.as_millis() as u64,
                        "circuit breaker opened"
                    );
                }
                self.move_to(BreakerState::Open);
            }
        }
    }

    fn retry_after_at(&self, now: Instant) -> Option<Duration> {
        match self.state() {
            BreakerState::Closed => None,
            BreakerState::HalfOpen => Some(self.settings.cool_down),
            BreakerState::Open => {
                let opened_at = self.transitions.lock().opened_at.unwrap_or(now);
                Some((opened_at + self.settings.cool_down).saturating_duration_since(now))
            }
        }
    }

    fn move_to(&self, to: BreakerState) {
        let from = BreakerState::from_u8(self.state.swap(to.to_u8(), Ordering::AcqRel));
        if from != to {
            if to == BreakerState::Closed {
                tracing::info!(breaker = self.name, "circuit breaker closed");
            }
            metrics::global()
                .redis
                .breaker_transition(self.name, to.as_str(), to.gauge_value());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cool_down_ms: u64) -> Breaker {
        Breaker::new(
            "test",
            BreakerSettings {
                failure_threshold: threshold,
                cool_down: Duration::from_millis(cool_down_ms),
            },
        )
    }

    /// What `admit_at` grants, the permit dropped at once (which matters only for a trial).
    fn admission(breaker: &Breaker, now: Instant) -> Result<Admission, Refused> {
        breaker.admit_at(now).map(|permit| permit.admission())
    }

    #[test]
    fn a_closed_breaker_admits_and_stays_closed_below_the_threshold() {
        let breaker = breaker(3, 1000);
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(admission(&breaker, now), Ok(Admission::Normal));
            breaker.failure_at(now);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.retry_after_at(now), None);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = breaker(3, 1000);
        let now = Instant::now();
        breaker.failure_at(now);
        breaker.failure_at(now);
        breaker.success();
        breaker.failure_at(now);
        breaker.failure_at(now);
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.failure_at(now);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn the_threshold_opens_it_and_calls_are_refused_with_the_time_left() {
        let breaker = breaker(2, 1000);
        let now = Instant::now();
        breaker.failure_at(now);
        breaker.failure_at(now);
        assert_eq!(breaker.state(), BreakerState::Open);
        let later = now + Duration::from_millis(400);
        assert_eq!(
            admission(&breaker, later),
            Err(Refused {
                retry_after: Duration::from_millis(600)
            })
        );
        assert_eq!(
            breaker.retry_after_at(later),
            Some(Duration::from_millis(600))
        );
    }

    #[test]
    fn after_the_cool_down_exactly_one_trial_goes_through() {
        let breaker = breaker(1, 100);
        let now = Instant::now();
        breaker.failure_at(now);
        let later = now + Duration::from_millis(100);
        let trial = breaker.admit_at(later).expect("the trial");
        assert_eq!(trial.admission(), Admission::Trial);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(
            breaker.admit_at(later).is_err(),
            "a second trial is refused"
        );
        trial.failure();
    }

    #[test]
    fn a_successful_trial_closes_it() {
        let breaker = breaker(1, 100);
        let now = Instant::now();
        breaker.failure_at(now);
        let later = now + Duration::from_millis(150);
        let trial = breaker.admit_at(later).expect("the trial");
        assert_eq!(trial.admission(), Admission::Trial);
        trial.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(admission(&breaker, later), Ok(Admission::Normal));
    }

    #[test]
    fn a_failed_trial_opens_it_for_another_cool_down() {
        let breaker = breaker(1, 100);
        let now = Instant::now();
        breaker.failure_at(now);
        let trial_time = now + Duration::from_millis(150);
        let trial = breaker.admit_at(trial_time).expect("the trial");
        assert_eq!(trial.admission(), Admission::Trial);
        breaker.failure_at(trial_time);
        trial.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            admission(&breaker, trial_time + Duration::from_millis(50)),
            Err(Refused {
                retry_after: Duration::from_millis(50)
            })
        );
        assert_eq!(
            admission(&breaker, trial_time + Duration::from_millis(100)),
            Ok(Admission::Trial)
        );
    }

    #[test]
    fn failures_reported_while_open_do_not_extend_the_cool_down() {
        let breaker = breaker(1, 100);
        let now = Instant::now();
        breaker.failure_at(now);
        // Calls admitted before it opened report late.
        breaker.failure_at(now + Duration::from_millis(90));
        assert_eq!(
            admission(&breaker, now + Duration::from_millis(100)),
            Ok(Admission::Trial)
        );
    }

    #[test]
    fn an_abandoned_trial_gives_its_place_to_the_next_call() {
        let breaker = breaker(1, 100);
        let now = Instant::now();
        breaker.failure_at(now);
        let later = now + Duration::from_millis(100);
        let trial = breaker.admit_at(later).expect("the trial");
        assert!(breaker.admit_at(later).is_err(), "one trial at a time");
        // Its caller went away (a cancelled request): no outcome is reported.
        drop(trial);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let next = breaker.admit_at(later).expect("the next call is the trial");
        assert_eq!(next.admission(), Admission::Trial);
        next.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_stale_trial_abandoned_late_does_not_free_a_newer_one() {
        let breaker = breaker(1, 100);
        let now = Instant::now();
        breaker.failure_at(now);
        let later = now + Duration::from_millis(100);
        let old = breaker.admit_at(later).expect("a trial");
        // The connection comes back while the old trial hangs: a new trial goes out.
        breaker.failure_at(later);
        breaker.connection_restored();
        let new = breaker.admit_at(later).expect("a new trial");
        drop(old);
        assert!(
            breaker.admit_at(later).is_err(),
            "the new trial is still the only one"
        );
        new.success();
    }

    #[test]
    fn a_restored_connection_ends_the_cool_down_at_once() {
        let breaker = breaker(1, 60_000);
        let now = Instant::now();
        breaker.failure_at(now);
        assert!(breaker.admit_at(now).is_err());
        breaker.connection_restored();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let trial = breaker
            .admit_at(now)
            .expect("the trial, before the cool-down is over");
        assert_eq!(trial.admission(), Admission::Trial);
        trial.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        // On a closed breaker it changes nothing.
        breaker.connection_restored();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_zero_threshold_is_treated_as_one() {
        let breaker = breaker(0, 100);
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn concurrent_admissions_after_the_cool_down_yield_one_trial() {
        let breaker = std::sync::Arc::new(breaker(1, 0));
        breaker.failure();
        let barrier = std::sync::Barrier::new(8);
        let trials = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (breaker, barrier) = (breaker.clone(), &barrier);
                    scope.spawn(move || {
                        let permit = breaker.admit();
                        let trial =
                            matches!(&permit, Ok(permit) if permit.admission() == Admission::Trial);
                        // Held until every thread has asked, so none takes a trial given back.
                        barrier.wait();
                        trial
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join())
                .filter(|joined| matches!(joined, Ok(true)))
                .count()
        });
        assert_eq!(trials, 1);
    }
}
