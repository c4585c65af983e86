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

use crate::error::Error;
use crate::events::Listeners;
use crate::status::Classifier;

pub use future::ResponseFuture;
pub(crate) use future::{CallWatch, record};
pub use layer::TraceLayer;

/// Opens a span for each call of the inner service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    /// Names the outcome in the span and the event.
    classifier: Arc<Classifier>,
    listeners: Listeners,
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

/// Opens the span of a call to `uri`, and names its route in it (`route`
/// for a call that took a route of a policy's, `None` for the policy's own).
/// Returns the classifier the span needs to name the outcome, only when the
/// span is recorded.
#[inline]
pub(crate) fn open(
    method: &http::Method,
    uri: &Uri,
    route: Option<&str>,
    classifier: &Arc<Classifier>,
) -> (tracing::Span, Option<Arc<Classifier>>) {
    let span = call_span(method, uri);
    if span.is_disabled() {
        return (span, None);
    }
    if let Some(route) = route {
        span.record("rebound.route", route);
    }
    (span, Some(Arc::clone(classifier)))
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
        let (method, uri) = (request.method(), request.uri());
        let (span, classifier) = open(method, uri, None, &self.classifier);
        let watch = CallWatch::start(method, uri, None, &self.classifier, &self.listeners);
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, classifier, watch)
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
