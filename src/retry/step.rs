//! What the retry loop does after an attempt's answer.
//!
//! One pure function of the answer, what the loop has seen so far, the
//! route's policy and budget, the time and the randomness: the step the
//! response future drives, as tower-http's `follow_redirect` drives its
//! policy's `Action`. [`decide`] is its core for a failure that may be tried
//! again; the step adds what comes around it: the attempts an answer counts,
//! the budget's deposits and refunds, the error a refusal ends the call with.
//! The future only sends, waits, and tells listeners and spans what the step
//! returned.

use std::time::Duration;

use http::Response;
use tokio::time::Instant;

use super::budget::{Budget, RetryCause};
use super::decision::{Decision, DelayReason, Refusal, RequestFacts, decide};
use super::settings::RetrySettings;
use crate::error::{Error, ErrorKind};
use crate::info::CallInfo;

const NOT_REPLAYABLE: &str = "the request body cannot be replayed, so it was sent once";

/// What the loop has seen of a call so far.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) facts: RequestFacts,
    /// The wait before the attempt in flight; the backoff grows from it.
    pub(crate) previous_delay: Duration,
    /// The failure the attempt in flight retries.
    pub(crate) last_error: Option<Error>,
}

/// What to do after an attempt's answer.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// The call ends with this response.
    Return(T),
    /// The call ends with this error: never retried, or cut at the end of
    /// the call.
    Fail(Error),
    /// A retry was considered and refused: the call ends with `error`, which
    /// names the refusal. `failed` is the kind of the failure refused.
    Refuse {
        error: Error,
        refusal: Refusal,
        failed: ErrorKind,
    },
    /// Wait `delay`, until `until`, then send the request again; the failure
    /// retried is [`Progress::last_error`].
    Retry {
        delay: Duration,
        reason: DelayReason,
        until: Instant,
    },
}

impl Progress {
    pub(crate) fn new(facts: RequestFacts) -> Self {
        Progress {
            facts,
            previous_delay: Duration::ZERO,
            last_error: None,
        }
    }

    /// The error of a call whose next attempt found no ready service before
    /// the end of the call.
    pub(crate) fn deadline_error(&mut self) -> Error {
        let error = match self.last_error.take() {
            Some(last) => last.with_kind(ErrorKind::DeadlineExceeded),
            None => Error::new(ErrorKind::DeadlineExceeded),
        };
        error.with_attempts(self.facts.attempts)
    }

    /// The error of a call whose retry could not be copied after all: the
    /// body outgrew its recording since the decision.
    pub(crate) fn unreplayable_error(&mut self) -> Error {
        let error = self.last_error.take().map_or_else(
            || Error::new(ErrorKind::Transport),
            |e| e.with_detail(NOT_REPLAYABLE),
        );
        error.with_attempts(self.facts.attempts)
    }

    /// The error of a service that failed to get ready for the next attempt.
    pub(crate) fn not_ready_error(&self, error: Error) -> Error {
        error.with_attempts(self.facts.attempts)
    }

    /// Attempts that reached the network: one stopped by an open circuit or
    /// a limiter was never sent.
    fn sent(&self, error: &Error) -> u32 {
        match error.kind() {
            ErrorKind::CircuitOpen | ErrorKind::Throttled | ErrorKind::RateLimited => {
                self.facts.attempts - 1
            }
            _ => self.facts.attempts,
        }
    }
}

/// What follows an attempt's `answer`. `clock` gives the time and the end of
/// the call and is read only for a failure that may be retried, so that an
/// answer that is never retried reads no clock; `replay` answers whether the
/// request can be sent again, `jitter` draws the backoff's randomness. Takes
/// from `budget` only for a retry; deposits for an answer of the server that
/// is not a failure, and refunds a retry that succeeded.
pub(crate) fn step<RB>(
    progress: &mut Progress,
    answer: Result<Response<RB>, Error>,
    settings: &RetrySettings,
    budget: &Budget,
    clock: impl FnOnce() -> (Instant, Instant),
    replay: impl FnOnce() -> bool,
    jitter: impl FnOnce() -> u64,
) -> Step<Response<RB>> {
    let error = match answer {
        Ok(response) => return Step::Return(succeed(progress, response, budget)),
        Err(error) => error,
    };
    let sent = progress.sent(&error);
    let error = error.with_attempts(sent);
    if error.kind() == ErrorKind::DeadlineExceeded {
        // Classify cut the attempt at the end of the call.
        let error = match progress.last_error.take() {
            Some(last) => last.with_kind(ErrorKind::DeadlineExceeded),
            None => error,
        };
        return Step::Fail(error.with_attempts(progress.facts.attempts));
    }
    if !error.is_retryable() {
        if error.class().is_some() {
            // The server answered, and not with a failure.
            budget.deposit();
        }
        return Step::Fail(error);
    }
    let (now, deadline) = clock();
    let (retry, previous) = (progress.facts.attempts, progress.previous_delay);
    let backoff = || settings.backoff.delay(retry, previous, jitter());
    let decision = decide(
        &error,
        &progress.facts,
        settings,
        budget,
        now,
        Some(deadline),
        replay,
        backoff,
    );
    match decision {
        Decision::Stop(refusal) => Step::Refuse {
            failed: error.kind(),
            error: refuse(error, refusal, settings),
            refusal,
        },
        Decision::Retry { delay, reason } => {
            progress.previous_delay = delay;
            progress.last_error = Some(error);
            Step::Retry {
                delay,
                reason,
                until: now + delay,
            }
        }
    }
}

/// The response that ends the call: a retry that succeeded is refunded, and
/// the response says how many attempts it took.
fn succeed<RB>(progress: &Progress, mut response: Response<RB>, budget: &Budget) -> Response<RB> {
    budget.deposit();
    if progress.facts.attempts > 1 {
        if let Some(last) = progress.last_error.as_ref() {
            budget.refund(if last.is_throttling() {
                RetryCause::Throttling
            } else {
                RetryCause::Transient
            });
        }
        let info = CallInfo::new(progress.facts.attempts, 0);
        response.extensions_mut().insert(info);
    }
    response
}

/// The error a refused retry ends the call with.
fn refuse(error: Error, refusal: Refusal, settings: &RetrySettings) -> Error {
    let error = match refusal.public() {
        Some(public) => error.with_refusal(public),
        None => error,
    };
    match refusal {
        Refusal::NotRetryable | Refusal::UnsafeMethod | Refusal::AttemptsExhausted => error,
        Refusal::NotReplayable => error.with_detail(NOT_REPLAYABLE),
        Refusal::RetryAfterTooLong { asked } => error
            .with_kind(ErrorKind::RetriesExhausted)
            .with_detail(format!(
                "the server asked to wait {}s, more than retry.max_retry_after ({}s)",
                asked.as_secs(),
                settings.max_retry_after.as_secs()
            )),
        Refusal::Deadline => error.with_kind(ErrorKind::DeadlineExceeded),
        Refusal::Budget => error.with_kind(ErrorKind::BudgetExhausted),
    }
}
