//! What the poll layer does after an answer: one pure step.
//!
//! A function of the answer (its class and headers), of what the call knows
//! of the operation so far, of the policy and of the time: the decision table
//! of the poll layer, tested without a clock or a server. The future
//! (`future.rs`) gathers those facts, runs the step and acts on what it
//! returns, as tower-http's `follow_redirect` acts on `Policy::redirect`.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use tokio::time::Instant;

use super::location::{Refusal, Target, resolve_status_url};
use super::{FinalResult, OnAccepted, PollSettings, Verdict};
use crate::deadline::call_deadline;
use crate::error::{ApiError, Error, ErrorKind, ResponseFailure};
use crate::status::StatusClass;

/// What the poll layer reads of an answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answered<'a> {
    /// The answer's class, as the route's classifier says.
    pub(crate) class: StatusClass,
    pub(crate) status: StatusCode,
    pub(crate) headers: &'a HeaderMap,
}

/// What the call knows of the operation before the answer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress<'a> {
    /// The original request's URL: `None` when the call kept no head, so
    /// that no status request can be made.
    pub(crate) request: Option<&'a Uri>,
    /// The status URL being polled: `None` before the first poll.
    pub(crate) target: Option<&'a Uri>,
    /// Whether its answers say how the operation goes by their status code
    /// alone ([`Followed::status_only`]).
    pub(crate) status_only: bool,
    /// Status requests sent so far.
    pub(crate) polls: u32,
    /// When the call started, if the clock was read yet.
    pub(crate) started: Option<Instant>,
    /// Whether the request in flight fetches the finished operation's
    /// result (`poll.result`): its answer ends the call.
    pub(crate) fetching: bool,
    /// Where the first answer's `Location` said the result will be, under
    /// `poll.result = "location"`.
    pub(crate) result: Option<&'a Target>,
}

/// What follows an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The answer is not pollable: it ends the call.
    Return,
    /// A 202 the call cannot follow, and `on_accepted = "succeed"`: it ends
    /// the call as it is.
    Accept,
    /// The call fails with `poll_refused`.
    Refuse(Refused),
    /// The operation goes on: poll again.
    Wait(Wait),
    /// The operation is still going at a bound of the policy.
    End(Ending),
    /// A `200` status answer whose body says how the operation is going
    /// (`[poll]` has a completion rule): read it, up to
    /// `poll.max_body_bytes`, then run [`after_body`].
    ReadBody,
    /// The status body says the operation failed or was canceled, or does
    /// not say: the call fails with `terminal`.
    Fail(Ended),
}

/// An operation that ended badly, by its status body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Failed, with the errors of its error object.
    Failed(Vec<ApiError>),
    /// Canceled, with the errors of its error object when it has one.
    Canceled(Vec<ApiError>),
    /// The body does not say how the operation is going, and why.
    Unreadable(String),
}

/// Why polling cannot start or go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A 202 the call cannot follow, and `on_accepted = "error"`.
    NoStatusUrl,
    /// The status URL may not be polled.
    StatusUrl(Refusal),
}

/// A status URL to poll, and how its answers say the operation goes: kept
/// together, since which header named the URL decides how they are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Followed {
    pub(crate) target: Target,
    /// Whether a `200` from it ends the operation by its status code alone,
    /// its final answer the operation's result: the header that named it
    /// is not among `poll.body_headers` (Azure's `Location`). Else, under
    /// a completion rule, a `200`'s body says how the operation goes.
    pub(crate) status_only: bool,
}

impl Followed {
    /// The URL.
    pub(crate) fn uri(&self) -> &Uri {
        self.target.uri()
    }

    /// A URL whose `200`s the completion rule reads, if there is one.
    fn read(target: Target) -> Followed {
        Followed {
            target,
            status_only: false,
        }
    }
}

/// The next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wait {
    /// The status URL the answer named; `None` to poll the same one again.
    pub(crate) target: Option<Followed>,
    /// When the call started: the clock's first reading.
    pub(crate) started: Instant,
    /// When to send the poll.
    pub(crate) until: Instant,
    /// The wait, from the answer's `Retry-After` or the interval.
    pub(crate) delay: Duration,
    /// The poll's number, 1 for the first.
    pub(crate) poll: u32,
    /// Whether this request fetches the finished operation's result.
    pub(crate) fetch: bool,
    /// Where the result will be, from the first answer's `Location`.
    pub(crate) result: Option<Box<Target>>,
}

/// An operation that outlived `max_polls`, `max_duration` or the call's
/// deadline, or whose next poll would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ending {
    /// `PollTimeout` or `DeadlineExceeded`.
    pub(crate) kind: ErrorKind,
    pub(crate) polls: u32,
    /// From the call's start to the answer.
    pub(crate) elapsed: Duration,
}

/// Decides what follows an answer.
///
/// `now` and `retry_after` (the wait the answer asks for) are read only for
/// an answer that is followed: an answer that ends the call reads no clock.
/// `total` is the route's `timeouts.total`.
pub(crate) fn step(
    answer: &Answered<'_>,
    progress: &Progress<'_>,
    settings: &PollSettings,
    total: Duration,
    now: impl FnOnce() -> Instant,
    retry_after: impl FnOnce() -> Option<Duration>,
) -> Step {
    // The fetch of a finished operation's result is answered as any request.
    if progress.fetching {
        return Step::Return;
    }
    let first = progress.target.is_none();
    let created = answer.class == StatusClass::Success
        && answer.status == StatusCode::CREATED
        && first
        && !settings.created_headers.is_empty();
    let found = if created {
        // A 201 is an operation only when it names one (Azure's PUT).
        match first_of(&settings.created_headers, answer.headers) {
            Some(found) => Some(found),
            None => return Step::Return,
        }
    } else if answer.class != StatusClass::Pollable {
        return finished(answer, progress, settings, now);
    } else {
        first_of(&settings.location_headers, answer.headers)
    };
    // Without the request's URL no status request can be made: the 202 is
    // what the call has.
    let Some(request) = progress.request else {
        return accepted(settings);
    };
    let target = match found {
        // RFC 9110: relative to the URL that answered.
        Some((name, value)) => match resolve_status_url(
            request,
            progress.target.unwrap_or(request),
            value.as_bytes(),
            &settings.allowed_origins,
        ) {
            Ok(target) => Some(Followed {
                target,
                status_only: !settings.reads_body_of(name),
            }),
            Err(refusal) => return Step::Refuse(Refused::StatusUrl(refusal)),
        },
        // A later answer may leave the URL out: keep polling it.
        None if !first => None,
        None => return accepted(settings),
    };
    let result = match (first, settings.result) {
        (true, FinalResult::Location) => match answer.headers.get(http::header::LOCATION) {
            Some(value) => match resolve_status_url(
                request,
                request,
                value.as_bytes(),
                &settings.allowed_origins,
            ) {
                Ok(result) => Some(Box::new(result)),
                Err(refusal) => return Step::Refuse(Refused::StatusUrl(refusal)),
            },
            None => None,
        },
        _ => None,
    };
    match next_poll(target, progress, settings, total, now(), retry_after) {
        Step::Wait(wait) => Step::Wait(Wait { result, ..wait }),
        step => step,
    }
}

/// The first of `names` that `headers` has, with its value.
fn first_of<'h>(
    names: &'h [HeaderName],
    headers: &'h HeaderMap,
) -> Option<(&'h HeaderName, &'h HeaderValue)> {
    names
        .iter()
        .find_map(|name| headers.get(name).map(|value| (name, value)))
}

/// What follows an answer that is not pollable: it ends the call, unless
/// it answers a poll and the operation's end is in its body, or its result
/// is elsewhere. A status URL judged by its status code alone
/// ([`Followed::status_only`]) ends with its answer, the result.
fn finished(
    answer: &Answered<'_>,
    progress: &Progress<'_>,
    settings: &PollSettings,
    now: impl FnOnce() -> Instant,
) -> Step {
    if answer.class != StatusClass::Success {
        return Step::Return;
    }
    // Only a status answer's body can say the operation goes on: the first
    // answer, and every answer without a rule, ends the call as its status
    // says.
    let first = progress.target.is_none();
    match &settings.completion {
        Some(completion) if first => {
            if progress.request.is_some() && completion.names_status_url() {
                Step::ReadBody
            } else {
                Step::Return
            }
        }
        // Azure's Location answers, once done, as the request would have.
        Some(_) if progress.status_only => Step::Return,
        Some(_) => Step::ReadBody,
        None if first => Step::Return,
        None => succeeded(progress, settings, now),
    }
}

/// An operation that succeeded: its last status answer ends the call, or
/// one more request fetches its result (`poll.result`).
fn succeeded(
    progress: &Progress<'_>,
    settings: &PollSettings,
    now: impl FnOnce() -> Instant,
) -> Step {
    let target = match settings.result {
        FinalResult::Status => None,
        FinalResult::Location => progress.result.cloned(),
        FinalResult::Original => progress.request.map(|uri| Target::SameOrigin(uri.clone())),
    };
    let Some(target) = target else {
        return Step::Return;
    };
    let now = now();
    Step::Wait(Wait {
        // Its answer, whatever it is, ends the call.
        target: Some(Followed {
            target,
            status_only: true,
        }),
        started: progress.started.unwrap_or(now),
        until: now,
        delay: Duration::ZERO,
        poll: progress.polls + 1,
        fetch: true,
        result: None,
    })
}

/// Decides what follows an answer whose body was read: what the body says
/// (`verdict`), and, while the operation runs, the next poll of the same
/// URL, as after a 202, or, after the first answer, of the URL its `body`
/// names.
pub(crate) fn after_body(
    verdict: Verdict,
    body: &[u8],
    progress: &Progress<'_>,
    settings: &PollSettings,
    total: Duration,
    now: impl FnOnce() -> Instant,
    retry_after: impl FnOnce() -> Option<Duration>,
) -> Step {
    match verdict {
        // An operation named in the first answer's body and done at once
        // has no status URL to fetch a result by.
        Verdict::Succeeded if progress.target.is_none() => Step::Return,
        Verdict::Succeeded => succeeded(progress, settings, now),
        Verdict::Failed(errors) => Step::Fail(Ended::Failed(errors)),
        Verdict::Canceled(errors) => Step::Fail(Ended::Canceled(errors)),
        Verdict::Unreadable(why) => Step::Fail(Ended::Unreadable(why)),
        Verdict::Running => {
            let target = match (progress.target, progress.request, &settings.completion) {
                (Some(_), ..) => None,
                (None, Some(request), Some(completion)) => {
                    let text = match completion.status_url(request, body) {
                        Ok(text) => text,
                        Err(why) => return Step::Fail(Ended::Unreadable(why)),
                    };
                    match resolve_status_url(
                        request,
                        request,
                        text.as_bytes(),
                        &settings.allowed_origins,
                    ) {
                        Ok(target) => Some(Followed::read(target)),
                        Err(refusal) => return Step::Refuse(Refused::StatusUrl(refusal)),
                    }
                }
                // No URL to poll: the step reads no such body.
                (None, ..) => return Step::Return,
            };
            next_poll(target, progress, settings, total, now(), retry_after)
        }
    }
}

/// The next poll, at `Retry-After` or the interval, unless it would pass a
/// bound of the policy or the call's deadline.
fn next_poll(
    target: Option<Followed>,
    progress: &Progress<'_>,
    settings: &PollSettings,
    total: Duration,
    now: Instant,
    retry_after: impl FnOnce() -> Option<Duration>,
) -> Step {
    let started = progress.started.unwrap_or(now);
    let polls = progress.polls;
    let delay = retry_after()
        .map(|asked| asked.min(settings.max_interval))
        .unwrap_or_else(|| settings.interval_before(polls + 1));
    let until = now + delay;
    let kind = if polls >= settings.max_polls
        || until.saturating_duration_since(started) > settings.max_duration
    {
        ErrorKind::PollTimeout
    } else if until >= call_deadline(started, total, None) {
        ErrorKind::DeadlineExceeded
    } else {
        return Step::Wait(Wait {
            target,
            started,
            until,
            delay,
            poll: polls + 1,
            fetch: false,
            result: None,
        });
    };
    Step::End(Ending {
        kind,
        polls,
        elapsed: now.saturating_duration_since(started),
    })
}

/// A 202 with no status URL: returned as it is, or an error, as the policy
/// says.
fn accepted(settings: &PollSettings) -> Step {
    match settings.on_accepted {
        OnAccepted::Succeed => Step::Accept,
        OnAccepted::Error => Step::Refuse(Refused::NoStatusUrl),
    }
}

impl Refused {
    /// The call's error: `poll_refused` with the reason.
    pub(crate) fn error(&self, settings: &PollSettings, counts: Counts, polls: u32) -> Error {
        let detail = match self {
            Refused::StatusUrl(refusal) => refusal.to_string(),
            Refused::NoStatusUrl => {
                let looked_in: Vec<&str> = settings
                    .location_headers
                    .iter()
                    .map(HeaderName::as_str)
                    .collect();
                format!(
                    "the 202 names no status url (looked in: {}) and poll.on_accepted is \"error\"",
                    looked_in.join(", ")
                )
            }
        };
        poll_error(ErrorKind::PollRefused, counts, polls, detail)
    }
}

impl Ending {
    /// The call's error, saying how long the operation was followed.
    pub(crate) fn error(&self, counts: Counts) -> Error {
        let detail = format!(
            "the operation was still going after {} polls and {}ms",
            self.polls,
            self.elapsed.as_millis()
        );
        poll_error(self.kind, counts, self.polls, detail)
    }
}

impl Ended {
    /// The call's error: `terminal`, with the status answer's code, the
    /// operation's error codes and its body, and a detail that says how the
    /// operation ended.
    pub(crate) fn error(
        self,
        status: http::StatusCode,
        body: bytes::Bytes,
        counts: Counts,
        polls: u32,
    ) -> Error {
        let (api_errors, detail) = match self {
            Ended::Failed(errors) => (errors, "the operation failed".to_owned()),
            Ended::Canceled(errors) => (errors, "the operation was canceled".to_owned()),
            Ended::Unreadable(why) => (
                Vec::new(),
                format!("the status body does not say how the operation is going: {why}"),
            ),
        };
        let failure = ResponseFailure {
            api_errors,
            body,
            body_truncated: false,
            retry_after: None,
            retry_after_source: None,
            rule: None,
        };
        counts
            .stamp(
                Error::from_response(status, StatusClass::Terminal, failure),
                polls,
            )
            .with_detail(detail)
    }
}

/// What a polled call has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Attempts of the original request.
    pub(crate) attempts: u32,
    /// Every request: the attempts, and each status request's.
    pub(crate) requests: u32,
}

impl Counts {
    /// The counts after an answer that took `sent` attempts: the original
    /// request's when nothing was polled yet, a status request's after.
    pub(crate) fn after(self, sent: u32, polled: bool) -> Counts {
        Counts {
            attempts: if polled { self.attempts } else { sent },
            requests: self.requests.saturating_add(sent),
        }
    }

    /// `error` with the call's counts: the status request's own attempts
    /// are already in `requests`.
    pub(crate) fn stamp(self, error: Error, polls: u32) -> Error {
        error
            .with_attempts(self.attempts)
            .with_polls(polls)
            .with_requests(self.requests)
    }
}

/// How a call ends when polling cannot go on.
fn poll_error(kind: ErrorKind, counts: Counts, polls: u32, detail: String) -> Error {
    counts.stamp(Error::new(kind), polls).with_detail(detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::Origin;
    use http::HeaderValue;

    const S: Duration = Duration::from_secs(1);

    fn settings(on_accepted: OnAccepted) -> PollSettings {
        PollSettings::builder()
            .on_accepted(on_accepted)
            .interval(S)
            .multiplier(2.0)
            .max_interval(8 * S)
            .max_polls(5)
            .max_duration(30 * S)
            .allowed_origins(vec![Origin::parse("https://ops.example").unwrap()])
            .build()
            .unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    /// A status of `class`, as the tables' answers have.
    fn status_of(class: StatusClass) -> StatusCode {
        match class {
            StatusClass::Success => StatusCode::OK,
            StatusClass::Pollable => StatusCode::ACCEPTED,
            StatusClass::Retryable => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    /// One row: the answer, the call's progress, and what must follow.
    struct Row {
        name: &'static str,
        class: StatusClass,
        headers: &'static [(&'static str, &'static str)],
        on_accepted: OnAccepted,
        /// Whether the call kept the request's head.
        head: bool,
        /// The status URL being polled, if any.
        target: Option<&'static str>,
        polls: u32,
        /// Seconds since the call started, when the clock was read.
        started_ago: Option<u32>,
        /// The route's `timeouts.total`, in seconds.
        total: u32,
        /// Whether `[poll]` reads status bodies (Azure's `status`).
        completion: bool,
        expect: Expect,
    }

    /// What must follow; `U` is how a status URL is written (`&str` in the
    /// rows, `String` from the step).
    #[derive(Debug, PartialEq)]
    enum Expect<U = &'static str> {
        Return,
        Accept,
        NoStatusUrl,
        Refused(Refusal),
        /// The new status URL (or `None`), the wait in seconds, the poll's
        /// number.
        Wait(Option<U>, u64, u32),
        End(ErrorKind),
        ReadBody,
        Fail(Ended),
    }

    impl Expect {
        fn owned(self) -> Expect<String> {
            match self {
                Expect::Return => Expect::Return,
                Expect::Accept => Expect::Accept,
                Expect::NoStatusUrl => Expect::NoStatusUrl,
                Expect::Refused(refusal) => Expect::Refused(refusal),
                Expect::Wait(url, secs, poll) => Expect::Wait(url.map(str::to_owned), secs, poll),
                Expect::End(kind) => Expect::End(kind),
                Expect::ReadBody => Expect::ReadBody,
                Expect::Fail(failed) => Expect::Fail(failed),
            }
        }
    }

    fn expect(step: &Step, now: Instant) -> Expect<String> {
        match step {
            Step::Return => Expect::Return,
            Step::Accept => Expect::Accept,
            Step::Refuse(Refused::NoStatusUrl) => Expect::NoStatusUrl,
            Step::Refuse(Refused::StatusUrl(refusal)) => Expect::Refused(refusal.clone()),
            Step::Wait(wait) => {
                assert_eq!(wait.until, now + wait.delay);
                let target = wait.target.as_ref().map(|t| t.uri().to_string());
                Expect::Wait(target, wait.delay.as_secs(), wait.poll)
            }
            Step::End(ending) => Expect::End(ending.kind),
            Step::ReadBody => Expect::ReadBody,
            Step::Fail(failed) => Expect::Fail(failed.clone()),
        }
    }

    fn row(name: &'static str) -> Row {
        Row {
            name,
            class: StatusClass::Pollable,
            headers: &[],
            on_accepted: OnAccepted::Succeed,
            head: true,
            target: None,
            polls: 0,
            started_ago: None,
            total: 120,
            completion: false,
            expect: Expect::Return,
        }
    }

    #[test]
    fn the_step_table() {
        use ErrorKind::{DeadlineExceeded, PollTimeout};
        use OnAccepted::{Error as Fail, Succeed};
        const OPS: &str = "https://api.example/ops/1";
        let rows = [
            Row {
                class: StatusClass::Success,
                headers: &[("location", "/ops/1")],
                polls: 2,
                target: Some(OPS),
                ..row("a final answer ends the call, whatever it names")
            },
            Row {
                class: StatusClass::Terminal,
                on_accepted: Fail,
                ..row("a terminal answer ends the call too")
            },
            Row {
                headers: &[("location", "/ops/1")],
                expect: Expect::Wait(Some(OPS), 1, 1),
                ..row("a 202 with a status url is followed after the interval")
            },
            Row {
                headers: &[("location", "/ops/1")],
                on_accepted: Fail,
                expect: Expect::Wait(Some(OPS), 1, 1),
                ..row("on_accepted does not matter when there is a url")
            },
            Row {
                headers: &[("operation-location", "/ops/2"), ("location", "/ops/1")],
                expect: Expect::Wait(Some("https://api.example/ops/2"), 1, 1),
                ..row("the first of location_headers wins")
            },
            Row {
                on_accepted: Succeed,
                expect: Expect::Accept,
                ..row("a 202 without a url is returned as it is")
            },
            Row {
                on_accepted: Fail,
                expect: Expect::NoStatusUrl,
                ..row("a 202 without a url fails under on_accepted = error")
            },
            Row {
                headers: &[("location", "/ops/1")],
                head: false,
                expect: Expect::Accept,
                ..row("without the request's head the 202 is returned")
            },
            Row {
                headers: &[("location", "/ops/1")],
                head: false,
                on_accepted: Fail,
                expect: Expect::NoStatusUrl,
                ..row("without the request's head the 202 fails under error")
            },
            Row {
                headers: &[("location", "https://evil.example/ops/1")],
                expect: Expect::Refused(Refusal::OtherOrigin("https://evil.example:443".into())),
                ..row("another origin is refused")
            },
            Row {
                headers: &[("location", "http://api.example/ops/1")],
                on_accepted: Fail,
                expect: Expect::Refused(Refusal::Downgrade),
                ..row("a downgrade is refused")
            },
            Row {
                headers: &[("location", "https://ops.example/1")],
                expect: Expect::Wait(Some("https://ops.example/1"), 1, 1),
                ..row("an allowed origin is followed")
            },
            Row {
                headers: &[("location", "/ops/1"), ("retry-after", "3")],
                expect: Expect::Wait(Some(OPS), 3, 1),
                ..row("retry-after sets the wait")
            },
            Row {
                headers: &[("location", "/ops/1"), ("retry-after", "50")],
                expect: Expect::Wait(Some(OPS), 8, 1),
                ..row("retry-after is capped by max_interval")
            },
            Row {
                headers: &[("location", "/ops/1"), ("retry-after", "soon")],
                expect: Expect::Wait(Some(OPS), 1, 1),
                ..row("an unreadable retry-after leaves the interval")
            },
            Row {
                target: Some(OPS),
                polls: 2,
                started_ago: Some(5),
                expect: Expect::Wait(None, 4, 3),
                ..row("a later answer without a url polls the same url, the interval grown")
            },
            Row {
                headers: &[("location", "2")],
                target: Some(OPS),
                polls: 1,
                started_ago: Some(5),
                expect: Expect::Wait(Some("https://api.example/ops/2"), 2, 2),
                ..row("a later url is resolved against the status url")
            },
            Row {
                target: Some(OPS),
                polls: 4,
                started_ago: Some(5),
                expect: Expect::Wait(None, 8, 5),
                ..row("the last poll max_polls allows")
            },
            Row {
                target: Some(OPS),
                polls: 5,
                started_ago: Some(5),
                expect: Expect::End(PollTimeout),
                ..row("max_polls")
            },
            Row {
                target: Some(OPS),
                polls: 1,
                started_ago: Some(28),
                expect: Expect::Wait(None, 2, 2),
                ..row("a wait that ends at max_duration")
            },
            Row {
                target: Some(OPS),
                polls: 1,
                started_ago: Some(29),
                expect: Expect::End(PollTimeout),
                ..row("a wait that would end past max_duration")
            },
            Row {
                headers: &[("location", "/ops/1"), ("retry-after", "5")],
                total: 5,
                expect: Expect::End(DeadlineExceeded),
                ..row("a wait that would end at the deadline")
            },
            Row {
                headers: &[("location", "/ops/1"), ("retry-after", "4")],
                total: 5,
                expect: Expect::Wait(Some(OPS), 4, 1),
                ..row("a wait that ends before the deadline")
            },
            Row {
                target: Some(OPS),
                polls: 1,
                started_ago: Some(28),
                total: 30,
                expect: Expect::End(DeadlineExceeded),
                ..row("the deadline counts from the call's start")
            },
            Row {
                target: Some(OPS),
                polls: 5,
                started_ago: Some(28),
                total: 30,
                expect: Expect::End(PollTimeout),
                ..row("the poll bounds come before the deadline")
            },
            Row {
                class: StatusClass::Success,
                target: Some(OPS),
                polls: 1,
                completion: true,
                expect: Expect::ReadBody,
                ..row("a 200 status answer's body is read under a completion rule")
            },
            Row {
                class: StatusClass::Success,
                completion: true,
                ..row("the first answer's body is never read: it is no status answer")
            },
            Row {
                class: StatusClass::Terminal,
                target: Some(OPS),
                polls: 1,
                completion: true,
                ..row("a failing status answer ends the call as its status says")
            },
            Row {
                headers: &[("location", "/ops/1")],
                completion: true,
                expect: Expect::Wait(Some(OPS), 1, 1),
                ..row("a 202 is followed as before under a completion rule")
            },
        ];
        // Later than any start a row asks for.
        let now = Instant::now() + 3600 * S;
        let request = uri("https://api.example/v3/data");
        for row in rows {
            let headers = headers(row.headers);
            let mut settings = settings(row.on_accepted);
            if row.completion {
                settings.completion = Some(azure());
            }
            let target = row.target.map(uri);
            let progress = Progress {
                request: row.head.then_some(&request),
                target: target.as_ref(),
                polls: row.polls,
                started: row.started_ago.map(|ago| now - ago * S),
                ..Progress::default()
            };
            let answer = Answered {
                class: row.class,
                status: status_of(row.class),
                headers: &headers,
            };
            let retry_after = || crate::retry_after::retry_after_of(&headers);
            let got = step(
                &answer,
                &progress,
                &settings,
                row.total * S,
                || now,
                retry_after,
            );
            assert_eq!(expect(&got, now), row.expect.owned(), "{}", row.name);
        }
    }

    fn azure() -> crate::poll::Completion {
        let list = |value: &str| vec![value.to_owned()];
        crate::poll::Completion::status(
            "/status",
            list("InProgress"),
            list("Succeeded"),
            list("Failed"),
            list("Canceled"),
            "/error",
        )
        .unwrap()
    }

    #[test]
    fn the_after_body_table() {
        use ErrorKind::PollTimeout;
        let conflict = ApiError::new(Some("Conflict".into()), None, None, None);
        let canceled = ApiError::new(Some("OperationCanceled".into()), None, None, None);
        // verdict, polls so far, retry-after, expected
        let rows = [
            (Verdict::Succeeded, 1, None, Expect::Return),
            (
                Verdict::Failed(vec![conflict.clone()]),
                1,
                None,
                Expect::Fail(Ended::Failed(vec![conflict])),
            ),
            (
                Verdict::Canceled(vec![]),
                1,
                None,
                Expect::Fail(Ended::Canceled(vec![])),
            ),
            (
                Verdict::Canceled(vec![canceled.clone()]),
                1,
                None,
                Expect::Fail(Ended::Canceled(vec![canceled])),
            ),
            (
                Verdict::Unreadable("why".into()),
                1,
                None,
                Expect::Fail(Ended::Unreadable("why".into())),
            ),
            (Verdict::Running, 1, None, Expect::Wait(None, 2, 2)),
            (Verdict::Running, 1, Some(3), Expect::Wait(None, 3, 2)),
            (Verdict::Running, 5, None, Expect::End(PollTimeout)),
        ];
        let now = Instant::now() + 3600 * S;
        let request = uri("https://api.example/v3/data");
        let ops = uri("https://api.example/ops/1");
        let mut settings = settings(OnAccepted::Succeed);
        settings.completion = Some(azure());
        for (verdict, polls, asked, expected) in rows {
            let name = format!("{verdict:?} after {polls} polls");
            let progress = Progress {
                request: Some(&request),
                target: Some(&ops),
                polls,
                started: Some(now - S),
                ..Progress::default()
            };
            let got = after_body(
                verdict,
                b"{}",
                &progress,
                &settings,
                120 * S,
                || now,
                || asked.map(Duration::from_secs),
            );
            assert_eq!(expect(&got, now), expected.owned(), "{name}");
        }
    }

    #[test]
    fn an_operation_that_names_itself_in_its_first_answer() {
        let google = |template: &str| {
            let rule = crate::poll::Completion::done("/done", "/error")
                .unwrap()
                .with_status_url(template, "/name")
                .unwrap();
            let mut settings = settings(OnAccepted::Succeed);
            settings.completion = Some(rule);
            settings
        };
        let request = uri("https://api.example/v3/data");
        let first = Progress {
            request: Some(&request),
            ..Progress::default()
        };
        let headers = HeaderMap::new();
        let ok = Answered {
            class: StatusClass::Success,
            status: status_of(StatusClass::Success),
            headers: &headers,
        };
        let clock = || -> Instant { panic!("no clock before the body is read") };
        let settings = google("{origin}/{first_segment}/{name}");
        let asked = || None;
        assert_eq!(
            step(&ok, &first, &settings, 60 * S, clock, asked),
            Step::ReadBody
        );
        // Without the request's URL no status URL can be made: nothing read.
        let headless = Progress::default();
        assert_eq!(
            step(&ok, &headless, &settings, 60 * S, clock, asked),
            Step::Return
        );
        // Without a status_url the first answer is not read.
        let mut plain = settings.clone();
        plain.completion = Some(azure());
        assert_eq!(
            step(&ok, &first, &plain, 60 * S, clock, asked),
            Step::Return
        );

        let now = Instant::now() + 3600 * S;
        // body, template, expected
        let rows = [
            (
                r#"{"name":"operations/7","done":false}"#,
                "{origin}/{first_segment}/{name}",
                Expect::Wait(Some("https://api.example/v3/operations/7"), 1, 1),
            ),
            (
                r#"{"name":"operations/7","done":true,"response":{}}"#,
                "{origin}/{first_segment}/{name}",
                Expect::Return,
            ),
            (
                r#"{"name":"operations/7","done":true,"error":{"code":9}}"#,
                "{origin}/{first_segment}/{name}",
                Expect::Fail(Ended::Failed(vec![ApiError::new(
                    Some("9".into()),
                    None,
                    None,
                    None,
                )])),
            ),
            (
                r#"{"name":"operations/7"}"#,
                "https://evil.example/{name}",
                Expect::Refused(Refusal::OtherOrigin("https://evil.example:443".into())),
            ),
        ];
        for (body, template, expected) in rows {
            let settings = google(template);
            let Some(completion) = settings.completion.as_ref() else {
                unreachable!()
            };
            let verdict = crate::poll::body::judge(completion, body.as_bytes(), false);
            let got = after_body(
                verdict,
                body.as_bytes(),
                &first,
                &settings,
                120 * S,
                || now,
                || None,
            );
            assert_eq!(expect(&got, now), expected.owned(), "{body}");
        }
        let verdict = Verdict::Running;
        let got = after_body(verdict, b"{}", &first, &settings, 120 * S, || now, || None);
        assert!(matches!(got, Step::Fail(Ended::Unreadable(_))), "{got:?}");
    }

    #[test]
    fn a_failed_operation_is_terminal_with_its_codes_and_says_how_it_ended() {
        let counts = Counts {
            attempts: 1,
            requests: 3,
        };
        let ok = http::StatusCode::OK;
        let body = bytes::Bytes::from_static(br#"{"status":"Failed"}"#);
        let conflict = ApiError::new(Some("Conflict".into()), None, None, None);
        let error = Ended::Failed(vec![conflict]).error(ok, body.clone(), counts, 2);
        assert_eq!(error.kind(), ErrorKind::Terminal);
        assert_eq!(error.status(), Some(ok));
        assert_eq!(error.error_codes().collect::<Vec<_>>(), ["Conflict"]);
        assert_eq!(
            (error.attempts(), error.polls(), error.requests()),
            (1, 2, 3)
        );
        assert!(
            error.to_string().contains("the operation failed"),
            "{error}"
        );
        let error = Ended::Canceled(vec![]).error(ok, body.clone(), counts, 2);
        assert_eq!(error.kind(), ErrorKind::Terminal);
        assert!(error.to_string().contains("canceled"), "{error}");
        assert_eq!(error.error_codes().count(), 0);
        // A canceled operation's error object gives its codes too.
        let by_user = ApiError::new(Some("OperationCanceled".into()), None, None, None);
        let error = Ended::Canceled(vec![by_user]).error(ok, body, counts, 2);
        assert_eq!(error.kind(), ErrorKind::Terminal);
        assert!(
            error.to_string().contains("the operation was canceled"),
            "{error}"
        );
        assert_eq!(
            error.error_codes().collect::<Vec<_>>(),
            ["OperationCanceled"]
        );
    }

    #[test]
    fn answers_that_end_the_call_read_no_clock() {
        let settings = settings(OnAccepted::Error);
        let headers = headers(&[("location", "https://evil.example/1")]);
        let request = uri("https://api.example/v3/data");
        for (class, head) in [
            (StatusClass::Success, true),
            (StatusClass::Pollable, false),
            (StatusClass::Pollable, true),
        ] {
            let progress = Progress {
                request: head.then_some(&request),
                ..Progress::default()
            };
            let answer = Answered {
                class,
                status: status_of(class),
                headers: &headers,
            };
            let clock = || -> Instant { panic!("the clock was read for {class:?}") };
            let asked = || -> Option<Duration> { panic!("retry-after was read for {class:?}") };
            let got = step(&answer, &progress, &settings, 60 * S, clock, asked);
            assert!(!matches!(got, Step::Wait(_) | Step::End(_)), "{got:?}");
        }
    }

    #[test]
    fn a_status_url_from_a_header_the_rule_does_not_read_is_judged_by_its_status() {
        // Azure: the status resource at Azure-AsyncOperation says in its
        // body how the operation goes; its Location answers 202, then as
        // the request would have.
        let azure_headers = vec![
            HeaderName::from_static("azure-asyncoperation"),
            http::header::LOCATION,
        ];
        let azure_settings = |body_headers: Option<&[&'static str]>| {
            let mut builder = PollSettings::builder()
                .location_headers(azure_headers.clone())
                .created_headers(vec![HeaderName::from_static("azure-asyncoperation")])
                .completion(azure())
                .result(FinalResult::Original);
            if let Some(names) = body_headers {
                builder = builder
                    .body_headers(names.iter().map(|n| HeaderName::from_static(n)).collect());
            }
            builder.build().unwrap()
        };
        let only_async = azure_settings(Some(&["azure-asyncoperation"]));
        let every = azure_settings(None);
        let request = uri("https://api.example/v3/accounts/a");
        let now = Instant::now() + 3600 * S;
        let first = Progress {
            request: Some(&request),
            ..Progress::default()
        };
        let both = headers(&[("azure-asyncoperation", "/ops/1"), ("location", "/res/1")]);
        let location = headers(&[("location", "/res/1")]);
        let answer = |status: u16, headers| Answered {
            class: match status {
                202 => StatusClass::Pollable,
                s if s < 300 => StatusClass::Success,
                _ => StatusClass::Terminal,
            },
            status: StatusCode::from_u16(status).unwrap(),
            headers,
        };
        // settings, first answer's status, its headers, the URL polled, judged by its status alone
        let rows = [
            (&only_async, 202, &both, "https://api.example/ops/1", false),
            (
                &only_async,
                202,
                &location,
                "https://api.example/res/1",
                true,
            ),
            (&only_async, 201, &both, "https://api.example/ops/1", false),
            (&every, 202, &location, "https://api.example/res/1", false),
            (&every, 202, &both, "https://api.example/ops/1", false),
        ];
        for (settings, status, headers, url, status_only) in rows {
            let name = format!("{status} {headers:?} under {:?}", settings.body_headers());
            let Step::Wait(wait) = step(
                &answer(status, headers),
                &first,
                settings,
                60 * S,
                || now,
                || None,
            ) else {
                panic!("{name}: not followed");
            };
            assert_eq!(
                wait.target,
                Some(Followed {
                    target: Target::SameOrigin(uri(url)),
                    status_only,
                }),
                "{name}"
            );
        }

        // What the Location-only operation's answers then do.
        let res = uri("https://api.example/res/1");
        let polled = |status_only| Progress {
            request: Some(&request),
            target: Some(&res),
            status_only,
            polls: 1,
            started: Some(now - S),
            ..Progress::default()
        };
        let none = HeaderMap::new();
        let no_clock = || -> Instant { panic!("the clock was read") };
        // Running: polled again, at the same URL.
        let Step::Wait(again) = step(
            &answer(202, &none),
            &polled(true),
            &only_async,
            60 * S,
            || now,
            || None,
        ) else {
            panic!("a 202 polls on");
        };
        assert_eq!((again.target, again.fetch, again.poll), (None, false, 2));
        // Done: its 200 is the result, its body unread and nothing fetched,
        // although the policy fetches a PUT's result.
        for status in [200, 201, 204] {
            assert_eq!(
                step(
                    &answer(status, &none),
                    &polled(true),
                    &only_async,
                    60 * S,
                    no_clock,
                    || None
                ),
                Step::Return,
                "{status}"
            );
        }
        // Failed: its error status, as the request's would be.
        assert_eq!(
            step(
                &answer(409, &none),
                &polled(true),
                &only_async,
                60 * S,
                no_clock,
                || None
            ),
            Step::Return
        );
        // A status resource's 200 is read, as before.
        assert_eq!(
            step(
                &answer(200, &none),
                &polled(false),
                &only_async,
                60 * S,
                no_clock,
                || None
            ),
            Step::ReadBody
        );
    }

    #[test]
    fn body_headers_need_a_rule_and_are_bounded() {
        let names = |n: usize| vec![HeaderName::from_static("azure-asyncoperation"); n];
        let err = PollSettings::builder()
            .body_headers(names(1))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("poll.body_headers needs"), "{err}");
        let err = PollSettings::builder()
            .completion(azure())
            .body_headers(names(17))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("too many headers"), "{err}");
        let settings = PollSettings::builder()
            .completion(azure())
            .body_headers(names(1))
            .build()
            .unwrap();
        assert_eq!(settings.body_headers(), Some(&names(1)[..]));
        assert!(settings.reads_body_of(&HeaderName::from_static("azure-asyncoperation")));
        assert!(!settings.reads_body_of(&http::header::LOCATION));
        // By default, every header's.
        let every = PollSettings::builder().completion(azure()).build().unwrap();
        assert_eq!(every.body_headers(), None);
        assert!(every.reads_body_of(&http::header::LOCATION));
    }

    #[test]
    fn a_201_is_polled_only_when_it_names_an_operation() {
        let mut settings = settings(OnAccepted::Succeed);
        settings.created_headers = vec![HeaderName::from_static("azure-asyncoperation")];
        let request = uri("https://api.example/v3/vm");
        let now = Instant::now() + 3600 * S;
        let first = Progress {
            request: Some(&request),
            ..Progress::default()
        };
        let created = |pairs: &'static [(&'static str, &'static str)]| headers(pairs);
        let named = created(&[("azure-asyncoperation", "/ops/1"), ("location", "/v3/vm")]);
        let answer = |headers| Answered {
            class: StatusClass::Success,
            status: StatusCode::CREATED,
            headers,
        };
        // The operation's header, not the created resource's Location.
        let Step::Wait(wait) = step(&answer(&named), &first, &settings, 60 * S, || now, || None)
        else {
            panic!("a 201 naming an operation is polled");
        };
        assert_eq!(
            wait.target.map(|f| f.target),
            Some(Target::SameOrigin(uri("https://api.example/ops/1")))
        );
        let plain = created(&[("location", "/v3/vm")]);
        let no_clock = || -> Instant { panic!("no clock for a plain 201") };
        assert_eq!(
            step(&answer(&plain), &first, &settings, 60 * S, no_clock, || {
                None
            }),
            Step::Return
        );
        // Without created_headers a 201 is a success whatever it carries.
        settings.created_headers.clear();
        assert_eq!(
            step(&answer(&named), &first, &settings, 60 * S, no_clock, || {
                None
            }),
            Step::Return
        );
        // A 201 that answers a poll ends the operation as any success.
        settings.created_headers = vec![HeaderName::from_static("azure-asyncoperation")];
        let ops = uri("https://api.example/ops/1");
        let polled = Progress {
            target: Some(&ops),
            polls: 1,
            ..first
        };
        assert_eq!(
            step(&answer(&named), &polled, &settings, 60 * S, || now, || None),
            Step::Return
        );
    }

    #[test]
    fn a_finished_operation_fetches_its_result_where_the_policy_says() {
        let request = uri("https://api.example/v3/vm");
        let ops = uri("https://api.example/ops/1");
        let now = Instant::now() + 3600 * S;
        let accepted = headers(&[
            ("azure-asyncoperation", "/ops/1"),
            ("location", "/v3/results/1"),
        ]);
        let done = HeaderMap::new();
        let answer = |class, headers| Answered {
            class,
            status: status_of(class),
            headers,
        };
        for (result, expected) in [
            (FinalResult::Status, None),
            (FinalResult::Original, Some("https://api.example/v3/vm")),
            (
                FinalResult::Location,
                Some("https://api.example/v3/results/1"),
            ),
        ] {
            let mut settings = settings(OnAccepted::Succeed);
            settings.location_headers = vec![
                HeaderName::from_static("azure-asyncoperation"),
                http::header::LOCATION,
            ];
            settings.result = result;
            let first = Progress {
                request: Some(&request),
                ..Progress::default()
            };
            let Step::Wait(wait) = step(
                &answer(StatusClass::Pollable, &accepted),
                &first,
                &settings,
                60 * S,
                || now,
                || None,
            ) else {
                panic!("{result:?}: the 202 is followed");
            };
            assert_eq!(
                wait.target.clone().map(|f| f.target),
                Some(Target::SameOrigin(ops.clone()))
            );
            assert!(!wait.fetch);
            let location = wait.result.clone();
            assert_eq!(
                location.is_some(),
                result == FinalResult::Location,
                "{result:?}: the first Location is kept only for \"location\""
            );
            let polled = Progress {
                request: Some(&request),
                target: Some(&ops),
                polls: 1,
                started: Some(now - S),
                fetching: false,
                result: location.as_deref(),
                status_only: false,
            };
            let got = step(
                &answer(StatusClass::Success, &done),
                &polled,
                &settings,
                60 * S,
                || now,
                || None,
            );
            match (expected, got) {
                (None, Step::Return) => {}
                (Some(url), Step::Wait(fetch)) => {
                    assert_eq!(
                        fetch.target.map(|f| f.target),
                        Some(Target::SameOrigin(uri(url))),
                        "{result:?}"
                    );
                    assert!(fetch.fetch);
                    assert_eq!(
                        (fetch.until, fetch.delay, fetch.poll),
                        (now, Duration::ZERO, 2)
                    );
                    // The fetch's answer, whatever it is, ends the call.
                    let fetching = Progress {
                        fetching: true,
                        polls: 2,
                        ..polled
                    };
                    for class in [StatusClass::Success, StatusClass::Pollable] {
                        assert_eq!(
                            step(
                                &answer(class, &accepted),
                                &fetching,
                                &settings,
                                60 * S,
                                || now,
                                || None
                            ),
                            Step::Return
                        );
                    }
                }
                (expected, got) => panic!("{result:?}: expected {expected:?}, got {got:?}"),
            }
            // The same from a status body that says it succeeded.
            let mut by_body = settings.clone();
            by_body.completion = Some(azure());
            let got = after_body(
                Verdict::Succeeded,
                b"{}",
                &polled,
                &by_body,
                60 * S,
                || now,
                || None,
            );
            assert_eq!(
                matches!(got, Step::Wait(ref w) if w.fetch),
                expected.is_some(),
                "{result:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_hostile_result_location_refuses_the_operation() {
        let mut settings = settings(OnAccepted::Succeed);
        settings.result = FinalResult::Location;
        let request = uri("https://api.example/v3/vm");
        let hostile = headers(&[
            ("operation-location", "/ops/1"),
            ("location", "https://evil.example/steal"),
        ]);
        let first = Progress {
            request: Some(&request),
            ..Progress::default()
        };
        let answer = Answered {
            class: StatusClass::Pollable,
            status: StatusCode::ACCEPTED,
            headers: &hostile,
        };
        let got = step(&answer, &first, &settings, 60 * S, Instant::now, || None);
        assert!(
            matches!(got, Step::Refuse(Refused::StatusUrl(_))),
            "{got:?}"
        );
    }

    #[test]
    fn a_followed_answer_starts_the_clock_and_keeps_an_earlier_start() {
        let settings = settings(OnAccepted::Succeed);
        let headers = headers(&[("location", "/ops/1")]);
        let request = uri("https://api.example/v3/data");
        let now = Instant::now() + 3600 * S;
        let answer = Answered {
            class: StatusClass::Pollable,
            status: status_of(StatusClass::Pollable),
            headers: &headers,
        };
        for (started, expected) in [(None, now), (Some(now - 3 * S), now - 3 * S)] {
            let progress = Progress {
                request: Some(&request),
                started,
                ..Progress::default()
            };
            let Step::Wait(wait) = step(&answer, &progress, &settings, 60 * S, || now, || None)
            else {
                panic!("not followed");
            };
            assert_eq!(wait.started, expected);
        }
    }

    #[test]
    fn errors_say_why_and_carry_the_counts() {
        let settings = settings(OnAccepted::Error);
        let counts = Counts {
            attempts: 2,
            requests: 7,
        };
        let error = Refused::NoStatusUrl.error(&settings, counts, 0);
        assert_eq!(error.kind(), ErrorKind::PollRefused);
        assert_eq!(
            (error.attempts(), error.polls(), error.requests()),
            (2, 0, 7)
        );
        assert!(
            error
                .to_string()
                .contains("looked in: operation-location, location"),
            "{error}"
        );
        let error = Refused::StatusUrl(Refusal::Userinfo).error(&settings, counts, 3);
        assert_eq!(error.polls(), 3);
        assert!(error.to_string().contains("userinfo"), "{error}");
        let ending = Ending {
            kind: ErrorKind::PollTimeout,
            polls: 4,
            elapsed: Duration::from_millis(12_345),
        };
        let error = ending.error(counts);
        assert_eq!(error.kind(), ErrorKind::PollTimeout);
        assert_eq!(error.polls(), 4);
        assert!(
            error.to_string().contains("after 4 polls and 12345ms"),
            "{error}"
        );
    }

    #[test]
    fn counts_take_the_first_attempts_and_add_every_request() {
        let first = Counts::default().after(3, false);
        assert_eq!(
            first,
            Counts {
                attempts: 3,
                requests: 3
            }
        );
        let polled = first.after(2, true);
        assert_eq!(
            polled,
            Counts {
                attempts: 3,
                requests: 5
            }
        );
        let full = Counts {
            attempts: 1,
            requests: u32::MAX,
        }
        .after(1, true);
        assert_eq!(full.requests, u32::MAX);
    }
}
