//! Policies: what rebound does with each response, loaded from TOML.
//!
//! A policy is one TOML file. The shipped presets are the files in the
//! repository's `policies/` folder, compiled in, so the files a user copies and
//! the built-in presets cannot drift apart. `policies/README.md` documents
//! every key, its default and its bounds.
//!
//! Loading is strict: unknown sections and keys are errors (a typo must not
//! silently fall back to a default), every value is checked against its
//! bounds, and every error names the file, line and column.

mod error;
mod schema;
mod units;

use std::collections::HashMap;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use toml::Spanned;

use crate::breaker::{BreakerConfig, BreakerSettings, Scope};
use crate::classify::ClassifySettings;
use crate::poll::{OnAccepted, Origin, PollSettings};
use crate::retry::{
    Backoff, Budget, BudgetSettings, Buffered, Jitter, NonIdempotent, RetrySettings,
};
use crate::status::{Classifier, FIRST_STATUS, LAST_STATUS, StatusClass};
use schema::{
    BackoffKind, JitterName, NonIdempotentName, OnAcceptedName, RawBackoff, RawPolicy, ScopeName,
};
use units::{ByteSize, DurationStr};

pub use error::PolicyError;

/// The default cap on the bytes read from an error body: 64 KiB.
pub const DEFAULT_ERROR_BODY_MAX_BYTES: usize = 64 * 1024;
/// The largest `error_body.max_bytes` a policy may set: 16 MiB.
pub const MAX_ERROR_BODY_MAX_BYTES: usize = 16 * 1024 * 1024;
/// The largest `retry.buffer_max` a policy may set: 64 MiB.
pub const MAX_BUFFER_MAX: usize = 64 * 1024 * 1024;
/// The largest policy file [`Policy::from_path`] reads: 1 MiB.
pub const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;

const PRESETS: [(&str, &str); 2] = [
    ("connio", include_str!("../../policies/connio.toml")),
    ("standard", include_str!("../../policies/standard.toml")),
];

/// A validated policy: everything the layers of the stack need to know.
///
/// Cheap to clone: the parts are shared.
///
/// ```
/// use http::{HeaderName, StatusCode};
/// use rebound::{classify::StatusClass, Policy};
///
/// let policy = Policy::from_toml_str(r#"
///     [classify]
///     retryable = [429, 500]
///     unsupported = [503]
/// "#)?;
/// assert_eq!(policy.classify(StatusCode::TOO_MANY_REQUESTS), StatusClass::Retryable);
/// assert_eq!(policy.classify(StatusCode::SERVICE_UNAVAILABLE), StatusClass::Unsupported);
/// // Statuses not listed take the fallback of their hundred.
/// assert_eq!(policy.classify(StatusCode::CONFLICT), StatusClass::Terminal);
/// # Ok::<_, rebound::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    classify: Arc<ClassifySettings>,
    retry: Arc<RetrySettings>,
    budget: Arc<Budget>,
    breaker: BreakerConfig,
    poll: Arc<PollSettings>,
}

impl Policy {
    /// Loads a policy from TOML text. Errors name the origin `<string>`.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse("<string>", text)
    }

    /// Loads a policy from a TOML file. Errors name the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = read_bounded(path).map_err(|e| PolicyError::new(&origin, e))?;
        Policy::parse(&origin, &text)
    }

    /// One of the shipped presets: `"connio"` (the seed API's status table) or
    /// `"standard"` (ordinary HTTP semantics).
    pub fn preset(name: &str) -> Result<Policy, PolicyError> {
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            PolicyError::new(
                name,
                format!(
                    "unknown preset: expected one of {}",
                    Policy::preset_names().join(", ")
                ),
            )
        })?;
        Policy::parse(&format!("preset {name}"), text)
    }

    /// The names of the shipped presets.
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS.iter().map(|(name, _)| *name).collect()
    }

    /// The class of `status` under this policy.
    pub fn classify(&self, status: StatusCode) -> StatusClass {
        self.classify.classifier.classify(status)
    }

    /// The most bytes of an error body that are read (`error_body.max_bytes`).
    pub fn error_body_max_bytes(&self) -> usize {
        self.classify.error_body_max_bytes
    }

    /// Wraps a streaming request body so that it can be replayed by a
    /// retry, recording up to `retry.buffer_max` bytes of it; see
    /// [`Buffered`].
    pub fn buffer_body<B>(&self, body: B) -> Buffered<B> {
        Buffered::new(body, self.retry.buffer_max)
    }

    /// This policy with another retry schedule, for schedules a policy file
    /// cannot write (such as a `backoff::ExponentialBackoff`, feature
    /// `backoff`). The new policy has a retry budget of its own.
    pub fn with_backoff(&self, backoff: Backoff) -> Policy {
        let mut retry = (*self.retry).clone();
        retry.backoff = backoff;
        Policy {
            retry: Arc::new(retry),
            budget: Arc::new(Budget::new(self.budget.settings())),
            ..self.clone()
        }
    }

    /// The most attempts a call makes (`retry.max_attempts`).
    pub fn max_attempts(&self) -> u32 {
        self.retry.max_attempts
    }

    /// The retry budget of this policy, shared by every layer built from it
    /// and its clones.
    pub fn budget(&self) -> Arc<Budget> {
        Arc::clone(&self.budget)
    }

    pub(crate) fn classify_settings(&self) -> Arc<ClassifySettings> {
        Arc::clone(&self.classify)
    }

    pub(crate) fn poll_settings(&self) -> Arc<PollSettings> {
        Arc::clone(&self.poll)
    }

    pub(crate) fn breaker_config(&self) -> BreakerConfig {
        self.breaker
    }

    pub(crate) fn retry_settings(&self) -> Arc<RetrySettings> {
        Arc::clone(&self.retry)
    }

    fn parse(origin: &str, text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', "; ");
            match e.span() {
                Some(span) => PolicyError::at(origin, text, span, message),
                None => PolicyError::new(origin, message),
            }
        })?;
        let check = Check { origin, text };
        let timeouts = check.timeouts(&raw)?;
        let classify = check.classify(&raw, timeouts)?;
        let (retry, budget) = check.retry(&raw, timeouts)?;
        let breaker = check.breaker(&raw)?;
        let poll = check.poll(&raw, timeouts)?;
        Ok(Policy {
            classify: Arc::new(classify),
            retry: Arc::new(retry),
            budget: Arc::new(Budget::new(budget)),
            breaker,
            poll: Arc::new(poll),
        })
    }
}

/// Validation of the parsed text, with what it needs to point at mistakes.
struct Check<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Check<'_> {
    fn error(&self, span: Range<usize>, message: String) -> PolicyError {
        PolicyError::at(self.origin, self.text, span, message)
    }

    /// The value of an optional key, checked against `bounds`, or `default`.
    fn bounded<T, U>(
        &self,
        value: &Option<Spanned<T>>,
        key: &str,
        bounds: RangeInclusive<U>,
        default: U,
        convert: impl Fn(&T) -> Option<U>,
        show: impl Fn(&U) -> String,
    ) -> Result<U, PolicyError>
    where
        U: PartialOrd + Copy,
    {
        let Some(spanned) = value else {
            return Ok(default);
        };
        convert(spanned.get_ref())
            .filter(|v| bounds.contains(v))
            .ok_or_else(|| {
                self.error(
                    spanned.span(),
                    format!(
                        "{key} is out of bounds: expected {} to {}",
                        show(bounds.start()),
                        show(bounds.end())
                    ),
                )
            })
    }

    fn duration(
        &self,
        value: &Option<Spanned<DurationStr>>,
        key: &str,
        bounds: RangeInclusive<Duration>,
        default: Duration,
    ) -> Result<Duration, PolicyError> {
        self.bounded(
            value,
            key,
            bounds,
            default,
            |d| Some(d.0),
            |d| show_duration(*d),
        )
    }

    fn number(
        &self,
        value: &Option<Spanned<f64>>,
        key: &str,
        bounds: RangeInclusive<f64>,
        default: f64,
    ) -> Result<f64, PolicyError> {
        self.bounded(value, key, bounds, default, |v| Some(*v), |v| v.to_string())
    }

    fn size(
        &self,
        value: &Option<Spanned<ByteSize>>,
        key: &str,
        max: usize,
        default: usize,
    ) -> Result<usize, PolicyError> {
        self.bounded(
            value,
            key,
            0..=max,
            default,
            |s| usize::try_from(s.0).ok(),
            |n| format!("{n} bytes"),
        )
    }

    /// `timeouts.attempt` and `timeouts.total`.
    fn timeouts(&self, raw: &RawPolicy) -> Result<(Duration, Duration), PolicyError> {
        let hour = Duration::from_secs(3600);
        let attempt = self.duration(
            &raw.timeouts.attempt,
            "timeouts.attempt",
            Duration::from_millis(1)..=hour,
            defaults::ATTEMPT_TIMEOUT,
        )?;
        let total = self.duration(
            &raw.timeouts.total,
            "timeouts.total",
            Duration::from_millis(1)..=hour,
            defaults::TOTAL_TIMEOUT,
        )?;
        Ok((attempt, total))
    }

    fn classify(
        &self,
        raw: &RawPolicy,
        (attempt_timeout, total_timeout): (Duration, Duration),
    ) -> Result<ClassifySettings, PolicyError> {
        let mut listed: HashMap<u16, StatusClass> = HashMap::new();
        for (class, statuses) in raw.classify.lists() {
            for status in statuses {
                let code = *status.get_ref();
                let code = u16::try_from(code)
                    .ok()
                    .filter(|c| (FIRST_STATUS..=LAST_STATUS).contains(c))
                    .ok_or_else(|| {
                        self.error(
                            status.span(),
                            format!(
                                "invalid status {code} in classify.{class}: expected a status code from {FIRST_STATUS} to {LAST_STATUS}"
                            ),
                        )
                    })?;
                if let Some(earlier) = listed.insert(code, class) {
                    let message = if earlier == class {
                        format!("status {code} is listed twice in classify.{class}")
                    } else {
                        format!(
                            "status {code} is listed in both classify.{earlier} and classify.{class}: a status belongs to one class"
                        )
                    };
                    return Err(self.error(status.span(), message));
                }
            }
        }
        let error_body_max_bytes = self.size(
            &raw.error_body.max_bytes,
            "error_body.max_bytes",
            MAX_ERROR_BODY_MAX_BYTES,
            DEFAULT_ERROR_BODY_MAX_BYTES,
        )?;
        Ok(ClassifySettings {
            classifier: Classifier::new(raw.classify.fallback.by_hundred(), listed),
            error_body_max_bytes,
            attempt_timeout,
            total_timeout,
        })
    }

    fn retry(
        &self,
        raw: &RawPolicy,
        (_, total_timeout): (Duration, Duration),
    ) -> Result<(RetrySettings, BudgetSettings), PolicyError> {
        let retry = &raw.retry;
        let max_attempts = self.bounded(
            &retry.max_attempts,
            "retry.max_attempts",
            1..=10,
            defaults::MAX_ATTEMPTS,
            |n| u32::try_from(*n).ok(),
            u32::to_string,
        )?;
        let hour = Duration::from_secs(3600);
        let settings = RetrySettings {
            max_attempts,
            backoff: self.backoff(&retry.backoff)?,
            max_retry_after: self.duration(
                &retry.max_retry_after,
                "retry.max_retry_after",
                Duration::ZERO..=hour,
                defaults::MAX_RETRY_AFTER,
            )?,
            non_idempotent: match retry.non_idempotent {
                None | Some(NonIdempotentName::Safe) => NonIdempotent::Safe,
                Some(NonIdempotentName::Always) => NonIdempotent::Always,
            },
            add_idempotency_key: retry.add_idempotency_key.unwrap_or(false),
            buffer_max: self.size(
                &retry.buffer_max,
                "retry.buffer_max",
                MAX_BUFFER_MAX,
                defaults::BUFFER_MAX,
            )?,
            total_timeout,
        };
        let budget = &retry.budget;
        let capacity = self.number(
            &budget.capacity,
            "retry.budget.capacity",
            0.0..=10_000.0,
            20.0,
        )?;
        let budget = BudgetSettings {
            enabled: budget.enabled.unwrap_or(true),
            capacity,
            success_refill: self.number(
                &budget.success_refill,
                "retry.budget.success_refill",
                0.0..=100.0,
                0.2,
            )?,
            transient_cost: self.number(
                &budget.transient_cost,
                "retry.budget.transient_cost",
                0.001..=1000.0,
                1.0,
            )?,
            throttling_cost: self.number(
                &budget.throttling_cost,
                "retry.budget.throttling_cost",
                0.001..=1000.0,
                1.0,
            )?,
        };
        Ok((settings, budget))
    }

    fn count(
        &self,
        value: &Option<Spanned<i64>>,
        key: &str,
        bounds: RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, PolicyError> {
        self.bounded(
            value,
            key,
            bounds,
            default,
            |n| u32::try_from(*n).ok(),
            u32::to_string,
        )
    }

    fn breaker(&self, raw: &RawPolicy) -> Result<BreakerConfig, PolicyError> {
        let b = &raw.circuit_breaker;
        let hour = Duration::from_secs(3600);
        let window = self.count(
            &b.window,
            "circuit_breaker.window",
            1..=1000,
            defaults::BREAKER_WINDOW,
        )?;
        let min_calls = self.count(
            &b.min_calls,
            "circuit_breaker.min_calls",
            1..=window,
            defaults::BREAKER_MIN_CALLS.min(window),
        )?;
        let open_for = self.duration(
            &b.open_for,
            "circuit_breaker.open_for",
            Duration::from_millis(1)..=hour,
            defaults::BREAKER_OPEN_FOR,
        )?;
        let max_open_for = self.duration(
            &b.max_open_for,
            "circuit_breaker.max_open_for",
            open_for..=hour,
            defaults::BREAKER_MAX_OPEN_FOR.max(open_for),
        )?;
        let slow_call_duration = match &b.slow_call_duration {
            None => None,
            some => Some(self.duration(
                some,
                "circuit_breaker.slow_call_duration",
                Duration::from_millis(1)..=hour,
                Duration::ZERO,
            )?),
        };
        let settings = BreakerSettings {
            consecutive_failures: self.count(
                &b.consecutive_failures,
                "circuit_breaker.consecutive_failures",
                0..=1000,
                defaults::BREAKER_CONSECUTIVE_FAILURES,
            )?,
            failure_rate: self.number(
                &b.failure_rate,
                "circuit_breaker.failure_rate (a fraction: 0.5 is 50%; 0 turns it off)",
                0.0..=1.0,
                defaults::BREAKER_FAILURE_RATE,
            )?,
            window,
            min_calls,
            slow_call_duration,
            open_for,
            max_open_for,
            half_open_probes: self.count(
                &b.half_open_probes,
                "circuit_breaker.half_open_probes",
                1..=100,
                defaults::BREAKER_HALF_OPEN_PROBES,
            )?,
            count_throttling: b.count_throttling.unwrap_or(false),
        };
        let max_hosts = self.count(
            &b.max_hosts,
            "circuit_breaker.max_hosts",
            1..=100_000,
            defaults::BREAKER_MAX_HOSTS,
        )?;
        Ok(BreakerConfig {
            enabled: b.enabled.unwrap_or(true),
            scope: match b.scope {
                None | Some(ScopeName::Host) => Scope::Host,
                Some(ScopeName::Global) => Scope::Global,
            },
            max_hosts: max_hosts as usize,
            settings,
        })
    }

    fn header_names(
        &self,
        values: &[Spanned<String>],
        key: &str,
    ) -> Result<Vec<HeaderName>, PolicyError> {
        if values.len() > 16 {
            return Err(self.error(
                values[16].span(),
                format!("{key} lists too many headers: expected at most 16"),
            ));
        }
        values
            .iter()
            .map(|value| {
                HeaderName::from_bytes(value.get_ref().as_bytes()).map_err(|_| {
                    self.error(
                        value.span(),
                        format!("invalid header name {:?} in {key}", value.get_ref()),
                    )
                })
            })
            .collect()
    }

    fn poll(
        &self,
        raw: &RawPolicy,
        (_, total_timeout): (Duration, Duration),
    ) -> Result<PollSettings, PolicyError> {
        let p = &raw.poll;
        let hour = Duration::from_secs(3600);
        let location_headers = match &p.location_headers {
            Some(names) => self.header_names(names, "poll.location_headers")?,
            None => vec![
                HeaderName::from_static("operation-location"),
                http::header::LOCATION,
            ],
        };
        let interval = self.duration(
            &p.interval,
            "poll.interval",
            Duration::from_millis(1)..=hour,
            defaults::POLL_INTERVAL,
        )?;
        let max_interval = self.duration(
            &p.max_interval,
            "poll.max_interval",
            interval..=hour,
            defaults::POLL_MAX_INTERVAL.max(interval),
        )?;
        let allowed_origins = p
            .allowed_origins
            .iter()
            .flatten()
            .map(|text| {
                Origin::parse(text.get_ref()).ok_or_else(|| {
                    self.error(
                        text.span(),
                        format!(
                            "invalid origin {:?} in poll.allowed_origins: expected scheme://host[:port], such as \"https://ops.example\"",
                            text.get_ref()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PollSettings {
            on_accepted: match p.on_accepted {
                None | Some(OnAcceptedName::Succeed) => OnAccepted::Succeed,
                Some(OnAcceptedName::Error) => OnAccepted::Error,
            },
            location_headers,
            interval,
            multiplier: self.number(&p.multiplier, "poll.multiplier", 1.0..=10.0, 1.5)?,
            max_interval,
            max_polls: self.count(
                &p.max_polls,
                "poll.max_polls",
                1..=1000,
                defaults::POLL_MAX_POLLS,
            )?,
            max_duration: self.duration(
                &p.max_duration,
                "poll.max_duration",
                Duration::from_millis(1)..=Duration::from_secs(24 * 3600),
                defaults::POLL_MAX_DURATION,
            )?,
            allowed_origins,
            forward_credentials: p.forward_credentials.unwrap_or(false),
            secret_headers: match &p.secret_headers {
                Some(names) => self.header_names(names, "poll.secret_headers")?,
                None => Vec::new(),
            },
            total_timeout,
        })
    }

    fn backoff(&self, raw: &RawBackoff) -> Result<Backoff, PolicyError> {
        let jitter = match raw.jitter {
            None | Some(JitterName::Full) => Jitter::Full,
            Some(JitterName::None) => Jitter::None,
            Some(JitterName::Equal) => Jitter::Equal,
            Some(JitterName::Decorrelated) => Jitter::Decorrelated,
            Some(JitterName::Proportional) => Jitter::Proportional(self.number(
                &raw.jitter_factor,
                "retry.backoff.jitter_factor",
                0.0..=1.0,
                0.5,
            )?),
        };
        if let (Some(factor), false) = (
            &raw.jitter_factor,
            matches!(raw.jitter, Some(JitterName::Proportional)),
        ) {
            return Err(self.error(
                factor.span(),
                "retry.backoff.jitter_factor is for jitter = \"proportional\"".into(),
            ));
        }
        let minute = Duration::from_secs(60);
        match raw.kind.unwrap_or(BackoffKind::Exponential) {
            BackoffKind::Constant => {
                for (value, key) in [(&raw.initial, "initial"), (&raw.max, "max")] {
                    if let Some(value) = value {
                        return Err(self.error(
                            value.span(),
                            format!("retry.backoff.{key} is for kind = \"exponential\": a constant backoff takes `delay`"),
                        ));
                    }
                }
                if let Some(value) = &raw.multiplier {
                    return Err(self.error(
                        value.span(),
                        "retry.backoff.multiplier is for kind = \"exponential\": a constant backoff takes `delay`".into(),
                    ));
                }
                let delay = self.duration(
                    &raw.delay,
                    "retry.backoff.delay",
                    Duration::ZERO..=minute,
                    defaults::BACKOFF_INITIAL,
                )?;
                Ok(Backoff::constant(delay, jitter))
            }
            BackoffKind::Exponential => {
                if let Some(value) = &raw.delay {
                    return Err(self.error(
                        value.span(),
                        "retry.backoff.delay is for kind = \"constant\": an exponential backoff takes `initial`, `multiplier` and `max`".into(),
                    ));
                }
                let initial = self.duration(
                    &raw.initial,
                    "retry.backoff.initial",
                    Duration::ZERO..=minute,
                    defaults::BACKOFF_INITIAL,
                )?;
                let multiplier =
                    self.number(&raw.multiplier, "retry.backoff.multiplier", 1.0..=10.0, 2.0)?;
                let max = self.duration(
                    &raw.max,
                    "retry.backoff.max",
                    Duration::ZERO..=Duration::from_secs(600),
                    defaults::BACKOFF_MAX.max(initial),
                )?;
                if max < initial {
                    let span = raw.max.as_ref().map_or(0..0, |m| m.span());
                    return Err(self.error(
                        span,
                        format!(
                            "retry.backoff.max ({}) is below retry.backoff.initial ({}): expected max >= initial",
                            show_duration(max),
                            show_duration(initial)
                        ),
                    ));
                }
                Ok(Backoff::exponential(initial, multiplier, max, jitter))
            }
        }
    }
}

/// The defaults of keys a policy leaves out; `policies/README.md` gives the
/// reasons.
mod defaults {
    use std::time::Duration;

    pub(super) const MAX_ATTEMPTS: u32 = 4;
    pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
    pub(super) const BUFFER_MAX: usize = 64 * 1024;
    pub(super) const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
    pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);
    pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
    pub(super) const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);
    pub(super) const BREAKER_CONSECUTIVE_FAILURES: u32 = 10;
    pub(super) const BREAKER_FAILURE_RATE: f64 = 0.5;
    pub(super) const BREAKER_WINDOW: u32 = 100;
    pub(super) const BREAKER_MIN_CALLS: u32 = 20;
    pub(super) const BREAKER_OPEN_FOR: Duration = Duration::from_secs(5);
    pub(super) const BREAKER_MAX_OPEN_FOR: Duration = Duration::from_secs(10);
    pub(super) const BREAKER_HALF_OPEN_PROBES: u32 = 1;
    pub(super) const BREAKER_MAX_HOSTS: u32 = 1024;
    pub(super) const POLL_INTERVAL: Duration = Duration::from_secs(1);
    pub(super) const POLL_MAX_INTERVAL: Duration = Duration::from_secs(10);
    pub(super) const POLL_MAX_POLLS: u32 = 30;
    pub(super) const POLL_MAX_DURATION: Duration = Duration::from_secs(60);
}

fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("\"{}h\"", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("\"{}m\"", ms / 60_000)
    } else if ms % 1000 == 0 && ms > 0 {
        format!("\"{}s\"", ms / 1000)
    } else {
        format!("\"{ms}ms\"")
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;

    let file = std::fs::File::open(path).map_err(|e| format!("cannot read policy file: {e}"))?;
    let mut text = String::new();
    file.take(MAX_POLICY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read policy file: {e}"))?;
    if text.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(format!(
            "policy file is larger than {MAX_POLICY_FILE_BYTES} bytes: expected a small TOML file"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
