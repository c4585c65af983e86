//! Tracing: one span per logical call, carrying its outcome.
//!
//! The trace layer is the outermost layer of the stack, so that the span of a
//! logical call is the parent of every attempt and poll made under it. The
//! span is named `rebound.call` and uses OpenTelemetry's HTTP client field
//! names, so that `tracing-opentelemetry` exports it as an ordinary client span:
//!
//! | field | value |
//! |---|---|
//! | `http.request.method` | the request method |
//! | `url.full` | scheme, host, port and path; never the query string or userinfo |
//! | `server.address`, `server.port` | the host and port called |
//! | `http.response.status_code` | the status of the final response, if any |
//! | `error.type` | the status code of an error response, else the outcome |
//! | `rebound.outcome` | the outcome name (`success`, `terminal`, ...) |
//! | `rebound.error_codes` | the API error codes, comma-separated |
//! | `rebound.route` | the route that took the call (its name, or its index) |
//! | `rebound.decided_by`, `rebound.rule` | `rule` or `table`: what decided the class; the rule's name or `#index` |
//!
//! No header is ever recorded, so `Authorization`, `Cookie` and other secrets
//! cannot reach a span; the query string, which often carries keys, is left
//! out of `url.full`.

mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};
use tower_service::Service;

use crate::call::{self, CallRequest};
use crate::error::Error;
use crate::events::Listeners;
use crate::status::Classifier;

pub use future::ResponseFuture;
pub(crate) use future::{CallWatch, poll_in_span};
pub use layer::TraceLayer;

/// Opens a span for each call of the inner service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    /// Per route: the policy's own first.
    routes: Arc<[TraceRoute]>,
    listeners: Listeners,
}

/// What the span of a call on one route says.
#[derive(Debug, Clone)]
pub(crate) struct TraceRoute {
    pub(crate) classifier: Arc<Classifier>,
    /// The route's `name`, or its place in the policy's list.
    pub(crate) name: Arc<str>,
}

impl<S> Trace<S> {
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

impl<S> Trace<S> {
    #[inline]
    fn call_any<R, RB>(&mut self, request: R) -> ResponseFuture<S::Future>
    where
        R: CallRequest,
        S: Service<R, Response = Response<RB>, Error = Error>,
    {
        let (span, classifier) = open(&request, &self.routes);
        let watch = CallWatch::start(&request, &self.routes, &self.listeners);
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, classifier, watch)
    }
}

/// The span of a call, with its route named, and what names its outcome at
/// the end (only when someone listens).
#[inline]
pub(crate) fn open<R: CallRequest>(
    request: &R,
    routes: &[TraceRoute],
) -> (tracing::Span, Option<Arc<Classifier>>) {
    let span = call_span(request.request().method(), request.request().uri());
    let route = request.context().route;
    let own = call::route(routes, route);
    if route > 0 && !span.is_disabled() {
        span.record("rebound.route", &*own.name);
    }
    // The policy is needed only to name the outcome in the span.
    let classifier = (!span.is_disabled()).then(|| Arc::clone(&own.classifier));
    (span, classifier)
}

impl<S, B, RB> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Error>,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.call_any(request)
    }
}

fn call_span(method: &http::Method, uri: &Uri) -> tracing::Span {
    let span = tracing::info_span!(
        "rebound.call",
        otel.kind = "client",
        otel.name = method.as_str(),
        http.request.method = method.as_str(),
        url.full = tracing::field::Empty,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        rebound.outcome = tracing::field::Empty,
        rebound.route = tracing::field::Empty,
        rebound.decided_by = tracing::field::Empty,
        rebound.rule = tracing::field::Empty,
        rebound.error_codes = tracing::field::Empty,
        rebound.attempts = tracing::field::Empty,
        rebound.polls = tracing::field::Empty,
        rebound.requests = tracing::field::Empty,
    );
    // Worked out only when someone listens: the success path stays cheap
    // with tracing off.
    if !span.is_disabled() {
        span.record(
            "url.full",
            tracing::field::display(crate::span::UrlWithoutQuery(uri)),
        );
        if let Some(host) = uri.host() {
            span.record(
                "server.address",
                host.trim_start_matches('[').trim_end_matches(']'),
            );
        }
        if let Some(port) = crate::host_key::port(uri) {
            span.record("server.port", port);
        }
    }
    span
}
