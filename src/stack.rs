//! The whole stack, assembled from a policy.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::Policy;
use crate::breaker::{BreakerHandle, CircuitBreaker, CircuitBreakerLayer};
use crate::classify::{Classify, ClassifyLayer};
use crate::error::{BoxError, Error};
use crate::poll::{Poll as Polling, PollLayer};
use crate::retry::{ReplayBody, Retry, RetryLayer};
use crate::trace::{Trace, TraceLayer};

type Stack<S> = Trace<Polling<Retry<CircuitBreaker<Classify<S>>>>>;

/// Builds the whole rebound stack around a client, in the order of the
/// design: trace, poll, retry, breaker, classify, then the client.
///
/// The stack needs a Tokio runtime with its timer enabled: timeouts and waits
/// come from `tokio::time`. Request bodies must implement
/// [`ReplayBody`](crate::retry::ReplayBody) (`Full`, `Empty`, `String`, or a
/// streaming body wrapped by [`Policy::buffer_body`]) and `Default` (status
/// requests of the poll layer have an empty body).
///
/// ```
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use bytes::Bytes;
/// use rebound::{Policy, ResilienceLayer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let client = tower::service_fn(|_req: Request<Full<Bytes>>| async {
/// #     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
/// # });
/// let policy = Policy::preset("connio")?;
/// let client = ServiceBuilder::new()
///     .layer(ResilienceLayer::new(policy))
///     .service(client);
///
/// let request = Request::get("http://api.example/devices").body(Full::default())?;
/// let response = client.oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ResilienceLayer {
    trace: TraceLayer,
    poll: PollLayer,
    retry: RetryLayer,
    breaker: CircuitBreakerLayer,
    classify: ClassifyLayer,
}

impl ResilienceLayer {
    /// The stack for `policy`.
    pub fn new(policy: Policy) -> Self {
        ResilienceLayer {
            trace: TraceLayer::new(&policy),
            poll: PollLayer::new(&policy),
            retry: RetryLayer::new(&policy),
            breaker: CircuitBreakerLayer::new(&policy),
            classify: ClassifyLayer::new(&policy),
        }
    }

    /// The stack for `policy`, with jitter drawn from generators seeded with
    /// `seed`, for tests and simulations that must repeat exactly.
    pub fn with_seed(policy: Policy, seed: u64) -> Self {
        ResilienceLayer {
            retry: RetryLayer::with_seed(&policy, seed),
            breaker: CircuitBreakerLayer::with_seed(&policy, seed.rotate_left(32)),
            ..ResilienceLayer::new(policy)
        }
    }

    /// A handle on the circuit breakers of this stack (shared by every
    /// client this layer wraps).
    pub fn breakers(&self) -> BreakerHandle {
        self.breaker.handle()
    }
}

impl<S: Clone> Layer<S> for ResilienceLayer {
    type Service = Resilience<S>;

    fn layer(&self, inner: S) -> Resilience<S> {
        Resilience {
            inner: self.trace.layer(
                self.poll.layer(
                    self.retry
                        .layer(self.breaker.layer(self.classify.layer(inner))),
                ),
            ),
        }
    }
}

/// A client wrapped in the rebound stack; built by [`ResilienceLayer`].
#[derive(Debug, Clone)]
pub struct Resilience<S> {
    inner: Stack<S>,
}

impl<S> Resilience<S> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref().get_ref().get_ref().get_ref().get_ref()
    }

    /// The wrapped client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut().get_mut().get_mut().get_mut().get_mut()
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> S {
        self.inner
            .into_inner()
            .into_inner()
            .into_inner()
            .into_inner()
            .into_inner()
    }
}

impl<S, B, RB> Service<Request<B>> for Resilience<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody + Default,
    RB: http_body::Body,
{
    type Response = Response<RB>;
    type Error = Error;
    // The stack's own future, not a newtype around it: a wrapper would cost a
    // move of the whole future on every call.
    type Future = <Stack<S> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline(always)]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner.call(request)
    }
}
