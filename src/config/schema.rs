//! The policy file as written: serde structs that keep the position of every
//! value, so that validation can point at the line of a mistake.

use serde::Deserialize;
use toml::Spanned;

use super::units::{ByteSize, DurationStr};
use crate::classify::StatusClass;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub(crate) classify: RawClassify,
    #[serde(default)]
    pub(crate) error_body: RawErrorBody,
    #[serde(default)]
    pub(crate) retry: RawRetry,
    #[serde(default)]
    pub(crate) timeouts: RawTimeouts,
    #[serde(default)]
    pub(crate) circuit_breaker: RawBreaker,
    #[serde(default)]
    pub(crate) poll: RawPoll,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClassify {
    #[serde(default)]
    pub(crate) success: Vec<Spanned<i64>>,
    #[serde(default)]
    pub(crate) retryable: Vec<Spanned<i64>>,
    #[serde(default)]
    pub(crate) pollable: Vec<Spanned<i64>>,
    #[serde(default)]
    pub(crate) terminal: Vec<Spanned<i64>>,
    #[serde(default)]
    pub(crate) unsupported: Vec<Spanned<i64>>,
    #[serde(default)]
    pub(crate) fallback: RawFallback,
}

impl RawClassify {
    /// Each class with the statuses listed for it.
    pub(crate) fn lists(&self) -> [(StatusClass, &[Spanned<i64>]); 5] {
        [
            (StatusClass::Success, &self.success),
            (StatusClass::Retryable, &self.retryable),
            (StatusClass::Pollable, &self.pollable),
            (StatusClass::Terminal, &self.terminal),
            (StatusClass::Unsupported, &self.unsupported),
        ]
    }
}

/// The class of the statuses a policy does not list, by hundred.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFallback {
    #[serde(rename = "1xx", default = "terminal")]
    pub(crate) informational: ClassName,
    #[serde(rename = "2xx", default = "success")]
    pub(crate) successful: ClassName,
    #[serde(rename = "3xx", default = "success")]
    pub(crate) redirection: ClassName,
    #[serde(rename = "4xx", default = "terminal")]
    pub(crate) client_error: ClassName,
    #[serde(rename = "5xx", default = "retryable")]
    pub(crate) server_error: ClassName,
}

impl Default for RawFallback {
    fn default() -> Self {
        RawFallback {
            informational: terminal(),
            successful: success(),
            redirection: success(),
            client_error: terminal(),
            server_error: retryable(),
        }
    }
}

impl RawFallback {
    pub(crate) fn by_hundred(&self) -> [StatusClass; 5] {
        [
            self.informational,
            self.successful,
            self.redirection,
            self.client_error,
            self.server_error,
        ]
        .map(StatusClass::from)
    }
}

fn terminal() -> ClassName {
    ClassName::Terminal
}
fn success() -> ClassName {
    ClassName::Success
}
fn retryable() -> ClassName {
    ClassName::Retryable
}

/// A class as a policy file names it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClassName {
    Success,
    Retryable,
    Pollable,
    Terminal,
    Unsupported,
}

impl From<ClassName> for StatusClass {
    fn from(name: ClassName) -> Self {
        match name {
            ClassName::Success => StatusClass::Success,
            ClassName::Retryable => StatusClass::Retryable,
            ClassName::Pollable => StatusClass::Pollable,
            ClassName::Terminal => StatusClass::Terminal,
            ClassName::Unsupported => StatusClass::Unsupported,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawErrorBody {
    pub(crate) max_bytes: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) max_attempts: Option<Spanned<i64>>,
    pub(crate) max_retry_after: Option<Spanned<DurationStr>>,
    pub(crate) non_idempotent: Option<NonIdempotentName>,
    pub(crate) add_idempotency_key: Option<bool>,
    pub(crate) buffer_max: Option<Spanned<ByteSize>>,
    #[serde(default)]
    pub(crate) backoff: RawBackoff,
    #[serde(default)]
    pub(crate) budget: RawBudget,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NonIdempotentName {
    Safe,
    Always,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub(crate) kind: Option<BackoffKind>,
    pub(crate) delay: Option<Spanned<DurationStr>>,
    pub(crate) initial: Option<Spanned<DurationStr>>,
    pub(crate) multiplier: Option<Spanned<f64>>,
    pub(crate) max: Option<Spanned<DurationStr>>,
    pub(crate) jitter: Option<JitterName>,
    pub(crate) jitter_factor: Option<Spanned<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackoffKind {
    Constant,
    Exponential,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JitterName {
    None,
    Full,
    Equal,
    Decorrelated,
    Proportional,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    pub(crate) enabled: Option<bool>,
    pub(crate) capacity: Option<Spanned<f64>>,
    pub(crate) success_refill: Option<Spanned<f64>>,
    pub(crate) transient_cost: Option<Spanned<f64>>,
    pub(crate) throttling_cost: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) attempt: Option<Spanned<DurationStr>>,
    pub(crate) total: Option<Spanned<DurationStr>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    pub(crate) enabled: Option<bool>,
    pub(crate) scope: Option<ScopeName>,
    pub(crate) consecutive_failures: Option<Spanned<i64>>,
    pub(crate) failure_rate: Option<Spanned<f64>>,
    pub(crate) window: Option<Spanned<i64>>,
    pub(crate) min_calls: Option<Spanned<i64>>,
    pub(crate) slow_call_duration: Option<Spanned<DurationStr>>,
    pub(crate) open_for: Option<Spanned<DurationStr>>,
    pub(crate) max_open_for: Option<Spanned<DurationStr>>,
    pub(crate) half_open_probes: Option<Spanned<i64>>,
    pub(crate) count_throttling: Option<bool>,
    pub(crate) max_hosts: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScopeName {
    Host,
    Global,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoll {
    pub(crate) on_accepted: Option<OnAcceptedName>,
    pub(crate) location_headers: Option<Vec<Spanned<String>>>,
    pub(crate) interval: Option<Spanned<DurationStr>>,
    pub(crate) multiplier: Option<Spanned<f64>>,
    pub(crate) max_interval: Option<Spanned<DurationStr>>,
    pub(crate) max_polls: Option<Spanned<i64>>,
    pub(crate) max_duration: Option<Spanned<DurationStr>>,
    pub(crate) allowed_origins: Option<Vec<Spanned<String>>>,
    pub(crate) forward_credentials: Option<bool>,
    pub(crate) secret_headers: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnAcceptedName {
    Succeed,
    Error,
}
