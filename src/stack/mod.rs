//! The whole stack, assembled from a policy.

mod driver;
mod plan;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{BreakerHandle, CircuitBreakerLayer};
use crate::config::Policy;
use crate::error::{BoxError, Error};
use crate::retry::ReplayBody;
use plan::{LastHost, Plans};

pub use driver::ResponseFuture;

/// Builds the whole rebound stack around a client, in the order of the
/// design: trace, poll, retry, rate limit, breaker, classify, then the
/// client.
///
/// The stack is not a nest of the standalone layers' services but one
/// driver that runs the same steps in that order, over one client future,
/// one timer and the plan of the call's route, chosen once: a layer alone
/// and the assembled stack behave the same, and the stack's call moves no
/// future into another.
///
/// The stack needs a Tokio runtime with its timer enabled: timeouts and waits
/// come from `tokio::time`. Request bodies must implement
/// [`ReplayBody`](crate::retry::ReplayBody) (`Full`, `Empty`, `String`, or a
/// streaming body wrapped by [`Policy::buffer_body`]) and `Default` (status
/// requests of the poll layer have an empty body).
///
/// From a preset or a policy file:
///
/// ```
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use bytes::Bytes;
/// use tower_rebound::{Policy, ResilienceLayer};
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
///
/// Or in code, with no TOML: each layer's settings, checked as a file's are.
///
/// ```
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use bytes::Bytes;
/// use std::time::Duration;
/// use tower_rebound::breaker::BreakerSettings;
/// use tower_rebound::classify::ClassifySettings;
/// use tower_rebound::retry::RetrySettings;
/// use tower_rebound::{Policy, ResilienceLayer, Timeouts};
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let client = tower::service_fn(|_req: Request<Full<Bytes>>| async {
/// #     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
/// # });
/// let policy = Policy::default()
///     .with_classify(ClassifySettings::builder().retryable([429, 500, 503]).pollable([202]).build()?)
///     .with_retry(RetrySettings::builder().max_attempts(3).build()?)
///     .with_breaker(BreakerSettings::builder().consecutive_failures(5).build()?)
///     .with_timeouts(Timeouts::new(Duration::from_secs(2), Duration::from_secs(20))?);
/// let client = ResilienceLayer::new(policy).layer(client);
///
/// let request = Request::get("http://api.example/devices").body(Full::default())?;
/// assert_eq!(client.oneshot(request).await?.status(), 200);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ResilienceLayer {
    plans: Arc<Plans>,
    /// The stack's breakers, kept for its handle and for a successor that
    /// keeps them.
    breaker: CircuitBreakerLayer,
}

impl ResilienceLayer {
    /// The stack for `policy`.
    pub fn new(policy: Policy) -> Self {
        ResilienceLayer::build(&policy, policy.breaker_layer(), None)
    }

    /// The stack for `policy`, with jitter drawn from generators seeded with
    /// `seed`, for tests and simulations that must repeat exactly.
    pub fn with_seed(policy: Policy, seed: u64) -> Self {
        let breaker =
            CircuitBreakerLayer::with_seed(*policy.breaker_settings(), seed.rotate_left(32))
                .listeners_from(policy.listeners());
        ResilienceLayer::build(&policy, breaker, Some(seed))
    }

    fn build(policy: &Policy, breaker: CircuitBreakerLayer, seed: Option<u64>) -> Self {
        let retry = policy.retry_layer();
        let retry = match seed {
            Some(seed) => retry.seed(seed),
            None => retry,
        };
        let limit = policy.rate_limit_layer().hook();
        let plans = Plans::of(
            policy,
            &retry,
            &policy.polling_layer(),
            breaker.registry(),
            limit,
        );
        ResilienceLayer {
            plans: Arc::new(plans),
            breaker,
        }
    }

    /// A handle on the circuit breakers of this stack (shared by every
    /// client this layer wraps).
    pub fn breakers(&self) -> BreakerHandle {
        self.breaker.handle()
    }

    /// The stack for `policy`, keeping this stack's breakers (the state of
    /// every host's breaker, open ones included) when `policy` says the
    /// same of them; with breakers of its own when it says otherwise.
    pub(crate) fn succeeded_by(&self, policy: &Policy) -> Self {
        let breaker = if self.breaker.settings() == policy.breaker_settings() {
            self.breaker.clone()
        } else {
            policy.breaker_layer()
        };
        ResilienceLayer::build(policy, breaker, None)
    }
}

impl<S: Clone> Layer<S> for ResilienceLayer {
    type Service = Resilience<S>;

    fn layer(&self, inner: S) -> Resilience<S> {
        Resilience {
            spare: Arc::new(inner.clone()),
            inner,
            plans: Arc::clone(&self.plans),
            last: None,
        }
    }
}

/// A client wrapped in the rebound stack; built by [`ResilienceLayer`].
///
/// There is no `get_mut`: retries and status requests go through a clone of
/// the client made when the stack was built, which a change made through it
/// would not reach.
#[derive(Clone)]
pub struct Resilience<S> {
    inner: S,
    /// The clone retries and status requests are sent through.
    spare: Arc<S>,
    plans: Arc<Plans>,
    last: LastHost,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Resilience<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resilience")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Resilience<S> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Resilience<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody + Default,
    RB: http_body::Body + Unpin,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, B, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::transport(e.into()))
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        ResponseFuture::start(
            &mut self.inner,
            &self.spare,
            &self.plans,
            &mut self.last,
            request,
        )
    }
}
