//! What the rate limit layer is told: a policy's `[rate_limit]`.

use std::time::Duration;

use serde::Deserialize;

use crate::settings::{self, SettingsError};
use crate::units::DurationStr;

/// Which requests share one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LimitScope {
    /// One limit per scheme, host and port: the key is `KEY:scheme://host:port`.
    Host,
    /// One limit for every request of the policy: the key is `KEY`.
    Policy,
}

/// Where the turns are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// In this process only.
    Local,
    /// In Redis, shared by every process that uses the same key (feature
    /// `redis`); the URL as `redis://[user:password@]host:port[/db]`.
    Redis {
        /// The server.
        url: String,
    },
}

/// A rate limit on the requests a policy sends (`[rate_limit]`): off by
/// default.
///
/// Every attempt and every status request takes a turn. A turn is granted by
/// GCRA (the generic cell rate algorithm): `per_second` turns a second, with
/// up to `burst` at once after a quiet spell. An attempt with no turn waits
/// for its turn when `wait` is on (never past the call's deadline), and ends
/// as `rate_limited` otherwise.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::rate_limit::{LimitScope, RateLimitSettings};
///
/// let limit = RateLimitSettings::builder()
///     .per_second(200.0)
///     .burst(20)
///     .scope(LimitScope::Policy)
///     .build()?;
/// assert!(limit.enabled());
/// assert_eq!(limit.burst(), 20);
/// assert!(RateLimitSettings::builder().per_second(0.0).build().is_err());
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSettings {
    pub(crate) enabled: bool,
    pub(crate) per_second: f64,
    pub(crate) burst: u32,
    pub(crate) scope: LimitScope,
    pub(crate) backend: Backend,
    pub(crate) key: String,
    pub(crate) wait: bool,
    pub(crate) redis_timeout: Duration,
    pub(crate) fallback_per_second: f64,
    pub(crate) lease: u32,
    pub(crate) share_pauses: bool,
    pub(crate) pace: bool,
    pub(crate) max_pause: Duration,
}

impl RateLimitSettings {
    /// The default rate: 10 turns a second.
    pub const DEFAULT_PER_SECOND: f64 = 10.0;
    /// The default key prefix.
    pub const DEFAULT_KEY: &'static str = "rebound";
    /// How long a turn may take to come from Redis before the process falls
    /// back to its local limiter: 50 ms.
    pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);
    /// The longest pause a `Retry-After` may impose on a host: 60 s.
    pub const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(60);

    /// A builder with the defaults, and the limit on.
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder {
            settings: RateLimitSettings {
                enabled: true,
                ..RateLimitSettings::default()
            },
            fallback_set: false,
        }
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Turns a second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// The most turns granted at once after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Which requests share one limit.
    pub fn scope(&self) -> LimitScope {
        self.scope
    }

    /// Where the turns are counted.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The prefix of the limit's keys.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether an attempt with no turn waits for one (bounded by the call's
    /// deadline) rather than ending as `rate_limited`.
    pub fn wait(&self) -> bool {
        self.wait
    }

    /// How long a turn may take to come from Redis.
    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }

    /// Turns a second this process grants itself while Redis is unreachable.
    pub fn fallback_per_second(&self) -> f64 {
        self.fallback_per_second
    }

    /// Turns taken from Redis per round trip.
    pub fn lease(&self) -> u32 {
        self.lease
    }

    /// Whether a `429` with `Retry-After` pauses the key for everyone who
    /// shares it.
    pub fn share_pauses(&self) -> bool {
        self.share_pauses
    }

    /// Whether an answer that says its quota is spent (`RateLimit` with
    /// `r=0`, or a `RateLimit-Remaining` / `X-RateLimit-Remaining` of `0`
    /// with its reset) pauses the key until the reset, before any `429`.
    pub fn pace(&self) -> bool {
        self.pace
    }

    /// The longest such pause.
    pub fn max_pause(&self) -> Duration {
        self.max_pause
    }
}

impl Default for RateLimitSettings {
    /// Off; when turned on, 10 turns a second, a burst of 10, one limit per
    /// host, counted here, waiting for turns.
    fn default() -> Self {
        RateLimitSettings {
            enabled: false,
            per_second: Self::DEFAULT_PER_SECOND,
            burst: 10,
            scope: LimitScope::Host,
            backend: Backend::Local,
            key: Self::DEFAULT_KEY.to_owned(),
            wait: true,
            redis_timeout: Self::DEFAULT_REDIS_TIMEOUT,
            fallback_per_second: Self::DEFAULT_PER_SECOND,
            lease: 1,
            share_pauses: true,
            pace: true,
            max_pause: Self::DEFAULT_MAX_PAUSE,
        }
    }
}

/// Builds [`RateLimitSettings`], checking each value.
#[derive(Debug, Clone)]
pub struct RateLimitBuilder {
    settings: RateLimitSettings,
    fallback_set: bool,
}

impl RateLimitBuilder {
    /// Whether the limit is on (default: on, for a builder).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.settings.enabled = enabled;
        self
    }

    /// Turns a second, 0.001 to 1,000,000 (default 10).
    pub fn per_second(mut self, rate: f64) -> Self {
        self.settings.per_second = rate;
        self
    }

    /// The most turns at once, 1 to 100,000 (default 10).
    pub fn burst(mut self, burst: u32) -> Self {
        self.settings.burst = burst;
        self
    }

    /// Which requests share one limit (default: per host).
    pub fn scope(mut self, scope: LimitScope) -> Self {
        self.settings.scope = scope;
        self
    }

    /// Where the turns are counted (default: here).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.settings.backend = backend;
        self
    }

    /// The prefix of the keys (default `rebound`): processes that share a
    /// key share the limit.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.settings.key = key.into();
        self
    }

    /// Whether an attempt waits for its turn (default) or ends as
    /// `rate_limited`.
    pub fn wait(mut self, wait: bool) -> Self {
        self.settings.wait = wait;
        self
    }

    /// How long a turn may take to come from Redis, 1 ms to 10 s (default
    /// 50 ms).
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.settings.redis_timeout = timeout;
        self
    }

    /// Turns a second while Redis is unreachable (default: `per_second`;
    /// set it to `per_second` divided by the number of processes).
    pub fn fallback_per_second(mut self, rate: f64) -> Self {
        self.settings.fallback_per_second = rate;
        self.fallback_set = true;
        self
    }

    /// Turns taken per round trip to Redis, 1 to 1,000 (default 1): more
    /// round trips saved, more turns a process may hold unused.
    pub fn lease(mut self, lease: u32) -> Self {
        self.settings.lease = lease;
        self
    }

    /// Whether a `429` with `Retry-After` pauses the key (default on).
    pub fn share_pauses(mut self, share: bool) -> Self {
        self.settings.share_pauses = share;
        self
    }

    /// Whether an answer that says its quota is spent pauses the key until
    /// the quota's reset (default on); see [`RateLimitSettings::pace`].
    pub fn pace(mut self, pace: bool) -> Self {
        self.settings.pace = pace;
        self
    }

    /// The longest pause a `Retry-After` imposes, 1 s to 1 h (default 60 s).
    pub fn max_pause(mut self, max: Duration) -> Self {
        self.settings.max_pause = max;
        self
    }

    /// The settings, or the first value out of bounds.
    pub fn build(self) -> Result<RateLimitSettings, SettingsError> {
        let mut s = self.settings;
        settings::number("rate_limit.per_second", s.per_second, 0.001..=1_000_000.0)?;
        settings::count("rate_limit.burst", s.burst, 1..=100_000)?;
        if !self.fallback_set {
            s.fallback_per_second = s.per_second;
        }
        settings::number(
            "rate_limit.fallback_per_second",
            s.fallback_per_second,
            0.001..=1_000_000.0,
        )?;
        settings::count("rate_limit.lease", s.lease, 1..=1000)?;
        settings::duration(
            "rate_limit.redis_timeout",
            s.redis_timeout,
            Duration::from_millis(1)..=Duration::from_secs(10),
        )?;
        settings::duration(
            "rate_limit.max_pause",
            s.max_pause,
            Duration::from_secs(1)..=Duration::from_secs(3600),
        )?;
        if s.key.is_empty() || s.key.len() > 200 || s.key.chars().any(char::is_control) {
            return Err(SettingsError::new(
                "rate_limit.key",
                "rate_limit.key must be 1 to 200 characters, none of them control characters",
            ));
        }
        if let Backend::Redis { url } = &s.backend {
            check_redis_url(url)?;
        }
        Ok(s)
    }
}

fn check_redis_url(url: &str) -> Result<(), SettingsError> {
    let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme));
    if !scheme_ok {
        return Err(SettingsError::new(
            "rate_limit.redis_url",
            "rate_limit.redis_url must be a redis:// URL, such as \"redis://127.0.0.1:6379\"",
        ));
    }
    #[cfg(feature = "redis")]
    if let Err(e) = redis::Client::open(url) {
        return Err(SettingsError::new(
            "rate_limit.redis_url",
            format!("rate_limit.redis_url is not a Redis URL: {e}"),
        ));
    }
    Ok(())
}

/// `[rate_limit]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    enabled: Option<bool>,
    per_second: Option<f64>,
    burst: Option<u32>,
    scope: Option<LimitScope>,
    backend: Option<RawBackend>,
    redis_url: Option<String>,
    key: Option<String>,
    wait: Option<bool>,
    redis_timeout: Option<DurationStr>,
    fallback_per_second: Option<f64>,
    lease: Option<u32>,
    share_pauses: Option<bool>,
    pace: Option<bool>,
    max_pause: Option<DurationStr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawBackend {
    Local,
    Redis,
}

impl TryFrom<RawRateLimit> for RateLimitSettings {
    type Error = SettingsError;

    fn try_from(raw: RawRateLimit) -> Result<Self, SettingsError> {
        let backend = match (raw.backend, raw.redis_url) {
            (Some(RawBackend::Redis), Some(url)) => Backend::Redis { url },
            (Some(RawBackend::Redis), None) => {
                return Err(SettingsError::new(
                    "rate_limit.backend",
                    "rate_limit.backend = \"redis\" needs rate_limit.redis_url",
                ));
            }
            (None | Some(RawBackend::Local), _) => Backend::Local,
        };
        #[cfg(not(feature = "redis"))]
        if matches!(backend, Backend::Redis { .. }) {
            return Err(SettingsError::new(
                "rate_limit.backend",
                "rate_limit.backend = \"redis\" needs tower-rebound built with its `redis` feature",
            ));
        }
        let mut builder = RateLimitSettings::builder()
            .enabled(raw.enabled.unwrap_or(false))
            .backend(backend);
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(value) = raw.$field {
                    builder = builder.$field(value);
                }
            )*};
        }
        set!(
            per_second,
            burst,
            scope,
            key,
            wait,
            fallback_per_second,
            lease,
            share_pauses,
            pace
        );
        if let Some(timeout) = raw.redis_timeout {
            builder = builder.redis_timeout(timeout.0);
        }
        if let Some(max) = raw.max_pause {
            builder = builder.max_pause(max.0);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let off = RateLimitSettings::default();
        assert!(!off.enabled());
        let on = RateLimitSettings::builder()
            .per_second(50.0)
            .build()
            .unwrap();
        assert!(on.enabled());
        // The fallback follows the rate unless set.
        assert_eq!(on.fallback_per_second(), 50.0);
        let set = RateLimitSettings::builder()
            .per_second(50.0)
            .fallback_per_second(5.0)
            .build()
            .unwrap();
        assert_eq!(set.fallback_per_second(), 5.0);
        for (builder, key) in [
            (
                RateLimitSettings::builder().per_second(f64::NAN),
                "rate_limit.per_second",
            ),
            (RateLimitSettings::builder().burst(0), "rate_limit.burst"),
            (RateLimitSettings::builder().lease(0), "rate_limit.lease"),
            (RateLimitSettings::builder().key(""), "rate_limit.key"),
            (
                RateLimitSettings::builder().redis_timeout(Duration::ZERO),
                "rate_limit.redis_timeout",
            ),
            (
                RateLimitSettings::builder().backend(Backend::Redis {
                    url: "http://localhost".into(),
                }),
                "rate_limit.redis_url",
            ),
        ] {
            assert_eq!(builder.build().unwrap_err().key(), key);
        }
    }
}
