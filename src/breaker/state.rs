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
    /// A probe sent while the breaker was open or half-open since trip
    /// number `period`: a probe that outlives its period (the breaker
    /// reopened or closed meanwhile) no longer counts.
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
    /// Not sent yet: the call may wait for the verdict of the next probe
    /// (`wait_for_probe`), and asks again with [`StateMachine::resume`].
    /// `ticket` is the number of probes that had failed when it began.
    Wait {
        ticket: u64,
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
    /// Calls that found the breaker open and waited for the verdict of a
    /// probe (`wait_for_probe`); each is counted once more when it ends, as
    /// admitted or rejected.
    pub waited: u64,
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
    /// When the last failures ended, the newest last: as many as the
    /// fewest a trip needs, kept only when `trip_within` asks for them.
    recent: std::collections::VecDeque<Instant>,
    open_until: Option<Instant>,
    /// How long the last trip keeps the breaker open.
    open_time: Duration,
    /// Trips since the breaker was last closed, for the growth of the open time.
    trips: u32,
    /// The number of the current (or last) period of probing: one more at
    /// each trip.
    period: u32,
    /// Calls that arrived since the last probe, while open (`probe_every`).
    calls_since_probe: u32,
    /// Probes that have failed, ever: a waiting call that sees this move
    /// knows the probe it waited for failed.
    failed_probes: u64,
    /// Probes let through in the current half-open period.
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
            recent: std::collections::VecDeque::new(),
            open_until: None,
            open_time: settings.open_for,
            trips: 0,
            period: 0,
            calls_since_probe: 0,
            failed_probes: 0,
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
        self.period = self.period.wrapping_add(1);
        self.calls_since_probe = 0;
        let open = StateMachine::open_duration(&self.settings, self.trips, random);
        self.open_time = open;
        self.open_until = now.checked_add(open);
        self.probes_admitted = 0;
        self.probes_succeeded = 0;
        self.transition(BreakerState::Open)
    }

    fn close(&mut self) -> Option<Transition> {
        self.window.clear();
        self.recent.clear();
        self.consecutive = 0;
        self.trips = 0;
        self.open_until = None;
        self.probes_admitted = 0;
        self.probes_succeeded = 0;
        self.transition(BreakerState::Closed)
    }

    /// An open breaker whose time is up becomes half-open.
    fn expire(&mut self, now: Instant) -> Option<Transition> {
        if self.state == BreakerState::Open && self.open_until.is_none_or(|until| now >= until) {
            self.probes_admitted = 0;
            self.probes_succeeded = 0;
            return self.transition(BreakerState::HalfOpen);
        }
        None
    }

    /// Whether a half-open breaker has a probe slot free.
    fn slot_free(&self) -> bool {
        let probes = self.settings.half_open_probes;
        self.state == BreakerState::HalfOpen
            && self.probes_admitted < probes
            && self.probes_in_flight < probes
    }

    fn probe(&mut self) -> Admission {
        self.probes_admitted += 1;
        self.probes_in_flight += 1;
        self.calls_since_probe = 0;
        self.counters.peak_probes_in_flight = self
            .counters
            .peak_probes_in_flight
            .max(self.probes_in_flight);
        Admission::Admit(Permit::Probe {
            period: self.period,
        })
    }

    /// Whether a call may go through now; `wait_until` is when the call
    /// would stop waiting (`wait_for_probe` from now, or the call's end),
    /// asked for only when the breaker is not closed.
    ///
    /// While open, every `probe_every`-th call is a probe (one of at most
    /// `half_open_probes` in flight); once `open_for` has run out the
    /// breaker is half-open and the next calls are. A call that is not a
    /// probe waits for one's verdict when `wait_for_probe` allows it and a
    /// verdict can come before its wait ends: a probe is in flight, or the
    /// open time runs out first (the call is then the probe). Otherwise it
    /// is rejected at once: waiting would only delay the same answer.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        wait_until: impl FnOnce(Instant) -> Instant,
    ) -> (Admission, Option<Transition>) {
        let transition = self.expire(now);
        let admission = match self.state {
            BreakerState::Closed | BreakerState::ForcedClosed => Admission::Admit(Permit::Normal),
            BreakerState::HalfOpen if self.slot_free() => self.probe(),
            BreakerState::ForcedOpen => self.reject(now),
            BreakerState::Open => {
                self.calls_since_probe = self.calls_since_probe.saturating_add(1);
                let every = self.settings.probe_every;
                if every > 0
                    && self.calls_since_probe >= every
                    && self.probes_in_flight < self.settings.half_open_probes
                {
                    self.probe()
                } else {
                    self.hold(now, wait_until)
                }
            }
            BreakerState::HalfOpen => self.hold(now, wait_until),
        };
        (admission, transition)
    }

    /// A call that is not let through: it waits, when a verdict can come
    /// before `wait_until`, or is rejected.
    fn hold(&mut self, now: Instant, wait_until: impl FnOnce(Instant) -> Instant) -> Admission {
        if self.settings.wait_for_probe.is_zero() || !self.verdict_before(wait_until(now)) {
            return self.reject(now);
        }
        self.counters.waited += 1;
        Admission::Wait {
            ticket: self.failed_probes,
        }
    }

    /// Whether a probe's verdict can come before `until`: one is in flight,
    /// or the open time runs out first and lets one through. A probe by
    /// count (`probe_every`) is not counted on: it needs calls that may not
    /// come.
    fn verdict_before(&self, until: Instant) -> bool {
        self.probes_in_flight > 0
            || (self.state == BreakerState::Open
                && self.open_until.is_some_and(|open_until| open_until < until))
    }

    fn reject(&mut self, now: Instant) -> Admission {
        self.counters.rejected += 1;
        Admission::Reject {
            retry_in: self.open_remaining(now),
        }
    }

    /// Asks again for a call that [waits](Admission::Wait): when a probe has
    /// ended, or when the open time runs out. It goes through once the
    /// breaker is closed, or as a probe once it is half-open with a slot
    /// free; it is rejected once a probe has failed since it began waiting,
    /// or the breaker is forced open. It does not count towards
    /// `probe_every`: it did when it arrived.
    pub(crate) fn resume(&mut self, now: Instant, ticket: u64) -> (Admission, Option<Transition>) {
        let transition = self.expire(now);
        let admission = match self.state {
            BreakerState::Closed | BreakerState::ForcedClosed => Admission::Admit(Permit::Normal),
            BreakerState::ForcedOpen => self.reject(now),
            _ if self.failed_probes != ticket => self.reject(now),
            BreakerState::HalfOpen if self.slot_free() => self.probe(),
            BreakerState::Open | BreakerState::HalfOpen => Admission::Wait { ticket },
        };
        (admission, transition)
    }

    /// A waiting call gave up: its wait ran out, or it was dropped.
    pub(crate) fn give_up(&mut self) {
        self.counters.rejected += 1;
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
                let probing = matches!(self.state, BreakerState::Open | BreakerState::HalfOpen);
                if !probing || period != self.period {
                    // Reopened, closed, forced or reset while the probe was
                    // in flight.
                    return None;
                }
                match verdict {
                    Verdict::Success => {
                        self.probes_succeeded += 1;
                        if self.probes_succeeded >= self.settings.half_open_probes {
                            return self.close();
                        }
                        if self.state == BreakerState::Open {
                            // A probe of `probe_every` succeeded: the rest
                            // of `half_open_probes` go at once.
                            self.probes_admitted = self.probes_succeeded;
                            return self.transition(BreakerState::HalfOpen);
                        }
                        None
                    }
                    Verdict::Failure => {
                        self.failed_probes += 1;
                        if self.state == BreakerState::Open {
                            // A probe of `probe_every`: the breaker stays
                            // open, and its open time starts again (not
                            // longer: at a probe every 50 calls, a trip each
                            // time would be 20 reported changes a second at
                            // 1000 calls/s). The time is a floor for a quiet
                            // host, not probes of its own beside these.
                            self.open_until = now().checked_add(self.open_time);
                            return None;
                        }
                        self.trip(now(), random())
                    }
                    Verdict::Ignored => {
                        // Says nothing: the slot goes to another probe.
                        self.give_slot_back();
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
                if s.trip_within.is_zero() {
                    return (by_consecutive || by_rate).then(|| self.trip(now(), random()))?;
                }
                // Failures that come too seldom to burden the host trip
                // nothing: the ones a trip needs must have ended lately.
                let now = now();
                let fewest = s.fewest_failures_to_trip() as usize;
                self.recent.push_back(now);
                while self.recent.len() > fewest {
                    self.recent.pop_front();
                }
                let dense = self.recent.len() >= fewest
                    && self.recent.front().is_some_and(|first| {
                        now.saturating_duration_since(*first) <= s.trip_within
                    });
                if (by_consecutive || by_rate) && dense {
                    self.trip(now, random())
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
            if period == self.period {
                self.give_slot_back();
            }
        }
    }

    /// A probe of the current period that said nothing: half-open, another
    /// call takes its slot; open, the next call is a probe.
    fn give_slot_back(&mut self) {
        match self.state {
            BreakerState::HalfOpen => {
                self.probes_admitted = self.probes_admitted.saturating_sub(1);
            }
            BreakerState::Open => {
                self.calls_since_probe = self.settings.probe_every.saturating_sub(1);
            }
            _ => {}
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
