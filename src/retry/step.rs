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
use super::decision::{Decision, DelayReason, Refusal, RequestFacts, decide, is_idempotent};
use super::key::idempotency_key;
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

/// What to do after an attempt's failure. A response ends the call: see
/// [`succeed`].
#[derive(Debug)]
pub(crate) enum Step {
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
            ErrorKind::CircuitOpen
            | ErrorKind::Throttled
            | ErrorKind::RateLimited
            | ErrorKind::Overloaded => self.facts.attempts - 1,
            _ => self.facts.attempts,
        }
    }
}

/// What follows an attempt that failed with `error`. `clock` gives the time and the end of
/// the call and is read only for a failure that may be retried, so that an
/// answer that is never retried reads no clock; `replay` answers whether the
/// request can be sent again, `jitter` draws the backoff's randomness. Takes
/// from `budget` only for a retry; deposits for an answer of the server that
/// is not a failure.
pub(crate) fn step(
    progress: &mut Progress,
    error: Error,
    settings: &RetrySettings,
    budget: &Budget,
    clock: impl FnOnce() -> (Instant, Instant),
    replay: impl FnOnce() -> bool,
    jitter: impl FnOnce() -> u64,
) -> Step {
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

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The start of a request's retry loop: the budget counts it, and a write
/// gets an `Idempotency-Key` when the policy adds one. Returns what the
/// steps need to know of the request. Both drivers (the retry layer's and
/// the assembled stack's) begin every request here.
#[inline(always)]
pub(crate) fn begin<B>(
    settings: &RetrySettings,
    budget: &Budget,
    request: &mut http::Request<B>,
) -> RequestFacts {
    budget.record_call();
    let idempotent = is_idempotent(request.method());
    // Looked up only where it matters: a retry of an idempotent request is
    // safe with or without a key.
    let has_idempotency_key = !idempotent && {
        let key = http::HeaderName::from_static(IDEMPOTENCY_KEY);
        if settings.add_idempotency_key && !request.headers().contains_key(&key) {
            // Without the system's randomness no key is added, and the write
            // is not retried: better than a key others can guess.
            if let Some(value) = idempotency_key() {
                request.headers_mut().insert(key.clone(), value);
            }
        }
        request.headers().contains_key(&key)
    };
    RequestFacts {
        idempotent,
        has_idempotency_key,
        attempts: 1,
    }
}

/// What a response that ends the call does: the budget gains, a retry that
/// succeeded is refunded, and the response says how many attempts it took.
/// It is changed in place: moved through a step and back, it cost the
/// success path a copy (STACK_LOOP=retry).
pub(crate) fn succeed<RB>(progress: &Progress, response: &mut Response<RB>, budget: &Budget) {
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use http::{Method, StatusCode};

    use super::*;
    use crate::classify::StatusClass;
    use crate::error::{ResponseFailure, RetryRefusal};
    use crate::retry::decision::is_idempotent;
    use crate::retry::{Backoff, BudgetSettings, Jitter, NonIdempotent};

    const BACKOFF: Duration = Duration::from_millis(100);

    fn settings() -> RetrySettings {
        RetrySettings {
            max_attempts: 3,
            backoff: Backoff::constant(BACKOFF, Jitter::None),
            max_retry_after: Duration::from_secs(30),
            non_idempotent: NonIdempotent::Safe,
            add_idempotency_key: false,
            buffer_max: 1024,
            budget: BudgetSettings::default(),
        }
    }

    /// A budget of `tokens` out of 10: a success puts back 0.5, a retry
    /// takes 1, a retry after a transient failure that succeeds gives it back.
    fn budget(tokens: f64) -> Budget {
        let budget = Budget::new(BudgetSettings {
            capacity: 10.0,
            min_reserve: 10.0,
            success_refill: 0.5,
            transient_cost: 1.0,
            throttling_cost: 1.0,
            refund: true,
            ..BudgetSettings::fixed()
        });
        while budget.available() > tokens {
            budget.withdraw(RetryCause::Transient);
        }
        budget
    }

    fn status(code: u16, class: StatusClass, retry_after: Option<u64>) -> Error {
        Error::from_response(
            StatusCode::from_u16(code).unwrap(),
            class,
            ResponseFailure {
                retry_after: retry_after.map(Duration::from_secs),
                ..ResponseFailure::default()
            },
        )
    }

    fn progress(method: Method, attempts: u32, last: Option<Error>) -> Progress {
        Progress {
            facts: RequestFacts {
                idempotent: is_idempotent(&method),
                has_idempotency_key: false,
                attempts,
            },
            previous_delay: Duration::ZERO,
            last_error: last,
        }
    }

    /// One attempt's failure to the step.
    struct Run<'a> {
        progress: &'a mut Progress,
        error: Error,
        budget: &'a Budget,
        left: Duration,
        replayable: bool,
    }

    /// What the step returned, whether it read the clock, and when "now" was.
    fn run(run: Run<'_>) -> (Step, bool, Instant) {
        let now = Instant::now();
        let read = Cell::new(false);
        let step = step(
            run.progress,
            run.error,
            &settings(),
            run.budget,
            || {
                read.set(true);
                (now, now + run.left)
            },
            || run.replayable,
            || 7,
        );
        (step, read.get(), now)
    }

    #[test]
    fn a_success_returns_and_says_what_it_took() {
        // (attempts, failure retried, tokens put back, CallInfo attempts)
        let rows = [
            (1, None, 0.5, None),
            // A retry after a transient failure is refunded on top.
            (
                3,
                Some(status(500, StatusClass::Retryable, None)),
                1.5,
                Some(3),
            ),
            // One after throttling is not: the server asked for less load.
            (
                2,
                Some(status(429, StatusClass::Retryable, None)),
                0.5,
                Some(2),
            ),
        ];
        for (attempts, last, put_back, info) in rows {
            let b = budget(5.0);
            let p = progress(Method::GET, attempts, last);
            let mut response = Response::new(());
            succeed(&p, &mut response, &b);
            assert_eq!(b.available(), 5.0 + put_back, "{attempts}");
            assert_eq!(
                response
                    .extensions()
                    .get::<CallInfo>()
                    .map(|i| i.attempts()),
                info,
                "{attempts}"
            );
        }
    }

    #[test]
    fn failures_that_end_the_call_at_once() {
        let reset = || {
            Error::transport(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )))
        };
        // (name, attempts, last failure, failure, kind, status, attempts
        // counted, tokens put back)
        let rows = [
            // An attempt a breaker or a limiter stopped was never sent.
            (
                "circuit open",
                2,
                None,
                Error::circuit_open(None),
                ErrorKind::CircuitOpen,
                None,
                1,
                0.0,
            ),
            (
                "rate limited",
                1,
                None,
                Error::rate_limited(None),
                ErrorKind::RateLimited,
                None,
                0,
                0.0,
            ),
            (
                "throttled",
                3,
                None,
                Error::new(ErrorKind::Throttled),
                ErrorKind::Throttled,
                None,
                2,
                0.0,
            ),
            // Classify cut the attempt at the end of the call: the failure
            // retried names it, with every attempt counted.
            (
                "deadline after a 500",
                2,
                Some(status(500, StatusClass::Retryable, None)),
                Error::new(ErrorKind::DeadlineExceeded),
                ErrorKind::DeadlineExceeded,
                Some(500),
                2,
                0.0,
            ),
            (
                "deadline after a reset",
                3,
                Some(reset()),
                Error::new(ErrorKind::DeadlineExceeded),
                ErrorKind::DeadlineExceeded,
                None,
                3,
                0.0,
            ),
            (
                "deadline at once",
                1,
                None,
                Error::new(ErrorKind::DeadlineExceeded),
                ErrorKind::DeadlineExceeded,
                None,
                1,
                0.0,
            ),
            // Never retried; the server answered, so the budget gains.
            (
                "terminal",
                1,
                None,
                status(404, StatusClass::Terminal, None),
                ErrorKind::Terminal,
                Some(404),
                1,
                0.5,
            ),
            (
                "unsupported",
                2,
                None,
                status(503, StatusClass::Unsupported, None),
                ErrorKind::Unsupported,
                Some(503),
                2,
                0.5,
            ),
        ];
        for (name, attempts, last, error, kind, code, counted, put_back) in rows {
            let b = budget(5.0);
            let mut p = progress(Method::GET, attempts, last);
            let (step, read, _) = run(Run {
                progress: &mut p,
                error,
                budget: &b,
                left: Duration::from_secs(60),
                replayable: true,
            });
            let Step::Fail(error) = step else {
                panic!("{name}: {step:?}");
            };
            assert!(!read, "{name}: no clock is read");
            assert_eq!(error.kind(), kind, "{name}");
            assert_eq!(error.status().map(|s| s.as_u16()), code, "{name}");
            assert_eq!(error.attempts(), counted, "{name}");
            assert_eq!(error.retry_refused(), None, "{name}");
            assert_eq!(b.available(), 5.0 + put_back, "{name}");
            assert!(
                p.last_error.is_none(),
                "{name}: the failure retried is spent"
            );
        }
    }

    #[test]
    fn each_refusal_names_itself_in_the_error() {
        let e500 = || status(500, StatusClass::Retryable, None);
        // (name, method, attempts, failure, time left, replayable, tokens,
        // refusal, kind, public refusal, detail)
        let rows = [
            (
                "unsafe method",
                Method::POST,
                1,
                e500(),
                60,
                true,
                5.0,
                Refusal::UnsafeMethod,
                ErrorKind::RetriesExhausted,
                Some(RetryRefusal::UnsafeMethod),
                None,
            ),
            (
                "attempts spent",
                Method::GET,
                3,
                e500(),
                60,
                true,
                5.0,
                Refusal::AttemptsExhausted,
                ErrorKind::RetriesExhausted,
                None,
                None,
            ),
            (
                "not replayable",
                Method::GET,
                1,
                e500(),
                60,
                false,
                5.0,
                Refusal::NotReplayable,
                ErrorKind::RetriesExhausted,
                Some(RetryRefusal::NotReplayable),
                Some("the request body cannot be replayed, so it was sent once"),
            ),
            (
                "retry-after too long",
                Method::GET,
                1,
                status(429, StatusClass::Retryable, Some(31)),
                60,
                true,
                5.0,
                Refusal::RetryAfterTooLong {
                    asked: Duration::from_secs(31),
                },
                ErrorKind::RetriesExhausted,
                Some(RetryRefusal::RetryAfter),
                Some("the server asked to wait 31s, more than retry.max_retry_after (30s)"),
            ),
            (
                "deadline",
                Method::GET,
                1,
                Error::transport(Box::new(std::io::Error::from(
                    std::io::ErrorKind::ConnectionReset,
                ))),
                0,
                true,
                5.0,
                Refusal::Deadline,
                ErrorKind::DeadlineExceeded,
                Some(RetryRefusal::Deadline),
                None,
            ),
            (
                "budget",
                Method::GET,
                2,
                e500(),
                60,
                true,
                0.0,
                Refusal::Budget,
                ErrorKind::BudgetExhausted,
                Some(RetryRefusal::Budget),
                None,
            ),
        ];
        for (
            name,
            method,
            attempts,
            error,
            left,
            replayable,
            tokens,
            refusal,
            kind,
            public,
            detail,
        ) in rows
        {
            let failed = error.kind();
            let b = budget(tokens);
            let mut p = progress(method, attempts, None);
            let (step, read, _) = run(Run {
                progress: &mut p,
                error,
                budget: &b,
                left: Duration::from_secs(left),
                replayable,
            });
            let Step::Refuse {
                error,
                refusal: got,
                failed: got_failed,
            } = step
            else {
                panic!("{name}: {step:?}");
            };
            assert!(read, "{name}: a retryable failure reads the clock");
            assert_eq!(got, refusal, "{name}");
            assert_eq!(got_failed, failed, "{name}");
            assert_eq!(error.kind(), kind, "{name}");
            assert_eq!(error.retry_refused(), public, "{name}");
            assert_eq!(error.attempts(), attempts, "{name}");
            let shown = error.to_string();
            match detail {
                Some(detail) => assert!(shown.contains(detail), "{name}: {shown}"),
                None => assert!(
                    !shown.contains("replayed") && !shown.contains("asked to wait"),
                    "{name}: {shown}"
                ),
            }
            // A refusal takes nothing from the budget.
            assert_eq!(b.available(), tokens, "{name}");
            assert!(p.last_error.is_none(), "{name}");
        }
        // Never reached through the step (a failure that is never retried
        // ends it before the decision), and it would change nothing.
        let error = refuse(e500(), Refusal::NotRetryable, &settings());
        assert_eq!(
            (error.kind(), error.retry_refused()),
            (ErrorKind::RetriesExhausted, None)
        );
    }

    #[test]
    fn a_retry_waits_and_keeps_what_it_retries() {
        // (failure, delay, reason)
        let rows = [
            (
                status(500, StatusClass::Retryable, None),
                BACKOFF,
                DelayReason::Backoff,
            ),
            (
                status(429, StatusClass::Retryable, Some(7)),
                Duration::from_secs(7),
                DelayReason::RetryAfter,
            ),
            (
                Error::attempt_timed_out(Duration::from_secs(1)),
                BACKOFF,
                DelayReason::Backoff,
            ),
        ];
        for (error, delay, reason) in rows {
            let kind = error.kind();
            let b = budget(5.0);
            let mut p = progress(Method::GET, 2, None);
            p.previous_delay = Duration::from_millis(40);
            let (step, read, now) = run(Run {
                progress: &mut p,
                error,
                budget: &b,
                left: Duration::from_secs(60),
                replayable: true,
            });
            let Step::Retry {
                delay: got,
                reason: got_reason,
                until,
            } = step
            else {
                panic!("{kind:?}: {step:?}");
            };
            assert!(read);
            assert_eq!(
                (got, got_reason, until),
                (delay, reason, now + delay),
                "{kind:?}"
            );
            assert_eq!(p.previous_delay, delay, "{kind:?}");
            let last = p.last_error.as_ref().expect("the failure retried is kept");
            assert_eq!((last.kind(), last.attempts()), (kind, 2));
            // The retry took its token.
            assert_eq!(b.available(), 4.0, "{kind:?}");
        }
    }

    #[test]
    fn the_backoff_grows_from_the_last_wait_with_the_jitter_given() {
        let s = RetrySettings {
            backoff: Backoff::exponential(
                Duration::from_millis(100),
                2.0,
                Duration::from_secs(10),
                Jitter::Decorrelated,
            ),
            ..settings()
        };
        let now = Instant::now();
        let delay = |jitter: u64| {
            let b = budget(5.0);
            let mut p = progress(Method::GET, 2, None);
            p.previous_delay = Duration::from_millis(150);
            match step(
                &mut p,
                status(500, StatusClass::Retryable, None),
                &s,
                &b,
                || (now, now + Duration::from_secs(60)),
                || true,
                || jitter,
            ) {
                Step::Retry { delay, .. } => delay,
                other => panic!("{other:?}"),
            }
        };
        for jitter in [0, 1, u64::MAX / 3, u64::MAX] {
            assert_eq!(
                delay(jitter),
                s.backoff.delay(2, Duration::from_millis(150), jitter)
            );
        }
        assert_ne!(delay(0), delay(u64::MAX));
    }

    #[test]
    fn the_errors_of_a_retry_that_is_not_sent() {
        let e500 = || status(500, StatusClass::Retryable, None);
        // No service got ready before the end of the call.
        let mut p = progress(Method::GET, 2, Some(e500()));
        let error = p.deadline_error();
        assert_eq!(
            (error.kind(), error.status(), error.attempts()),
            (
                ErrorKind::DeadlineExceeded,
                Some(StatusCode::INTERNAL_SERVER_ERROR),
                2
            )
        );
        assert!(p.last_error.is_none());
        let error = progress(Method::GET, 3, None).deadline_error();
        assert_eq!(
            (error.kind(), error.attempts()),
            (ErrorKind::DeadlineExceeded, 3)
        );
        // The body outgrew its recording after the decision.
        let error = progress(Method::GET, 2, Some(e500())).unreplayable_error();
        assert_eq!(
            (error.kind(), error.attempts()),
            (ErrorKind::RetriesExhausted, 2)
        );
        assert!(error.to_string().contains("cannot be replayed"), "{error}");
        let error = progress(Method::GET, 2, None).unreplayable_error();
        assert_eq!((error.kind(), error.attempts()), (ErrorKind::Transport, 2));
        // The service failed to get ready.
        let error =
            progress(Method::GET, 2, None).not_ready_error(Error::new(ErrorKind::Transport));
        assert_eq!((error.kind(), error.attempts()), (ErrorKind::Transport, 2));
    }
}
