//! The one error type of a call through rebound.
//!
//! Every layer of the stack fails with [`Error`]; there are no per-layer error
//! enums whose shape would change when layers are reordered. What went wrong is
//! [`Error::kind`]; everything known about the failed response travels with it:
//! the status, the API errors parsed from the body, the capped raw body, the
//! `Retry-After` the server asked for, and how many attempts and polls were made.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use crate::retry_after::WaitSource;
use crate::status::StatusClass;

/// A boxed error, as produced by the inner client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure ended a call: one variant for each failure outcome.
///
/// The names returned by [`ErrorKind::as_str`] are the outcome names printed by
/// the `rebound` CLI and recorded in the `rebound.outcome` span field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A terminal status (a 4xx the policy lists as terminal); never retried.
    Terminal,
    /// A status the server uses to say the feature does not exist (503 in the
    /// `connio` preset); never retried.
    Unsupported,
    /// Retryable failures until the attempts allowed by the policy ran out.
    RetriesExhausted,
    /// A retry was due but the retry budget refused it.
    BudgetExhausted,
    /// The circuit breaker for this host is open; the request was not sent.
    CircuitOpen,
    /// Adaptive throttling rejected the request here, since the host has
    /// been refusing most requests; it was not sent.
    Throttled,
    /// The rate limit (`[rate_limit]`) had no turn for the request within
    /// what the call may wait, or waiting is off; it was not sent.
    RateLimited,
    /// The concurrency limit (`[concurrency]`) had no free slot for the
    /// request, and none came within its queue's wait; it was not sent.
    Overloaded,
    /// The total deadline passed, or the next wait would pass it.
    DeadlineExceeded,
    /// A `202 Accepted` operation did not finish within the polling limits.
    PollTimeout,
    /// The status URL of a `202 Accepted` operation was refused (another origin,
    /// an https to http downgrade, a malformed URL).
    PollRefused,
    /// A connect, I/O, TLS or protocol failure that could not be retried
    /// further. A certificate the client refused (unknown issuer, expired,
    /// wrong name, bad signature) is one, and is never retried.
    Transport,
    /// An attempt got no answer within `timeouts.attempt` and could not be
    /// retried further. Whether the server processed it is unknown.
    Timeout,
}

impl ErrorKind {
    /// All kinds, in the order of the outcome table.
    ///
    /// A slice, so that adding a kind (the enum is `#[non_exhaustive]`) does
    /// not change this constant's type.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Terminal,
        ErrorKind::Unsupported,
        ErrorKind::RetriesExhausted,
        ErrorKind::BudgetExhausted,
        ErrorKind::CircuitOpen,
        ErrorKind::Throttled,
        ErrorKind::RateLimited,
        ErrorKind::Overloaded,
        ErrorKind::DeadlineExceeded,
        ErrorKind::PollTimeout,
        ErrorKind::PollRefused,
        ErrorKind::Transport,
        ErrorKind::Timeout,
    ];

    /// The outcome name of this kind, such as `"retries_exhausted"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Terminal => "terminal",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::RetriesExhausted => "retries_exhausted",
            ErrorKind::BudgetExhausted => "budget_exhausted",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Throttled => "throttled",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::PollTimeout => "poll_timeout",
            ErrorKind::PollRefused => "poll_refused",
            ErrorKind::Transport => "transport",
            ErrorKind::Timeout => "timeout",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One error reported by the API in a response body.
///
/// The seed API sends a JSON array of objects with `code`, `cause`, `message`
/// and `moreInfoUrl`; other APIs send RFC 9457 problem details or their own
/// shapes, which [`ErrorBodySettings`](crate::classify::ErrorBodySettings)
/// maps onto the same four fields. Each field is optional here: a server that
/// leaves one out, or sends it with the wrong type, still yields the fields it
/// got right.
///
/// A problem detail keeps the whole object it was read from, for the members
/// the four fields leave out (`status`, `instance`, extensions): see
/// [`members`](ApiError::members). `Debug` prints how many members there are,
/// not their values, so that logging an error does not dump a large body.
///
/// ```
/// use tower_rebound::ApiError;
///
/// let mut members = serde_json::Map::new();
/// members.insert("balance".into(), serde_json::json!(30));
/// let error = ApiError::new(Some("out-of-credit".into()), None, None, None)
///     .with_members(members);
/// assert_eq!(error.code(), Some("out-of-credit"));
/// assert_eq!(error.members().unwrap()["balance"], 30);
/// assert!(format!("{error:?}").contains("members: 1"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    code: Option<String>,
    cause: Option<String>,
    message: Option<String>,
    more_info_url: Option<String>,
    // Boxed: most errors have none, and the four fields stay the bulk of
    // the size.
    members: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl ApiError {
    /// Builds an API error from its four fields.
    pub fn new(
        code: Option<String>,
        cause: Option<String>,
        message: Option<String>,
        more_info_url: Option<String>,
    ) -> Self {
        ApiError {
            code,
            cause,
            message,
            more_info_url,
            members: None,
        }
    }

    /// The same error, keeping `members`: the error object as the server sent
    /// it.
    pub fn with_members(mut self, members: serde_json::Map<String, serde_json::Value>) -> Self {
        self.members = Some(Box::new(members));
        self
    }

    /// The machine-readable error code, such as `ResourceNotFound`.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The explanation meant for the developer.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// The explanation meant for an end user.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// A link to the documentation of this error (`moreInfoUrl`).
    pub fn more_info_url(&self) -> Option<&str> {
        self.more_info_url.as_deref()
    }

    /// The error object as received, every member included, when the error
    /// was read from a problem detail (RFC 9457): `status`, `instance` and
    /// the API's extension members are here. `None` for the other formats.
    pub fn members(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.members.as_deref()
    }
}

impl fmt::Debug for ApiError {
    // The members are counted, not printed: they are the server's text and
    // can be as large as the body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ApiError");
        d.field("code", &self.code)
            .field("cause", &self.cause)
            .field("message", &self.message)
            .field("more_info_url", &self.more_info_url);
        if let Some(members) = &self.members {
            d.field("members", &members.len());
        }
        d.finish()
    }
}

/// The error of a call through rebound.
///
/// Cheap to move (one pointer); the details live behind a box so that
/// `Result<Response, Error>` stays small on the success path.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    class: Option<StatusClass>,
    status: Option<StatusCode>,
    api_errors: Vec<ApiError>,
    body: Bytes,
    body_truncated: bool,
    retry_after: Option<Duration>,
    retry_after_source: Option<WaitSource>,
    attempts: u32,
    polls: u32,
    /// Every request sent, when polling sent more than `attempts`.
    requests: Option<u32>,
    detail: Option<Cow<'static, str>>,
    delivery: Delivery,
    /// The client refused the server's certificate.
    certificate: bool,
    refused: Option<RetryRefusal>,
    source: Option<BoxError>,
    rule: Option<Arc<str>>,
}

/// The parts of an error response that classify extracts.
#[derive(Debug, Default)]
pub(crate) struct ResponseFailure {
    pub(crate) api_errors: Vec<ApiError>,
    pub(crate) body: Bytes,
    pub(crate) body_truncated: bool,
    pub(crate) retry_after: Option<Duration>,
    /// Where `retry_after` came from.
    pub(crate) retry_after_source: Option<WaitSource>,
    /// The rule that decided the class (its label), or `None` for the table.
    pub(crate) rule: Option<Arc<str>>,
}

impl Error {
    fn from_inner(inner: Inner) -> Self {
        Error {
            inner: Box::new(inner),
        }
    }

    fn bare(kind: ErrorKind) -> Inner {
        Inner {
            kind,
            class: None,
            status: None,
            api_errors: Vec::new(),
            body: Bytes::new(),
            body_truncated: false,
            retry_after: None,
            retry_after_source: None,
            attempts: 1,
            polls: 0,
            requests: None,
            detail: None,
            delivery: Delivery::Unknown,
            certificate: false,
            refused: None,
            source: None,
            rule: None,
        }
    }

    /// An error of `kind` with nothing else known yet.
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error::from_inner(Error::bare(kind))
    }

    /// An error for a response whose status the policy does not treat as a
    /// success. The kind follows from the class.
    pub(crate) fn from_response(
        status: StatusCode,
        class: StatusClass,
        failure: ResponseFailure,
    ) -> Self {
        let kind = match class {
            StatusClass::Unsupported => ErrorKind::Unsupported,
            StatusClass::Retryable => ErrorKind::RetriesExhausted,
            // Success and pollable responses never become errors; should a
            // caller pass one anyway, terminal is the safe reading: not retried.
            StatusClass::Terminal | StatusClass::Success | StatusClass::Pollable => {
                ErrorKind::Terminal
            }
        };
        let mut inner = Error::bare(kind);
        inner.class = Some(class);
        inner.status = Some(status);
        inner.api_errors = failure.api_errors;
        inner.body = failure.body;
        inner.body_truncated = failure.body_truncated;
        inner.retry_after = failure.retry_after;
        inner.retry_after_source = failure.retry_after_source;
        inner.rule = failure.rule;
        Error::from_inner(inner)
    }

    /// A transport failure of the inner client, keeping its error as the source.
    pub(crate) fn transport(source: BoxError) -> Self {
        let mut inner = Error::bare(ErrorKind::Transport);
        inner.delivery = delivery(&*source);
        inner.certificate = certificate_refused(&*source);
        inner.source = Some(redact(source));
        Error::from_inner(inner)
    }

    /// A call the circuit breaker rejected without sending it; `retry_in` is
    /// the time until it lets a probe through, when known.
    pub(crate) fn circuit_open(retry_in: Option<Duration>) -> Self {
        let mut inner = Error::bare(ErrorKind::CircuitOpen);
        inner.attempts = 0;
        inner.retry_after = retry_in;
        Error::from_inner(inner)
    }

    /// An attempt the rate limit did not let through; `retry_in` is the time
    /// until its next turn, when known.
    pub(crate) fn rate_limited(retry_in: Option<Duration>) -> Self {
        let mut inner = Error::bare(ErrorKind::RateLimited);
        inner.attempts = 0;
        inner.retry_after = retry_in;
        Error::from_inner(inner)
    }

    /// An attempt the concurrency limit did not let through, with why.
    pub(crate) fn overloaded(detail: String) -> Self {
        let mut inner = Error::bare(ErrorKind::Overloaded);
        inner.attempts = 0;
        Error::from_inner(inner).with_detail(detail)
    }

    /// An attempt that did not finish within `timeouts.attempt`: nobody
    /// knows whether the server got the request.
    pub(crate) fn attempt_timed_out(after: Duration) -> Self {
        let mut inner = Error::bare(ErrorKind::Timeout);
        inner.detail = Some(Cow::Owned(format!(
            "no answer within {} (timeouts.attempt)",
            Millis(after)
        )));
        inner.source = Some(Box::new(AttemptTimedOut { after }));
        Error::from_inner(inner)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The class of the last response, when a response was received.
    pub fn class(&self) -> Option<StatusClass> {
        self.inner.class
    }

    /// The rule of the policy's status table that decided the class of the
    /// last response: its name, or `#` and its index. `None` when the status
    /// table decided, or no response was received.
    pub fn rule(&self) -> Option<&str> {
        self.inner.rule.as_deref()
    }

    /// The HTTP status of the last response, when one was received.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The errors the API reported in the body of the last response, in order.
    pub fn api_errors(&self) -> &[ApiError] {
        &self.inner.api_errors
    }

    /// The error codes of [`api_errors`](Self::api_errors), skipping errors
    /// without a code.
    pub fn error_codes(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner.api_errors.iter().filter_map(ApiError::code)
    }

    /// The raw body of the last error response, up to the policy's
    /// `error_body.max_bytes`.
    pub fn body(&self) -> &Bytes {
        &self.inner.body
    }

    /// Whether the body was longer than the cap and was cut (the rest was not
    /// read).
    pub fn body_truncated(&self) -> bool {
        self.inner.body_truncated
    }

    /// How long the server asked the client to wait, when it said so in a
    /// form that could be parsed: `Retry-After`, a rate-limit reset header
    /// or a delay in the error body, whichever of the policy's
    /// `error_body.wait_headers` and `error_body.retry_delay` came first
    /// ([`retry_after_source`](Self::retry_after_source) says which). For
    /// [`CircuitOpen`](ErrorKind::CircuitOpen): how long until the breaker
    /// lets a probe through.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Where [`retry_after`](Self::retry_after) came from, for a wait a
    /// response asked for; `None` when there is none, or the wait is the
    /// breaker's or the rate limit's own.
    pub fn retry_after_source(&self) -> Option<WaitSource> {
        self.inner.retry_after_source
    }

    /// How many attempts were sent for the request that failed (1 when it was
    /// not retried; 0 when an open circuit stopped the first).
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// How many times a `202 Accepted` operation was polled (a status
    /// request retried after a failure counts once here, and each time in
    /// [`requests`](Self::requests)).
    pub fn polls(&self) -> u32 {
        self.inner.polls
    }

    /// How many requests the call sent in all: its attempts, and every status
    /// request of a polled operation with its retries. What the server
    /// counted, whatever the call's shape.
    pub fn requests(&self) -> u32 {
        self.inner
            .requests
            .unwrap_or(self.inner.attempts.saturating_add(self.inner.polls))
    }

    /// Why a retry of the last failure was not sent, when one would have
    /// been (the failure was retryable): an unsafe method, the budget, the
    /// deadline, a body that cannot be replayed, a `Retry-After` too long.
    /// `None` when the attempts ran out or the failure is never retried.
    pub fn retry_refused(&self) -> Option<RetryRefusal> {
        self.inner.refused
    }

    /// Whether the client refused the server's TLS certificate (unknown
    /// issuer, expired, not valid for the name, bad signature). Such a
    /// failure is never retried and never counts against the host's
    /// breaker: sending again meets the same certificate.
    pub fn is_certificate(&self) -> bool {
        self.inner.certificate
    }

    /// Whether the policy allows this failure to be tried again: a retryable
    /// status, a transport failure (a refused certificate aside) or a
    /// timeout. Whether it *is* retried also depends on the method, the
    /// budget and the deadline.
    pub fn is_retryable(&self) -> bool {
        match self.inner.class {
            Some(class) => class == StatusClass::Retryable,
            None => match self.inner.kind {
                ErrorKind::Transport => !self.inner.certificate,
                ErrorKind::Timeout => true,
                _ => false,
            },
        }
    }

    /// Whether the connection failed before the request was sent (the server
    /// refused it), so that sending the request again cannot do it twice.
    ///
    /// An HTTP/2 request that reached an open connection is not counted
    /// here, even when the server did not process it: see
    /// [`is_unprocessed`](Self::is_unprocessed).
    pub fn is_connect(&self) -> bool {
        self.inner.delivery == Delivery::NotConnected
    }

    /// Whether the transport failure proves that the server did not process
    /// the request, so that sending it again cannot do it twice, whatever
    /// the method: the connection failed before the request was sent
    /// ([`is_connect`](Self::is_connect)), or an HTTP/2 server refused the
    /// request's stream (`REFUSED_STREAM`) or went away (`GOAWAY`) naming a
    /// last stream below it (RFC 9113, section 8.7). The HTTP/2 cases are
    /// recognised with the `rustls` feature, which brings HTTP/2.
    ///
    /// Only transport failures count: a response, even a 429, is not one
    /// (see [`is_throttling`](Self::is_throttling)).
    pub fn is_unprocessed(&self) -> bool {
        self.inner.delivery != Delivery::Unknown
    }

    /// Whether the server said it was throttling the client: status 429, or
    /// any failure whose wait is the reset of a quota it says is spent
    /// ([`retry_after_source`](Self::retry_after_source) is
    /// [`RateLimit`](WaitSource::RateLimit) or
    /// [`XRateLimitReset`](WaitSource::XRateLimitReset), which classify reads
    /// only when no units are left), such as GitHub's `403` with
    /// `x-ratelimit-remaining: 0`.
    ///
    /// Either proves the request was refused, not processed: it may be sent
    /// again whatever its method, and the circuit breaker does not count it
    /// unless `count_throttling = true`.
    pub fn is_throttling(&self) -> bool {
        self.inner.status == Some(StatusCode::TOO_MANY_REQUESTS)
            || matches!(
                self.inner.retry_after_source,
                Some(WaitSource::RateLimit | WaitSource::XRateLimitReset)
            )
    }

    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.inner.kind = kind;
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.inner.attempts = attempts;
        self
    }

    pub(crate) fn with_polls(mut self, polls: u32) -> Self {
        self.inner.polls = polls;
        self
    }

    pub(crate) fn with_requests(mut self, requests: u32) -> Self {
        self.inner.requests = Some(requests);
        self
    }

    pub(crate) fn with_refusal(mut self, refusal: RetryRefusal) -> Self {
        self.inner.refused = Some(refusal);
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    fn fmt_response_facts(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut open = false;
        if let Some(status) = self.inner.status {
            write!(f, " (status {}", status.as_u16())?;
            open = true;
        }
        let mut codes = self.error_codes().peekable();
        if codes.peek().is_some() {
            f.write_str(if open { "; codes " } else { " (codes " })?;
            open = true;
            for (i, code) in codes.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(code)?;
            }
        }
        if self.inner.attempts > 1 {
            let sep = if open { "; " } else { " (" };
            write!(f, "{sep}{} attempts", self.inner.attempts)?;
            open = true;
        }
        if self.inner.polls > 0 {
            let sep = if open { "; " } else { " (" };
            write!(f, "{sep}{} polls", self.inner.polls)?;
            open = true;
        }
        if open {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Error {
    /// What to do about it, in a few words: "fix the request; sending it
    /// again will not help" for a terminal answer, "raise timeouts.total or
    /// try again later" for a deadline. The `rebound` command prints it after
    /// the error; [`Display`](fmt::Display) says only what happened.
    ///
    /// ```
    /// use tower::{Layer, ServiceExt};
    /// use tower_rebound::{Policy, ResilienceLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client = ResilienceLayer::new(Policy::default())
    ///     .layer(tower_rebound_testkit::Answer::new(404, ""));
    /// let request = http::Request::get("http://api.example/things/7")
    ///     .body(http_body_util::Full::<bytes::Bytes>::default())
    ///     .unwrap();
    /// let error = client.oneshot(request).await.unwrap_err();
    /// assert!(error.to_string().starts_with("request rejected by the server"));
    /// assert_eq!(error.advice(), "fix the request; sending it again will not help");
    /// assert!(!error.to_string().contains(error.advice()));
    /// # }
    /// ```
    pub fn advice(&self) -> &'static str {
        match self.inner.kind {
            ErrorKind::Terminal => "fix the request; sending it again will not help",
            ErrorKind::Unsupported => "the feature is not available; do not retry",
            ErrorKind::RetriesExhausted => "the server may recover; try again later",
            ErrorKind::BudgetExhausted => "too many calls are failing; back off",
            ErrorKind::CircuitOpen => "the host is failing; wait for the breaker to probe it",
            ErrorKind::Throttled => "the host is overloaded; send less or try again later",
            ErrorKind::RateLimited => {
                "send less, or let calls wait for their turn (rate_limit.wait)"
            }
            ErrorKind::Overloaded => {
                "the host is slow to answer; send less, or let calls queue (concurrency.queue)"
            }
            ErrorKind::DeadlineExceeded => "raise timeouts.total or try again later",
            ErrorKind::PollTimeout => "the operation may still finish; check on it later",
            ErrorKind::PollRefused => "the server pointed at a location rebound will not follow",
            ErrorKind::Transport if self.inner.certificate => {
                "the server's certificate is not trusted for this host; not retried"
            }
            ErrorKind::Transport => "check that the host is reachable",
            ErrorKind::Timeout => "the server is slow; raise timeouts.attempt or try again later",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.inner.kind {
            ErrorKind::Terminal => "request rejected by the server",
            ErrorKind::Unsupported => "request not supported by the server",
            ErrorKind::RetriesExhausted => "request failed and no attempts are left",
            ErrorKind::BudgetExhausted => "request failed and the retry budget refused a retry",
            ErrorKind::CircuitOpen => "circuit open for this host, request not sent",
            ErrorKind::Throttled => {
                "throttled here: the host refuses most requests, request not sent"
            }
            ErrorKind::RateLimited => {
                "rate limited here: no turn within the limit, request not sent"
            }
            ErrorKind::Overloaded => {
                "overloaded here: no free slot within the concurrency limit, request not sent"
            }
            ErrorKind::DeadlineExceeded => "total deadline exceeded",
            ErrorKind::PollTimeout => "operation did not finish in time",
            ErrorKind::PollRefused => "status url refused",
            ErrorKind::Transport if self.inner.certificate => "certificate refused",
            ErrorKind::Transport => "transport failure",
            ErrorKind::Timeout => "attempt timed out",
        };
        f.write_str(what)?;
        self.fmt_response_facts(f)?;
        if let Some(detail) = &self.inner.detail {
            write!(f, ": {detail}")?;
        }
        match (self.inner.kind, self.inner.retry_after) {
            (ErrorKind::CircuitOpen, Some(retry_in)) => {
                write!(f, "; next probe in {}ms", retry_in.as_millis())?
            }
            (ErrorKind::RateLimited, Some(retry_in)) => {
                write!(f, "; next turn in {}ms", retry_in.as_millis())?
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    // The raw body is left out: it can be large, and it is the server's text,
    // which may echo what the client sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("tower_rebound::Error");
        d.field("kind", &self.inner.kind);
        if let Some(class) = self.inner.class {
            d.field("class", &class);
        }
        if let Some(status) = self.inner.status {
            d.field("status", &status.as_u16());
        }
        if !self.inner.api_errors.is_empty() {
            d.field("api_errors", &self.inner.api_errors);
        }
        d.field("body_len", &self.inner.body.len());
        if self.inner.body_truncated {
            d.field("body_truncated", &true);
        }
        if let Some(retry_after) = self.inner.retry_after {
            d.field("retry_after", &retry_after);
        }
        d.field("attempts", &self.inner.attempts);
        d.field("polls", &self.inner.polls);
        if let Some(requests) = self.inner.requests {
            d.field("requests", &requests);
        }
        if let Some(refused) = self.inner.refused {
            d.field("retry_refused", &refused);
        }
        if self.inner.certificate {
            d.field("certificate", &true);
        }
        if let Some(detail) = &self.inner.detail {
            d.field("detail", detail);
        }
        match self.inner.delivery {
            Delivery::Unknown => {}
            Delivery::NotConnected => {
                d.field("connect", &true);
            }
            Delivery::NotProcessed => {
                d.field("unprocessed", &true);
            }
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

/// What a transport failure proves about whether the server processed the
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Nothing: the request may have been processed.
    Unknown,
    /// The connection failed before the request was sent.
    NotConnected,
    /// The request reached an HTTP/2 connection, and the server said it did
    /// not process it.
    // Only h2's errors say so, and h2 comes with the `rustls` feature.
    #[cfg_attr(
        not(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")),
        allow(dead_code)
    )]
    NotProcessed,
}

/// What a client's error says about the request's delivery: the first cause
/// in its source chain that proves the request was not processed.
fn delivery(error: &(dyn std::error::Error + 'static)) -> Delivery {
    let mut next = Some(error);
    while let Some(error) = next {
        #[cfg(feature = "hyper")]
        if let Some(client) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            // hyper-util knows when connecting failed: nothing was sent.
            if client.is_connect() {
                return Delivery::NotConnected;
            }
        }
        #[cfg(feature = "reqwest")]
        if let Some(client) = error.downcast_ref::<reqwest::Error>() {
            if client.is_connect() {
                return Delivery::NotConnected;
            }
        }
        #[cfg(feature = "reqwest-middleware")]
        if let Some(reqwest_middleware::Error::Reqwest(client)) =
            error.downcast_ref::<reqwest_middleware::Error>()
        {
            // Its `source` skips the reqwest error it wraps: look inside.
            if client.is_connect() {
                return Delivery::NotConnected;
            }
        }
        let io = error.downcast_ref::<std::io::Error>();
        if let Some(io) = io {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Delivery::NotConnected;
            }
        }
        // hyper wraps h2's error in its own, and hyper-util wraps hyper's.
        #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
        if let Some(stream) = error.downcast_ref::<h2::Error>() {
            if h2_not_processed(stream) {
                return Delivery::NotProcessed;
            }
        }
        next = match io.and_then(std::io::Error::get_ref) {
            // An io::Error's `source` skips the error it wraps: look inside.
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    Delivery::Unknown
}

/// A duration as a policy file writes it: `300ms`, `2s`.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms >= 1000 && ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Whether the client refused the server's certificate: a rustls
/// `InvalidCertificate` anywhere in the source chain (hyper-rustls and
/// reqwest wrap it in an `io::Error`, whose `source` skips it).
fn certificate_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
    {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(tls) = error.downcast_ref::<rustls::Error>() {
                return matches!(tls, rustls::Error::InvalidCertificate(_));
            }
            let io = error.downcast_ref::<std::io::Error>();
            next = match io.and_then(std::io::Error::get_ref) {
                Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
                None => error.source(),
            };
        }
    }
    #[cfg(not(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))]
    let _ = error;
    false
}

/// Why a retry that was due is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryRefusal {
    /// The retry budget is spent.
    Budget,
    /// No time is left within `timeouts.total`.
    Deadline,
    /// The request body cannot be sent again.
    NotReplayable,
    /// The server asked to wait longer than `retry.max_retry_after`.
    RetryAfter,
    /// The method is not idempotent, the request carries no
    /// `Idempotency-Key`, and nothing proves the server did not process it:
    /// sending it again could do it twice.
    UnsafeMethod,
}

impl RetryRefusal {
    /// The name metrics (`rebound.refusal`) and the CLI's report use.
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryRefusal::Budget => "budget",
            RetryRefusal::Deadline => "deadline",
            RetryRefusal::NotReplayable => "not_replayable",
            RetryRefusal::RetryAfter => "retry_after",
            RetryRefusal::UnsafeMethod => "unsafe_method",
        }
    }
}

/// Whether h2 says the server did not process the stream (RFC 9113,
/// section 8.7): the stream was reset with `REFUSED_STREAM`, or the server's
/// `GOAWAY` named a last stream below it.
///
/// h2 0.4 does not turn the streams a `GOAWAY` left out into
/// `REFUSED_STREAM` resets. On receiving the frame it fails every stream the
/// client opened above the last stream id with the `GOAWAY`'s own error,
/// remote and carrying the frame's reason (often `NO_ERROR`), and leaves the
/// streams at or below it to finish or fail on their own: with a response,
/// a reset, or a broken pipe when the connection closes
/// (`src/proto/streams/streams.rs`, `recv_go_away`, in h2 0.4.20). The same
/// error then fails any new stream on that connection, which was never sent
/// either. So a remote `GOAWAY` error on a stream means "not processed",
/// whatever its reason; a `GOAWAY` that h2 sent itself does not.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
fn h2_not_processed(error: &h2::Error) -> bool {
    error.reason() == Some(h2::Reason::REFUSED_STREAM) || (error.is_go_away() && error.is_remote())
}

/// A client's error without the secrets its URL may carry: reqwest's errors
/// print the whole URL of the request, query string and userinfo included,
/// and a token passed in the query would reach every log that prints the
/// error. The query, userinfo and fragment are removed; the scheme, host and
/// path stay, so the error still says where the call went. hyper-util's
/// errors carry no URL.
fn redact(source: BoxError) -> BoxError {
    #[cfg(feature = "reqwest")]
    let source = match source.downcast::<reqwest::Error>() {
        Ok(error) => return Box::new(redact_reqwest(*error)),
        Err(other) => other,
    };
    #[cfg(feature = "reqwest-middleware")]
    let source = match source.downcast::<reqwest_middleware::Error>() {
        Ok(error) => {
            return match *error {
                reqwest_middleware::Error::Reqwest(error) => {
                    Box::new(reqwest_middleware::Error::Reqwest(redact_reqwest(error)))
                }
                other => Box::new(other),
            };
        }
        Err(other) => other,
    };
    source
}

/// A reqwest error whose URL keeps only its scheme, host, port and path.
#[cfg(feature = "reqwest")]
pub(crate) fn redact_reqwest(mut error: reqwest::Error) -> reqwest::Error {
    if let Some(url) = error.url_mut() {
        url.set_query(None);
        url.set_fragment(None);
        // Fails only for URLs that cannot have userinfo: nothing to remove.
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    error
}

/// The source of a [`Timeout`](ErrorKind::Timeout) error: an attempt that
/// did not finish within `timeouts.attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptTimedOut {
    after: Duration,
}

impl AttemptTimedOut {
    /// The attempt timeout that ran out.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt timed out after {:?}", self.after)
    }
}

impl std::error::Error for AttemptTimedOut {}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> Error {
        Error::from_response(
            StatusCode::NOT_FOUND,
            StatusClass::Terminal,
            ResponseFailure {
                api_errors: vec![
                    ApiError::new(Some("ResourceNotFound".into()), None, None, None),
                    ApiError::new(None, Some("no code".into()), None, None),
                    ApiError::new(Some("InvalidField".into()), None, None, None),
                ],
                body: Bytes::from_static(b"[]"),
                ..ResponseFailure::default()
            },
        )
    }

    #[test]
    fn display_is_one_lowercase_line_with_status_and_codes() {
        let text = not_found().to_string();
        assert_eq!(
            text,
            "request rejected by the server (status 404; codes ResourceNotFound, InvalidField)"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn display_of_every_kind_is_lowercase_apart_from_codes() {
        for &kind in ErrorKind::ALL {
            let text = not_found().with_kind(kind).with_attempts(3).to_string();
            let without_codes = text
                .replace("ResourceNotFound", "")
                .replace("InvalidField", "");
            assert_eq!(without_codes, without_codes.to_lowercase(), "{text}");
            assert!(text.contains("3 attempts"), "{text}");
            assert!(!text.contains('\n'));
        }
    }

    #[test]
    fn kind_follows_class() {
        let failure = ResponseFailure::default;
        let e = Error::from_response(
            StatusCode::SERVICE_UNAVAILABLE,
            StatusClass::Unsupported,
            failure(),
        );
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!e.is_retryable());
        let e = Error::from_response(
            StatusCode::TOO_MANY_REQUESTS,
            StatusClass::Retryable,
            failure(),
        );
        assert_eq!(e.kind(), ErrorKind::RetriesExhausted);
        assert!(e.is_retryable());
        assert!(e.is_throttling());
    }

    #[test]
    fn a_spent_quota_is_throttling_whatever_the_status() {
        let waited = |status: u16, source: Option<WaitSource>| {
            Error::from_response(
                StatusCode::from_u16(status).unwrap(),
                StatusClass::Retryable,
                ResponseFailure {
                    retry_after: source.map(|_| Duration::from_secs(2)),
                    retry_after_source: source,
                    ..ResponseFailure::default()
                },
            )
        };
        // status, where its wait came from, throttling
        let rows = [
            (429, None, true),
            (429, Some(WaitSource::RetryAfter), true),
            (403, Some(WaitSource::XRateLimitReset), true),
            (403, Some(WaitSource::RateLimit), true),
            (503, Some(WaitSource::RateLimit), true),
            // A wait alone is no spent quota.
            (403, Some(WaitSource::RetryAfter), false),
            (503, Some(WaitSource::RetryAfter), false),
            (400, Some(WaitSource::RetryDelay), false),
            (403, None, false),
            (500, None, false),
        ];
        for (status, source, throttling) in rows {
            assert_eq!(
                waited(status, source).is_throttling(),
                throttling,
                "{status} {source:?}"
            );
        }
        assert!(!Error::new(ErrorKind::Timeout).is_throttling());
    }

    #[test]
    fn transport_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::transport(Box::new(io));
        assert_eq!(e.kind(), ErrorKind::Transport);
        assert!(e.is_retryable());
        let source = std::error::Error::source(&e).expect("source kept");
        assert_eq!(source.to_string(), "reset by peer");
        assert_eq!(e.status(), None);
    }

    /// A client's error that keeps the cause as its source, as hyper's and
    /// hyper-util's do.
    #[derive(Debug)]
    struct Wrapper(BoxError);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("client error")
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn wrapped(cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::transport(Box::new(Wrapper(Box::new(cause))))
    }

    #[test]
    fn a_refused_connection_was_not_sent() {
        let refused = wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(refused.is_connect());
        assert!(refused.is_unprocessed());
        let reset = wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!reset.is_connect());
        assert!(!reset.is_unprocessed());
        let timed_out = Error::attempt_timed_out(Duration::from_secs(2));
        assert!(!timed_out.is_connect());
        assert!(!timed_out.is_unprocessed());
        assert!(timed_out.is_retryable());
        let source = std::error::Error::source(&timed_out).unwrap();
        assert_eq!(source.to_string(), "attempt timed out after 2s");
    }

    #[test]
    fn a_timeout_is_named_a_timeout_with_advice_that_fits() {
        let timed_out = Error::attempt_timed_out(Duration::from_millis(300)).with_attempts(3);
        assert_eq!(timed_out.kind(), ErrorKind::Timeout);
        assert_eq!(
            timed_out.to_string(),
            "attempt timed out (3 attempts): no answer within 300ms (timeouts.attempt)"
        );
        assert_eq!(
            timed_out.advice(),
            "the server is slow; raise timeouts.attempt or try again later"
        );
        let whole = Error::attempt_timed_out(Duration::from_secs(2));
        assert!(whole.to_string().contains("no answer within 2s"), "{whole}");
        assert_ne!(whole.advice(), "check that the host is reachable");
    }

    #[test]
    fn requests_count_every_request_of_the_call() {
        let plain = Error::new(ErrorKind::RetriesExhausted).with_attempts(3);
        assert_eq!(plain.requests(), 3);
        let polled = plain.with_polls(2).with_requests(6);
        assert_eq!((polled.attempts(), polled.polls()), (3, 2));
        assert_eq!(polled.requests(), 6);
        assert_eq!(Error::circuit_open(None).requests(), 0);
    }

    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
    #[test]
    fn a_refused_certificate_is_a_transport_failure_never_retried() {
        use rustls::CertificateError;
        for cause in [
            CertificateError::UnknownIssuer,
            CertificateError::Expired,
            CertificateError::NotValidForName,
            CertificateError::BadSignature,
        ] {
            let tls = rustls::Error::InvalidCertificate(cause);
            let error = wrapped(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
            assert_eq!(error.kind(), ErrorKind::Transport);
            assert!(error.is_certificate(), "{error:?}");
            assert!(!error.is_retryable());
            assert!(
                error.to_string().starts_with("certificate refused"),
                "{error}"
            );
        }
        // Other TLS failures may pass: a handshake cut by a reset is retried.
        let other = wrapped(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::HandshakeNotComplete,
        ));
        assert!(!other.is_certificate());
        assert!(other.is_retryable());
    }

    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
    #[test]
    fn an_http2_stream_the_server_refused_was_not_processed() {
        // h2 lets a caller build its error from a bare reason only; the
        // reason is what is read, whatever the error's origin.
        let refused = || h2::Error::from(h2::Reason::REFUSED_STREAM);
        for error in [
            Error::transport(Box::new(refused())),
            wrapped(refused()),
            wrapped(std::io::Error::other(refused())),
        ] {
            assert!(error.is_unprocessed(), "{error:?}");
            assert!(!error.is_connect(), "{error:?}");
            assert!(format!("{error:?}").contains("unprocessed: true"));
        }
        // Any other reason may come after the server processed the request.
        for reason in [
            h2::Reason::NO_ERROR,
            h2::Reason::CANCEL,
            h2::Reason::INTERNAL_ERROR,
            h2::Reason::STREAM_CLOSED,
            h2::Reason::ENHANCE_YOUR_CALM,
        ] {
            let error = wrapped(h2::Error::from(reason));
            assert!(!error.is_unprocessed(), "{reason:?}");
            assert!(!format!("{error:?}").contains("unprocessed"));
        }
    }

    #[test]
    fn an_io_error_is_looked_inside() {
        // io::Error's own `source` skips the error it wraps: here it is
        // `None`.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let outer = std::io::Error::other(refused);
        assert!(std::error::Error::source(&outer).is_none());
        assert!(Error::transport(Box::new(outer)).is_connect());
    }

    #[test]
    fn debug_leaves_the_body_out() {
        let e = Error::from_response(
            StatusCode::BAD_REQUEST,
            StatusClass::Terminal,
            ResponseFailure {
                body: Bytes::from_static(b"secret-echo"),
                ..ResponseFailure::default()
            },
        );
        let debug = format!("{e:?}");
        assert!(!debug.contains("secret-echo"), "{debug}");
        assert!(debug.contains("body_len: 11"), "{debug}");
    }

    #[test]
    fn debug_counts_the_members_of_an_api_error_and_prints_none() {
        let mut members = serde_json::Map::new();
        members.insert("instance".into(), "secret-instance".into());
        members.insert(
            "trace".into(),
            serde_json::json!(["secret-frame", "secret-frame"]),
        );
        let api = ApiError::new(Some("urn:quota".into()), None, None, None).with_members(members);
        assert_eq!(api.members().map(|m| m.len()), Some(2));
        let e = Error::from_response(
            StatusCode::TOO_MANY_REQUESTS,
            StatusClass::Retryable,
            ResponseFailure {
                api_errors: vec![api.clone()],
                ..ResponseFailure::default()
            },
        );
        for debug in [format!("{api:?}"), format!("{e:?}")] {
            assert!(!debug.contains("secret"), "{debug}");
            assert!(debug.contains("members: 2"), "{debug}");
            assert!(debug.contains("urn:quota"), "{debug}");
        }
        // Members are part of what an error is.
        let bare = ApiError::new(Some("urn:quota".into()), None, None, None);
        assert_ne!(api, bare);
        assert_eq!(bare.members(), None);
        assert!(!format!("{bare:?}").contains("members"));
    }

    #[test]
    fn error_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
