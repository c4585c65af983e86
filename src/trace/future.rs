use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tracing::Span;

use crate::error::Error;
use crate::events::{CallEnded, Listeners, Target};
use crate::info::CallInfo;
use crate::outcome::Outcome;
use crate::status::{Classifier, StatusClass};

pin_project! {
    /// The future of a [`Trace`](super::Trace) call: polls the inner future
    /// inside the call's span and records the outcome when it ends.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        classifier: Option<Arc<Classifier>>,
        watch: Option<Box<CallWatch>>,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(super) fn new(
        inner: F,
        span: Span,
        classifier: Option<Arc<Classifier>>,
        watch: Option<Box<CallWatch>>,
    ) -> Self {
        ResponseFuture {
            inner,
            span,
            classifier,
            watch,
        }
    }
}

/// What the end of a call tells the listeners: kept, boxed, only when there
/// are listeners.
pub(crate) struct CallWatch {
    listeners: Listeners,
    method: http::Method,
    uri: http::Uri,
    started: tokio::time::Instant,
    route: Option<Arc<str>>,
    classifier: Arc<Classifier>,
}

impl CallWatch {
    /// The watch of `request`'s call, when anyone listens.
    #[inline]
    pub(crate) fn start(
        method: &http::Method,
        uri: &http::Uri,
        route: Option<&Arc<str>>,
        classifier: &Arc<Classifier>,
        listeners: &Listeners,
    ) -> Option<Box<CallWatch>> {
        if !listeners.is_some() {
            return None;
        }
        Some(Box::new(CallWatch {
            listeners: listeners.clone(),
            method: method.clone(),
            uri: uri.clone(),
            started: tokio::time::Instant::now(),
            route: route.cloned(),
            classifier: Arc::clone(classifier),
        }))
    }

    pub(crate) fn end<RB>(self, result: Result<&Response<RB>, &Error>, class: Option<StatusClass>) {
        let (outcome, status, attempts, polls, requests) = match result {
            Ok(response) => {
                // Decided again only where no class came with the answer
                // (the trace layer alone, which sees a plain response).
                let class = class.unwrap_or_else(|| {
                    self.classifier
                        .classify_head(response.status(), response.headers())
                });
                let info = CallInfo::of(response);
                (
                    Outcome::of_response(class),
                    Some(response.status()),
                    info.attempts(),
                    info.polls(),
                    info.requests(),
                )
            }
            Err(error) => (
                Outcome::from(error.kind()),
                error.status(),
                error.attempts(),
                error.polls(),
                error.requests(),
            ),
        };
        let event = CallEnded {
            target: Target::new(&self.method, &self.uri),
            outcome,
            status,
            attempts,
            polls,
            requests,
            duration: self.started.elapsed(),
            route: self.route.as_deref(),
        };
        self.listeners.emit(|l| l.call_ended(&event));
    }
}

impl<F, RB> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, Error>>,
{
    type Output = Result<Response<RB>, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        poll_in_span(
            this.inner,
            this.span,
            this.classifier.as_deref(),
            this.watch,
            cx,
        )
    }
}

/// Polls a call's future inside its span, and records the outcome in the
/// span when it ends: the trace layer's future and the stack's own both do
/// this.
// Forced: a plain #[inline] costs the whole stack 6 and 9 more instructions
// per call, ready and pending path (STACK_LOOP).
#[inline(always)]
pub(crate) fn poll_in_span<F, RB>(
    inner: Pin<&mut F>,
    span: &Span,
    classifier: Option<&Classifier>,
    watch: &mut Option<Box<CallWatch>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<RB>, Error>>
where
    F: Future<Output = Result<Response<RB>, Error>>,
{
    let _entered = span.enter();
    let result = ready!(inner.poll(cx));
    if let Some(classifier) = classifier {
        record(span, result.as_ref(), classifier);
    }
    if let Some(watch) = watch.take() {
        watch.end(result.as_ref(), None);
    }
    Poll::Ready(result)
}

/// What the call span records when the call ends.
pub(crate) fn record<RB>(
    span: &Span,
    result: Result<&Response<RB>, &Error>,
    classifier: &Classifier,
) {
    match result {
        Ok(response) => {
            let status = response.status();
            let (class, rule) = crate::span::decide_head(classifier, status, response.headers());
            crate::span::record_decision(span, rule);
            let outcome = Outcome::of_response(class);
            let info = CallInfo::of(response);
            span.record("http.response.status_code", status.as_u16());
            span.record("rebound.outcome", outcome.as_str());
            span.record("rebound.attempts", info.attempts());
            span.record("rebound.polls", info.polls());
            span.record("rebound.requests", info.requests());
        }
        Err(error) => {
            crate::span::record_error_fields(span, error);
            span.record("rebound.outcome", error.kind().as_str());
            span.record("rebound.attempts", error.attempts());
            span.record("rebound.polls", error.polls());
            span.record("rebound.requests", error.requests());
        }
    }
}
