//! Whether a failed attempt is tried again, and after how long.
//!
//! One pure function of the failure, the request's facts, the policy and the
//! time left: the decision table of the retry layer, tested without a clock.

use std::time::Duration;

use http::Method;
use tokio::time::Instant;

use super::budget::{Budget, RetryCause};
use super::{NonIdempotent, RetrySettings};
use crate::Error;

/// What the retry layer knows about the request being retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts {
    /// The method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE).
    pub(crate) idempotent: bool,
    /// The request carries an `Idempotency-Key` header.
    pub(crate) has_idempotency_key: bool,
    /// A copy of the request exists for another attempt.
    pub(crate) replayable: bool,
    /// Attempts sent so far, the failed one included.
    pub(crate) attempts: u32,
}

pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Why the wait before a retry is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DelayReason {
    Backoff,
    RetryAfter,
}

impl DelayReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DelayReason::Backoff => "backoff",
            DelayReason::RetryAfter => "retry_after",
        }
    }
}

/// Why a failure is not tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The failure is terminal or unsupported: never retried.
    NotRetryable,
    /// The request may have been processed and is not safe to send twice.
    UnsafeMethod,
    /// `max_attempts` were sent.
    AttemptsExhausted,
    /// The body cannot be sent again.
    NotReplayable,
    /// The server asked for a longer wait than `max_retry_after`.
    RetryAfterTooLong { asked: Duration },
    /// The wait would end past the total deadline.
    Deadline,
    /// The retry budget refused.
    Budget,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::NotRetryable => "not_retryable",
            Refusal::UnsafeMethod => "unsafe_method",
            Refusal::AttemptsExhausted => "max_attempts",
            Refusal::NotReplayable => "not_replayable",
            Refusal::RetryAfterTooLong { .. } => "retry_after_too_long",
            Refusal::Deadline => "deadline",
            Refusal::Budget => "budget",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Retry {
        delay: Duration,
        reason: DelayReason,
    },
    Stop(Refusal),
}

/// Whether sending the request again cannot do harm: an idempotent method, an
/// `Idempotency-Key`, a status that proves the request was not processed
/// (429), a connection that failed before the request was sent, or a policy
/// that says `non_idempotent = "always"`.
pub(crate) fn replay_is_safe(error: &Error, facts: &RequestFacts, policy: NonIdempotent) -> bool {
    facts.idempotent
        || facts.has_idempotency_key
        || policy == NonIdempotent::Always
        || error.is_throttling()
        || error.is_connect()
}

/// Decides what follows a failed attempt. Takes from `budget` only when the
/// answer is to retry.
pub(crate) fn decide(
    error: &Error,
    facts: &RequestFacts,
    settings: &RetrySettings,
    budget: &Budget,
    now: Instant,
    deadline: Option<Instant>,
    backoff: impl FnOnce() -> Duration,
) -> Decision {
    if !error.is_retryable() {
        return Decision::Stop(Refusal::NotRetryable);
    }
    if !replay_is_safe(error, facts, settings.non_idempotent) {
        return Decision::Stop(Refusal::UnsafeMethod);
    }
    if facts.attempts >= settings.max_attempts {
        return Decision::Stop(Refusal::AttemptsExhausted);
    }
    if !facts.replayable {
        return Decision::Stop(Refusal::NotReplayable);
    }
    let (delay, reason) = match error.retry_after() {
        Some(asked) if asked > settings.max_retry_after => {
            return Decision::Stop(Refusal::RetryAfterTooLong { asked });
        }
        Some(asked) => (asked, DelayReason::RetryAfter),
        None => (backoff(), DelayReason::Backoff),
    };
    if let Some(deadline) = deadline {
        if now
            .checked_add(delay)
            .is_none_or(|resume| resume >= deadline)
        {
            return Decision::Stop(Refusal::Deadline);
        }
    }
    let cause = if error.is_throttling() {
        RetryCause::Throttling
    } else {
        RetryCause::Transient
    };
    if !budget.withdraw(cause) {
        return Decision::Stop(Refusal::Budget);
    }
    Decision::Retry { delay, reason }
}
