//! What the concurrency limit is told: a policy's `[concurrency]`.

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{self, SettingsError};
use crate::units::DurationStr;

/// Whose requests share one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ConcurrencyScope {
    /// One limit per scheme, host and port.
    #[default]
    Host,
    /// One limit for every request of the policy.
    Policy,
}

/// How many requests may be in flight at once, and what happens to the
/// ones that find no free slot: a policy's `[concurrency]`.
///
/// A fixed bulkhead (`max_in_flight`), or, with `adaptive`, a limit that
/// follows the latency the host answers with: it grows while answers come
/// as fast as the host answers when idle, and shrinks when they slow down
/// (past `tolerance` times that) or time out, between `min_in_flight` and
/// `max_in_flight`. A request with no free slot waits in a queue of at
/// most `queue` requests, for at most `queue_timeout` and never past the
/// call's deadline, then ends as `overloaded`, not sent.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::concurrency::ConcurrencySettings;
///
/// let settings = ConcurrencySettings::builder()
///     .max_in_flight(4)
///     .queue(16)
///     .queue_timeout(Duration::from_millis(500))
///     .build()?;
/// assert_eq!(settings.max_in_flight(), 4);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawConcurrency")]
pub struct ConcurrencySettings {
    pub(crate) enabled: bool,
    pub(crate) max_in_flight: u32,
    pub(crate) adaptive: bool,
    pub(crate) min_in_flight: u32,
    pub(crate) initial: u32,
    pub(crate) tolerance: f64,
    pub(crate) queue: u32,
    pub(crate) queue_timeout: Duration,
    pub(crate) scope: ConcurrencyScope,
}

impl ConcurrencySettings {
    /// A builder of a limit that is on, with the defaults.
    pub fn builder() -> ConcurrencyBuilder {
        ConcurrencyBuilder::default()
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The most requests in flight at once: the bulkhead, or the adaptive
    /// limit's ceiling.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// Whether the limit follows the host's latency.
    pub fn adaptive(&self) -> bool {
        self.adaptive
    }

    /// The adaptive limit's floor.
    pub fn min_in_flight(&self) -> u32 {
        self.min_in_flight
    }

    /// Where the adaptive limit starts.
    pub fn initial(&self) -> u32 {
        self.initial
    }

    /// How much slower than the host's unloaded latency an answer may come
    /// before the adaptive limit shrinks.
    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }

    /// How many requests may wait for a slot.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The longest a request waits for a slot.
    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// Whose requests share one limit.
    pub fn scope(&self) -> ConcurrencyScope {
        self.scope
    }
}

impl Default for ConcurrencySettings {
    /// Off; when turned on, 100 in flight per host and no queue.
    fn default() -> Self {
        ConcurrencySettings {
            enabled: false,
            ..ConcurrencySettings::builder()
                .build()
                .expect("the defaults are within bounds")
        }
    }
}

/// Builds [`ConcurrencySettings`], checking each value.
#[derive(Debug, Clone)]
pub struct ConcurrencyBuilder {
    enabled: bool,
    max_in_flight: u32,
    adaptive: bool,
    min_in_flight: u32,
    initial: Option<u32>,
    tolerance: f64,
    queue: u32,
    queue_timeout: Duration,
    scope: ConcurrencyScope,
}

impl Default for ConcurrencyBuilder {
    fn default() -> Self {
        ConcurrencyBuilder {
            enabled: true,
            max_in_flight: 100,
            adaptive: false,
            min_in_flight: 1,
            initial: None,
            tolerance: 1.5,
            queue: 0,
            queue_timeout: Duration::from_secs(1),
            scope: ConcurrencyScope::Host,
        }
    }
}

impl ConcurrencyBuilder {
    /// Whether the limit is on (default on).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// The most requests in flight at once, 1 to 100,000 (default 100).
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Whether the limit follows the host's latency (default off: a fixed
    /// bulkhead).
    pub fn adaptive(mut self, adaptive: bool) -> Self {
        self.adaptive = adaptive;
        self
    }

    /// The adaptive limit's floor, 1 to `max_in_flight` (default 1).
    pub fn min_in_flight(mut self, min: u32) -> Self {
        self.min_in_flight = min;
        self
    }

    /// Where the adaptive limit starts, `min_in_flight` to `max_in_flight`
    /// (default 20, or `max_in_flight` when lower).
    pub fn initial(mut self, initial: u32) -> Self {
        self.initial = Some(initial);
        self
    }

    /// How much slower than the unloaded latency an answer may come before
    /// the adaptive limit shrinks, 1.0 to 10.0 (default 1.5).
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// How many requests may wait for a slot, 0 to 100,000 (default 0).
    pub fn queue(mut self, queue: u32) -> Self {
        self.queue = queue;
        self
    }

    /// The longest a request waits for a slot, 1 ms to 1 h (default 1 s);
    /// never past the call's deadline.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// Whose requests share one limit (default one per host).
    pub fn scope(mut self, scope: ConcurrencyScope) -> Self {
        self.scope = scope;
        self
    }

    /// The settings, or the first value out of bounds.
    pub fn build(self) -> Result<ConcurrencySettings, SettingsError> {
        let max = settings::count("concurrency.max_in_flight", self.max_in_flight, 1..=100_000)?;
        let min = settings::count("concurrency.min_in_flight", self.min_in_flight, 1..=max)?;
        let initial = settings::count(
            "concurrency.initial",
            self.initial.unwrap_or(20).clamp(min, max),
            min..=max,
        )?;
        Ok(ConcurrencySettings {
            enabled: self.enabled,
            max_in_flight: max,
            adaptive: self.adaptive,
            min_in_flight: min,
            initial,
            tolerance: settings::number("concurrency.tolerance", self.tolerance, 1.0..=10.0)?,
            queue: settings::count("concurrency.queue", self.queue, 0..=100_000)?,
            queue_timeout: settings::duration(
                "concurrency.queue_timeout",
                self.queue_timeout,
                Duration::from_millis(1)..=Duration::from_secs(3600),
            )?,
            scope: self.scope,
        })
    }
}

/// `[concurrency]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConcurrency {
    enabled: Option<bool>,
    max_in_flight: Option<i64>,
    adaptive: Option<bool>,
    min_in_flight: Option<i64>,
    initial: Option<i64>,
    tolerance: Option<f64>,
    queue: Option<i64>,
    queue_timeout: Option<DurationStr>,
    scope: Option<ConcurrencyScope>,
}

impl TryFrom<RawConcurrency> for ConcurrencySettings {
    type Error = SettingsError;

    fn try_from(raw: RawConcurrency) -> Result<Self, SettingsError> {
        let count = |n: i64| u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX });
        let mut builder = ConcurrencySettings::builder().enabled(raw.enabled.unwrap_or(false));
        if let Some(n) = raw.max_in_flight {
            builder = builder.max_in_flight(count(n));
        }
        if let Some(adaptive) = raw.adaptive {
            builder = builder.adaptive(adaptive);
        }
        if let Some(n) = raw.min_in_flight {
            builder = builder.min_in_flight(count(n));
        }
        if let Some(n) = raw.initial {
            if !raw.adaptive.unwrap_or(false) {
                return Err(SettingsError::new(
                    "concurrency.initial",
                    "concurrency.initial needs concurrency.adaptive = true: a fixed limit is max_in_flight",
                ));
            }
            builder = builder.initial(count(n));
        }
        if let Some(t) = raw.tolerance {
            builder = builder.tolerance(t);
        }
        if let Some(n) = raw.queue {
            builder = builder.queue(count(n));
        }
        if let Some(t) = raw.queue_timeout {
            builder = builder.queue_timeout(t.0);
        }
        if let Some(scope) = raw.scope {
            builder = builder.scope(scope);
        }
        builder.build()
    }
}
