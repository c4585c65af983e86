//! The adaptive limit: one pure step per finished request.
//!
//! A gradient limit, after Netflix's concurrency-limits: the ratio of the
//! host's unloaded latency (the least seen over a window of requests) to
//! the latency just measured says whether requests are queueing there. At
//! or under `tolerance` times the unloaded latency the limit grows by about
//! its square root per request, so that it finds the host's capacity
//! quickly; past it, it shrinks in proportion, down to half per step; a
//! request that timed out or was throttled (`429`, `503`) cuts it by a
//! tenth. Each change is smoothed. A limit that is not used (fewer than
//! half its slots in flight) does not grow: an idle client learns nothing
//! of the host's capacity.

use std::time::Duration;

/// How much of each new estimate the limit takes.
const SMOOTHING: f64 = 0.5;
/// What a dropped request leaves of the limit.
const DECREASE: f64 = 0.9;
/// The fewest requests a step of the limit waits for.
const MIN_STEP: u32 = 10;
/// Steps in a row at the gradient's floor after which the host is taken to
/// have become slower: its unloaded latency is learned again.
const RELEARN: u32 = 10;

/// The adaptive limit's state for one key.
#[derive(Debug, Clone)]
pub(crate) struct Gradient {
    limit: f64,
    /// The unloaded latency, in seconds: the least seen.
    baseline: Option<f64>,
    /// Steps in a row whose latency was past twice the tolerance.
    at_floor: u32,
    /// The requests since the limit last moved: it moves about once per
    /// round trip, once it has heard of that many requests, so that it
    /// sees what its last move did before the next.
    step: Step,
}

#[derive(Debug, Clone)]
struct Step {
    samples: u32,
    latency: f64,
    least: f64,
    busy: bool,
}

impl Default for Step {
    fn default() -> Self {
        Step {
            samples: 0,
            latency: 0.0,
            least: f64::INFINITY,
            busy: false,
        }
    }
}

/// The bounds and tolerance the limit keeps to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) min: u32,
    pub(crate) max: u32,
    pub(crate) tolerance: f64,
}

/// What one finished request says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// From its slot to its answer.
    pub(crate) latency: Duration,
    /// Requests in flight when it finished, itself included.
    pub(crate) in_flight: u32,
    /// It timed out or was throttled.
    pub(crate) dropped: bool,
}

impl Gradient {
    pub(crate) fn new(initial: u32) -> Gradient {
        Gradient {
            limit: f64::from(initial),
            baseline: None,
            at_floor: 0,
            step: Step::default(),
        }
    }

    /// The limit, in whole slots.
    pub(crate) fn limit(&self) -> u32 {
        self.limit as u32
    }

    /// Takes in one finished request; returns the new limit.
    pub(crate) fn sample(&mut self, sample: Sample, bounds: Bounds) -> u32 {
        let rtt = sample.latency.as_secs_f64().max(1e-6);
        let baseline = *self.baseline.get_or_insert(rtt);
        let baseline = baseline.min(rtt);
        self.baseline = Some(baseline);
        if sample.dropped {
            self.step = Step::default();
            self.limit = (self.limit * DECREASE).max(f64::from(bounds.min));
            return self.limit();
        }
        self.step.samples += 1;
        self.step.latency += rtt;
        self.step.least = self.step.least.min(rtt);
        // Used: at least half its slots in flight. An idle client learns
        // nothing of the host's capacity.
        self.step.busy |= f64::from(sample.in_flight) * 2.0 >= self.limit;
        if self.step.samples < (self.limit as u32).max(MIN_STEP) {
            return self.limit();
        }
        let step = std::mem::take(&mut self.step);
        if !step.busy {
            return self.limit();
        }
        let latency = step.latency / f64::from(step.samples);
        let ratio = bounds.tolerance * baseline / latency;
        if ratio <= 0.5 {
            self.at_floor += 1;
            if self.at_floor >= RELEARN {
                // Cut hard for many round trips and still slow: the host
                // itself became slower.
                self.baseline = Some(step.least);
                self.at_floor = 0;
            }
        } else {
            self.at_floor = 0;
        }
        let gradient = ratio.clamp(0.5, 1.0);
        let estimate = self.limit * gradient + self.limit.sqrt();
        let smoothed = self.limit * (1.0 - SMOOTHING) + estimate * SMOOTHING;
        self.limit = smoothed.clamp(f64::from(bounds.min), f64::from(bounds.max));
        self.limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const BOUNDS: Bounds = Bounds {
        min: 1,
        max: 1000,
        tolerance: 1.5,
    };

    fn busy(latency: Duration, in_flight: u32) -> Sample {
        Sample {
            latency,
            in_flight,
            dropped: false,
        }
    }

    #[test]
    fn the_limit_grows_while_answers_come_as_fast_as_unloaded() {
        let mut limit = Gradient::new(10);
        let mut last = 10;
        // A step per round trip: as many requests as the limit.
        for _ in 0..200 {
            let now = limit.sample(busy(10 * MS, last), BOUNDS);
            assert!(now >= last, "{now} < {last}");
            last = now;
        }
        assert!(last > 20, "grew to {last}");
    }

    #[test]
    fn the_limit_shrinks_when_answers_slow_past_the_tolerance() {
        let mut limit = Gradient::new(100);
        limit.sample(busy(10 * MS, 100), BOUNDS);
        // Four times slower: requests are queueing at the host. Five steps,
        // each once the limit's worth of requests finished.
        for _ in 0..5 {
            let in_flight = limit.limit();
            for _ in 0..in_flight {
                limit.sample(busy(40 * MS, in_flight), BOUNDS);
            }
        }
        assert!(limit.limit() < 40, "{}", limit.limit());
        // Within the tolerance it holds or grows.
        let held = limit.limit();
        for _ in 0..held.max(10) {
            limit.sample(busy(14 * MS, held), BOUNDS);
        }
        assert!(limit.limit() >= held);
    }

    #[test]
    fn a_dropped_request_cuts_a_tenth_and_the_bounds_hold() {
        let mut limit = Gradient::new(50);
        let dropped = Sample {
            latency: 10 * MS,
            in_flight: 50,
            dropped: true,
        };
        assert_eq!(limit.sample(dropped, BOUNDS), 45);
        let tight = Bounds {
            min: 40,
            max: 46,
            tolerance: 1.5,
        };
        for _ in 0..10 {
            limit.sample(dropped, tight);
        }
        assert_eq!(limit.limit(), 40);
        for _ in 0..500 {
            limit.sample(busy(MS, 46), tight);
        }
        assert_eq!(limit.limit(), 46);
    }

    #[test]
    fn an_idle_limit_does_not_grow() {
        let mut limit = Gradient::new(40);
        for _ in 0..100 {
            limit.sample(busy(10 * MS, 3), BOUNDS);
        }
        assert_eq!(limit.limit(), 40);
    }

    #[test]
    fn a_host_that_became_slower_is_learned_over_windows() {
        let mut limit = Gradient::new(20);
        for _ in 0..250 {
            limit.sample(busy(10 * MS, 20), BOUNDS);
        }
        // From now on the host answers in 30 ms even with one request.
        for _ in 0..5000 {
            let in_flight = limit.limit();
            limit.sample(busy(30 * MS, in_flight), BOUNDS);
        }
        let baseline = limit.baseline.unwrap();
        assert!((0.029..=0.031).contains(&baseline), "{baseline}");
        assert!(limit.limit() > 20, "{}", limit.limit());
    }
}
