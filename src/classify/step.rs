//! What the classify layer does with an answer: pure steps.
//!
//! Three decisions, each a function of what the attempt has seen, of the
//! policy and (for the timeout) of the time: what a response head means
//! ([`head`]), what ends an attempt that waits ([`timeout`]), and how much
//! of an error body to keep and what error it makes ([`ErrorBody`]). They
//! are tested as tables, without a runtime or a server; the future
//! (`future.rs`) polls the client and the body, runs the steps and acts on
//! what they return.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use http_body::Frame;
use tokio::time::Instant;

use super::wait::server_wait;
use super::{ErrorBodySettings, parse_error_body};
use crate::deadline::{Timeouts, call_deadline};
use crate::error::{ApiError, Error, ErrorKind, ResponseFailure};
use crate::status::{Classifier, Decision, RuleInput, StatusClass};

/// What follows a response head.
#[derive(Debug)]
pub(crate) enum Head {
    /// Success or pollable (the class, decided here once): the response
    /// goes up untouched, its body still streaming.
    Pass(StatusClass),
    /// A failure whose body is not to be read (`error_body.max_bytes = 0`).
    Fail(Error),
    /// A failure whose body is read, up to the cap, before it becomes an
    /// error; or a success whose body a rule reads for error codes, which
    /// may make it one.
    ReadBody(ErrorBody),
}

/// Decides what a response head means.
///
/// `ended` says whether the body has announced its end; it is asked only
/// when the cap leaves no room to read any of it. A head that passes reads
/// nothing else and allocates nothing.
#[inline]
pub(crate) fn head(
    status: StatusCode,
    headers: &HeaderMap,
    classifier: &Classifier,
    settings: &ErrorBodySettings,
    ended: impl FnOnce() -> bool,
) -> Head {
    let decision = if classifier.rules().is_empty() {
        Decision::new(classifier.classify(status), None)
    } else {
        let decision = classifier.decide(&RuleInput::new(status, headers));
        if decision.class() == StatusClass::Success
            && classifier.reads_success(status)
            && settings.max_bytes() > 0
        {
            return Head::ReadBody(ErrorBody::new(decision, settings.max_bytes()));
        }
        decision
    };
    if decision.class().passes_through() {
        return Head::Pass(decision.class());
    }
    failed(decision, status, headers, classifier, settings, ended)
}

/// A head that fails. Kept out of line so that `head` inlines into the
/// future's `poll` as a few instructions: 37 fewer per call on the ready
/// path than when it is all one function (STACK_LOOP=classify).
#[inline(never)]
fn failed(
    decision: Decision,
    status: StatusCode,
    headers: &HeaderMap,
    classifier: &Classifier,
    settings: &ErrorBodySettings,
    ended: impl FnOnce() -> bool,
) -> Head {
    let mut body = ErrorBody::new(decision, settings.max_bytes());
    match body.next(ended) {
        Read::More => Head::ReadBody(body),
        Read::Done => Head::Fail(body.failure(status, headers, classifier, settings)),
    }
}

/// When a waiting attempt ends, and what ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeout {
    pub(crate) at: Instant,
    pub(crate) by: Limit,
}

/// What ends an attempt that gets no answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Its own `timeouts.attempt`.
    Attempt,
    /// The end of the whole call, which comes first or at the same time.
    Call,
}

/// Decides when an attempt that starts waiting at `now` ends: at its own
/// timeout, or at the call's end (`deadline` when the retry layer set one,
/// else `timeouts.total` from `now`: a first attempt starts the call),
/// whichever comes first; a tie goes to the call.
pub(crate) fn timeout(now: Instant, timeouts: &Timeouts, deadline: Option<Instant>) -> Timeout {
    let attempt_end = now + timeouts.attempt();
    let call_end = call_deadline(now, timeouts.total(), deadline);
    if call_end <= attempt_end {
        Timeout {
            at: call_end,
            by: Limit::Call,
        }
    } else {
        Timeout {
            at: attempt_end,
            by: Limit::Attempt,
        }
    }
}

impl Limit {
    /// The attempt's error: `timeout` (with the attempt timeout that ran
    /// out) or `deadline_exceeded`.
    pub(crate) fn error(self, attempt: std::time::Duration) -> Error {
        match self {
            Limit::Attempt => Error::attempt_timed_out(attempt),
            Limit::Call => Error::new(ErrorKind::DeadlineExceeded),
        }
    }
}

/// An error body as far as it was read: the reader's decisions.
#[derive(Debug)]
pub(crate) struct ErrorBody {
    /// The class of the head; rules that read error codes may change it
    /// once the body is read.
    decision: Decision,
    /// `error_body.max_bytes`.
    cap: usize,
    buf: BytesMut,
    truncated: bool,
}

/// Whether to read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Poll the body's next frame.
    More,
    /// The body is read as far as it will be: make the error.
    Done,
}

impl ErrorBody {
    pub(crate) fn new(decision: Decision, cap: usize) -> Self {
        ErrorBody {
            decision,
            cap,
            buf: BytesMut::new(),
            truncated: false,
        }
    }

    /// Before the next frame: whether there is room for it. At the cap,
    /// reading on to learn whether more follows would read past it, so a
    /// body that has not announced its end (`ended`, asked only there)
    /// counts as cut.
    pub(crate) fn next(&mut self, ended: impl FnOnce() -> bool) -> Read {
        if self.buf.len() < self.cap {
            return Read::More;
        }
        self.truncated = !ended();
        Read::Done
    }

    /// Takes what the body's `poll_frame` returned.
    pub(crate) fn take<D: Buf, E>(&mut self, frame: Option<Result<Frame<D>, E>>) -> Read {
        match frame {
            None => Read::Done,
            // The status already says what happened; a body that broke off
            // is kept as far as it came.
            Some(Err(_)) => {
                self.truncated = true;
                Read::Done
            }
            Some(Ok(frame)) => {
                let Ok(mut data) = frame.into_data() else {
                    return Read::More;
                };
                let room = self.cap.saturating_sub(self.buf.len());
                if data.remaining() > room {
                    // A success's bytes go back to the caller: none is
                    // dropped, the frame that crosses the cap is kept whole.
                    if self.decision.class().passes_through() {
                        self.buf.put(data);
                    } else {
                        self.buf.put((&mut data).take(room));
                    }
                    self.truncated = true;
                    return Read::Done;
                }
                self.buf.put(data);
                Read::More
            }
        }
    }

    /// The error the response makes: the API errors parsed from the body,
    /// the class decided again with their codes when a rule reads them, the
    /// body as read and the wait the answer asks for.
    pub(crate) fn failure(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        classifier: &Classifier,
        settings: &ErrorBodySettings,
    ) -> Error {
        let (decision, body, api_errors) = self.decide(status, headers, classifier, settings);
        // A failure's codes choose among failures only.
        let decision = if decision.class().passes_through() {
            self.decision
        } else {
            decision
        };
        self.error(
            decision,
            status,
            headers,
            classifier,
            settings,
            (body, api_errors),
        )
    }

    /// What the body read makes of a success a rule asked to read: its
    /// bytes when it stays one, else the error its codes make it.
    pub(crate) fn conclude(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        classifier: &Classifier,
        settings: &ErrorBodySettings,
    ) -> Result<Bytes, Error> {
        let (decision, body, api_errors) = self.decide(status, headers, classifier, settings);
        if decision.class().passes_through() {
            return Ok(body);
        }
        Err(self.error(
            decision,
            status,
            headers,
            classifier,
            settings,
            (body, api_errors),
        ))
    }

    /// The body as read, its API errors, and the class decided again with
    /// their codes when a rule reads them.
    fn decide(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        classifier: &Classifier,
        settings: &ErrorBodySettings,
    ) -> (Decision, Bytes, Vec<ApiError>) {
        let body: Bytes = std::mem::take(&mut self.buf).freeze();
        let api_errors = parse_error_body(settings, headers.get(header::CONTENT_TYPE), &body);
        let mut decision = self.decision;
        if classifier.reads_codes() {
            let codes: Vec<&str> = api_errors.iter().filter_map(ApiError::code).collect();
            let messages: Vec<&str> = api_errors.iter().filter_map(ApiError::message).collect();
            let input = RuleInput::new(status, headers)
                .with_codes(&codes)
                .with_messages(&messages);
            decision = classifier.decide(&input);
        }
        (decision, body, api_errors)
    }

    /// The error of an answer of class `decision`.
    fn error(
        &self,
        decision: Decision,
        status: StatusCode,
        headers: &HeaderMap,
        classifier: &Classifier,
        settings: &ErrorBodySettings,
        (body, api_errors): (Bytes, Vec<ApiError>),
    ) -> Error {
        let wait = server_wait(headers, &body, settings);
        let failure = ResponseFailure {
            api_errors,
            body,
            body_truncated: self.truncated,
            retry_after: wait.map(|(wait, _)| wait),
            retry_after_source: wait.map(|(_, source)| source),
            rule: decision
                .rule()
                .and_then(|i| classifier.rule_label(i))
                .cloned(),
        };
        Error::from_response(status, decision.class(), failure)
    }

    /// Whether the body read was cut at the cap (or broke off): the body
    /// yields the rest.
    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::classify::{ClassifySettings, Rule, StatusClass};

    const MS: Duration = Duration::from_millis(1);

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

    /// 200 success, 202 pollable, 404 terminal, 500 retryable, 503
    /// unsupported; with `rules`, a 409 whose header says so is retryable and
    /// a 400 whose body carries `Busy` is retryable.
    fn settings(rules: bool, cap: usize) -> ClassifySettings {
        let mut builder = ClassifySettings::builder()
            .success([200])
            .pollable([202])
            .terminal([400, 404, 409])
            .retryable([500])
            .unsupported([503])
            .error_body(ErrorBodySettings::new(cap).unwrap());
        if rules {
            builder = builder
                .rule(
                    Rule::new(StatusClass::Retryable)
                        .named("busy")
                        .status([400])
                        .code(["Busy"]),
                )
                .rule(
                    Rule::new(StatusClass::Retryable)
                        .status([409])
                        .header("x-retry", "yes"),
                )
                .rule(
                    Rule::new(StatusClass::Terminal)
                        .status([200])
                        .code(["Failed"]),
                );
        }
        builder.build().unwrap()
    }

    #[derive(Debug, PartialEq)]
    enum Expect {
        Pass,
        /// The error's kind and whether its (empty) body counts as cut.
        Fail(ErrorKind, bool),
        /// The head's class, and the rule that decided it.
        ReadBody(StatusClass, Option<usize>),
    }

    #[test]
    fn head_passes_fails_or_reads_the_body() {
        use ErrorKind::{RetriesExhausted, Terminal as TerminalKind};
        use StatusClass::{Retryable, Terminal, Unsupported};
        // name, rules, status, headers, cap, body ended at once, expect
        type Row = (
            &'static str,
            bool,
            u16,
            &'static [(&'static str, &'static str)],
            usize,
            bool,
            Expect,
        );
        let rows: &[Row] = &[
            ("success", false, 200, &[], 64, false, Expect::Pass),
            ("pollable", false, 202, &[], 64, false, Expect::Pass),
            ("success, no cap", false, 200, &[], 0, false, Expect::Pass),
            (
                "terminal",
                false,
                404,
                &[],
                64,
                false,
                Expect::ReadBody(Terminal, None),
            ),
            (
                "retryable",
                false,
                500,
                &[],
                64,
                true,
                Expect::ReadBody(Retryable, None),
            ),
            (
                "unsupported",
                false,
                503,
                &[],
                1,
                false,
                Expect::ReadBody(Unsupported, None),
            ),
            (
                "a header rule decides the head",
                true,
                409,
                &[("x-retry", "yes")],
                64,
                false,
                Expect::ReadBody(Retryable, Some(1)),
            ),
            (
                "a code rule waits for the body",
                true,
                400,
                &[],
                64,
                false,
                Expect::ReadBody(Terminal, None),
            ),
            (
                "a success a code rule names is read",
                true,
                200,
                &[],
                64,
                false,
                Expect::ReadBody(StatusClass::Success, None),
            ),
            (
                "a success a code rule names, no cap: not read",
                true,
                200,
                &[],
                0,
                false,
                Expect::Pass,
            ),
            (
                "a pollable answer is never read",
                true,
                202,
                &[],
                64,
                false,
                Expect::Pass,
            ),
            (
                "no room: a body not ended counts as cut",
                false,
                500,
                &[],
                0,
                false,
                Expect::Fail(RetriesExhausted, true),
            ),
            (
                "no room: an ended body is whole",
                false,
                404,
                &[],
                0,
                true,
                Expect::Fail(TerminalKind, false),
            ),
            (
                "no room, rules: decided on again with no codes",
                true,
                409,
                &[("x-retry", "yes")],
                0,
                true,
                Expect::Fail(RetriesExhausted, false),
            ),
        ];
        for (name, rules, status, pairs, cap, ended, expect) in rows {
            let settings = settings(*rules, *cap);
            let mut asked = false;
            let got = head(
                StatusCode::from_u16(*status).unwrap(),
                &headers(pairs),
                settings.classifier(),
                settings.error_body(),
                || {
                    asked = true;
                    *ended
                },
            );
            let got = match got {
                Head::Pass(_) => Expect::Pass,
                Head::Fail(error) => {
                    assert_eq!(error.status().map(|s| s.as_u16()), Some(*status), "{name}");
                    assert!(error.body().is_empty(), "{name}");
                    Expect::Fail(error.kind(), error.body_truncated())
                }
                Head::ReadBody(body) => {
                    assert_eq!(body.cap, *cap, "{name}");
                    assert!(body.buf.is_empty() && !body.truncated, "{name}");
                    Expect::ReadBody(body.decision.class(), body.decision.rule())
                }
            };
            assert_eq!(&got, expect, "{name}");
            // The body's end is asked only when no byte of it may be read.
            assert_eq!(asked, matches!(expect, Expect::Fail(..)), "{name}");
        }
    }

    #[test]
    fn timeout_ends_the_attempt_at_whichever_comes_first() {
        // name, attempt ms, total ms, the call's deadline in ms from now,
        // expected end in ms from now, and what ends it
        type Row = (&'static str, u32, u32, Option<u32>, u32, Limit);
        let rows: &[Row] = &[
            ("attempt first", 100, 1_000, None, 100, Limit::Attempt),
            (
                "total first: a first attempt",
                500,
                200,
                None,
                200,
                Limit::Call,
            ),
            ("a tie goes to the call", 300, 300, None, 300, Limit::Call),
            ("deadline first", 500, 10_000, Some(50), 50, Limit::Call),
            (
                "deadline later",
                500,
                10_000,
                Some(900),
                500,
                Limit::Attempt,
            ),
            ("deadline ties", 500, 10_000, Some(500), 500, Limit::Call),
            (
                "own total before the deadline",
                500,
                200,
                Some(900),
                200,
                Limit::Call,
            ),
            (
                "deadline already past",
                500,
                10_000,
                Some(0),
                0,
                Limit::Call,
            ),
        ];
        let now = Instant::now();
        for (name, attempt, total, deadline, at, by) in rows {
            let timeouts = Timeouts::new(MS * *attempt, MS * *total).unwrap();
            let got = timeout(now, &timeouts, deadline.map(|d| now + MS * d));
            assert_eq!(
                got,
                Timeout {
                    at: now + MS * *at,
                    by: *by
                },
                "{name}"
            );
        }
    }

    #[test]
    fn each_limit_makes_its_error() {
        let error = Limit::Attempt.error(250 * MS);
        assert_eq!(error.kind(), ErrorKind::Timeout);
        let source = std::error::Error::source(&error)
            .and_then(|s| s.downcast_ref::<crate::error::AttemptTimedOut>())
            .expect("an attempt timeout is the source");
        assert_eq!(source.after(), 250 * MS);
        assert_eq!(
            Limit::Call.error(250 * MS).kind(),
            ErrorKind::DeadlineExceeded
        );
    }

    /// What a body's `poll_frame` returns, in a row.
    #[derive(Clone, Copy)]
    enum F {
        Data(&'static str),
        Trailers,
        Broken,
        End,
    }

    /// Runs the reader's loop over `frames`: what was kept, whether it was
    /// cut, and how many frames were taken.
    fn read(cap: usize, frames: &[F], ended: bool) -> (String, bool, usize) {
        let mut body = ErrorBody::new(Decision::new(StatusClass::Terminal, None), cap);
        let mut taken = 0;
        while body.next(|| ended) == Read::More {
            let frame: Option<Result<Frame<Bytes>, &str>> = match frames[taken] {
                F::Data(text) => Some(Ok(Frame::data(Bytes::from_static(text.as_bytes())))),
                F::Trailers => Some(Ok(Frame::trailers(HeaderMap::new()))),
                F::Broken => Some(Err("connection reset")),
                F::End => None,
            };
            taken += 1;
            if body.take(frame) == Read::Done {
                break;
            }
        }
        (
            String::from_utf8(body.buf.to_vec()).unwrap(),
            body.truncated,
            taken,
        )
    }

    #[test]
    fn body_reads_up_to_the_cap_and_says_whether_it_was_cut() {
        use F::*;
        // name, cap, frames, the body's end announced at the cap, expected
        // (kept, cut, frames taken)
        type Row = (
            &'static str,
            usize,
            &'static [F],
            bool,
            (&'static str, bool, usize),
        );
        let rows: &[Row] = &[
            (
                "whole",
                8,
                &[Data("abc"), Data("de"), End],
                false,
                ("abcde", false, 3),
            ),
            ("empty", 8, &[End], false, ("", false, 1)),
            (
                "trailers are skipped",
                8,
                &[Data("ab"), Trailers, End],
                false,
                ("ab", false, 3),
            ),
            (
                "a frame past the cap is cut there",
                4,
                &[Data("abc"), Data("defg")],
                false,
                ("abcd", true, 2),
            ),
            (
                "one frame past the cap",
                2,
                &[Data("abc")],
                false,
                ("ab", true, 1),
            ),
            (
                "exactly the cap, end not announced: cut, no frame read past it",
                5,
                &[Data("abc"), Data("de"), End],
                false,
                ("abcde", true, 2),
            ),
            (
                "exactly the cap, end announced: whole",
                5,
                &[Data("abc"), Data("de"), End],
                true,
                ("abcde", false, 2),
            ),
            (
                "broken off: kept as far as it came",
                8,
                &[Data("abc"), Broken],
                false,
                ("abc", true, 2),
            ),
            ("broken at once", 8, &[Broken], false, ("", true, 1)),
            (
                "no room: nothing read",
                0,
                &[Data("abc")],
                false,
                ("", true, 0),
            ),
            ("no room, ended", 0, &[End], true, ("", false, 0)),
        ];
        for (name, cap, frames, ended, (kept, cut, taken)) in rows {
            let got = read(*cap, frames, *ended);
            assert_eq!(got, (kept.to_string(), *cut, *taken), "{name}");
        }
    }

    #[test]
    fn failure_carries_the_body_its_errors_and_the_class_the_codes_decide() {
        // name, status, body, cut, expected kind, codes, rule, Retry-After
        type Row = (
            &'static str,
            u16,
            &'static str,
            bool,
            ErrorKind,
            &'static [&'static str],
            Option<&'static str>,
        );
        let rows: &[Row] = &[
            (
                "terminal with its errors",
                404,
                r#"[{"code":"NotFound"},{"code":"Gone"}]"#,
                false,
                ErrorKind::Terminal,
                &["NotFound", "Gone"],
                None,
            ),
            (
                "a code rule takes over",
                400,
                r#"[{"code":"Busy"}]"#,
                false,
                ErrorKind::RetriesExhausted,
                &["Busy"],
                Some("busy"),
            ),
            (
                "other codes leave the head's class",
                400,
                r#"[{"code":"Invalid"}]"#,
                false,
                ErrorKind::Terminal,
                &["Invalid"],
                None,
            ),
            (
                "a cut array keeps its complete errors",
                400,
                r#"[{"code":"Busy"},{"code":"Inv"#,
                true,
                ErrorKind::RetriesExhausted,
                &["Busy"],
                Some("busy"),
            ),
            (
                "not json",
                500,
                "oops",
                false,
                ErrorKind::RetriesExhausted,
                &[],
                None,
            ),
        ];
        let settings = settings(true, 64);
        let headers = headers(&[("retry-after", "7"), ("content-type", "application/json")]);
        for (name, status, text, cut, kind, codes, rule) in rows {
            let status = StatusCode::from_u16(*status).unwrap();
            let mut body = ErrorBody::new(
                settings
                    .classifier()
                    .decide(&RuleInput::new(status, &headers)),
                64,
            );
            body.buf.put(text.as_bytes());
            body.truncated = *cut;
            let error = body.failure(
                status,
                &headers,
                settings.classifier(),
                settings.error_body(),
            );
            assert_eq!(error.kind(), *kind, "{name}");
            assert_eq!(error.status(), Some(status), "{name}");
            assert_eq!(error.error_codes().collect::<Vec<_>>(), *codes, "{name}");
            assert_eq!(error.rule(), *rule, "{name}");
            assert_eq!(error.body().as_ref(), text.as_bytes(), "{name}");
            assert_eq!(error.body_truncated(), *cut, "{name}");
            assert_eq!(error.retry_after(), Some(Duration::from_secs(7)), "{name}");
        }
    }
}
