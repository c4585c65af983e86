use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn settings() -> BreakerSettings {
    BreakerSettings {
        consecutive_failures: 3,
        failure_rate: 0.5,
        window: 10,
        min_calls: 6,
        slow_call_duration: None,
        open_for: 1000 * MS,
        max_open_for: 8000 * MS,
        half_open_probes: 2,
        count_throttling: false,
        // Probes by time alone, and rejections at once: the breaker as it
        // was before `probe_every` and `wait_for_probe`, which the tests of
        // those turn on.
        probe_every: 0,
        wait_for_probe: Duration::ZERO,
        // Failures count however far apart, as before `trip_within`, which
        // its own tests turn on.
        trip_within: Duration::ZERO,
        ..BreakerSettings::default()
    }
}

/// A wait that ends long after anything the tests do: a call waits
/// whenever a verdict can come at all.
fn far(now: Instant) -> Instant {
    now + Duration::from_secs(24 * 3600)
}

fn call(m: &mut StateMachine, now: Instant, verdict: Verdict) -> Admission {
    let (admission, _) = m.admit(now, far);
    if let Admission::Admit(permit) = admission {
        m.record(permit, verdict, || now, || 0);
    }
    admission
}

use Verdict::{Failure, Ignored, Success};

#[test]
fn consecutive_failures_trip_it_and_a_success_resets_the_run() {
    let t0 = Instant::now();
    let mut m = StateMachine::new(BreakerSettings {
        failure_rate: 0.0,
        ..settings()
    });
    for verdict in [Failure, Failure, Success, Failure, Failure] {
        call(&mut m, t0, verdict);
        assert_eq!(m.state(), BreakerState::Closed);
    }
    let (admission, _) = m.admit(t0, far);
    let Admission::Admit(permit) = admission else {
        panic!()
    };
    let transition = m.record(permit, Failure, || t0, || 0).unwrap();
    assert_eq!(
        (transition.from, transition.to),
        (BreakerState::Closed, BreakerState::Open)
    );
    assert_eq!(transition.consecutive_failures, 3);
    assert_eq!(m.counters().trips, 1);
}

#[test]
fn the_failure_rate_trips_it_once_min_calls_were_seen() {
    let t0 = Instant::now();
    let mut m = StateMachine::new(BreakerSettings {
        consecutive_failures: 0,
        ..settings()
    });
    // 2 failures in 5 calls: below min_calls, whatever the rate.
    for verdict in [Failure, Success, Failure, Success, Success] {
        call(&mut m, t0, verdict);
    }
    assert_eq!(m.state(), BreakerState::Closed);
    // The 6th call: 3 of 6 failed = 50%.
    call(&mut m, t0, Failure);
    assert_eq!(m.state(), BreakerState::Open);
}

#[test]
fn the_window_slides() {
    let t0 = Instant::now();
    let mut m = StateMachine::new(BreakerSettings {
        consecutive_failures: 0,
        ..settings()
    });
    for _ in 0..4 {
        call(&mut m, t0, Failure);
        call(&mut m, t0, Success);
        call(&mut m, t0, Success);
    }
    // 10 latest calls hold 3 or 4 failures: under 50%.
    assert_eq!(m.state(), BreakerState::Closed);
    assert_eq!(m.window_calls(), 10);
    assert!(m.failure_rate().unwrap() < 0.5);
}

#[test]
fn ignored_outcomes_do_not_count() {
    let t0 = Instant::now();
    let mut m = StateMachine::new(settings());
    for _ in 0..100 {
        call(&mut m, t0, Ignored);
    }
    call(&mut m, t0, Failure);
    call(&mut m, t0, Ignored);
    call(&mut m, t0, Failure);
    assert_eq!(m.state(), BreakerState::Closed);
    assert_eq!(m.consecutive_failures(), 2);
    assert_eq!(m.window_calls(), 2);
    assert_eq!(m.counters().ignored, 101);
}

fn tripped(now: Instant) -> StateMachine {
    let mut m = StateMachine::new(settings());
    for _ in 0..3 {
        call(&mut m, now, Failure);
    }
    assert_eq!(m.state(), BreakerState::Open);
    m
}

#[test]
fn open_rejects_until_open_for_then_lets_probes_through() {
    let t0 = Instant::now();
    let mut m = tripped(t0);
    assert_eq!(
        m.admit(t0 + 400 * MS, far).0,
        Admission::Reject {
            retry_in: Some(600 * MS)
        }
    );
    assert_eq!(
        m.admit(t0 + 999 * MS, far).0,
        Admission::Reject { retry_in: Some(MS) }
    );
    let (first, transition) = m.admit(t0 + 1000 * MS, far);
    assert_eq!(first, Admission::Admit(Permit::Probe { period: 1 }));
    assert_eq!(transition.unwrap().to, BreakerState::HalfOpen);
    assert_eq!(
        m.admit(t0 + 1000 * MS, far).0,
        Admission::Admit(Permit::Probe { period: 1 })
    );
    // Only half_open_probes at once.
    assert_eq!(
        m.admit(t0 + 1000 * MS, far).0,
        Admission::Reject { retry_in: None }
    );
    assert_eq!(m.counters().peak_probes_in_flight, 2);
}

#[test]
fn all_probes_succeeding_close_it() {
    let t0 = Instant::now();
    let mut m = tripped(t0);
    let t1 = t0 + 1000 * MS;
    let (Admission::Admit(a), _) = m.admit(t1, far) else {
        panic!()
    };
    let (Admission::Admit(b), _) = m.admit(t1, far) else {
        panic!()
    };
    assert_eq!(m.record(a, Success, || t1, || 0), None);
    assert_eq!(m.state(), BreakerState::HalfOpen);
    let closed = m.record(b, Success, || t1, || 0).unwrap();
    assert_eq!(closed.to, BreakerState::Closed);
    assert_eq!(m.consecutive_failures(), 0);
    assert_eq!(m.window_calls(), 0);
}

#[test]
fn a_failed_probe_reopens_it_for_longer_up_to_the_cap() {
    let t0 = Instant::now();
    let mut m = tripped(t0);
    let mut now = t0;
    let mut opened = vec![];
    for _ in 0..6 {
        let remaining = m.open_remaining(now).unwrap();
        opened.push(remaining);
        now += remaining;
        let (Admission::Admit(probe), _) = m.admit(now, far) else {
            panic!()
        };
        let reopened = m.record(probe, Failure, || now, || u64::MAX).unwrap();
        assert_eq!(
            (reopened.from, reopened.to),
            (BreakerState::HalfOpen, BreakerState::Open)
        );
    }
    // With the largest random draw the grown times sit at the top of their
    // range: 1 s, then 2, 4, 8 (the cap), 8, 8 s, less a nanosecond.
    let millis: Vec<u128> = opened
        .iter()
        .map(|d| (*d + Duration::from_nanos(1)).as_millis())
        .collect();
    assert_eq!(millis, [1000, 2000, 4000, 8000, 8000, 8000]);
}

#[test]
fn grown_open_times_are_jittered_but_never_below_open_for() {
    let s = settings();
    for trip in 1..20 {
        for random in [0, 1 << 20, u64::MAX / 3, u64::MAX] {
            let d = StateMachine::open_duration(&s, trip, random);
            assert!(d >= s.open_for && d <= s.max_open_for, "{trip} {d:?}");
        }
    }
    assert_eq!(StateMachine::open_duration(&s, 1, u64::MAX), s.open_for);
    assert_eq!(StateMachine::open_duration(&s, 4, 0), 4000 * MS);
    let fixed = BreakerSettings {
        max_open_for: s.open_for,
        ..s
    };
    assert_eq!(StateMachine::open_duration(&fixed, 9, u64::MAX), s.open_for);
}

#[test]
fn a_dropped_probe_gives_its_slot_back() {
    let t0 = Instant::now();
    let mut m = tripped(t0);
    let t1 = t0 + 1000 * MS;
    let (Admission::Admit(a), _) = m.admit(t1, far) else {
        panic!()
    };
    let (Admission::Admit(_b), _) = m.admit(t1, far) else {
        panic!()
    };
    assert!(matches!(m.admit(t1, far).0, Admission::Reject { .. }));
    m.cancel(a);
    assert_eq!(
        m.admit(t1, far).0,
        Admission::Admit(Permit::Probe { period: 1 })
    );
    // An ignored probe (a 429) gives its slot back too.
    let mut m = tripped(t0);
    let (Admission::Admit(a), _) = m.admit(t1, far) else {
        panic!()
    };
    let (Admission::Admit(_), _) = m.admit(t1, far) else {
        panic!()
    };
    m.record(a, Ignored, || t1, || 0);
    assert_eq!(
        m.admit(t1, far).0,
        Admission::Admit(Permit::Probe { period: 1 })
    );
}

#[test]
fn forced_states_hold_until_reset() {
    let t0 = Instant::now();
    let mut m = StateMachine::new(settings());
    m.force(true);
    assert_eq!(
        m.admit(t0 + Duration::from_secs(3600), far).0,
        Admission::Reject { retry_in: None }
    );
    m.force(false);
    for _ in 0..50 {
        assert_eq!(call(&mut m, t0, Failure), Admission::Admit(Permit::Normal));
    }
    assert_eq!(m.state(), BreakerState::ForcedClosed);
    let reset = m.reset().unwrap();
    assert_eq!(
        (reset.from, reset.to),
        (BreakerState::ForcedClosed, BreakerState::Closed)
    );
    assert_eq!(m.window_calls(), 0);
    for _ in 0..3 {
        call(&mut m, t0, Failure);
    }
    assert_eq!(m.state(), BreakerState::Open);
}

#[test]
fn calls_admitted_before_a_trip_do_not_move_it() {
    let t0 = Instant::now();
    let mut m = StateMachine::new(settings());
    let (Admission::Admit(late), _) = m.admit(t0, far) else {
        panic!()
    };
    for _ in 0..3 {
        call(&mut m, t0, Failure);
    }
    assert_eq!(m.state(), BreakerState::Open);
    assert_eq!(m.record(late, Success, || t0, || 0), None);
    assert_eq!(m.state(), BreakerState::Open);
}

fn probing(probe_every: u32, wait: Duration) -> BreakerSettings {
    BreakerSettings {
        half_open_probes: 1,
        probe_every,
        wait_for_probe: wait,
        ..settings()
    }
}

fn tripped_with(s: BreakerSettings, now: Instant) -> StateMachine {
    let mut m = StateMachine::new(s);
    for _ in 0..3 {
        call(&mut m, now, Failure);
    }
    assert_eq!(m.state(), BreakerState::Open);
    m
}

#[test]
fn while_open_every_nth_call_is_a_probe_and_a_failed_one_is_quiet() {
    let t0 = Instant::now();
    let mut m = tripped_with(probing(3, Duration::ZERO), t0);
    let t1 = t0 + 100 * MS;
    for _ in 0..2 {
        assert_eq!(
            m.admit(t1, far).0,
            Admission::Reject {
                retry_in: Some(900 * MS)
            }
        );
    }
    let (third, transition) = m.admit(t1, far);
    assert_eq!(third, Admission::Admit(Permit::Probe { period: 1 }));
    assert_eq!(transition, None, "still open: no change to report");
    // One probe at a time: the count goes on, the next call waits its turn.
    for _ in 0..5 {
        assert!(matches!(m.admit(t1, far).0, Admission::Reject { .. }));
    }
    // It fails: still open, no trip, and the open time starts again from
    // now, no longer than before.
    let t2 = t0 + 600 * MS;
    assert_eq!(
        m.record(Permit::Probe { period: 1 }, Failure, || t2, || 0),
        None
    );
    assert_eq!(m.state(), BreakerState::Open);
    assert_eq!(m.counters().trips, 1);
    assert_eq!(m.open_remaining(t2), Some(1000 * MS));
    // The count ran on while the probe was out: the next call probes, and
    // its success closes the breaker at once.
    let (next, _) = m.admit(t2, far);
    assert_eq!(next, Admission::Admit(Permit::Probe { period: 1 }));
    let closed = m
        .record(Permit::Probe { period: 1 }, Success, || t2, || 0)
        .unwrap();
    assert_eq!(
        (closed.from, closed.to),
        (BreakerState::Open, BreakerState::Closed)
    );
}

#[test]
fn probes_by_count_do_not_replace_the_time_floor() {
    let t0 = Instant::now();
    let mut m = tripped_with(probing(1000, Duration::ZERO), t0);
    // A quiet host: far fewer calls than probe_every. Once open_for has
    // passed, the next call is a probe, as without probe_every.
    assert!(matches!(
        m.admit(t0 + 999 * MS, far).0,
        Admission::Reject { .. }
    ));
    let (probe, transition) = m.admit(t0 + 1000 * MS, far);
    assert_eq!(probe, Admission::Admit(Permit::Probe { period: 1 }));
    assert_eq!(transition.unwrap().to, BreakerState::HalfOpen);
    // Its failure is a trip, as ever: reported, and the open time grows.
    let t1 = t0 + 1000 * MS;
    let reopened = m
        .record(Permit::Probe { period: 1 }, Failure, || t1, || u64::MAX)
        .unwrap();
    assert_eq!(reopened.to, BreakerState::Open);
    assert_eq!(m.counters().trips, 2);
    assert!(m.open_remaining(t1).unwrap() > 1000 * MS);
}

#[test]
fn a_probe_sent_while_open_leads_to_the_other_probes() {
    let t0 = Instant::now();
    let mut m = tripped_with(
        BreakerSettings {
            half_open_probes: 2,
            ..probing(2, Duration::ZERO)
        },
        t0,
    );
    m.admit(t0, far);
    let (Admission::Admit(first), _) = m.admit(t0, far) else {
        panic!("the second call is a probe")
    };
    let half = m.record(first, Success, || t0, || 0).unwrap();
    assert_eq!(half.to, BreakerState::HalfOpen);
    // One success of two: the next call is the second probe, at once.
    let (Admission::Admit(second), _) = m.admit(t0, far) else {
        panic!("a probe slot is free")
    };
    assert!(matches!(m.admit(t0, far).0, Admission::Reject { .. }));
    assert_eq!(
        m.record(second, Success, || t0, || 0).unwrap().to,
        BreakerState::Closed
    );
}

#[test]
fn a_dropped_probe_sent_while_open_makes_the_next_call_a_probe() {
    let t0 = Instant::now();
    let mut m = tripped_with(probing(5, Duration::ZERO), t0);
    for _ in 0..4 {
        m.admit(t0, far);
    }
    let (Admission::Admit(probe), _) = m.admit(t0, far) else {
        panic!("the fifth call is a probe")
    };
    m.cancel(probe);
    assert_eq!(
        m.admit(t0, far).0,
        Admission::Admit(Permit::Probe { period: 1 })
    );
}

#[test]
fn a_waiting_call_goes_through_when_a_probe_closes_the_breaker() {
    let t0 = Instant::now();
    let mut m = tripped_with(probing(3, Duration::from_secs(1)), t0);
    let (Admission::Wait { ticket: a }, _) = m.admit(t0, far) else {
        panic!("the call waits")
    };
    let (Admission::Wait { ticket: b }, _) = m.admit(t0, far) else {
        panic!("the call waits")
    };
    let (Admission::Admit(probe), _) = m.admit(t0, far) else {
        panic!("the third call is the probe")
    };
    // Nothing decided yet: they wait on.
    assert_eq!(m.resume(t0, a).0, Admission::Wait { ticket: a });
    m.record(probe, Success, || t0, || 0);
    assert_eq!(m.resume(t0, a).0, Admission::Admit(Permit::Normal));
    assert_eq!(m.resume(t0, b).0, Admission::Admit(Permit::Normal));
    let c = m.counters();
    assert_eq!((c.waited, c.rejected), (2, 0));
}

#[test]
fn a_waiting_call_is_rejected_once_a_probe_fails() {
    let t0 = Instant::now();
    let mut m = tripped_with(probing(2, Duration::from_secs(1)), t0);
    let (Admission::Wait { ticket }, _) = m.admit(t0, far) else {
        panic!("the call waits")
    };
    let (Admission::Admit(probe), _) = m.admit(t0, far) else {
        panic!("the second call is the probe")
    };
    let t1 = t0 + 300 * MS;
    m.record(probe, Failure, || t1, || 0);
    assert_eq!(
        m.resume(t1, ticket).0,
        Admission::Reject {
            retry_in: Some(1000 * MS)
        }
    );
    // A call that starts waiting after that failure waits for the next one.
    let (Admission::Wait { ticket: later }, _) = m.admit(t1, far) else {
        panic!("the call waits")
    };
    assert_eq!(m.resume(t1, later).0, Admission::Wait { ticket: later });
    m.give_up();
    let c = m.counters();
    assert_eq!((c.waited, c.rejected), (2, 2));
}

#[test]
fn a_waiting_call_is_the_probe_when_the_open_time_runs_out() {
    let t0 = Instant::now();
    let mut m = tripped_with(probing(0, Duration::from_secs(5)), t0);
    let (Admission::Wait { ticket }, _) = m.admit(t0 + 200 * MS, far) else {
        panic!("the call waits")
    };
    assert_eq!(
        m.resume(t0 + 999 * MS, ticket).0,
        Admission::Wait { ticket }
    );
    // No other call came: it asks again when open_for ends, and probes.
    let (probe, transition) = m.resume(t0 + 1000 * MS, ticket);
    assert_eq!(probe, Admission::Admit(Permit::Probe { period: 1 }));
    assert_eq!(transition.unwrap().to, BreakerState::HalfOpen);
}

#[test]
fn forced_open_rejects_at_once_even_with_waits() {
    let t0 = Instant::now();
    let mut m = StateMachine::new(probing(2, Duration::from_secs(5)));
    m.force(true);
    assert_eq!(m.admit(t0, far).0, Admission::Reject { retry_in: None });
    assert_eq!(m.counters().waited, 0);
}

/// A plain re-statement of the rules, kept deliberately naive: the history
/// is a queue of booleans and every rate is recounted.
struct Model {
    s: BreakerSettings,
    state: BreakerState,
    history: VecDeque<bool>,
    run: u32,
    open_until: Instant,
    open_time: Duration,
    trips: u32,
    admitted_probes: u32,
    succeeded_probes: u32,
    period: u32,
    probes_out: u32,
    calls_since_probe: u32,
    failed_probes: u64,
}

/// What the model says of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Says {
    Admit(Permit),
    Reject,
    Wait(u64),
}

impl Model {
    fn new(s: BreakerSettings, now: Instant) -> Self {
        Model {
            s,
            state: BreakerState::Closed,
            history: VecDeque::new(),
            run: 0,
            open_until: now,
            open_time: s.open_for,
            trips: 0,
            admitted_probes: 0,
            succeeded_probes: 0,
            period: 0,
            probes_out: 0,
            calls_since_probe: 0,
            failed_probes: 0,
        }
    }

    fn open_time(&self, random: u64) -> Duration {
        if self.trips <= 1 || self.s.max_open_for <= self.s.open_for {
            return self.s.open_for;
        }
        let mut base = self.s.open_for;
        for _ in 1..self.trips.min(32) {
            base = (base * 2).min(self.s.max_open_for);
        }
        let low = std::cmp::max(base / 2, self.s.open_for);
        if base <= low {
            return low;
        }
        let span = (base - low).as_nanos();
        low + Duration::from_nanos(((span * u128::from(random)) >> 64) as u64)
    }

    fn trip(&mut self, now: Instant, random: u64) {
        self.trips += 1;
        self.period += 1;
        self.state = BreakerState::Open;
        self.open_time = self.open_time(random);
        self.open_until = now + self.open_time;
        self.admitted_probes = 0;
        self.succeeded_probes = 0;
        self.calls_since_probe = 0;
    }

    fn expire(&mut self, now: Instant) {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.state = BreakerState::HalfOpen;
            self.admitted_probes = 0;
            self.succeeded_probes = 0;
        }
    }

    fn probe(&mut self) -> Says {
        self.admitted_probes += 1;
        self.probes_out += 1;
        self.calls_since_probe = 0;
        Says::Admit(Permit::Probe {
            period: self.period,
        })
    }

    fn half_open_slot(&self) -> bool {
        let limit = self.s.half_open_probes;
        self.state == BreakerState::HalfOpen
            && self.admitted_probes < limit
            && self.probes_out < limit
    }

    fn hold(&self) -> Says {
        if self.s.wait_for_probe.is_zero() {
            Says::Reject
        } else {
            Says::Wait(self.failed_probes)
        }
    }

    fn admit(&mut self, now: Instant) -> Says {
        self.expire(now);
        match self.state {
            BreakerState::Closed => Says::Admit(Permit::Normal),
            BreakerState::HalfOpen if self.half_open_slot() => self.probe(),
            BreakerState::Open => {
                self.calls_since_probe += 1;
                let every = self.s.probe_every;
                if every > 0
                    && self.calls_since_probe >= every
                    && self.probes_out < self.s.half_open_probes
                {
                    self.probe()
                } else {
                    self.hold()
                }
            }
            _ => self.hold(),
        }
    }

    fn resume(&mut self, now: Instant, ticket: u64) -> Says {
        self.expire(now);
        if self.state == BreakerState::Closed {
            Says::Admit(Permit::Normal)
        } else if self.failed_probes != ticket {
            Says::Reject
        } else if self.half_open_slot() {
            self.probe()
        } else {
            Says::Wait(ticket)
        }
    }

    fn give_back(&mut self) {
        match self.state {
            // A probe sent while open that ends once half-open had no slot
            // of this half-open spell: none is given back.
            BreakerState::HalfOpen => self.admitted_probes = self.admitted_probes.saturating_sub(1),
            BreakerState::Open => {
                self.calls_since_probe = self.s.probe_every.saturating_sub(1);
            }
            _ => {}
        }
    }

    fn record(&mut self, permit: Permit, verdict: Verdict, now: Instant, random: u64) {
        if let Permit::Probe { .. } = permit {
            self.probes_out -= 1;
        }
        let probing = matches!(self.state, BreakerState::Open | BreakerState::HalfOpen);
        match (permit, self.state) {
            (Permit::Probe { period }, _) if probing && period == self.period => match verdict {
                Verdict::Success => {
                    self.succeeded_probes += 1;
                    if self.succeeded_probes == self.s.half_open_probes {
                        self.state = BreakerState::Closed;
                        self.history.clear();
                        self.run = 0;
                        self.trips = 0;
                    } else if self.state == BreakerState::Open {
                        self.state = BreakerState::HalfOpen;
                        self.admitted_probes = self.succeeded_probes;
                    }
                }
                Verdict::Failure => {
                    self.failed_probes += 1;
                    if self.state == BreakerState::Open {
                        self.open_until = now + self.open_time;
                    } else {
                        self.trip(now, random);
                    }
                }
                Verdict::Ignored => self.give_back(),
            },
            (Permit::Normal, BreakerState::Closed) if verdict != Verdict::Ignored => {
                let failed = verdict == Verdict::Failure;
                self.run = if failed { self.run + 1 } else { 0 };
                self.history.push_back(failed);
                if self.history.len() > self.s.window as usize {
                    self.history.pop_front();
                }
                let failures = self.history.iter().filter(|f| **f).count() as f64;
                let rate_trips = self.s.failure_rate > 0.0
                    && self.history.len() >= self.s.min_calls as usize
                    && failures / self.history.len() as f64 >= self.s.failure_rate;
                let run_trips =
                    self.s.consecutive_failures > 0 && self.run >= self.s.consecutive_failures;
                if failed && (rate_trips || run_trips) {
                    self.trip(now, random);
                }
            }
            _ => {}
        }
    }

    fn cancel(&mut self, permit: Permit) {
        if let Permit::Probe { period } = permit {
            self.probes_out -= 1;
            if period == self.period {
                self.give_back();
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A call that ends at once with this verdict.
    Call(Verdict),
    /// A call that stays in flight.
    Start(Verdict),
    /// The oldest call in flight ends (or is dropped).
    Finish { dropped: bool },
    /// Time passes.
    Advance(u64),
    /// The oldest waiting call asks again (a probe ended, or its timer
    /// fired); let through, it ends at once with this verdict.
    Resume(Verdict),
    /// The oldest waiting call gives up.
    GiveUp,
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![Just(Success), Just(Failure), Just(Failure), Just(Ignored)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => verdict().prop_map(Op::Call),
        2 => verdict().prop_map(Op::Start),
        2 => any::<bool>().prop_map(|dropped| Op::Finish { dropped }),
        2 => (0u64..3000).prop_map(Op::Advance),
        2 => verdict().prop_map(Op::Resume),
        1 => Just(Op::GiveUp),
    ]
}

fn breaker_settings() -> impl Strategy<Value = BreakerSettings> {
    (
        0u32..5,
        prop_oneof![Just(0.0), 0.2f64..1.0],
        1u32..20,
        1u32..20,
        1u32..4,
        1u64..5,
        1u32..4,
        (prop_oneof![Just(0u32), 1u32..6], any::<bool>()),
    )
        .prop_map(
            |(
                consecutive_failures,
                failure_rate,
                window,
                min_calls,
                half_open_probes,
                open_secs,
                growth,
                (probe_every, waits),
            )| BreakerSettings {
                consecutive_failures,
                failure_rate,
                window,
                min_calls: min_calls.min(window),
                slow_call_duration: None,
                open_for: Duration::from_secs(open_secs),
                max_open_for: Duration::from_secs(open_secs * u64::from(growth)),
                half_open_probes,
                count_throttling: false,
                probe_every,
                wait_for_probe: if waits {
                    Duration::from_secs(1)
                } else {
                    Duration::ZERO
                },
                trip_within: Duration::ZERO,
                ..BreakerSettings::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_state_machine_agrees_with_the_model(
        s in breaker_settings(),
        ops in proptest::collection::vec(op(), 1..200),
        random in any::<u64>(),
    ) {
        let mut now = Instant::now();
        let mut machine = StateMachine::new(s);
        let mut model = Model::new(s, now);
        let mut in_flight: VecDeque<(Permit, Verdict)> = VecDeque::new();
        let mut waiting: VecDeque<u64> = VecDeque::new();
        let mut calls = 0u64;
        for op in ops {
            match op {
                Op::Call(verdict) | Op::Start(verdict) => {
                    calls += 1;
                    let (admission, _) = machine.admit(now, far);
                    let expected = model.admit(now);
                    let says = match admission {
                        Admission::Admit(permit) => Says::Admit(permit),
                        Admission::Reject { .. } => Says::Reject,
                        Admission::Wait { ticket } => Says::Wait(ticket),
                    };
                    prop_assert_eq!(says, expected);
                    match says {
                        Says::Admit(permit) if matches!(op, Op::Call(_)) => {
                            machine.record(permit, verdict, || now, || random);
                            model.record(permit, verdict, now, random);
                        }
                        Says::Admit(permit) => in_flight.push_back((permit, verdict)),
                        Says::Wait(ticket) => waiting.push_back(ticket),
                        Says::Reject => {}
                    }
                }
                Op::Resume(verdict) => {
                    if let Some(ticket) = waiting.pop_front() {
                        let (admission, _) = machine.resume(now, ticket);
                        let expected = model.resume(now, ticket);
                        let says = match admission {
                            Admission::Admit(permit) => Says::Admit(permit),
                            Admission::Reject { .. } => Says::Reject,
                            Admission::Wait { ticket } => Says::Wait(ticket),
                        };
                        prop_assert_eq!(says, expected);
                        match says {
                            Says::Admit(permit) => {
                                machine.record(permit, verdict, || now, || random);
                                model.record(permit, verdict, now, random);
                            }
                            Says::Wait(ticket) => waiting.push_back(ticket),
                            Says::Reject => {}
                        }
                    }
                }
                Op::GiveUp => {
                    if waiting.pop_front().is_some() {
                        machine.give_up();
                    }
                }
                Op::Finish { dropped } => {
                    if let Some((permit, verdict)) = in_flight.pop_front() {
                        if dropped {
                            machine.cancel(permit);
                            model.cancel(permit);
                        } else {
                            machine.record(permit, verdict, || now, || random);
                            model.record(permit, verdict, now, random);
                        }
                    }
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
            }
            prop_assert_eq!(machine.state(), model.state);
            if machine.state() == BreakerState::Closed {
                prop_assert_eq!(machine.consecutive_failures(), model.run);
            }
            prop_assert!(machine.counters().peak_probes_in_flight <= s.half_open_probes);
        }
        // Every call was either let through or rejected, and every admitted
        // call that ended is counted once.
        let c = machine.counters();
        prop_assert_eq!(
            c.admitted + c.rejected + in_flight.len() as u64 + waiting.len() as u64,
            calls
        );
        prop_assert!(s.wait_for_probe > Duration::ZERO || c.waited == 0);
        prop_assert_eq!(c.successes + c.failures + c.ignored + c.cancelled, c.admitted);
    }
}

#[test]
fn a_call_waits_only_when_a_verdict_can_come_before_its_wait_ends() {
    let s = BreakerSettings {
        wait_for_probe: 4000 * MS,
        open_for: 5000 * MS,
        max_open_for: 5000 * MS,
        half_open_probes: 1,
        ..settings()
    };
    let mut m = StateMachine::new(s);
    let t0 = Instant::now();
    for i in 0..3 {
        call(&mut m, t0 + i * MS, Verdict::Failure);
    }
    assert_eq!(m.state(), BreakerState::Open);
    let wait = |now: Instant| now + 4000 * MS;
    // Open for 5 s, no probe in flight, a 4 s wait: rejected at once, with
    // the time until the probes.
    let (admission, _) = m.admit(t0 + 2 * MS, wait);
    assert_eq!(
        admission,
        Admission::Reject {
            retry_in: Some(5000 * MS)
        }
    );
    // Within 4 s of the open time's end, the call waits: it will be the probe.
    let (admission, _) = m.admit(t0 + 1100 * MS, wait);
    assert!(matches!(admission, Admission::Wait { .. }), "{admission:?}");
    // A call whose own end comes first does not.
    let (admission, _) = m.admit(t0 + 1100 * MS, |now| now + 100 * MS);
    assert!(
        matches!(admission, Admission::Reject { .. }),
        "{admission:?}"
    );
    // A probe in flight: a verdict may come at any time, so the call waits.
    let (probe, _) = m.admit(t0 + 5002 * MS, wait);
    assert!(matches!(probe, Admission::Admit(Permit::Probe { .. })));
    let (admission, _) = m.admit(t0 + 5003 * MS, |now| now + MS);
    assert!(matches!(admission, Admission::Wait { .. }), "{admission:?}");
}

#[test]
fn failures_too_far_apart_trip_nothing() {
    let s = BreakerSettings {
        trip_within: 5000 * MS,
        failure_rate: 0.0,
        ..settings()
    };
    // Three failures a second apart fit in 5 s: a trip.
    let mut m = StateMachine::new(s);
    let t0 = Instant::now();
    for i in 0..3 {
        call(&mut m, t0 + i * 1000 * MS, Verdict::Failure);
    }
    assert_eq!(m.state(), BreakerState::Open);
    // Three failures three seconds apart do not, however long the run.
    let mut m = StateMachine::new(s);
    for i in 0..30 {
        call(&mut m, t0 + i * 3000 * MS, Verdict::Failure);
    }
    assert_eq!(m.state(), BreakerState::Closed);
    assert_eq!(m.consecutive_failures(), 30);
    // Then a burst: the last three within 5 s trip it.
    call(&mut m, t0 + 90_100 * MS, Verdict::Failure);
    assert_eq!(m.state(), BreakerState::Closed, "two within 5 s");
    call(&mut m, t0 + 90_200 * MS, Verdict::Failure);
    assert_eq!(m.state(), BreakerState::Open, "three within 5 s");
}

#[test]
fn the_rate_rule_needs_recent_failures_too() {
    // The rate rule alone: 6 calls, half failing, trip at the earliest on
    // the third failure; those three must fall within 5 s.
    let s = BreakerSettings {
        trip_within: 5000 * MS,
        consecutive_failures: 0,
        ..settings()
    };
    assert_eq!(s.fewest_failures_to_trip(), 3);
    let mut m = StateMachine::new(s);
    let t0 = Instant::now();
    for i in 0..20 {
        let verdict = if i % 2 == 0 {
            Verdict::Failure
        } else {
            Verdict::Success
        };
        call(&mut m, t0 + i * 2000 * MS, verdict);
    }
    assert_eq!(m.state(), BreakerState::Closed, "a failure every 4 s");
    for i in 0..6 {
        let verdict = if i % 2 == 0 {
            Verdict::Failure
        } else {
            Verdict::Success
        };
        call(&mut m, t0 + 40_000 * MS + i * 100 * MS, verdict);
    }
    assert_eq!(m.state(), BreakerState::Open);
}
