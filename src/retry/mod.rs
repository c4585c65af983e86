//! Retries: backoff with jitter, `Retry-After`, a retry budget, deadlines and
//! safe replay.
//!
//! The retry layer sits above the breaker and classify layers, so it sees
//! every attempt's outcome as classify named it, and an open circuit ends its
//! loop at once. It retries errors of class `retryable` and transport
//! failures, never `terminal` or `unsupported`, and only when all of these
//! hold:
//!
//! - sending the request again is safe: the method is idempotent (GET, HEAD,
//!   OPTIONS, PUT, DELETE, TRACE), or the request has an `Idempotency-Key`, or
//!   the answer proves it was not processed (a 429, or a wait until the
//!   reset of a quota it says is spent, such as GitHub's `403` with
//!   `x-ratelimit-remaining: 0`: [`Error::is_throttling`]), or the connection was
//!   refused before it was sent, or an HTTP/2 server refused its stream
//!   (`REFUSED_STREAM`) or went away below it (`GOAWAY`), or the policy says
//!   `non_idempotent = "always"`;
//! - attempts are left (`max_attempts`, the first one included);
//! - the body can be sent again (see [`ReplayBody`]);
//! - the wait fits: a `Retry-After` is honoured exactly (never less), and one
//!   longer than `max_retry_after` ends the call rather than hammering the
//!   server early; a wait that would end past the total deadline ends the call
//!   at once, as `deadline_exceeded`, instead of sleeping into a certain
//!   failure;
//! - the [`Budget`] grants it.
//!
//! `timeouts.attempt` bounds each attempt (the response head and the error
//! body read); an attempt that runs out is a transport failure like any
//! other. `timeouts.total` bounds the whole call, waits included.
//!
//! Each attempt runs in a `rebound.attempt` span (a child of the call's span)
//! with `http.request.resend_count`, its status, class and error codes; each
//! retry is an event with the delay and its reason (`backoff` or
//! `retry_after`), and each refusal an event naming it.
//!
//! Time comes from `tokio::time`, so tests run on paused time, and jitter
//! from a seedable generator ([`RetryLayer::seed`]). The response future
//! is a hand-written state machine rather than a boxed `async` block: the
//! success path allocates nothing but the copy of the request kept for a
//! replay.

mod backoff;
mod budget;
mod decision;
mod future;
mod key;
mod layer;
pub(crate) mod replay;
pub(crate) mod report;
mod reserve;
mod settings;
pub(crate) mod step;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::deadline::Timeouts;
use crate::error::Error;
use crate::status::Classifier;

pub use backoff::{Backoff, Delays, Jitter};
pub use budget::{Budget, BudgetSettings, RetryCause};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use replay::{Buffered, NotReplayable, ReplayBody};
pub(crate) use settings::RawRetry;
pub use settings::{RetryBuilder, RetrySettings};

/// Whether requests with a non-idempotent method (POST, PATCH, ...) may be
/// retried after a failure that may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NonIdempotent {
    /// Only when it is known to be safe: an `Idempotency-Key`, a 429, a refused
    /// connection, an HTTP/2 stream the server did not process
    /// ([`Error::is_unprocessed`](crate::Error::is_unprocessed)).
    Safe,
    /// Always, like an idempotent request: for APIs that deduplicate writes.
    Always,
}

/// What every call of one [`Retry`] service shares, behind one pointer: the
/// clone of the inner service that sends retries, and each route's settings
/// (the policy's own first).
#[derive(Debug)]
pub(crate) struct Shared<S> {
    pub(crate) spare: S,
    pub(crate) route: RetryRoute,
    pub(crate) listeners: crate::events::Listeners,
}

/// What one route says about retrying.
#[derive(Debug, Clone)]
pub(crate) struct RetryRoute {
    pub(crate) settings: Arc<RetrySettings>,
    pub(crate) budget: Arc<Budget>,
    /// Names the class of a response that passed through, in the attempt's
    /// span; without it, such an attempt is named a success.
    pub(crate) classifier: Option<Arc<Classifier>>,
    pub(crate) timeouts: Timeouts,
    pub(crate) jitter: Arc<crate::rng::SharedRng>,
}

/// Retries failed attempts of the inner service; see the [module docs](self).
///
/// A retry is sent by a clone of the inner service as it was when it was
/// wrapped, taken only when a retry is due: a call that succeeds at once
/// clones nothing but a reference count. Since that clone is out of reach,
/// there is no `get_mut`: a change made through it would reach first
/// attempts only.
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared<S>>,
}

impl<S> Retry<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Retry<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
    B: ReplayBody,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    // Forced, with the retry layer's other forced inlines: 53 and 39
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        ResponseFuture::new(&mut self.inner, request, Arc::clone(&self.shared))
    }
}
