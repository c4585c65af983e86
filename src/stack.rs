//! The whole stack, assembled from a policy.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::Span;

use pin_project_lite::pin_project;

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::breaker::{BreakerHandle, CircuitBreaker, CircuitBreakerLayer};
use crate::call::{Call, CallContext, InStack};
use crate::classify::{Classify, ClassifyLayer};
use crate::config::Policy;
use crate::error::{BoxError, Error};
use crate::events::Listeners;
use crate::poll::{self, Polling, PollingLayer};
use crate::retry::{ReplayBody, Retry, RetryLayer};
use crate::route::{RouteRequest, RouteTable};
use crate::status::Classifier;
use crate::trace::{self, CallWatch, TraceLayer, TraceRoute};

/// The layers under the poll layer.
type Inner<S> = InStack<Retry<InStack<CircuitBreaker<InStack<Classify<S>>>>>>;
/// The layers the call span wraps: the stack's future opens that span itself,
/// rather than nesting the trace layer's future (one move of the whole
/// future fewer per call).
type Stack<S> = InStack<Polling<Inner<S>>>;

/// Builds the whole rebound stack around a client, in the order of the
/// design: trace, poll, retry, rate limit, breaker, classify, then the
/// client. The rate limit takes its turns in the breaker layer, before the
/// breaker's admission: the same order, one layer fewer for every call.
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
    /// How each call picks its route; `None` for a policy without routes,
    /// which then spends nothing on it.
    routes: Option<Arc<RouteTable>>,
    trace: TraceLayer,
    poll: PollingLayer,
    retry: RetryLayer,
    breaker: CircuitBreakerLayer,
    classify: ClassifyLayer,
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
        let (trace, poll, retry, classify) = policy.routed_layers();
        let totals: Vec<_> = std::iter::once(policy.timeouts().total())
            .chain(policy.routes().iter().map(|r| r.timeouts.total()))
            .collect();
        let limit = policy.rate_limit_layer().totals(totals.clone());
        let breaker = breaker.rate_limit(limit.hook()).call_totals(totals.into());
        ResilienceLayer {
            routes: policy.route_table(),
            trace,
            poll,
            retry: match seed {
                Some(seed) => retry.seed(seed),
                None => retry,
            },
            breaker,
            classify,
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
        let classify = InStack(self.classify.layer(inner));
        let breaker = InStack(self.breaker.layer(classify));
        let retry = InStack(self.retry.layer(breaker));
        let poll = InStack(self.poll.layer(retry));
        Resilience {
            routes: self.routes.clone(),
            trace: self.trace.route_names(),
            listeners: self.trace.listeners().clone(),
            inner: poll,
        }
    }
}

/// A client wrapped in the rebound stack; built by [`ResilienceLayer`].
///
/// There is no `get_mut`: the retry and poll layers send their second
/// requests through clones of the client made when the stack was built, which
/// a change made through it would not reach.
#[derive(Debug, Clone)]
pub struct Resilience<S> {
    routes: Option<Arc<RouteTable>>,
    /// What the call span says of each route.
    trace: Arc<[TraceRoute]>,
    listeners: Listeners,
    inner: Stack<S>,
}

impl<S> Resilience<S> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        let breaker = self.inner.0.get_ref().0.get_ref();
        breaker.0.get_ref().0.get_ref()
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> S {
        let breaker = self.inner.0.into_inner().0.into_inner();
        breaker.0.into_inner().0.into_inner()
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
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Service::<Call<B>>::poll_ready(&mut self.inner, cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut context = CallContext::default();
        if let Some(routes) = &self.routes {
            context.route = routes.select(&RouteRequest {
                method: request.method(),
                uri: request.uri(),
                headers: request.headers(),
                extensions: request.extensions(),
            });
        }
        let call = Call::new(request, context);
        let (span, classifier) = trace::open(&call, &self.trace);
        let watch = CallWatch::start(&call, &self.trace, &self.listeners);
        let inner = {
            let _entered = span.enter();
            self.inner.call(call)
        };
        ResponseFuture {
            inner,
            span,
            classifier,
            watch,
        }
    }
}

pin_project! {
    /// The future of a [`Resilience`] call: a type of its own, so that the
    /// layers inside may change without changing it.
    pub struct ResponseFuture<S, B>
    where
        Inner<S>: Service<Call<B>>,
    {
        #[pin]
        inner: poll::ResponseFuture<Inner<S>, Call<B>>,
        span: Span,
        classifier: Option<Arc<Classifier>>,
        watch: Option<Box<CallWatch>>,
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody + Default,
    RB: http_body::Body,
{
    type Output = Result<Response<RB>, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        trace::poll_in_span(
            this.inner,
            this.span,
            this.classifier.as_deref(),
            this.watch,
            cx,
        )
    }
}
