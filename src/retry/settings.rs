//! What the retry layer is told: a policy's `[retry]`, `[retry.backoff]` and
//! `[retry.budget]`.

use std::time::Duration;

use serde::Deserialize;

use super::{Backoff, BudgetSettings, Delays, Jitter, NonIdempotent};
use crate::settings::{self, SettingsError};
use crate::units::{ByteSize, DurationStr};

/// How many attempts, how long between them, and which requests may be sent
/// again.
///
/// Built with [`RetrySettings::builder`], from a policy file's `[retry]`, or
/// with serde from such a table. The defaults are those of
/// `policies/README.md`: 4 attempts, exponential backoff from 100 ms doubling
/// to 5 s with full jitter, a `Retry-After` of up to 30 s honoured, writes
/// retried only when safe, bodies of up to 64 KiB replayed, and a budget of
/// up to 20 retries (3 s of the process's own calls, at least 3) that
/// successes refill by 0.2.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::retry::{Backoff, Jitter, RetrySettings};
///
/// let settings = RetrySettings::builder()
///     .max_attempts(3)
///     .backoff(Backoff::exponential(
///         Duration::from_millis(200),
///         2.0,
///         Duration::from_secs(2),
///         Jitter::Full,
///     ))
///     .build()?;
/// assert_eq!(settings.max_attempts(), 3);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawRetry")]
pub struct RetrySettings {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) max_retry_after: Duration,
    pub(crate) non_idempotent: NonIdempotent,
    pub(crate) add_idempotency_key: bool,
    pub(crate) buffer_max: usize,
    pub(crate) budget: BudgetSettings,
}

impl RetrySettings {
    /// The default `max_attempts`: 4.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
    /// The largest `buffer_max`: 64 MiB.
    pub const MAX_BUFFER_MAX: usize = 64 * 1024 * 1024;

    /// A builder with the defaults.
    pub fn builder() -> RetryBuilder {
        RetryBuilder {
            settings: RetrySettings {
                max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
                backoff: Backoff::exponential(
                    Duration::from_millis(100),
                    2.0,
                    Duration::from_secs(5),
                    Jitter::Full,
                ),
                max_retry_after: Duration::from_secs(30),
                non_idempotent: NonIdempotent::Safe,
                add_idempotency_key: false,
                buffer_max: 64 * 1024,
                budget: BudgetSettings::default(),
            },
        }
    }

    /// The most attempts a call makes, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before each retry when the server does not say.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The waits of this policy's retries: its backoff's, as many as
    /// `max_attempts` allows (one fewer than the attempts), jittered from
    /// `seed`. What another retry loop (`backon`'s, with the `backon`
    /// feature: `&RetrySettings` is a `backon::BackoffBuilder`) needs to
    /// retry as this policy does, `Retry-After` and the budget aside.
    pub fn delays(&self, seed: u64) -> std::iter::Take<Delays> {
        let retries = self.max_attempts.saturating_sub(1) as usize;
        self.backoff.delays(seed).take(retries)
    }

    /// The longest `Retry-After` honoured; a longer one ends the call.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// Whether writes are retried when it may not be safe.
    pub fn non_idempotent(&self) -> NonIdempotent {
        self.non_idempotent
    }

    /// Whether writes get an `Idempotency-Key` so that they can be retried.
    pub fn add_idempotency_key(&self) -> bool {
        self.add_idempotency_key
    }

    /// The most bytes of a streaming body recorded for a replay.
    pub fn buffer_max(&self) -> usize {
        self.buffer_max
    }

    /// The retry budget's settings.
    pub fn budget(&self) -> BudgetSettings {
        self.budget
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings::builder()
            .build()
            .expect("the defaults are within bounds")
    }
}

/// Builds [`RetrySettings`]; see there.
#[derive(Debug, Clone)]
pub struct RetryBuilder {
    settings: RetrySettings,
}

impl RetryBuilder {
    /// The most attempts a call makes (`max_attempts`, 1 to 10, default 4).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.settings.max_attempts = max_attempts;
        self
    }

    /// The wait before each retry when the server does not say
    /// (`[retry.backoff]`): a base of at most 1 minute, a multiplier of 1 to
    /// 10, a cap of at most 10 minutes.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// The longest `Retry-After` honoured (`max_retry_after`, 0 to 1 h,
    /// default 30 s).
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.settings.max_retry_after = max;
        self
    }

    /// Whether writes are retried when it may not be safe (`non_idempotent`,
    /// default [`NonIdempotent::Safe`]).
    pub fn non_idempotent(mut self, policy: NonIdempotent) -> Self {
        self.settings.non_idempotent = policy;
        self
    }

    /// Whether writes get an `Idempotency-Key` (`add_idempotency_key`,
    /// default false).
    pub fn add_idempotency_key(mut self, add: bool) -> Self {
        self.settings.add_idempotency_key = add;
        self
    }

    /// The most bytes of a streaming body recorded for a replay
    /// (`buffer_max`, 0 to 64 MiB, default 64 KiB).
    pub fn buffer_max(mut self, bytes: usize) -> Self {
        self.settings.buffer_max = bytes;
        self
    }

    /// The retry budget (`[retry.budget]`).
    pub fn budget(mut self, budget: BudgetSettings) -> Self {
        self.settings.budget = budget;
        self
    }

    /// The settings, or the first value out of bounds.
    pub fn build(self) -> Result<RetrySettings, SettingsError> {
        let s = self.settings;
        settings::count("retry.max_attempts", s.max_attempts, 1..=10)?;
        s.backoff.check()?;
        settings::duration(
            "retry.max_retry_after",
            s.max_retry_after,
            Duration::ZERO..=Duration::from_secs(3600),
        )?;
        settings::bounded(
            "retry.buffer_max",
            s.buffer_max,
            0..=RetrySettings::MAX_BUFFER_MAX,
            |n| format!("{n} bytes"),
        )?;
        s.budget.check()?;
        Ok(s)
    }
}

/// `[retry]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    max_attempts: Option<i64>,
    max_retry_after: Option<DurationStr>,
    non_idempotent: Option<NonIdempotent>,
    add_idempotency_key: Option<bool>,
    buffer_max: Option<ByteSize>,
    #[serde(default)]
    backoff: RawBackoff,
    #[serde(default)]
    budget: RawBudget,
}

impl TryFrom<RawRetry> for RetrySettings {
    type Error = SettingsError;

    fn try_from(raw: RawRetry) -> Result<Self, SettingsError> {
        let defaults = RetrySettings::builder().settings;
        let mut builder = RetrySettings::builder()
            .backoff(raw.backoff.to_backoff()?)
            .budget(raw.budget.to_settings());
        if let Some(n) = raw.max_attempts {
            builder = builder.max_attempts(u32::try_from(n).unwrap_or(u32::MAX));
        }
        if let Some(max) = raw.max_retry_after {
            builder = builder.max_retry_after(max.0);
        }
        builder = builder
            .non_idempotent(raw.non_idempotent.unwrap_or(defaults.non_idempotent))
            .add_idempotency_key(raw.add_idempotency_key.unwrap_or(false));
        if let Some(ByteSize(n)) = raw.buffer_max {
            builder = builder.buffer_max(usize::try_from(n).unwrap_or(usize::MAX));
        }
        builder.build()
    }
}

/// `[retry.backoff]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    kind: Option<BackoffKind>,
    delay: Option<DurationStr>,
    initial: Option<DurationStr>,
    multiplier: Option<f64>,
    max: Option<DurationStr>,
    jitter: Option<JitterName>,
    jitter_factor: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BackoffKind {
    Constant,
    Exponential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum JitterName {
    None,
    Full,
    Equal,
    Decorrelated,
    Proportional,
}

impl RawBackoff {
    /// The schedule, with the mistakes only a file can make named: keys of
    /// the other kind, a cap below the start.
    fn to_backoff(&self) -> Result<Backoff, SettingsError> {
        let jitter = match self.jitter {
            None | Some(JitterName::Full) => Jitter::Full,
            Some(JitterName::None) => Jitter::None,
            Some(JitterName::Equal) => Jitter::Equal,
            Some(JitterName::Decorrelated) => Jitter::Decorrelated,
            Some(JitterName::Proportional) => Jitter::Proportional(settings::number(
                "retry.backoff.jitter_factor",
                self.jitter_factor.unwrap_or(0.5),
                0.0..=1.0,
            )?),
        };
        if self.jitter_factor.is_some() && self.jitter != Some(JitterName::Proportional) {
            return Err(SettingsError::new(
                "retry.backoff.jitter_factor",
                "retry.backoff.jitter_factor is for jitter = \"proportional\"",
            ));
        }
        let minute = Duration::from_secs(60);
        match self.kind.unwrap_or(BackoffKind::Exponential) {
            BackoffKind::Constant => {
                for (present, key) in [
                    (self.initial.is_some(), "retry.backoff.initial"),
                    (self.max.is_some(), "retry.backoff.max"),
                    (self.multiplier.is_some(), "retry.backoff.multiplier"),
                ] {
                    if present {
                        return Err(SettingsError::new(
                            key,
                            format!(
                                "{key} is for kind = \"exponential\": a constant backoff takes `delay`"
                            ),
                        ));
                    }
                }
                let delay = settings::duration(
                    "retry.backoff.delay",
                    self.delay.map_or(Duration::from_millis(100), |d| d.0),
                    Duration::ZERO..=minute,
                )?;
                Ok(Backoff::constant(delay, jitter))
            }
            BackoffKind::Exponential => {
                if self.delay.is_some() {
                    return Err(SettingsError::new(
                        "retry.backoff.delay",
                        "retry.backoff.delay is for kind = \"constant\": an exponential backoff takes `initial`, `multiplier` and `max`",
                    ));
                }
                let initial = settings::duration(
                    "retry.backoff.initial",
                    self.initial.map_or(Duration::from_millis(100), |d| d.0),
                    Duration::ZERO..=minute,
                )?;
                let multiplier = settings::number(
                    "retry.backoff.multiplier",
                    self.multiplier.unwrap_or(2.0),
                    1.0..=10.0,
                )?;
                let max = settings::duration(
                    "retry.backoff.max",
                    self.max
                        .map_or(Duration::from_secs(5).max(initial), |d| d.0),
                    Duration::ZERO..=Duration::from_secs(600),
                )?;
                if max < initial {
                    return Err(SettingsError::new(
                        "retry.backoff.max",
                        format!(
                            "retry.backoff.max ({}) is below retry.backoff.initial ({}): expected max >= initial",
                            settings::show_duration(max),
                            settings::show_duration(initial)
                        ),
                    ));
                }
                Ok(Backoff::exponential(initial, multiplier, max, jitter))
            }
        }
    }
}

/// `[retry.budget]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    enabled: Option<bool>,
    capacity: Option<f64>,
    success_refill: Option<f64>,
    transient_cost: Option<f64>,
    throttling_cost: Option<f64>,
    reserve: Option<DurationStr>,
    min_reserve: Option<f64>,
    refund: Option<bool>,
}

impl RawBudget {
    fn to_settings(&self) -> BudgetSettings {
        let defaults = BudgetSettings::default();
        BudgetSettings {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            capacity: self.capacity.unwrap_or(defaults.capacity),
            success_refill: self.success_refill.unwrap_or(defaults.success_refill),
            transient_cost: self.transient_cost.unwrap_or(defaults.transient_cost),
            throttling_cost: self.throttling_cost.unwrap_or(defaults.throttling_cost),
            reserve: self.reserve.map_or(defaults.reserve, |d| d.0),
            min_reserve: self.min_reserve.unwrap_or(defaults.min_reserve),
            refund: self.refund.unwrap_or(defaults.refund),
        }
    }
}

#[cfg(feature = "backon")]
#[cfg_attr(docsrs, doc(cfg(feature = "backon")))]
impl backon::BackoffBuilder for &RetrySettings {
    type Backoff = std::iter::Take<Delays>;

    /// This policy's waits ([`RetrySettings::delays`]) from a fresh seed.
    fn build(self) -> Self::Backoff {
        self.delays(crate::rng::SharedRng::from_entropy().next_u64())
    }
}
