//! The breaker's state machine, one per key: closed, open, half-open.
//!
//! Pure: the time and the random numbers it needs come in as arguments, so
//! every transition is tested without a clock, and a reference model checks
//! it over random sequences of calls.

use std::time::Duration;

use tokio::time::Instant;

pub(crate) use super::settings::BreakerSettings;
pub use crate::breaker_state::BreakerState;

/// What one call says about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
    /// Says nothing about the host's health (429, unsupported).
    Ignored,
}

/// The kind of call a breaker let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    Normal,
    /// A probe of the half-open period numbered `period`: a probe that
    /// outlives its period (the breaker reopened meanwhile) no longer counts.
    Probe {
        period: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Admit(Permit),
    /// Rejected; `retry_in` is the time until probes are let through, when
    /// that is known (not while a probe is in flight or the state is forced).
    Reject {
        retry_in: Option<Duration>,
    },
}

/// A change of state, for the event that reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Transition {
    pub(crate) from: BreakerState,
    pub(crate) to: BreakerState,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) consecutive_failures: u32,
}

/// Counts of what a breaker saw, for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerCounters {
    /// Calls let through (probes included) that have ended: each is counted
    /// once more as a success, failure, ignored or cancelled call.
    pub admitted: u64,
    /// Calls rejected without being sent.
    pub rejected: u64,
    /// Admitted calls that ended in success.
    pub successes: u64,
    /// Admitted calls that ended in failure.
    pub failures: u64,
    /// Admitted calls whose outcome says nothing about the host.
    pub ignored: u64,
    /// Admitted calls dropped before they ended.
    pub cancelled: u64,
    /// Times the breaker opened.
    pub trips: u64,
    /// The most probes ever in flight at once.
    pub peak_probes_in_flight: u32,
}

/// The last `size` outcomes, one bit each.
#[derive(Debug, Clone)]
struct Window {
    bits: Vec<u64>,
    size: u32,
    len: u32,
    next: u32,
    failures: u32,
}

impl Window {
    fn new(size: u32) -> Self {
        Window {
            bits: vec![0; (size as usize).div_ceil(64)],
            size,
            len: 0,
            next: 0,
            failures: 0,
        }
    }

    fn push(&mut self, failure: bool) {
        if self.size == 0 {
            return;
        }
        let (word, bit) = ((self.next / 64) as usize, self.next % 64);
        let mask = 1u64 << bit;
        if self.len == self.size {
            if self.bits[word] & mask != 0 {
                self.failures -= 1;
            }
        } else {
            self.len += 1;
        }
        if failure {
            self.bits[word] |= mask;
            self.failures += 1;
        } else {
            self.bits[word] &= !mask;
        }
        self.next = (self.next + 1) % self.size;
    }

    fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.len = 0;
        self.next = 0;
        self.failures = 0;
    }

    fn rate(&self) -> Option<f64> {
        (self.len > 0).then(|| f64::from(self.failures) / f64::from(self.len))
    }
}

/// One breaker's state machine.
#[derive(Debug, Clone)]
pub(crate) struct StateMachine {
    settings: BreakerSettings,
    state: BreakerState,
    consecutive: u32,
    window: Window,
    open_until: Option<Instant>,
    /// Trips since the breaker was last closed, for the growth of the open time.
    trips: u32,
    /// The number of the current (or last) half-open period.
    period: u32,
    /// Probes let through in the current period.
    probes_admitted: u32,
    probes_succeeded: u32,
    /// Probes in flight, of any period: a probe of an earlier period still
    /// holds its slot until it ends, so no more than `half_open_probes` are
    /// ever out at once.
    probes_in_flight: u32,
    counters: BreakerCounters,
}

impl StateMachine {
    pub(crate) fn new(settings: BreakerSettings) -> Self {
        StateMachine {
            settings,
            state: BreakerState::Closed,
            consecutive: 0,
            window: Window::new(settings.window),
            open_until: None,
            trips: 0,
            period: 0,
            probes_admitted: 0,
            probes_succeeded: 0,
            probes_in_flight: 0,
            counters: BreakerCounters::default(),
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state
    }

    pub(crate) fn counters(&self) -> BreakerCounters {
        self.counters
    }

    /// Whether one more success would change nothing but the counters:
    /// closed, no failure in a row, and a full window without failures.
    pub(crate) fn is_healthy(&self) -> bool {
        self.state == BreakerState::Closed
            && self.consecutive == 0
            && self.window.len == self.window.size
            && self.window.failures == 0
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    pub(crate) fn failure_rate(&self) -> Option<f64> {
        self.window.rate()
    }

    pub(crate) fn window_calls(&self) -> u32 {
        self.window.len
    }

    /// The time left until an open breaker lets probes through.
    pub(crate) fn open_remaining(&self, now: Instant) -> Option<Duration> {
        match self.state {
            BreakerState::Open => self
                .open_until
                .map(|until| until.saturating_duration_since(now)),
            _ => None,
        }
    }

    fn transition(&mut self, to: BreakerState) -> Option<Transition> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        Some(Transition {
            from,
            to,
            failure_rate: self.window.rate(),
            consecutive_failures: self.consecutive,
        })
    }

    /// How long trip number `trip` (1 for the first since the breaker was
    /// closed) keeps it open: `open_for` the first time, then doubling up to
    /// `max_open_for`, each grown time drawn from its upper half (but never
    /// below `open_for`) so that clients that tripped together do not probe
    /// together.
    pub(crate) fn open_duration(settings: &BreakerSettings, trip: u32, random: u64) -> Duration {
        let open_for = settings.open_for;
        if trip <= 1 || settings.max_open_for <= open_for {
            return open_for;
        }
        let doublings = (trip - 1).min(32);
        let base = open_for
            .saturating_mul(1u32 << doublings.min(31))
            .min(settings.max_open_for);
        let low = (base / 2).max(open_for);
        crate::rng::between(low, base, random)
    }

    fn trip(&mut self, now: Instant, random: u64) -> Option<Transition> {
        self.trips += 1;
        self.counters.trips += 1;
        let open = StateMachine::open_duration(&self.settings, self.trips, random);
        self.open_until = now.checked_add(open);
        self.probes_admitted = 0;
        self.probes_succeeded = 0;
        self.transition(BreakerState::Open)
    }

    fn close(&mut self) -> Option<Transition> {
        self.window.clear();
        self.consecutive = 0;
        self.trips = 0;
        self.open_until = None;
        self.probes_admitted = 0;
        self.probes_succeeded = 0;
        self.transition(BreakerState::Closed)
    }

    /// Whether a call may go through now.
    pub(crate) fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let mut transition = None;
        if self.state == BreakerState::Open && self.open_until.is_none_or(|until| now >= until) {
            self.period = self.period.wrapping_add(1);
            self.probes_admitted = 0;
            self.probes_succeeded = 0;
            transition = self.transition(BreakerState::HalfOpen);
        }
        let probes = self.settings.half_open_probes;
        let admission = match self.state {
            BreakerState::Closed | BreakerState::ForcedClosed => Admission::Admit(Permit::Normal),
            BreakerState::HalfOpen
                if self.probes_admitted < probes && self.probes_in_flight < probes =>
            {
                self.probes_admitted += 1;
                self.probes_in_flight += 1;
                self.counters.peak_probes_in_flight = self
                    .counters
                    .peak_probes_in_flight
                    .max(self.probes_in_flight);
                Admission::Admit(Permit::Probe {
                    period: self.period,
                })
            }
            BreakerState::HalfOpen | BreakerState::ForcedOpen => {
                Admission::Reject { retry_in: None }
            }
            BreakerState::Open => Admission::Reject {
                retry_in: self.open_remaining(now),
            },
        };
        if let Admission::Reject { .. } = admission {
            self.counters.rejected += 1;
        }
        (admission, transition)
    }

    /// Records how an admitted call ended. `now` and `random` are asked for
    /// only when the breaker trips.
    pub(crate) fn record(
        &mut self,
        permit: Permit,
        verdict: Verdict,
        now: impl FnOnce() -> Instant,
        random: impl FnOnce() -> u64,
    ) -> Option<Transition> {
        self.counters.admitted += 1;
        match verdict {
            Verdict::Success => self.counters.successes += 1,
            Verdict::Failure => self.counters.failures += 1,
            Verdict::Ignored => self.counters.ignored += 1,
        }
        match permit {
            Permit::Probe { period } => {
                self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
                if self.state != BreakerState::HalfOpen || period != self.period {
                    // Reopened, forced or reset while the probe was in flight.
                    return None;
                }
                match verdict {
                    Verdict::Success => {
                        self.probes_succeeded += 1;
                        if self.probes_succeeded >= self.settings.half_open_probes {
                            return self.close();
                        }
                        None
                    }
                    Verdict::Failure => self.trip(now(), random()),
                    Verdict::Ignored => {
                        // Says nothing: the slot goes to another probe.
                        self.probes_admitted = self.probes_admitted.saturating_sub(1);
                        None
                    }
                }
            }
            Permit::Normal => {
                let counting = matches!(
                    self.state,
                    BreakerState::Closed | BreakerState::ForcedClosed
                );
                if !counting || verdict == Verdict::Ignored {
                    // A call let through before the breaker opened says
                    // nothing about the host now.
                    return None;
                }
                let failed = verdict == Verdict::Failure;
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                self.window.push(failed);
                if self.state == BreakerState::ForcedClosed || !failed {
                    return None;
                }
                let s = &self.settings;
                let by_consecutive =
                    s.consecutive_failures > 0 && self.consecutive >= s.consecutive_failures;
                let by_rate = s.failure_rate > 0.0
                    && self.window.len >= s.min_calls.max(1)
                    && self
                        .window
                        .rate()
                        .is_some_and(|rate| rate >= s.failure_rate);
                if by_consecutive || by_rate {
                    self.trip(now(), random())
                } else {
                    None
                }
            }
        }
    }

    /// Records that an admitted call was dropped before it ended: a probe
    /// gives its slot back.
    pub(crate) fn cancel(&mut self, permit: Permit) {
        self.counters.admitted += 1;
        self.counters.cancelled += 1;
        if let Permit::Probe { period } = permit {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
            if self.state == BreakerState::HalfOpen && period == self.period {
                self.probes_admitted = self.probes_admitted.saturating_sub(1);
            }
        }
    }

    /// Holds the breaker open (`open = true`) or closed until reset.
    pub(crate) fn force(&mut self, open: bool) -> Option<Transition> {
        self.open_until = None;
        self.transition(if open {
            BreakerState::ForcedOpen
        } else {
            BreakerState::ForcedClosed
        })
    }

    /// Back to a fresh closed breaker (the counters stay).
    pub(crate) fn reset(&mut self) -> Option<Transition> {
        self.close()
    }
}

#[cfg(test)]
mod tests;
