//! Backoff schedules: how long to wait before the next attempt.
//!
//! The four jitter strategies of the AWS Architecture Blog's "Exponential
//! Backoff and Jitter" (Marc Brooker, 2015), over a constant or an exponential
//! base. Jitter spreads the retries of many clients that failed together, so
//! that they do not return to a recovering server in lockstep.
//!
//! Every function here is pure: the attempt number, the previous delay and a
//! random `u64` come in as arguments, so schedules are tested without a clock
//! or a global random generator.

use std::time::Duration;

use crate::rng::between;
use crate::settings::{self, SettingsError};

/// How the wait is randomised around the base delay.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the base delay.
    None,
    /// Uniform in `[0, base)`.
    Full,
    /// Uniform in `[base / 2, base)`.
    Equal,
    /// Uniform in `[initial, previous * 3)`, capped at `max`: each wait grows
    /// from the last one drawn rather than from the attempt number.
    Decorrelated,
    /// Uniform in `[base * (1 - factor), base * (1 + factor))`, capped at
    /// `max`: the randomisation of the `backoff` crate's
    /// `ExponentialBackoff`. `factor` is taken within 0 and 1.
    Proportional(f64),
}

/// A backoff schedule: a base delay for each retry, and its jitter.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::retry::{Backoff, Jitter, RetrySettings};
///
/// // 100 ms, 200 ms, 400 ms ... up to 5 s, each drawn at random below it.
/// let backoff = Backoff::exponential(Duration::from_millis(100), 2.0, Duration::from_secs(5), Jitter::Full);
/// let settings = RetrySettings::builder().backoff(backoff).build()?;
/// assert_eq!(settings.backoff(), backoff);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    max: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// The same base delay before every retry.
    pub fn constant(delay: Duration, jitter: Jitter) -> Self {
        Backoff {
            initial: delay,
            multiplier: 1.0,
            max: delay,
            jitter,
        }
    }

    /// `initial`, then multiplied by `multiplier` for each further retry, up to
    /// `max`. A multiplier below 1 is taken as 1, and a `max` below `initial`
    /// as `initial`.
    pub fn exponential(initial: Duration, multiplier: f64, max: Duration, jitter: Jitter) -> Self {
        let multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        Backoff {
            initial,
            multiplier,
            max: max.max(initial),
            jitter,
        }
    }

    /// Whether the schedule is within the bounds a policy allows: a base of
    /// at most 1 minute, a multiplier of 1 to 10, a cap of at most 10
    /// minutes, a proportional factor of 0 to 1.
    pub(crate) fn check(&self) -> Result<(), SettingsError> {
        settings::duration(
            "retry.backoff.initial",
            self.initial,
            Duration::ZERO..=Duration::from_secs(60),
        )?;
        settings::number("retry.backoff.multiplier", self.multiplier, 1.0..=10.0)?;
        settings::duration(
            "retry.backoff.max",
            self.max,
            Duration::ZERO..=Duration::from_secs(600),
        )?;
        if let Jitter::Proportional(factor) = self.jitter {
            settings::number("retry.backoff.jitter_factor", factor, 0.0..=1.0)?;
        }
        Ok(())
    }

    /// The largest wait this schedule can ask for.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The base delay before retry number `retry` (1 for the first retry),
    /// without jitter.
    pub fn base(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(1_000) as i32;
        let seconds = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        if seconds >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::try_from_secs_f64(seconds).unwrap_or(self.max)
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), given
    /// the previous wait (zero before the first retry) and a uniformly random
    /// `u64`.
    pub fn delay(&self, retry: u32, previous: Duration, random: u64) -> Duration {
        let base = self.base(retry);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => between(Duration::ZERO, base, random),
            Jitter::Equal => between(base / 2, base, random),
            Jitter::Decorrelated => {
                let previous = previous.max(self.initial);
                let high = previous.saturating_mul(3).min(self.max);
                between(self.initial, high, random)
            }
            Jitter::Proportional(factor) => {
                let factor = if factor.is_finite() {
                    factor.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let low = base.mul_f64(1.0 - factor);
                let high = base.mul_f64(1.0 + factor).min(self.max);
                between(low, high, random)
            }
        }
    }
}

impl Backoff {
    /// This schedule's waits, one per retry, without end: the first
    /// retry's, then the second's, each jittered by a random source seeded
    /// with `seed` (the same seed, the same waits). For another retry loop
    /// that should wait as rebound does; with the `backon` feature a
    /// [`Backoff`] is a `backon::BackoffBuilder` too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_rebound::retry::{Backoff, Jitter};
    ///
    /// let ms = Duration::from_millis;
    /// let schedule = Backoff::exponential(ms(100), 2.0, ms(300), Jitter::None);
    /// let waits: Vec<Duration> = schedule.delays(7).take(4).collect();
    /// assert_eq!(waits, [ms(100), ms(200), ms(300), ms(300)]);
    /// ```
    pub fn delays(&self, seed: u64) -> Delays {
        Delays {
            backoff: *self,
            retry: 0,
            previous: Duration::ZERO,
            random: crate::rng::SharedRng::seeded(seed),
        }
    }
}

/// The waits of a [`Backoff`], one per retry; see [`Backoff::delays`].
#[derive(Debug)]
pub struct Delays {
    backoff: Backoff,
    retry: u32,
    previous: Duration,
    random: crate::rng::SharedRng,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.retry = self.retry.saturating_add(1);
        let delay = self
            .backoff
            .delay(self.retry, self.previous, self.random.next_u64());
        self.previous = delay;
        Some(delay)
    }
}

#[cfg(feature = "backon")]
#[cfg_attr(docsrs, doc(cfg(feature = "backon")))]
impl backon::BackoffBuilder for Backoff {
    type Backoff = Delays;

    /// The schedule's waits without end, jittered from a fresh seed:
    /// bound them with the retry loop's own limit, or use a policy's
    /// [`RetrySettings`](super::RetrySettings), which stops at its
    /// `max_attempts`.
    fn build(self) -> Delays {
        self.delays(crate::rng::SharedRng::from_entropy().next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SharedRng;

    const MS: Duration = Duration::from_millis(1);

    fn exponential(jitter: Jitter) -> Backoff {
        Backoff::exponential(100 * MS, 2.0, 5_000 * MS, jitter)
    }

    #[test]
    fn exponential_base_grows_then_caps() {
        let b = exponential(Jitter::None);
        let bases: Vec<u128> = (1..=8).map(|n| b.base(n).as_millis()).collect();
        assert_eq!(bases, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.base(u32::MAX), 5_000 * MS);
        assert_eq!(b.delay(3, Duration::ZERO, 0), 400 * MS);
    }

    #[test]
    fn constant_is_constant() {
        let b = Backoff::constant(250 * MS, Jitter::None);
        for n in 1..20 {
            assert_eq!(b.delay(n, 250 * MS, n as u64), 250 * MS);
        }
    }

    #[test]
    fn every_jitter_stays_within_its_bounds() {
        let rng = SharedRng::seeded(1);
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            for schedule in [exponential(jitter), Backoff::constant(300 * MS, jitter)] {
                let mut previous = Duration::ZERO;
                for draw in 0..5_000u32 {
                    let retry = draw % 12 + 1;
                    let base = schedule.base(retry);
                    let delay = schedule.delay(retry, previous, rng.next_u64());
                    match jitter {
                        Jitter::None => assert_eq!(delay, base),
                        Jitter::Full => assert!(delay < base || base.is_zero()),
                        Jitter::Equal => assert!(delay >= base / 2 && delay < base),
                        Jitter::Proportional(f) => {
                            assert!(delay >= base.mul_f64(1.0 - f), "{delay:?}");
                            assert!(delay <= base.mul_f64(1.0 + f).min(schedule.max()));
                        }
                        Jitter::Decorrelated => {
                            let high = previous
                                .max(schedule.initial)
                                .saturating_mul(3)
                                .min(schedule.max);
                            assert!(delay >= schedule.initial, "{delay:?}");
                            assert!(
                                delay < high || delay == schedule.initial,
                                "{delay:?} {high:?}"
                            );
                        }
                    }
                    assert!(delay <= schedule.max());
                    previous = delay;
                }
            }
        }
    }

    #[test]
    fn jitter_covers_its_range() {
        let rng = SharedRng::seeded(2);
        let b = exponential(Jitter::Full);
        let draws: Vec<Duration> = (0..10_000)
            .map(|_| b.delay(4, Duration::ZERO, rng.next_u64()))
            .collect();
        let low = draws.iter().filter(|d| **d < 80 * MS).count();
        let high = draws.iter().filter(|d| **d >= 720 * MS).count();
        // Each tenth of [0, 800ms) holds about 1000 of the 10000 draws.
        assert!((800..1200).contains(&low), "{low}");
        assert!((800..1200).contains(&high), "{high}");
    }

    #[test]
    fn extreme_randoms_and_parameters_do_not_panic() {
        let b = Backoff::exponential(
            Duration::from_secs(3600),
            f64::NAN,
            Duration::ZERO,
            Jitter::Decorrelated,
        );
        assert_eq!(
            b.delay(1, Duration::MAX, u64::MAX),
            Duration::from_secs(3600)
        );
        let b = Backoff::exponential(MS, 10.0, Duration::from_secs(600), Jitter::Full);
        assert!(b.delay(u32::MAX, Duration::MAX, u64::MAX) < Duration::from_secs(600));
        assert_eq!(between(MS, MS, u64::MAX), MS);
        assert_eq!(between(Duration::ZERO, 10 * MS, 0), Duration::ZERO);
    }
}
