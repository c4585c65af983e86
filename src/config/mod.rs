//! Policies: what rebound does with each response, loaded from TOML.
//!
//! A policy is a plain collection of each layer's settings
//! ([`ClassifySettings`], [`RetrySettings`], [`BreakerSettings`],
//! [`PollSettings`], [`Timeouts`]). It is built in code from those, loaded
//! from one TOML file, or deserialized with serde (so figment or config-rs can
//! load it). Every value takes the same checks whichever way it comes: the
//! settings' builders.
//!
//! The shipped presets are the files in the repository's `policies/` folder,
//! compiled in, so the files a user copies and the built-in presets cannot
//! drift apart. `policies/README.md` documents every key, its default and its
//! bounds.
//!
//! Loading is strict: unknown sections and keys are errors (a typo must not
//! silently fall back to a default), every value is checked against its
//! bounds, and every error names the file, line and column.

mod error;
mod schema;

use std::path::Path;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

use crate::breaker::{BreakerSettings, CircuitBreakerLayer};
use crate::classify::{ClassifyLayer, ClassifySettings, ErrorBodySettings};
use crate::deadline::Timeouts;
use crate::poll::{PollSettings, PollingLayer};
use crate::retry::{Backoff, Budget, Buffered, RetryLayer, RetrySettings};
use crate::settings::SettingsError;
use crate::status::StatusClass;
use crate::trace::TraceLayer;
use schema::RawPolicy;

pub use error::PolicyError;

/// The largest policy file [`Policy::from_path`] reads: 1 MiB.
pub const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;

const PRESETS: [(&str, &str); 2] = [
    ("connio", include_str!("../../policies/connio.toml")),
    ("standard", include_str!("../../policies/standard.toml")),
];

/// A validated policy: the settings of every layer of the stack.
///
/// Cheap to clone: the parts are shared, and so is the retry budget, which
/// every layer built from one policy (and its clones) draws on.
///
/// ```
/// use http::StatusCode;
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
///
/// The same in code, with no TOML:
///
/// ```
/// use rebound::classify::ClassifySettings;
/// use rebound::retry::RetrySettings;
/// use rebound::Policy;
///
/// let policy = Policy::default()
///     .with_classify(ClassifySettings::builder().retryable([429, 500]).unsupported([503]).build()?)
///     .with_retry(RetrySettings::builder().max_attempts(3).build()?);
/// assert_eq!(policy.max_attempts(), 3);
/// # Ok::<_, rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawPolicy")]
pub struct Policy {
    classify: Arc<ClassifySettings>,
    retry: Arc<RetrySettings>,
    budget: Arc<Budget>,
    breaker: BreakerSettings,
    poll: Arc<PollSettings>,
    timeouts: Timeouts,
}

impl Default for Policy {
    /// Every layer's defaults: the status table's fallbacks alone (no status
    /// listed), 4 attempts, breakers per host, polling from
    /// `Operation-Location` or `Location`, 10 s per attempt and 60 s per call.
    fn default() -> Self {
        Policy::from_parts(
            ClassifySettings::default(),
            RetrySettings::default(),
            BreakerSettings::default(),
            PollSettings::default(),
            Timeouts::default(),
        )
    }
}

impl Policy {
    fn from_parts(
        classify: ClassifySettings,
        retry: RetrySettings,
        breaker: BreakerSettings,
        poll: PollSettings,
        timeouts: Timeouts,
    ) -> Policy {
        Policy {
            budget: Arc::new(Budget::new(retry.budget())),
            classify: Arc::new(classify),
            retry: Arc::new(retry),
            breaker,
            poll: Arc::new(poll),
            timeouts,
        }
    }

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

    /// This policy with another status table and error-body settings.
    pub fn with_classify(mut self, classify: ClassifySettings) -> Policy {
        self.classify = Arc::new(classify);
        self
    }

    /// This policy with other retry settings, and a retry budget of their
    /// own.
    pub fn with_retry(mut self, retry: RetrySettings) -> Policy {
        self.budget = Arc::new(Budget::new(retry.budget()));
        self.retry = Arc::new(retry);
        self
    }

    /// This policy with other circuit breaker settings.
    pub fn with_breaker(mut self, breaker: BreakerSettings) -> Policy {
        self.breaker = breaker;
        self
    }

    /// This policy with other polling settings.
    pub fn with_poll(mut self, poll: PollSettings) -> Policy {
        self.poll = Arc::new(poll);
        self
    }

    /// This policy with other timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Policy {
        self.timeouts = timeouts;
        self
    }

    /// This policy with another retry schedule, for schedules a policy file
    /// cannot write (such as a `backoff::ExponentialBackoff`, feature
    /// `backoff`), checked against the same bounds as a file's. The new
    /// policy has a retry budget of its own.
    pub fn with_backoff(&self, backoff: Backoff) -> Result<Policy, SettingsError> {
        let retry = RetrySettings::builder()
            .max_attempts(self.retry.max_attempts())
            .backoff(backoff)
            .max_retry_after(self.retry.max_retry_after())
            .non_idempotent(self.retry.non_idempotent())
            .add_idempotency_key(self.retry.add_idempotency_key())
            .buffer_max(self.retry.buffer_max())
            .budget(self.retry.budget())
            .build()?;
        Ok(self.clone().with_retry(retry))
    }

    /// The status table and error-body settings (`[classify]`,
    /// `[error_body]`).
    pub fn classify_settings(&self) -> &Arc<ClassifySettings> {
        &self.classify
    }

    /// The retry settings (`[retry]`).
    pub fn retry_settings(&self) -> &Arc<RetrySettings> {
        &self.retry
    }

    /// The circuit breaker settings (`[circuit_breaker]`).
    pub fn breaker_settings(&self) -> &BreakerSettings {
        &self.breaker
    }

    /// The polling settings (`[poll]`).
    pub fn poll_settings(&self) -> &Arc<PollSettings> {
        &self.poll
    }

    /// The timeouts (`[timeouts]`).
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The class of `status` under this policy.
    pub fn classify(&self, status: StatusCode) -> StatusClass {
        self.classify.classify(status)
    }

    /// The most bytes of an error body that are read (`error_body.max_bytes`).
    pub fn error_body_max_bytes(&self) -> usize {
        self.classify.error_body().max_bytes()
    }

    /// Wraps a streaming request body so that it can be replayed by a
    /// retry, recording up to `retry.buffer_max` bytes of it; see
    /// [`Buffered`].
    pub fn buffer_body<B>(&self, body: B) -> Buffered<B> {
        Buffered::new(body, self.retry.buffer_max())
    }

    /// The most attempts a call makes (`retry.max_attempts`).
    pub fn max_attempts(&self) -> u32 {
        self.retry.max_attempts()
    }

    /// The retry budget of this policy, shared by every layer built from it
    /// and its clones.
    pub fn budget(&self) -> Arc<Budget> {
        Arc::clone(&self.budget)
    }

    /// The classify layer of this policy, for stacks made by hand.
    pub fn classify_layer(&self) -> ClassifyLayer {
        ClassifyLayer::new(Arc::clone(&self.classify)).timeouts(self.timeouts)
    }

    /// The breaker layer of this policy, with breakers of its own.
    pub fn breaker_layer(&self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(self.breaker)
    }

    /// The retry layer of this policy, drawing on the policy's budget.
    pub fn retry_layer(&self) -> RetryLayer {
        RetryLayer::new(Arc::clone(&self.retry))
            .budget_from(self.budget())
            .classifier(Arc::clone(self.classify.classifier()))
            .timeouts(self.timeouts)
    }

    /// The poll layer of this policy.
    pub fn polling_layer(&self) -> PollingLayer {
        PollingLayer::new(
            Arc::clone(&self.poll),
            Arc::clone(self.classify.classifier()),
        )
        .timeouts(self.timeouts)
    }

    /// The trace layer of this policy.
    pub fn trace_layer(&self) -> TraceLayer {
        TraceLayer::new(Arc::clone(self.classify.classifier()))
    }

    fn parse(origin: &str, text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', "; ");
            match e.span() {
                Some(span) => PolicyError::at(origin, text, span, message),
                None => PolicyError::new(origin, message),
            }
        })?;
        Policy::try_from(raw).map_err(|e| match schema::span_of(text, e.key(), e.index()) {
            Some(span) => PolicyError::at(origin, text, span, e.message()),
            None => PolicyError::new(origin, e.message()),
        })
    }
}

impl TryFrom<RawPolicy> for Policy {
    type Error = SettingsError;

    fn try_from(raw: RawPolicy) -> Result<Self, SettingsError> {
        let timeouts = Timeouts::try_from(raw.timeouts)?;
        let error_body = ErrorBodySettings::try_from(raw.error_body)?;
        let classify = raw.classify.builder()?.error_body(error_body).build()?;
        let retry = RetrySettings::try_from(raw.retry)?;
        let breaker = BreakerSettings::try_from(raw.circuit_breaker)?;
        let poll = PollSettings::try_from(raw.poll)?;
        Ok(Policy::from_parts(classify, retry, breaker, poll, timeouts))
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
