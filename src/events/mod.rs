//! Events: what the stack does, as it does it, for metrics and dashboards.
//!
//! A [`Listener`] is called synchronously, on the task that runs the call,
//! for each attempt, retry decision, breaker change, poll and call. Events
//! carry the method, the host and the port of the request, statuses, classes,
//! outcomes and durations: never a header value, a path, a query string or a
//! body.
//!
//! Set listeners on a policy ([`Policy::with_listener`](crate::Policy::with_listener)),
//! which every layer built from it uses, or on each layer of a stack made by
//! hand (`.listener(..)`). Several listeners on one policy are called in the
//! order they were added.
//!
//! Two listeners ship with the crate and record the same
//! [instruments](instrument) (OpenTelemetry's HTTP client request duration,
//! and rebound's call durations, retries, refusals, breaker changes and
//! polls): `MetricsListener` through the `metrics` facade (feature
//! `metrics`), and `OpenTelemetryListener` through the OpenTelemetry API
//! (feature `opentelemetry`). `dashboards/rebound.json` is a Grafana
//! dashboard for them, under the names metrics-exporter-prometheus gives
//! them (see the README's "Metrics").
//!
//! A listener that panics does not break the call: the panic is caught, the
//! event is lost for that listener, the call goes on as if nothing happened,
//! and a `tracing` warning says so. A listener should be quick: it runs
//! inside the call.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use tower_rebound::events::{CallEnded, Listener, RetryScheduled};
//! use tower_rebound::Policy;
//!
//! #[derive(Default)]
//! struct Counts { retries: AtomicU64, calls: AtomicU64 }
//!
//! impl Listener for Counts {
//!     fn retry_scheduled(&self, _: &RetryScheduled<'_>) {
//!         self.retries.fetch_add(1, Ordering::Relaxed);
//!     }
//!     fn call_ended(&self, _: &CallEnded<'_>) {
//!         self.calls.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let policy = Policy::preset("connio")?.with_listener(Counts::default());
//! # Ok::<_, tower_rebound::PolicyError>(())
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode, Uri};

use crate::error::ErrorKind;
use crate::outcome::Outcome;
use crate::status::StatusClass;

pub mod instrument;
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
mod labels;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "opentelemetry")]
mod otel;
#[cfg(feature = "metrics")]
mod series;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use self::metrics::MetricsListener;
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub use self::otel::OpenTelemetryListener;

/// Receives the stack's events; every method does nothing unless
/// implemented.
pub trait Listener: Send + Sync + 'static {
    /// An attempt is about to be sent (the first, or a retry).
    fn attempt_started(&self, event: &AttemptStarted<'_>) {
        let _ = event;
    }
    /// An attempt ended: an answer, or an error before one.
    fn attempt_ended(&self, event: &AttemptEnded<'_>) {
        let _ = event;
    }
    /// A failed attempt will be tried again after a wait.
    fn retry_scheduled(&self, event: &RetryScheduled<'_>) {
        let _ = event;
    }
    /// A failed attempt that could have been retried will not be.
    fn retry_refused(&self, event: &RetryRefused<'_>) {
        let _ = event;
    }
    /// A host's breaker changed state.
    fn breaker_transition(&self, event: &BreakerTransition<'_>) {
        let _ = event;
    }
    /// An open breaker refused a call: it was not sent.
    fn breaker_rejected(&self, event: &BreakerRejected<'_>) {
        let _ = event;
    }
    /// A shared rate limit lost its store (Redis unreachable or slow) and
    /// limits locally, or found it again.
    fn rate_limit_backend(&self, event: &RateLimitBackend<'_>) {
        let _ = event;
    }
    /// An adaptive concurrency limit moved (`[concurrency] adaptive`).
    fn concurrency_limit(&self, event: &ConcurrencyLimitChanged<'_>) {
        let _ = event;
    }
    /// A `202 Accepted` operation goes on: its next status request is sent
    /// after a wait.
    fn poll_scheduled(&self, event: &PollScheduled<'_>) {
        let _ = event;
    }
    /// A status request of a `202 Accepted` operation is about to be sent.
    fn poll_sent(&self, event: &PollSent<'_>) {
        let _ = event;
    }
    /// A call ended, with its outcome.
    fn call_ended(&self, event: &CallEnded<'_>) {
        let _ = event;
    }
}

/// Where a request goes: its method, host and port, nothing else of it (its
/// `Debug` too leaves out the path and the query).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    method: &'a Method,
    uri: &'a Uri,
}

impl fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("method", self.method)
            .field("host", &self.host())
            .field("port", &self.port())
            .finish()
    }
}

impl<'a> Target<'a> {
    pub(crate) fn new(method: &'a Method, uri: &'a Uri) -> Self {
        Target { method, uri }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The host, as the request names it (empty for a relative URI).
    pub fn host(&self) -> &'a str {
        self.uri.host().unwrap_or_default()
    }

    /// The port: the URI's, or the scheme's default (80, 443).
    pub fn port(&self) -> Option<u16> {
        crate::host_key::port(self.uri)
    }

    /// The request's URI, for listeners of this crate, which never record
    /// its path or query.
    #[cfg(feature = "metrics")]
    pub(crate) fn uri(&self) -> &'a Uri {
        self.uri
    }
}

/// An attempt about to be sent.
#[derive(Debug, Clone, Copy)]
pub struct AttemptStarted<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) attempt: u32,
}

impl<'a> AttemptStarted<'a> {
    /// Where it goes.
    pub fn target(&self) -> Target<'a> {
        self.target
    }
    /// Which attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// An attempt that ended.
#[derive(Debug, Clone, Copy)]
pub struct AttemptEnded<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) attempt: u32,
    pub(crate) status: Option<StatusCode>,
    pub(crate) class: Option<StatusClass>,
    pub(crate) error: Option<ErrorKind>,
    pub(crate) api_errors: &'a [crate::error::ApiError],
    pub(crate) duration: Duration,
}

impl<'a> AttemptEnded<'a> {
    /// Where it went.
    pub fn target(&self) -> Target<'a> {
        self.target
    }
    /// Which attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// The status of the answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }
    /// The class of the answer, when there was one.
    pub fn class(&self) -> Option<StatusClass> {
        self.class
    }
    /// What went wrong: the kind of error of a failed attempt (`None` when
    /// it passed through).
    pub fn error(&self) -> Option<ErrorKind> {
        self.error
    }
    /// The errors the API reported in the body of a failed answer, in
    /// order (none for an answer that passed through).
    pub fn api_errors(&self) -> &'a [crate::error::ApiError] {
        self.api_errors
    }
    /// How long it took, from sending to the answer (or the error).
    pub fn duration(&self) -> Duration {
        self.duration
    }
    /// Whether the request left the client: not when an open breaker or
    /// adaptive throttling stopped it (then it is no request to count).
    pub fn was_sent(&self) -> bool {
        !matches!(
            self.error,
            Some(
                ErrorKind::CircuitOpen
                    | ErrorKind::Throttled
                    | ErrorKind::RateLimited
                    | ErrorKind::Overloaded
            )
        )
    }
}

/// Why a retry was due: what failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// A retryable status.
    Status,
    /// The transport failed.
    Transport,
    /// The attempt took longer than `timeouts.attempt`.
    Timeout,
}

impl RetryReason {
    /// The name metrics use (`rebound.retry.reason`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RetryReason::Status => "status",
            RetryReason::Transport => "transport",
            RetryReason::Timeout => "timeout",
        }
    }
}

/// How long a retry waits, and what set the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// The policy's backoff.
    Backoff,
    /// The server's `Retry-After`.
    RetryAfter,
    /// The reset of the server's `RateLimit` (or `RateLimit-Reset`) header.
    RateLimit,
    /// The server's `X-RateLimit-Reset`.
    XRateLimitReset,
    /// A delay in the error body (`error_body.retry_delay`).
    RetryDelay,
}

impl WaitReason {
    /// `"backoff"`, `"retry_after"`, `"ratelimit"`, `"x_ratelimit_reset"`
    /// or `"retry_delay"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            WaitReason::Backoff => "backoff",
            WaitReason::RetryAfter => "retry_after",
            WaitReason::RateLimit => "ratelimit",
            WaitReason::XRateLimitReset => "x_ratelimit_reset",
            WaitReason::RetryDelay => "retry_delay",
        }
    }

    /// Whether the server set the wait (every reason but the backoff).
    pub const fn is_server(self) -> bool {
        !matches!(self, WaitReason::Backoff)
    }
}

/// A retry that will be sent after a wait.
#[derive(Debug, Clone, Copy)]
pub struct RetryScheduled<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) wait: WaitReason,
    pub(crate) reason: RetryReason,
    pub(crate) max_attempts: u32,
}

impl<'a> RetryScheduled<'a> {
    /// Where it goes.
    pub fn target(&self) -> Target<'a> {
        self.target
    }
    /// The attempt that failed (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// How long it waits before the next attempt.
    pub fn delay(&self) -> Duration {
        self.delay
    }
    /// What set the wait.
    pub fn wait(&self) -> WaitReason {
        self.wait
    }
    /// What failed.
    pub fn reason(&self) -> RetryReason {
        self.reason
    }
    /// The most attempts the route allows, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

/// Why a retry that was due is not sent: the same value
/// [`Error::retry_refused`](crate::Error::retry_refused) carries.
pub use crate::error::RetryRefusal as Refusal;

/// A retry that was due and is not sent.
#[derive(Debug, Clone, Copy)]
pub struct RetryRefused<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) attempt: u32,
    pub(crate) refusal: Refusal,
}

impl<'a> RetryRefused<'a> {
    /// Where it would have gone.
    pub fn target(&self) -> Target<'a> {
        self.target
    }
    /// The attempt that failed (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// Why the retry is not sent.
    pub fn refusal(&self) -> Refusal {
        self.refusal
    }
}

/// A breaker that changed state.
#[derive(Debug, Clone, Copy)]
pub struct BreakerTransition<'a> {
    pub(crate) key: &'a str,
    pub(crate) from: crate::breaker_state::BreakerState,
    pub(crate) to: crate::breaker_state::BreakerState,
}

impl<'a> BreakerTransition<'a> {
    /// The breaker's key: `scheme://host:port`, or `global`.
    pub fn key(&self) -> &'a str {
        self.key
    }
    /// The host of the key (the key itself when it names none).
    pub fn host(&self) -> &'a str {
        host_of_key(self.key)
    }
    /// The state it left.
    pub fn from(&self) -> crate::breaker_state::BreakerState {
        self.from
    }
    /// The state it is in now.
    pub fn to(&self) -> crate::breaker_state::BreakerState {
        self.to
    }
}

/// A call an open breaker refused.
#[derive(Debug, Clone, Copy)]
pub struct BreakerRejected<'a> {
    pub(crate) key: &'a str,
}

impl<'a> BreakerRejected<'a> {
    /// The breaker's key: `scheme://host:port`, or `global`.
    pub fn key(&self) -> &'a str {
        self.key
    }
    /// The host of the key (the key itself when it names none).
    pub fn host(&self) -> &'a str {
        host_of_key(self.key)
    }
}

/// A shared rate limit changed where it takes its turns.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitBackend<'a> {
    pub(crate) key: &'a str,
    pub(crate) shared: bool,
    pub(crate) error: Option<&'a str>,
}

impl<'a> RateLimitBackend<'a> {
    /// The limit's key prefix (`rate_limit.key`).
    pub fn key(&self) -> &'a str {
        self.key
    }
    /// True when turns come from the shared store again; false when the
    /// process fell back to its local limiter (`fallback_per_second`).
    pub fn shared(&self) -> bool {
        self.shared
    }
    /// What failed, on a fallback.
    pub fn error(&self) -> Option<&'a str> {
        self.error
    }
}

/// An adaptive concurrency limit moved.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrencyLimitChanged<'a> {
    pub(crate) key: &'a str,
    pub(crate) from: u32,
    pub(crate) to: u32,
}

impl<'a> ConcurrencyLimitChanged<'a> {
    /// Whose limit: `scheme://host:port` (`concurrency.scope = "host"`), or
    /// empty for one limit of the whole policy.
    pub fn key(&self) -> &'a str {
        self.key
    }
    /// The limit before.
    pub fn from(&self) -> u32 {
        self.from
    }
    /// The limit now: the requests that may be in flight at once.
    pub fn to(&self) -> u32 {
        self.to
    }
}

/// The wait before the next status request of an operation that goes on.
#[derive(Debug, Clone, Copy)]
pub struct PollScheduled<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) poll: u32,
    pub(crate) delay: Duration,
    pub(crate) wait: PollWait,
}

impl<'a> PollScheduled<'a> {
    /// Where it goes (the status URL's host).
    pub fn target(&self) -> Target<'a> {
        self.target
    }
    /// Which poll it is (1 for the first).
    pub fn poll(&self) -> u32 {
        self.poll
    }
    /// How long it waits before it is sent.
    pub fn delay(&self) -> Duration {
        self.delay
    }
    /// What set the wait.
    pub fn wait(&self) -> PollWait {
        self.wait
    }
}

/// What set the wait before a status request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollWait {
    /// The policy's poll interval.
    Interval,
    /// The server's `Retry-After`.
    RetryAfter,
}

impl PollWait {
    /// `"interval"` or `"retry_after"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PollWait::Interval => "interval",
            PollWait::RetryAfter => "retry_after",
        }
    }
}

/// A status request about to be sent.
#[derive(Debug, Clone, Copy)]
pub struct PollSent<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) poll: u32,
}

impl<'a> PollSent<'a> {
    /// Where it goes (the status URL's host).
    pub fn target(&self) -> Target<'a> {
        self.target
    }
    /// Which poll (1 for the first).
    pub fn poll(&self) -> u32 {
        self.poll
    }
}

/// A call that ended.
#[derive(Debug, Clone, Copy)]
pub struct CallEnded<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) outcome: Outcome,
    pub(crate) status: Option<StatusCode>,
    pub(crate) attempts: u32,
    pub(crate) polls: u32,
    pub(crate) requests: u32,
    pub(crate) duration: Duration,
    pub(crate) route: Option<&'a str>,
}

impl<'a> CallEnded<'a> {
    /// Where it went.
    pub fn target(&self) -> Target<'a> {
        self.target
    }
    /// How it ended.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// The status of the last answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }
    /// Attempts sent for the request (polls' attempts not counted).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
    /// Times the operation was polled.
    pub fn polls(&self) -> u32 {
        self.polls
    }
    /// Requests sent in all: the attempts, and every status request with
    /// its retries.
    pub fn requests(&self) -> u32 {
        self.requests
    }
    /// From the call to its outcome, waits and polls included.
    pub fn duration(&self) -> Duration {
        self.duration
    }
    /// The route the call took (its name or index), when the policy has
    /// routes and one took it.
    pub fn route(&self) -> Option<&'a str> {
        self.route
    }
}

fn host_of_key(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    if let Some(v6) = rest.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(rest);
    }
    rest.rsplit_once(':').map_or(rest, |(host, _)| host)
}

/// The listeners of a policy or a layer: none, one, or several in order.
#[derive(Clone, Default)]
pub(crate) struct Listeners(Option<Arc<[Arc<dyn Listener>]>>);

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} listener(s)", self.0.as_ref().map_or(0, |l| l.len()))
    }
}

impl Listeners {
    /// These listeners and `more` after them.
    pub(crate) fn and(&self, more: Arc<dyn Listener>) -> Listeners {
        let mut all: Vec<Arc<dyn Listener>> =
            self.0.iter().flat_map(|l| l.iter().cloned()).collect();
        all.push(more);
        Listeners(Some(all.into()))
    }

    /// Whether there is a listener at all: when not, no event is built.
    #[inline(always)]
    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Calls `event` on each listener; a panic in one is caught and
    /// reported, and the others are still called.
    #[inline]
    pub(crate) fn emit(&self, event: impl Fn(&dyn Listener)) {
        if let Some(listeners) = &self.0 {
            emit_all(listeners, &event);
        }
    }
}

#[cold]
#[inline(never)]
fn emit_all(listeners: &[Arc<dyn Listener>], event: &dyn Fn(&dyn Listener)) {
    for listener in listeners {
        let called = catch_unwind(AssertUnwindSafe(|| event(&**listener)));
        if called.is_err() {
            tracing::warn!("a rebound event listener panicked: the event was dropped for it");
        }
    }
}

/// The class of the failure that made a retry due.
pub(crate) fn retry_reason(error: &crate::error::Error) -> RetryReason {
    if error.status().is_some() {
        return RetryReason::Status;
    }
    if error.kind() == crate::error::ErrorKind::Timeout {
        return RetryReason::Timeout;
    }
    RetryReason::Transport
}

#[cfg(test)]
mod tests {
    use super::host_of_key;

    #[test]
    fn hosts_of_breaker_keys() {
        assert_eq!(host_of_key("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_of_key("https://api.example:443"), "api.example");
        assert_eq!(host_of_key("https://[::1]:8443"), "::1");
        assert_eq!(host_of_key("global"), "global");
    }
}
