//! Circuit breaking: fail fast against a failing host, recover by itself.
//!
//! The breaker layer sits under the retry layer and above classify, as in the
//! design: every attempt is counted, and an open circuit ends the retry loop
//! at once, since its error ([`CircuitOpen`](crate::ErrorKind::CircuitOpen))
//! is not retryable.
//!
//! Each key (by default the request's scheme, host and port; with
//! `scope = "global"` one for all calls) has a breaker that moves between
//! three states, as in Resilience4j and Polly:
//!
//! - **closed**: calls go through. It trips open after
//!   `consecutive_failures` failures in a row, or when the failure rate over
//!   the last `window` calls reaches `failure_rate` once `min_calls` were seen.
//! - **open**: calls are not sent. After `open_for` the next call moves it to
//!   half-open. A breaker that trips again soon stays open longer each time,
//!   doubling up to `max_open_for`, each grown time drawn at random from its
//!   upper half so that clients do not probe in lockstep. Meanwhile every
//!   `probe_every`-th call is sent as a probe: its success closes the breaker
//!   (or, with more `half_open_probes`, makes it half-open), its failure
//!   leaves it open and starts the open time again, without a trip.
//! - **half-open**: `half_open_probes` calls go through. If all succeed it
//!   closes; if one fails it opens again. A probe that is dropped before it
//!   ends gives its slot back.
//!
//! A call that is not let through waits for the verdict of the next probe,
//! up to `wait_for_probe` and never past the end of its call: it is sent as
//! soon as a probe closes the breaker, and fails with
//! [`CircuitOpen`](crate::ErrorKind::CircuitOpen) as soon as one fails, with
//! an error that says when the next probe goes, if that is known
//! ([`Error::retry_after`](crate::Error::retry_after)). With
//! `wait_for_probe = "0s"` it fails at once, as it does when the breaker is
//! forced open.
//!
//! Why probes by count, and why wait. A breaker that probes only every
//! `open_for` and rejects everything in between loses every call made
//! between the host's recovery and its next probe: 5 to 10 s of calls, a
//! quarter of them in the storm simulation's outage (`cargo bench --bench
//! storm`). Probing every 50th call instead keeps the probes in step with
//! the load: they cost the host a fixed share of it (2%), however busy the
//! client, and a busy client learns of a recovery within a fraction of a
//! second. That alone still loses half the calls between two probes on
//! average (25 calls at any rate), which is why the calls wait: those made
//! just before the probe that finds the host back are sent as soon as it
//! does. `open_for` remains the floor for a quiet client, and a waiting call
//! is itself the probe when the open time runs out and no other call came.
//! A failed count probe is no trip: at 1000 calls/s a trip each time would
//! be 20 reported changes of state a second.
//!
//! The wait is in the response future, not in `poll_ready`, which reports
//! the inner service's readiness as before: a waiting call holds no
//! connection and no slot of the inner service. It keeps a clone of it,
//! made ready only when the call is let through, and wakes on the host's
//! verdict (a `tokio::sync::Notify` per host) or its own timer, so it
//! works on paused Tokio time.
//!
//! What counts: `retryable` statuses (5xx), transport failures and timed-out
//! attempts are failures; `terminal` statuses are successes (the host
//! answered properly); throttling (a 429, or an answer whose wait is a spent
//! quota's reset: [`Error::is_throttling`](crate::Error::is_throttling)) is
//! ignored unless `count_throttling = true` (it is the retry budget's
//! business); `unsupported` is ignored. A
//! success slower than `slow_call_duration` counts as a failure.
//!
//! A closed breaker admits a call with one atomic load; the result takes a
//! lock for a few instructions. A rejection costs a lookup and an error, less
//! than any call that is sent. The number of keys is bounded
//! (`max_hosts`): past it, each new host evicts one breaker, chosen by a clock
//! hand that looks at no more than 64 of them (idle closed breakers first,
//! open ones last), so admitting a host costs the same at 100 keys or
//! 100,000 (`cargo bench --bench hosts`).
//!
//! Every change of state is a `tracing` event (key, from, to, failure rate,
//! consecutive failures), and a [`BreakerHandle`] reads the state of each key
//! and forces it open or closed, for operators and tests.

mod future;
mod gate;
mod handle;
mod layer;
mod registry;
mod settings;
mod state;
mod throttle;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::deadline::CallDeadline;
use crate::error::Error;
pub(crate) use gate::{Gate, PermitGuard, ProbeWait, gate as admit_to};
use registry::{Cell, LastHost, Registry};
pub(crate) use registry::{LastHost as BreakerCache, Registry as BreakerRegistry};
use state::Transition;

pub use future::ResponseFuture;
pub use handle::{BreakerHandle, BreakerSnapshot};
pub use layer::CircuitBreakerLayer;
pub use registry::Scope;
pub(crate) use settings::RawBreaker;
pub use settings::{BreakerBuilder, BreakerSettings};
pub use state::{BreakerCounters, BreakerState};
pub(crate) use throttle::RawThrottle;
pub use throttle::ThrottleSettings;

/// Rejects calls to failing hosts; see the [module docs](self).
#[derive(Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    /// `None` when the policy turns breaking off: calls pass straight through.
    registry: Option<Arc<Registry>>,
    /// The breaker of the host this service called last: a client that calls
    /// one host finds its breaker without the registry's lock.
    last: Option<LastHost>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("enabled", &self.registry.is_some())
            .finish()
    }
}

impl<S> CircuitBreaker<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> CircuitBreaker<S> {
    // Forced, with the breaker layer's other forced inlines: 119 and 139
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn admit<B, RB>(&mut self, request: Request<B>) -> ResponseFuture<S, Request<B>>
    where
        S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
    {
        let Some(registry) = &self.registry else {
            return ResponseFuture::called(self.inner.call(request), None);
        };
        // A call that waits for a probe's verdict stops waiting at the end
        // of its call, when a layer above set one.
        let deadline = CallDeadline::of(&request);
        match gate::gate(registry, request.uri(), &mut self.last, |_| deadline) {
            Gate::Admit(permit) => ResponseFuture::called(self.inner.call(request), Some(permit)),
            Gate::Reject(error) => ResponseFuture::rejected(error),
            // A clone, made ready when the call is let through: the ready
            // service stays here for the next call.
            Gate::Wait(probe) => ResponseFuture::waiting(self.inner.clone(), request, probe),
        }
    }
}

impl<S, B, RB> Service<Request<B>> for CircuitBreaker<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, Request<B>>;

    /// The inner service's readiness: it says nothing about any one host,
    /// and a call to an open host is rejected in `call` without using it.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    // Forced, with the breaker layer's other forced inlines: 119 and 139
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.admit(request)
    }
}

/// The events of a change of state: a `tracing` warning when a breaker
/// opens (info otherwise), and the listeners' transition.
pub(crate) fn report(cell: &Cell, t: &Transition) {
    let key: &str = &cell.key;
    if cell.listeners.is_some() {
        let event = crate::events::BreakerTransition {
            key,
            from: t.from,
            to: t.to,
        };
        cell.listeners.emit(|l| l.breaker_transition(&event));
    }
    macro_rules! changed {
        ($level:ident) => {
            tracing::$level!(
                key,
                from = t.from.as_str(),
                to = t.to.as_str(),
                failure_rate = t.failure_rate,
                consecutive_failures = t.consecutive_failures,
                "circuit breaker state changed"
            )
        };
    }
    if t.to == BreakerState::Open {
        changed!(warn);
    } else {
        changed!(info);
    }
}
