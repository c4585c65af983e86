use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tracing::Span;

use crate::error::Error;
use crate::info::CallInfo;
use crate::outcome::Outcome;
use crate::status::Classifier;

pin_project! {
    /// The future of a [`Trace`](super::Trace) call: polls the inner future
    /// inside the call's span and records the outcome when it ends.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        classifier: Option<Arc<Classifier>>,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(super) fn new(inner: F, span: Span, classifier: Option<Arc<Classifier>>) -> Self {
        ResponseFuture {
            inner,
            span,
            classifier,
        }
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
        poll_in_span(this.inner, this.span, this.classifier.as_deref(), cx)
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
    cx: &mut Context<'_>,
) -> Poll<Result<Response<RB>, Error>>
where
    F: Future<Output = Result<Response<RB>, Error>>,
{
    let _entered = span.enter();
    let result = ready!(inner.poll(cx));
    if let Some(classifier) = classifier {
        record(span, &result, classifier);
    }
    Poll::Ready(result)
}

/// What the call span records when the call ends.
fn record<RB>(span: &Span, result: &Result<Response<RB>, Error>, classifier: &Classifier) {
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
        }
        Err(error) => {
            crate::span::record_error_fields(span, error);
            span.record("rebound.outcome", error.kind().as_str());
            span.record("rebound.attempts", error.attempts());
            span.record("rebound.polls", error.polls());
        }
    }
}
