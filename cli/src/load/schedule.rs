//! When each call of a load run starts: call `i` at `i / rate` after the
//! start, for every `i` with `i / rate < duration`, whether earlier calls have
//! finished or not.
//!
//! Traffic from many users arrives on its own clock, not when the last answer
//! came back: a load generator that waits for answers slows down exactly when
//! the server does, and hides the slowness it was meant to show. So the
//! schedule is fixed before the run, and integer arithmetic keeps the count
//! exact: `--rate 200 --duration 1s` is 200 calls, never 199 or 201.

use std::fmt;
use std::time::Duration;

/// The highest `--rate`, in calls per second.
pub(crate) const MAX_RATE: u64 = 100_000;

/// The most digits `--rate` takes after the decimal point.
const MAX_DECIMALS: u32 = 6;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Calls per second, held as the decimal it was written as (2.5 is 25 calls
/// every 10 s), so that the schedule need not round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    calls: u64,
    per_secs: u64,
}

impl Rate {
    /// `text` as a rate: a decimal number more than 0 and at most
    /// [`MAX_RATE`], with at most six decimals.
    pub(crate) fn parse(text: &str) -> Result<Rate, String> {
        let bad = || {
            format!(
                "invalid --rate {text:?}: expected calls per second, more than 0 and at most {MAX_RATE}, such as 200 or 2.5"
            )
        };
        let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || (text.contains('.') && fraction.is_empty())
        {
            return Err(bad());
        }
        let fraction = fraction.trim_end_matches('0');
        let decimals = u32::try_from(fraction.len()).map_err(|_| bad())?;
        if decimals > MAX_DECIMALS {
            return Err(bad());
        }
        let per_secs = 10u64.pow(decimals);
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let fraction: u64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| bad())?
        };
        let calls = whole
            .checked_mul(per_secs)
            .and_then(|w| w.checked_add(fraction))
            .ok_or_else(bad)?;
        if calls == 0 || calls > MAX_RATE * per_secs {
            return Err(bad());
        }
        Ok(Rate { calls, per_secs })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.calls / self.per_secs;
        let fraction = self.calls % self.per_secs;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let width = self.per_secs.ilog10() as usize;
        let fraction = format!("{fraction:0width$}");
        write!(f, "{whole}.{}", fraction.trim_end_matches('0'))
    }
}

/// The start of every call of a run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    rate: Rate,
    duration: Duration,
}

impl Schedule {
    pub(crate) fn new(rate: Rate, duration: Duration) -> Schedule {
        Schedule { rate, duration }
    }

    pub(crate) fn rate(&self) -> Rate {
        self.rate
    }

    pub(crate) fn duration(&self) -> Duration {
        self.duration
    }

    /// How many calls the run starts: the `i` with `i / rate < duration`,
    /// which is `rate × duration` when that is a whole number.
    pub(crate) fn calls(&self) -> u64 {
        // duration ≤ 24 h and rate ≤ 10^11 / 10^6 keep every product far
        // inside u128.
        let numerator = self.duration.as_nanos() * u128::from(self.rate.calls);
        let denominator = u128::from(self.rate.per_secs) * NANOS_PER_SEC;
        u64::try_from(numerator.div_ceil(denominator)).unwrap_or(u64::MAX)
    }

    /// When call `i` starts, after the start of the run (rounded down to the
    /// nanosecond).
    pub(crate) fn offset(&self, i: u64) -> Duration {
        let nanos = u128::from(i) * u128::from(self.rate.per_secs) * NANOS_PER_SEC
            / u128::from(self.rate.calls);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        Rate::parse(text).unwrap()
    }

    #[test]
    fn rates_are_decimals_within_bounds() {
        for (text, calls, per_secs, shown) in [
            ("200", 200, 1, "200"),
            ("2.5", 25, 10, "2.5"),
            ("0.001", 1, 1000, "0.001"),
            ("1.50", 15, 10, "1.5"),
            ("7.0", 7, 1, "7"),
            ("100000", 100_000, 1, "100000"),
            (" 3 ", 3, 1, "3"),
        ] {
            assert_eq!(Rate::parse(text), Ok(Rate { calls, per_secs }), "{text}");
            assert_eq!(rate(text).to_string(), shown);
        }
        for text in [
            "",
            "0",
            "0.0",
            "-1",
            "100001",
            "100000.5",
            "1e3",
            ".5",
            "5.",
            "abc",
            "1.2.3",
            "inf",
            "0.0000001",
            "1 0",
        ] {
            let error = Rate::parse(text).unwrap_err();
            assert!(error.starts_with("invalid --rate"), "{text}: {error}");
        }
    }

    #[test]
    fn a_whole_number_of_calls_is_exact() {
        let schedule = Schedule::new(rate("200"), Duration::from_secs(1));
        assert_eq!(schedule.calls(), 200);
        assert_eq!(schedule.offset(0), Duration::ZERO);
        assert_eq!(schedule.offset(1), Duration::from_millis(5));
        assert_eq!(schedule.offset(199), Duration::from_millis(995));
        assert_eq!(schedule.offset(200), schedule.duration());

        let schedule = Schedule::new(rate("3"), Duration::from_secs(1));
        assert_eq!(schedule.calls(), 3);
        assert_eq!(schedule.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(schedule.offset(2), Duration::from_nanos(666_666_666));
    }

    #[test]
    fn every_call_starts_within_the_run_and_the_next_would_not() {
        for (r, duration) in [
            ("2.5", Duration::from_secs(1)),
            ("0.5", Duration::from_secs(1)),
            ("0.3", Duration::from_secs(10)),
            ("7", Duration::from_millis(1500)),
            ("100000", Duration::from_nanos(1)),
            ("100000", Duration::from_secs(24 * 3600)),
        ] {
            let schedule = Schedule::new(rate(r), duration);
            let n = schedule.calls();
            assert!(n >= 1, "{r} for {duration:?}");
            assert!(schedule.offset(n - 1) < duration, "{r} for {duration:?}");
            assert!(schedule.offset(n) >= duration, "{r} for {duration:?}");
        }
        let day = Schedule::new(rate("100000"), Duration::from_secs(24 * 3600));
        assert_eq!(day.calls(), 8_640_000_000);
        assert_eq!(
            Schedule::new(rate("2.5"), Duration::from_secs(1)).calls(),
            3
        );
    }

    #[test]
    fn offsets_never_go_back() {
        let schedule = Schedule::new(rate("7.3"), Duration::from_secs(3));
        let offsets: Vec<Duration> = (0..=schedule.calls()).map(|i| schedule.offset(i)).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    }
}
