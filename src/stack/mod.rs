//! The whole stack, assembled from a policy.

mod driver;
mod plan;
mod runtime;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{BreakerHandle, CircuitBreakerLayer};
use crate::config::Policy;
use crate::error::{BoxError, Error};
use crate::retry::ReplayBody;
use plan::{LastHost, Plans, Shared};

pub use driver::ResponseFuture;
pub use runtime::Runtime;

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
    /// The live state of the stack, kept for its handles and for a
    /// successor that keeps parts of it.
    runtime: Runtime,
}

impl ResilienceLayer {
    /// The stack for `policy`, with a runtime of its own.
    pub fn new(policy: Policy) -> Self {
        let runtime = Runtime::new(&policy);
        ResilienceLayer::build(&policy, runtime, None)
    }

    /// The stack for `policy` on `runtime`: its budget, its rate limit and
    /// its breakers, shared with every other stack on it.
    pub fn with_runtime(policy: Policy, runtime: &Runtime) -> Self {
        ResilienceLayer::build(&policy, runtime.clone(), None)
    }

    /// The stack for `policy`, with jitter drawn from generators seeded with
    /// `seed`, for tests and simulations that must repeat exactly.
    pub fn with_seed(policy: Policy, seed: u64) -> Self {
        let runtime = Runtime {
            breakers: CircuitBreakerLayer::with_seed(
                *policy.breaker_settings(),
                seed.rotate_left(32),
            )
            .listeners_from(policy.listeners()),
            ..Runtime::new(&policy)
        };
        ResilienceLayer::build(&policy, runtime, Some(seed))
    }

    fn build(policy: &Policy, runtime: Runtime, seed: Option<u64>) -> Self {
        let retry = policy
            .retry_layer()
            .budget_from(Arc::clone(&runtime.budget));
        let retry = match seed {
            Some(seed) => retry.seed(seed),
            None => retry,
        };
        let plans = Plans::of(
            policy,
            &retry,
            &policy.polling_layer(),
            runtime.breakers.registry(),
            runtime.limit.hook(),
            runtime.concurrency.limits(),
        );
        ResilienceLayer {
            plans: Arc::new(plans),
            runtime,
        }
    }

    /// The live state of this stack (shared by every client this layer
    /// wraps): hand it to [`ResilienceLayer::with_runtime`] to share it.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// A handle on the circuit breakers of this stack (shared by every
    /// client this layer wraps).
    pub fn breakers(&self) -> BreakerHandle {
        self.runtime.breakers()
    }

    /// The stack for `policy`, keeping each part of this stack's runtime
    /// that `policy` says the same of: its breakers (every host's, open ones
    /// included), its retry budget (what it has saved and spent) and its
    /// rate limit (the turns taken, and a shared limit's store). A part
    /// whose settings changed starts afresh.
    pub(crate) fn succeeded_by(&self, policy: &Policy) -> Self {
        let old = &self.runtime;
        let fresh = Runtime::new(policy);
        let runtime = Runtime {
            breakers: if old.breakers.settings() == policy.breaker_settings() {
                old.breakers.clone()
            } else {
                fresh.breakers
            },
            budget: if old.budget.settings() == policy.retry_settings().budget() {
                Arc::clone(&old.budget)
            } else {
                fresh.budget
            },
            limit: if old.limit.settings() == Some(policy.rate_limit()) {
                old.limit.clone()
            } else {
                fresh.limit
            },
            concurrency: if old.concurrency.settings() == Some(policy.concurrency()) {
                old.concurrency.clone()
            } else {
                fresh.concurrency
            },
        };
        ResilienceLayer::build(policy, runtime, None)
    }
}

impl<S: Clone> Layer<S> for ResilienceLayer {
    type Service = Resilience<S>;

    fn layer(&self, inner: S) -> Resilience<S> {
        Resilience {
            shared: Arc::new(Shared {
                spare: inner.clone(),
                plans: (*self.plans).clone(),
            }),
            inner,
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
    /// The plans, and the clone retries and status requests are sent
    /// through.
    shared: Arc<Shared<S>>,
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
        ResponseFuture::start(&mut self.inner, &self.shared, &mut self.last, request)
    }
}
