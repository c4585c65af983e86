//! Whether a failed attempt is tried again, and after how long.
//!
//! One pure function of the failure, the request's facts, the policy and the
//! time left: the decision table of the retry layer, tested without a clock.

use std::time::Duration;

use http::Method;
use tokio::time::Instant;

use super::budget::{Budget, RetryCause};
use super::{NonIdempotent, RetrySettings};
use crate::error::Error;
use crate::events::WaitReason;
use crate::retry_after::WaitSource;

/// What the retry layer knows about the request being retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts {
    /// The method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE).
    pub(crate) idempotent: bool,
    /// The request carries an `Idempotency-Key` header.
    pub(crate) has_idempotency_key: bool,
    /// Attempts sent so far, the failed one included.
    pub(crate) attempts: u32,
}

pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Why the wait before a retry is what it is: the policy's backoff, or
/// what the server asked for and where it said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DelayReason {
    Backoff,
    RetryAfter,
    RateLimit,
    XRateLimitReset,
    RetryDelay,
}

impl DelayReason {
    /// The server's wait, by where it came from; a wait with no source
    /// named is `Retry-After`'s.
    fn asked(source: Option<WaitSource>) -> DelayReason {
        match source {
            Some(WaitSource::RateLimit) => DelayReason::RateLimit,
            Some(WaitSource::XRateLimitReset) => DelayReason::XRateLimitReset,
            Some(WaitSource::RetryDelay) => DelayReason::RetryDelay,
            Some(WaitSource::RetryAfter) | None => DelayReason::RetryAfter,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        self.public().as_str()
    }

    /// The reason as events name it.
    pub(crate) fn public(self) -> WaitReason {
        match self {
            DelayReason::Backoff => WaitReason::Backoff,
            DelayReason::RetryAfter => WaitReason::RetryAfter,
            DelayReason::RateLimit => WaitReason::RateLimit,
            DelayReason::XRateLimitReset => WaitReason::XRateLimitReset,
            DelayReason::RetryDelay => WaitReason::RetryDelay,
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
    /// The refusal as events, metrics and the error name it: `None` where
    /// no retry was due (never retryable, attempts spent).
    pub(crate) fn public(self) -> Option<crate::error::RetryRefusal> {
        use crate::error::RetryRefusal;
        match self {
            Refusal::Budget => Some(RetryRefusal::Budget),
            Refusal::Deadline => Some(RetryRefusal::Deadline),
            Refusal::NotReplayable => Some(RetryRefusal::NotReplayable),
            Refusal::RetryAfterTooLong { .. } => Some(RetryRefusal::RetryAfter),
            Refusal::UnsafeMethod => Some(RetryRefusal::UnsafeMethod),
            Refusal::NotRetryable | Refusal::AttemptsExhausted => None,
        }
    }

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
/// `Idempotency-Key`, an answer that proves the request was not processed
/// (a 429, or a wait until a spent quota's reset: `Error::is_throttling`), a
/// transport failure that proves it (a connection that failed before
/// the request was sent, an HTTP/2 stream the server refused or left
/// unprocessed under a `GOAWAY`), or a policy that says
/// `non_idempotent = "always"`.
pub(crate) fn replay_is_safe(error: &Error, facts: &RequestFacts, policy: NonIdempotent) -> bool {
    facts.idempotent
        || facts.has_idempotency_key
        || policy == NonIdempotent::Always
        || error.is_throttling()
        || error.is_unprocessed()
}

/// Decides what follows a failed attempt. Takes from `budget` only when the
/// answer is to retry. `replay` makes the copy of the request for the next
/// attempt, answering whether it could; it is called only for a failure that
/// is otherwise retried, so a terminal answer costs no copy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide(
    error: &Error,
    facts: &RequestFacts,
    settings: &RetrySettings,
    budget: &Budget,
    now: Instant,
    deadline: Option<Instant>,
    replay: impl FnOnce() -> bool,
    backoff: impl FnOnce() -> Duration,
) -> Decision {
    if !error.is_retryable() {
        return Decision::Stop(Refusal::NotRetryable);
    }
    // Spent attempts come first: with none left no retry was due, so the
    // method refused nothing.
    if facts.attempts >= settings.max_attempts {
        return Decision::Stop(Refusal::AttemptsExhausted);
    }
    if !replay_is_safe(error, facts, settings.non_idempotent) {
        return Decision::Stop(Refusal::UnsafeMethod);
    }
    if !replay() {
        return Decision::Stop(Refusal::NotReplayable);
    }
    let (delay, reason) = match error.retry_after() {
        Some(asked) if asked > settings.max_retry_after => {
            return Decision::Stop(Refusal::RetryAfterTooLong { asked });
        }
        Some(asked) => (asked, DelayReason::asked(error.retry_after_source())),
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
    if !budget.withdraw_at(cause, now) {
        return Decision::Stop(Refusal::Budget);
    }
    Decision::Retry { delay, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::StatusClass;
    use crate::error::ResponseFailure;
    use crate::retry::{Backoff, BudgetSettings, Jitter};
    use http::StatusCode;

    fn settings() -> RetrySettings {
        RetrySettings {
            max_attempts: 3,
            backoff: Backoff::constant(Duration::from_millis(100), Jitter::None),
            max_retry_after: Duration::from_secs(30),
            non_idempotent: NonIdempotent::Safe,
            add_idempotency_key: false,
            buffer_max: 1024,
            budget: BudgetSettings::default(),
        }
    }

    fn budget(capacity: f64) -> Budget {
        Budget::new(BudgetSettings {
            capacity,
            min_reserve: capacity,
            ..BudgetSettings::fixed()
        })
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

    /// A retryable `status` that asks to wait 2 s, as `source` says.
    fn quota(code: u16, source: WaitSource) -> Error {
        Error::from_response(
            StatusCode::from_u16(code).unwrap(),
            StatusClass::Retryable,
            ResponseFailure {
                retry_after: Some(Duration::from_secs(2)),
                retry_after_source: Some(source),
                ..ResponseFailure::default()
            },
        )
    }

    fn transport(kind: std::io::ErrorKind) -> Error {
        Error::transport(Box::new(std::io::Error::from(kind)))
    }

    /// An HTTP/2 stream reset with `reason`, as hyper-util reports it: its
    /// error, hyper's, then h2's, each the source of the one before.
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
    fn h2_reset(reason: h2::Reason) -> Error {
        #[derive(Debug)]
        struct Client(Box<dyn std::error::Error + Send + Sync>);
        impl std::fmt::Display for Client {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (SendRequest)")
            }
        }
        impl std::error::Error for Client {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let h2 = h2::Error::from(reason);
        Error::transport(Box::new(Client(Box::new(Client(Box::new(h2))))))
    }

    fn facts(method: Method, key: bool) -> RequestFacts {
        RequestFacts {
            idempotent: is_idempotent(&method),
            has_idempotency_key: key,
            attempts: 1,
        }
    }

    fn run(error: &Error, facts: &RequestFacts, settings: &RetrySettings) -> Decision {
        run_replay(error, facts, settings, true)
    }

    fn run_replay(
        error: &Error,
        facts: &RequestFacts,
        settings: &RetrySettings,
        replayable: bool,
    ) -> Decision {
        let now = Instant::now();
        decide(
            error,
            facts,
            settings,
            &budget(10.0),
            now,
            Some(now + Duration::from_secs(60)),
            || replayable,
            || settings.backoff.delay(facts.attempts, Duration::ZERO, 0),
        )
    }

    const BACKOFF: Decision = Decision::Retry {
        delay: Duration::from_millis(100),
        reason: DelayReason::Backoff,
    };

    #[test]
    fn every_wait_a_server_asks_for_is_capped_alike_and_named_by_its_source() {
        let asked = |secs: u64, source: Option<WaitSource>| {
            Error::from_response(
                StatusCode::TOO_MANY_REQUESTS,
                StatusClass::Retryable,
                ResponseFailure {
                    retry_after: Some(Duration::from_secs(secs)),
                    retry_after_source: source,
                    ..ResponseFailure::default()
                },
            )
        };
        let get = facts(Method::GET, false);
        // source, wait asked, expected decision
        let rows = [
            (None, 3, DelayReason::RetryAfter),
            (Some(WaitSource::RetryAfter), 3, DelayReason::RetryAfter),
            (Some(WaitSource::RateLimit), 3, DelayReason::RateLimit),
            (
                Some(WaitSource::XRateLimitReset),
                3,
                DelayReason::XRateLimitReset,
            ),
            (Some(WaitSource::RetryDelay), 3, DelayReason::RetryDelay),
        ];
        for (source, secs, reason) in rows {
            assert_eq!(
                run(&asked(secs, source), &get, &settings()),
                Decision::Retry {
                    delay: Duration::from_secs(secs),
                    reason
                },
                "{source:?}"
            );
            // Past max_retry_after (30 s): the call ends, whatever said so.
            assert_eq!(
                run(&asked(31, source), &get, &settings()),
                Decision::Stop(Refusal::RetryAfterTooLong {
                    asked: Duration::from_secs(31)
                }),
                "{source:?}"
            );
            // Past the deadline (60 s away): the call ends too.
            let mut long = settings();
            long.max_retry_after = Duration::from_secs(3600);
            assert_eq!(
                run(&asked(61, source), &get, &long),
                Decision::Stop(Refusal::Deadline),
                "{source:?}"
            );
        }
        assert_eq!(DelayReason::RateLimit.as_str(), "ratelimit");
        assert_eq!(DelayReason::XRateLimitReset.as_str(), "x_ratelimit_reset");
        assert_eq!(DelayReason::RetryDelay.as_str(), "retry_delay");
        assert_eq!(DelayReason::RetryAfter.public(), WaitReason::RetryAfter);
        assert_eq!(DelayReason::Backoff.public(), WaitReason::Backoff);
    }

    #[test]
    fn the_decision_table() {
        use StatusClass::{Retryable, Terminal, Unsupported};
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset};
        let stop = |r| Decision::Stop(r);
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::TRACE,
            Method::POST,
            Method::PATCH,
            Method::CONNECT,
        ];
        for method in methods {
            let safe = is_idempotent(&method);
            for key in [false, true] {
                let f = facts(method.clone(), key);
                let s = settings();
                let when_safe = |safe: bool| {
                    if safe {
                        BACKOFF
                    } else {
                        stop(Refusal::UnsafeMethod)
                    }
                };
                // Classes that are never retried, whatever the method.
                assert_eq!(
                    run(&status(404, Terminal, None), &f, &s),
                    stop(Refusal::NotRetryable)
                );
                assert_eq!(
                    run(&status(503, Unsupported, None), &f, &s),
                    stop(Refusal::NotRetryable)
                );
                // A 500 or a reset connection may have been processed.
                assert_eq!(
                    run(&status(500, Retryable, None), &f, &s),
                    when_safe(safe || key),
                    "{method} {key}"
                );
                assert_eq!(
                    run(&transport(ConnectionReset), &f, &s),
                    when_safe(safe || key),
                    "{method} {key}"
                );
                // 429 and a refused connection prove the request was not processed.
                assert_eq!(
                    run(&status(429, Retryable, None), &f, &s),
                    BACKOFF,
                    "{method}"
                );
                assert_eq!(
                    run(&transport(ConnectionRefused), &f, &s),
                    BACKOFF,
                    "{method}"
                );
                // So does a spent quota, whatever the status (GitHub's 403
                // primary limit): its reset is the wait.
                for source in [WaitSource::XRateLimitReset, WaitSource::RateLimit] {
                    assert_eq!(
                        run(&quota(403, source), &f, &s),
                        Decision::Retry {
                            delay: Duration::from_secs(2),
                            reason: DelayReason::asked(Some(source)),
                        },
                        "{method} {source:?}"
                    );
                }
                // A wait that is no quota's proves nothing.
                let secondary = if safe || key {
                    Decision::Retry {
                        delay: Duration::from_secs(2),
                        reason: DelayReason::RetryAfter,
                    }
                } else {
                    stop(Refusal::UnsafeMethod)
                };
                assert_eq!(
                    run(&quota(403, WaitSource::RetryAfter), &f, &s),
                    secondary,
                    "{method} {key}"
                );
                // An HTTP/2 stream the server refused was not processed; one
                // it reset for another reason may have been.
                #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
                {
                    assert_eq!(
                        run(&h2_reset(h2::Reason::REFUSED_STREAM), &f, &s),
                        BACKOFF,
                        "{method}"
                    );
                    for reason in [h2::Reason::CANCEL, h2::Reason::INTERNAL_ERROR] {
                        assert_eq!(
                            run(&h2_reset(reason), &f, &s),
                            when_safe(safe || key),
                            "{method} {key} {reason:?}"
                        );
                    }
                }
                // A timed-out attempt may have reached the server.
                let timed_out = Error::attempt_timed_out(Duration::from_secs(1));
                assert_eq!(
                    run(&timed_out, &f, &s),
                    when_safe(safe || key),
                    "{method} {key}"
                );
                // "always" retries everything retryable.
                let always = RetrySettings {
                    non_idempotent: NonIdempotent::Always,
                    ..settings()
                };
                assert_eq!(run(&status(500, Retryable, None), &f, &always), BACKOFF);
            }
        }
    }

    #[test]
    fn attempts_and_replay() {
        let s = settings();
        let error = status(500, Retryable, None);
        let mut f = facts(Method::GET, false);
        f.attempts = 3;
        assert_eq!(
            run(&error, &f, &s),
            Decision::Stop(Refusal::AttemptsExhausted)
        );
        // No attempt left: a POST is refused by the count, not its method.
        let mut post = facts(Method::POST, false);
        post.attempts = 3;
        assert_eq!(
            run(&error, &post, &s),
            Decision::Stop(Refusal::AttemptsExhausted)
        );
        post.attempts = 1;
        assert_eq!(
            run(&error, &post, &s),
            Decision::Stop(Refusal::UnsafeMethod)
        );
        f.attempts = 2;
        assert_eq!(run(&error, &f, &s), BACKOFF);
        assert_eq!(
            run_replay(&error, &f, &s, false),
            Decision::Stop(Refusal::NotReplayable)
        );
        // No copy is made for a failure that is not retried anyway.
        let copied = std::cell::Cell::new(false);
        let now = Instant::now();
        let terminal = status(404, StatusClass::Terminal, None);
        decide(
            &terminal,
            &f,
            &s,
            &budget(1.0),
            now,
            None,
            || {
                copied.set(true);
                true
            },
            || Duration::ZERO,
        );
        assert!(!copied.get());
    }

    use StatusClass::Retryable;

    #[test]
    fn retry_after_is_honoured_exactly_or_ends_the_call() {
        let s = settings();
        let f = facts(Method::GET, false);
        assert_eq!(
            run(&status(429, Retryable, Some(7)), &f, &s),
            Decision::Retry {
                delay: Duration::from_secs(7),
                reason: DelayReason::RetryAfter
            }
        );
        // Never less than asked, even when the backoff is longer.
        let slow = RetrySettings {
            backoff: Backoff::constant(Duration::from_secs(20), Jitter::None),
            ..settings()
        };
        assert_eq!(
            run(&status(503, Retryable, Some(1)), &f, &slow),
            Decision::Retry {
                delay: Duration::from_secs(1),
                reason: DelayReason::RetryAfter
            }
        );
        assert_eq!(
            run(&status(429, Retryable, Some(31)), &f, &s),
            Decision::Stop(Refusal::RetryAfterTooLong {
                asked: Duration::from_secs(31)
            })
        );
        assert_eq!(
            run(&status(429, Retryable, Some(u64::MAX)), &f, &s),
            Decision::Stop(Refusal::RetryAfterTooLong {
                asked: Duration::from_secs(u64::MAX)
            })
        );
    }

    #[test]
    fn a_wait_past_the_deadline_ends_the_call_now() {
        let s = settings();
        let f = facts(Method::GET, false);
        let now = Instant::now();
        let b = budget(10.0);
        let decide_with = |deadline: Instant, retry_after: u64| {
            decide(
                &status(429, Retryable, Some(retry_after)),
                &f,
                &s,
                &b,
                now,
                Some(deadline),
                || true,
                || Duration::ZERO,
            )
        };
        assert_eq!(
            decide_with(now + Duration::from_secs(5), 5),
            Decision::Stop(Refusal::Deadline)
        );
        assert_eq!(
            decide_with(now + Duration::from_secs(5), 6),
            Decision::Stop(Refusal::Deadline)
        );
        assert!(matches!(
            decide_with(now + Duration::from_secs(6), 5),
            Decision::Retry { .. }
        ));
        // A refusal for the deadline takes nothing from the budget.
        assert_eq!(b.available(), 9.0);
    }

    #[test]
    fn an_empty_budget_refuses_and_a_refusal_costs_nothing() {
        let s = settings();
        let f = facts(Method::GET, false);
        let now = Instant::now();
        let b = budget(1.0);
        let go = || {
            decide(
                &status(500, Retryable, None),
                &f,
                &s,
                &b,
                now,
                None,
                || true,
                || Duration::ZERO,
            )
        };
        assert!(matches!(go(), Decision::Retry { .. }));
        assert_eq!(go(), Decision::Stop(Refusal::Budget));
        assert_eq!(b.available(), 0.0);
    }
}
