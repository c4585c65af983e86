//! The retry budget's reserve: how many tokens a process's own recent call
//! rate justifies.
//!
//! A bucket of a fixed capacity holds the same reserve in a process making
//! one call a second as in one making a thousand. In an outage each spends
//! its reserve once; for the fast process that is nothing, for the slow one
//! it is a third of its calls over a minute, and a fleet of slow processes
//! multiplies the load on the failing server by that much. The reserve bounds
//! the bucket by `reserve` seconds of the process's own calls, with a floor,
//! so that an outage of `L` seconds costs about `reserve / L` extra requests
//! per call whatever the rate.
//!
//! The requests are counted as they start (calls, status requests and the
//! retries granted), with one relaxed increment of the calling thread's
//! stripe of a counter (`crate::stripes`), so that threads calling at once
//! do not write one cache line; the rate is read only when a
//! retry is wanted: the count over a window of between one and two `reserve`
//! spans, ending now. Time is passed in, so the arithmetic is tested without a runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

/// Tokens are counted in thousandths.
pub(super) const MILLI: f64 = 1000.0;

/// `tokens` in thousandths.
pub(super) fn millis(tokens: f64) -> u64 {
    // Settings are validated to be finite and non-negative; clamp anyway so a
    // hand-built setting cannot wrap.
    (tokens.clamp(0.0, 1e12) * MILLI).round() as u64
}

use tokio::time::Instant;

use crate::stripes::Striped;

/// Where the current and the previous window began, and the count then.
#[derive(Debug, Clone, Copy)]
struct Marks {
    start: Instant,
    seen_at_start: u64,
    previous: Instant,
    seen_at_previous: u64,
}

/// Bounds a bucket by `reserve` seconds of the calls it has seen, never
/// below `floor` nor above `ceiling` (thousandths of a token).
pub(crate) struct Reserve {
    span: Duration,
    floor: u64,
    ceiling: u64,
    /// Every call writes it: a stripe per thread, none on the line of the
    /// bucket's tokens, which every success reads.
    seen: Striped,
    /// The bound last worked out, for a withdrawal that finds the marks
    /// taken by another.
    bound: AtomicU64,
    marks: Mutex<Marks>,
}

impl std::fmt::Debug for Reserve {
    /// The settings and the last bound; not the marks, whose instants say
    /// when the process started rather than what it holds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reserve")
            .field("span", &self.span)
            .field("floor", &self.floor)
            .field("ceiling", &self.ceiling)
            .field("seen", &self.seen.sum())
            .field("bound", &self.last_bound())
            .finish()
    }
}

impl Reserve {
    /// A reserve of `span` seconds of calls for a process that starts at
    /// `now` with no calls seen: it holds `floor` until calls are seen.
    pub(crate) fn new(span: Duration, floor: u64, ceiling: u64, now: Instant) -> Self {
        let floor = floor.min(ceiling);
        Reserve {
            span,
            floor,
            ceiling,
            seen: Striped::default(),
            bound: AtomicU64::new(floor),
            marks: Mutex::new(Marks {
                start: now,
                seen_at_start: 0,
                previous: now,
                seen_at_previous: 0,
            }),
        }
    }

    /// Counts a request the process started: a call, a status request or a
    /// retry.
    #[inline]
    pub(crate) fn count(&self) {
        self.seen.add(1);
    }

    /// The most tokens the bucket may hold at `now`, in thousandths.
    ///
    /// The calls seen since the previous window began, over the time since
    /// then, and over at least `span`: a process younger than `span` is
    /// granted at most the calls it has made (and the floor).
    pub(crate) fn bound(&self, now: Instant) -> u64 {
        let mut marks = match self.marks.try_lock() {
            Ok(marks) => marks,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Another withdrawal is working it out this instant: its figure
            // is as good as ours.
            Err(TryLockError::WouldBlock) => return self.bound.load(Ordering::Relaxed),
        };
        let seen = self.seen.sum();
        if now.saturating_duration_since(marks.start) >= self.span {
            marks.previous = marks.start;
            marks.seen_at_previous = marks.seen_at_start;
            marks.start = now;
            marks.seen_at_start = seen;
        }
        let over = now.saturating_duration_since(marks.previous).max(self.span);
        let calls = seen.saturating_sub(marks.seen_at_previous) as f64;
        let justified = if over.is_zero() {
            0.0
        } else {
            calls * self.span.as_secs_f64() / over.as_secs_f64()
        };
        let bound = millis(justified).clamp(self.floor, self.ceiling);
        self.bound.store(bound, Ordering::Relaxed);
        bound
    }

    /// The bound last worked out, in thousandths.
    pub(crate) fn last_bound(&self) -> u64 {
        self.bound.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: u64 = 1000;

    fn reserve(now: Instant) -> Reserve {
        // 3 s of calls, at least 3 tokens, at most 20.
        Reserve::new(Duration::from_secs(3), 3 * TOKEN, 20 * TOKEN, now)
    }

    /// `rate` calls a second for `secs` seconds from `from`, counted; the
    /// instant after the last.
    fn calls(r: &Reserve, from: Instant, rate: u64, secs: u64) -> Instant {
        for _ in 0..rate * secs {
            r.count();
        }
        from + Duration::from_secs(secs)
    }

    #[test]
    fn a_new_process_holds_the_floor() {
        let start = Instant::now();
        let r = reserve(start);
        assert_eq!(r.bound(start), 3 * TOKEN);
        assert_eq!(r.bound(start + Duration::from_secs(60)), 3 * TOKEN);
    }

    #[test]
    fn the_bound_is_the_span_of_calls_at_the_process_rate() {
        for (rate, expected) in [(1, 3), (2, 6), (5, 15), (10, 20), (1000, 20)] {
            let start = Instant::now();
            let r = reserve(start);
            let now = calls(&r, start, rate, 60);
            assert_eq!(r.bound(now), expected * TOKEN, "{rate}/s");
        }
    }

    #[test]
    fn a_young_process_is_granted_no_more_than_the_calls_it_made() {
        let start = Instant::now();
        let r = reserve(start);
        // 10 calls in the first second: over the 3 s span that is 10 calls,
        // not the 30 that the rate would justify.
        let now = calls(&r, start, 10, 1);
        assert_eq!(r.bound(now), 10 * TOKEN);
    }

    #[test]
    fn the_rate_follows_the_process_when_it_slows_down() {
        let start = Instant::now();
        let r = reserve(start);
        let mut now = calls(&r, start, 100, 60);
        assert_eq!(r.bound(now), 20 * TOKEN);
        // Down to 1/s, with a retry wanted every second: within two spans
        // the bound is back at the floor.
        for _ in 0..6 {
            now = calls(&r, now, 1, 1);
            r.bound(now);
        }
        assert_eq!(r.bound(now), 3 * TOKEN);
    }

    #[test]
    fn a_contended_bound_is_the_last_figure() {
        let start = Instant::now();
        let r = reserve(start);
        let now = calls(&r, start, 5, 60);
        assert_eq!(r.bound(now), 15 * TOKEN);
        let _held = r.marks.lock().unwrap();
        calls(&r, now, 100, 10);
        assert_eq!(r.bound(now + Duration::from_secs(10)), 15 * TOKEN);
    }

    #[test]
    fn a_span_of_zero_holds_the_floor_and_a_floor_above_the_ceiling_is_the_ceiling() {
        let start = Instant::now();
        let r = Reserve::new(Duration::ZERO, 3 * TOKEN, 20 * TOKEN, start);
        let now = calls(&r, start, 100, 10);
        assert_eq!(r.bound(now), 3 * TOKEN);
        let r = Reserve::new(Duration::from_secs(3), 50 * TOKEN, 20 * TOKEN, start);
        assert_eq!(r.bound(start), 20 * TOKEN);
    }
}
