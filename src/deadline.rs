//! The end of a call: one type and one calculation for every layer.
//!
//! A call must end by `timeouts.total` after it started, waits and retries and
//! polls included. Each layer that waits or sends again works out the same
//! instant here, and hands it to the requests it sends after the first in a
//! [`CallDeadline`], so that no attempt and no poll outlives the call.
//! [`Timeouts`] is what a policy says about both.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::settings::{self, SettingsError};
use crate::units::DurationStr;

/// When the logical call must end, carried by the requests a layer sends
/// after the first one (retries, status requests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallDeadline(pub(crate) Instant);

impl CallDeadline {
    /// The deadline a request carries, if any.
    pub(crate) fn of<B>(request: &http::Request<B>) -> Option<Instant> {
        request.extensions().get::<CallDeadline>().map(|d| d.0)
    }
}

/// The end of a call that started at `started` and may last `total`, or the
/// end of the call that encloses it (`outer`), whichever comes first.
pub(crate) fn call_deadline(started: Instant, total: Duration, outer: Option<Instant>) -> Instant {
    let own = started
        .checked_add(total)
        .unwrap_or(started + Duration::from_secs(86_400 * 365));
    outer.map_or(own, |outer| own.min(outer))
}

/// How long one attempt, and one whole call, may take: a policy's
/// `[timeouts]`.
///
/// `attempt` bounds each attempt, from sending the request to reading the
/// response head (and, for an error, its body). `total` bounds the whole call:
/// every attempt, every wait between them, and every status request of a
/// `202 Accepted` operation. Each is between 1 ms and 1 hour.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::Timeouts;
///
/// let timeouts = Timeouts::new(Duration::from_secs(2), Duration::from_secs(30))?;
/// assert_eq!(timeouts.total(), Duration::from_secs(30));
/// assert!(Timeouts::new(Duration::ZERO, Duration::from_secs(30)).is_err());
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTimeouts")]
pub struct Timeouts {
    attempt: Duration,
    total: Duration,
}

impl Timeouts {
    /// The default `timeouts.attempt`: 10 s.
    pub const DEFAULT_ATTEMPT: Duration = Duration::from_secs(10);
    /// The default `timeouts.total`: 60 s.
    pub const DEFAULT_TOTAL: Duration = Duration::from_secs(60);

    /// Timeouts of `attempt` per attempt and `total` per call.
    pub fn new(attempt: Duration, total: Duration) -> Result<Timeouts, SettingsError> {
        let bounds = Duration::from_millis(1)..=Duration::from_secs(3600);
        Ok(Timeouts {
            attempt: settings::duration("timeouts.attempt", attempt, bounds.clone())?,
            total: settings::duration("timeouts.total", total, bounds)?,
        })
    }

    /// The most one attempt may take.
    pub fn attempt(&self) -> Duration {
        self.attempt
    }

    /// The most the whole call may take, waits and polls included.
    pub fn total(&self) -> Duration {
        self.total
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            attempt: Timeouts::DEFAULT_ATTEMPT,
            total: Timeouts::DEFAULT_TOTAL,
        }
    }
}

/// `[timeouts]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) attempt: Option<DurationStr>,
    pub(crate) total: Option<DurationStr>,
}

impl TryFrom<RawTimeouts> for Timeouts {
    type Error = SettingsError;

    fn try_from(raw: RawTimeouts) -> Result<Self, SettingsError> {
        Timeouts::new(
            raw.attempt.map_or(Timeouts::DEFAULT_ATTEMPT, |d| d.0),
            raw.total.map_or(Timeouts::DEFAULT_TOTAL, |d| d.0),
        )
    }
}
