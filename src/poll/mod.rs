//! Polling: follow `202 Accepted` operations to their end, safely.
//!
//! The poll layer sits above the retry layer, so that each status request is
//! itself retried and circuit-broken like any other request, without
//! restarting the operation.
//!
//! On a `pollable` response (202) it looks for a status URL in the headers
//! of `poll.location_headers` (by default `Operation-Location`, then
//! `Location`), resolves it against the request's URL, and sends `GET` to it
//! until the answer is no longer pollable. That answer ends the call like any
//! other: a 2xx is returned, an error status becomes the usual typed error
//! with the API's error codes. The wait between polls is the answer's
//! `Retry-After` when it has one (capped by `max_interval`), else `interval`
//! growing by `multiplier` up to `max_interval`; polling ends with
//! [`PollTimeout`](crate::ErrorKind::PollTimeout) after `max_polls` polls or
//! `max_duration`, and with
//! [`DeadlineExceeded`](crate::ErrorKind::DeadlineExceeded) at
//! `timeouts.total`, without sleeping into either. A 202 without a status URL
//! is returned as it is (outcome `accepted`) or, with
//! `on_accepted = "error"`, fails.
//!
//! Some APIs answer `200` while an operation still runs and say how it goes
//! in the body (Azure's `status`, Google's `done`): with a [`Completion`]
//! rule, the body of a `200` status answer is read, up to
//! `poll.max_body_bytes`, and decides whether to poll on, return the answer
//! (its bytes in [`StatusBody`]) or fail `terminal` with the operation's
//! error codes. With no rule no body is read; with `poll.body_headers`, only
//! the answers of a status URL those headers gave are (Azure's
//! `Azure-AsyncOperation`), and one another header gave (its `Location`)
//! is judged by its status code, its final answer the result.
//!
//! A status URL comes from the server and is checked like any input from the
//! network ([`resolve_status_url`]): it must have the request's scheme, host
//! and port unless `poll.allowed_origins` lists its origin; https is never
//! downgraded to http; other schemes, userinfo and malformed URLs are refused,
//! ending the call with [`PollRefused`](crate::ErrorKind::PollRefused) and the
//! reason. Status requests carry the original request's headers except the
//! body's; `Authorization`, `Cookie`, `Proxy-Authorization` and the headers of
//! `poll.secret_headers` are never sent to another origin, even an allowed
//! one, unless `poll.forward_credentials = true`.
//!
//! Each poll runs in a `rebound.poll` span, a child of the call's span, with
//! its number and status; [`CallInfo::polls`](crate::CallInfo::polls) and
//! [`Error::polls`](crate::Error::polls) give the count.

pub(crate) mod body;
mod future;
mod layer;
mod location;
mod settings;
pub(crate) mod step;

use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll};

use http::{Request, Response};
use tower_service::Service;

use crate::deadline::{CallDeadline, Timeouts};
use crate::error::Error;
use crate::status::Classifier;

pub(crate) use body::StatusRead;
pub use body::{Completion, OperationResult, StatusBody};
// Public for the fuzz targets and property tests, not for users.
#[doc(hidden)]
pub use body::{Verdict, judge};
pub use future::ResponseFuture;
pub(crate) use future::{RequestHead, finish, log_wait, poll_span, refuse, status_request};
pub use layer::PollingLayer;
pub use location::{Origin, Refusal, Target};
// Public for the fuzz targets and property tests, not for users.
#[doc(hidden)]
pub use location::resolve_status_url;
pub(crate) use settings::RawPoll;
pub use settings::{PollBuilder, PollSettings};

/// Where a finished operation's result is (`poll.result`).
///
/// Azure's long-running operations name it per method: a `PUT` or `PATCH`
/// ends with a `GET` of the resource itself (`"original"`), a `POST` with a
/// `GET` of the `Location` its first answer named (`"location"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FinalResult {
    /// The last status answer is the call's answer.
    #[default]
    Status,
    /// Once the operation succeeded, a `GET` of the URL in the `Location`
    /// header of the operation's first answer; the last status answer
    /// when it had none.
    Location,
    /// Once the operation succeeded, a `GET` of the original request's
    /// URL.
    Original,
}

/// What to do with a `202 Accepted` that names no status URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OnAccepted {
    /// Return the 202 as it is: outcome `accepted`.
    Succeed,
    /// Fail with `poll_refused`.
    Error,
}

/// Follows `202 Accepted` operations; see the [module docs](self).
///
/// Status requests are sent by a clone of the inner service as it was when
/// it was wrapped, taken only when polling starts. Since that clone is out of
/// reach, there is no `get_mut`: a change made through it would reach first
/// requests only.
#[derive(Debug, Clone)]
pub struct Polling<S> {
    inner: S,
    shared: Arc<Shared<S>>,
}

/// What every call of one [`Polling`] service shares: the clone of the inner
/// service that sends status requests, and the settings.
#[derive(Debug)]
pub(crate) struct Shared<S> {
    spare: S,
    /// Per route: the policy's own settings first.
    route: PollRoute,
    listeners: crate::events::Listeners,
}

/// What one route says about polling.
#[derive(Debug, Clone)]
pub(crate) struct PollRoute {
    pub(crate) settings: Arc<PollSettings>,
    pub(crate) classifier: Arc<Classifier>,
    pub(crate) timeouts: Timeouts,
}

impl<S> Polling<S> {
    pub(crate) fn from_route(
        inner: S,
        route: PollRoute,
        listeners: crate::events::Listeners,
    ) -> Self
    where
        S: Clone,
    {
        Polling {
            shared: Arc::new(Shared {
                spare: inner.clone(),
                route,
                listeners,
            }),
            inner,
        }
    }
}

impl<S> Polling<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Polling<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
    B: Default,
    RB: http_body::Body + Unpin,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> TaskPoll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    // Forced, with the poll layer's other forced inlines: 89 and 80
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        if !shared.route.settings.follows {
            // No status URL can ever be followed: nothing to keep.
            return ResponseFuture::without_polling(self.inner.call(request), shared);
        }
        let head = future::RequestHead::of(&request);
        let outer = CallDeadline::of(&request);
        let first = self.inner.call(request);
        ResponseFuture::new(first, shared, head, outer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn intervals_grow_to_the_cap() {
        let s = PollSettings::builder()
            .interval(Duration::from_millis(500))
            .multiplier(2.0)
            .max_interval(Duration::from_secs(3))
            .build()
            .unwrap();
        let ms: Vec<u128> = (1..=6).map(|n| s.interval_before(n).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 3000, 3000, 3000]);
        assert_eq!(s.interval_before(u32::MAX), Duration::from_secs(3));
    }
}
