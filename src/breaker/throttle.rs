//! Adaptive throttling: a client that rejects its own requests to a host in
//! proportion to how many the host has been refusing, as in Google's SRE
//! book (chapter 21, "Handling Overload").
//!
//! Per host, over a sliding window, the client counts its requests (sent or
//! rejected here) and the host's accepts (answers that are not a retryable
//! failure), and rejects a new request locally with probability
//! `max(0, (requests - k * accepts) / (requests + 1))`. While the host
//! accepts at least one request in `k`, nothing is rejected; when it accepts
//! none, almost everything is, at no cost to the host, and a trickle still
//! goes through to see it recover.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::settings::{self, SettingsError};
use crate::units::DurationStr;

/// The slots a window is counted in.
const SLOTS: usize = 10;

/// Adaptive throttling of one policy's hosts (`[adaptive_throttle]`): off
/// by default.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::breaker::{BreakerSettings, ThrottleSettings};
///
/// let throttle = ThrottleSettings::new(2.0, Duration::from_secs(120))?;
/// let breaker = BreakerSettings::builder().adaptive_throttle(throttle).build()?;
/// assert!(breaker.adaptive_throttle().enabled());
/// assert!(ThrottleSettings::new(0.5, Duration::from_secs(120)).is_err());
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleSettings {
    enabled: bool,
    k: f64,
    window: Duration,
}

impl ThrottleSettings {
    /// The default multiple of accepts: 2.
    pub const DEFAULT_K: f64 = 2.0;
    /// The default window: 2 minutes.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);

    /// Throttling on: requests may reach `k` times the accepts before any is
    /// rejected (`k` 1 to 10; 2, the SRE book's choice, lets a host see
    /// twice what it accepts; a lower `k` rejects sooner), counted over
    /// `window` (1 s to 1 h).
    pub fn new(k: f64, window: Duration) -> Result<ThrottleSettings, SettingsError> {
        Ok(ThrottleSettings {
            enabled: true,
            k: settings::bounded("adaptive_throttle.k", k, 1.0..=10.0, f64::to_string)?,
            window: settings::duration(
                "adaptive_throttle.window",
                window,
                Duration::from_secs(1)..=Duration::from_secs(3600),
            )?,
        })
    }

    /// Whether throttling is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The multiple of accepts requests may reach before any is rejected.
    pub fn k(&self) -> f64 {
        self.k
    }

    /// The window requests and accepts are counted over.
    pub fn window(&self) -> Duration {
        self.window
    }
}

impl Default for ThrottleSettings {
    /// Off.
    fn default() -> Self {
        ThrottleSettings {
            enabled: false,
            k: Self::DEFAULT_K,
            window: Self::DEFAULT_WINDOW,
        }
    }
}

/// `[adaptive_throttle]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThrottle {
    enabled: Option<bool>,
    k: Option<f64>,
    window: Option<DurationStr>,
}

impl TryFrom<RawThrottle> for ThrottleSettings {
    type Error = SettingsError;

    fn try_from(raw: RawThrottle) -> Result<Self, SettingsError> {
        let checked = ThrottleSettings::new(
            raw.k.unwrap_or(ThrottleSettings::DEFAULT_K),
            raw.window.map_or(ThrottleSettings::DEFAULT_WINDOW, |d| d.0),
        )?;
        Ok(ThrottleSettings {
            enabled: raw.enabled.unwrap_or(false),
            ..checked
        })
    }
}

/// One host's counts.
#[derive(Debug)]
pub(crate) struct Throttle {
    k: f64,
    slot: Duration,
    counts: Mutex<Counts>,
}

#[derive(Debug)]
struct Counts {
    /// Requests and accepts per slot; `current` is the slot `started` began.
    slots: [(u64, u64); SLOTS],
    current: usize,
    started: Instant,
}

impl Throttle {
    pub(crate) fn new(settings: &ThrottleSettings, now: Instant) -> Throttle {
        Throttle {
            k: settings.k,
            slot: settings.window / SLOTS as u32,
            counts: Mutex::new(Counts {
                slots: [(0, 0); SLOTS],
                current: 0,
                started: now,
            }),
        }
    }

    fn counts(&self, now: Instant) -> std::sync::MutexGuard<'_, Counts> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Slots that have ended are emptied for reuse, at most all of them.
        let mut passed = 0;
        while now.saturating_duration_since(counts.started) >= self.slot && passed < SLOTS {
            counts.current = (counts.current + 1) % SLOTS;
            let current = counts.current;
            counts.slots[current] = (0, 0);
            counts.started += self.slot;
            passed += 1;
        }
        if passed == SLOTS {
            counts.started = now;
        }
        counts
    }

    /// The chance that a request now is rejected here.
    #[cfg(test)]
    pub(crate) fn rejection(&self, now: Instant) -> f64 {
        let counts = self.counts(now);
        probability(&counts, self.k)
    }

    /// Counts a request, and says whether it may be sent (`random`: any
    /// 64 random bits).
    pub(crate) fn admit(&self, now: Instant, random: u64) -> bool {
        let mut counts = self.counts(now);
        let reject = probability(&counts, self.k);
        let current = counts.current;
        counts.slots[current].0 += 1;
        // 53 random bits as a fraction in [0, 1).
        let draw = (random >> 11) as f64 / (1u64 << 53) as f64;
        draw >= reject
    }

    /// Counts an accept: the host answered, with no retryable failure.
    pub(crate) fn accepted(&self, now: Instant) {
        let mut counts = self.counts(now);
        let current = counts.current;
        counts.slots[current].1 += 1;
    }
}

fn probability(counts: &Counts, k: f64) -> f64 {
    let (requests, accepts) = counts
        .slots
        .iter()
        .fold((0u64, 0u64), |(r, a), (sr, sa)| (r + sr, a + sa));
    let requests = requests as f64;
    ((requests - k * accepts as f64) / (requests + 1.0)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(k: f64) -> (Throttle, Instant) {
        let now = Instant::now();
        let settings = ThrottleSettings::new(k, Duration::from_secs(10)).unwrap();
        (Throttle::new(&settings, now), now)
    }

    #[test]
    fn nothing_is_rejected_while_the_host_accepts_one_in_k() {
        let (t, now) = throttle(2.0);
        for i in 0..1000u64 {
            // A draw of 0 is the most likely to be rejected.
            assert!(t.admit(now, 0), "request {i}");
            if i % 2 == 0 {
                t.accepted(now);
            }
        }
        assert_eq!(t.rejection(now), 0.0);
    }

    #[test]
    fn a_host_that_accepts_nothing_gets_the_sre_formula() {
        let (t, now) = throttle(2.0);
        // 4 requests, 1 accept: (4 - 2) / 5.
        for _ in 0..4 {
            t.admit(now, u64::MAX);
        }
        t.accepted(now);
        assert!((t.rejection(now) - 0.4).abs() < 1e-12);
        // 99 requests more, all refused: (103 - 2) / 104.
        for _ in 0..99 {
            t.admit(now, u64::MAX);
        }
        assert!((t.rejection(now) - 101.0 / 104.0).abs() < 1e-12);
        // A draw below the chance is rejected, one above it admitted.
        assert!(!t.admit(now, 0));
        assert!(t.admit(now, u64::MAX));
    }

    #[test]
    fn the_window_forgets() {
        let (t, now) = throttle(2.0);
        for _ in 0..100 {
            t.admit(now, u64::MAX);
        }
        assert!(t.rejection(now) > 0.9);
        // Half the window later the counts are still there...
        assert!(t.rejection(now + Duration::from_secs(5)) > 0.9);
        // ...and a whole window later they are gone.
        assert_eq!(t.rejection(now + Duration::from_secs(10)), 0.0);
        // A long silence is no loop of a million slots.
        assert_eq!(t.rejection(now + Duration::from_secs(10_000_000)), 0.0);
    }
}
