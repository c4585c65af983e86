//! What the retry loop tells spans and listeners: the same for the retry
//! layer's future and the assembled stack's driver.

use std::time::Duration;

use http::Response;
use tokio::time::Instant;
use tracing::Span;

use super::RetryRoute;
use super::decision::{DelayReason, Refusal};
use super::step::Progress;
use crate::error::{Error, ErrorKind};
use crate::events::{
    AttemptEnded, AttemptStarted, Listeners, RetryRefused, RetryScheduled, Target, retry_reason,
};
use crate::status::StatusClass;

/// What the events of a call's attempts say of it.
pub(crate) struct AttemptWatch {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) started: Instant,
}

impl AttemptWatch {
    /// The watch of a request's attempts, when anyone listens, and the
    /// event of its first.
    #[inline(always)]
    pub(crate) fn first<B>(
        listeners: &Listeners,
        request: &http::Request<B>,
    ) -> Option<Box<AttemptWatch>> {
        listeners.is_some().then(|| {
            let watch = Box::new(AttemptWatch {
                method: request.method().clone(),
                uri: request.uri().clone(),
                started: Instant::now(),
            });
            let event = AttemptStarted {
                target: watch.target(),
                attempt: 1,
            };
            listeners.emit(|l| l.attempt_started(&event));
            watch
        })
    }

    pub(crate) fn target(&self) -> Target<'_> {
        Target::new(&self.method, &self.uri)
    }

    /// Tells the listeners that attempt number `attempt` starts now.
    pub(crate) fn start(&mut self, listeners: &Listeners, attempt: u32) {
        self.started = Instant::now();
        let event = AttemptStarted {
            target: self.target(),
            attempt,
        };
        listeners.emit(|l| l.attempt_started(&event));
    }
}

/// Who listens to the call's events, and what they say of it.
pub(crate) type Watch<'a> = Option<(&'a AttemptWatch, &'a Listeners)>;

/// Records a failed attempt in its span and tells the listeners.
pub(crate) fn attempt_failed(span: &Span, watch: Watch<'_>, progress: &Progress, error: &Error) {
    record_error(span, error);
    if let Some((watch, listeners)) = watch {
        let event = AttemptEnded {
            target: watch.target(),
            attempt: progress.facts.attempts,
            status: error.status(),
            class: error.class(),
            error: Some(error.kind()),
            api_errors: error.api_errors(),
            duration: watch.started.elapsed(),
        };
        listeners.emit(|l| l.attempt_ended(&event));
    }
}

/// Records the attempt that answered the call in its span and tells the
/// listeners. Inlined, so that a call with a disabled span and no listener
/// (the success path's common case) calls nothing (STACK_LOOP=retry).
#[inline(always)]
pub(crate) fn attempt_answered<RB>(
    span: &Span,
    watch: Watch<'_>,
    progress: &Progress,
    route: &RetryRoute,
    response: &Response<RB>,
    class: Option<StatusClass>,
) {
    if !span.is_disabled() {
        record_response(span, response, route);
    }
    if let Some((watch, listeners)) = watch {
        answered(watch, listeners, progress, route, response, class);
    }
}

/// Tells the listeners of the attempt that answered the call.
pub(crate) fn answered<RB>(
    watch: &AttemptWatch,
    listeners: &Listeners,
    progress: &Progress,
    route: &RetryRoute,
    response: &Response<RB>,
    class: Option<StatusClass>,
) {
    // Decided again only where no class came with the answer (the retry
    // layer alone, which sees a plain response).
    let class = class.unwrap_or_else(|| {
        route
            .classifier
            .as_ref()
            .map_or(StatusClass::Success, |classifier| {
                classifier.classify_head(response.status(), response.headers())
            })
    });
    let event = AttemptEnded {
        target: watch.target(),
        attempt: progress.facts.attempts,
        status: Some(response.status()),
        class: Some(class),
        error: None,
        api_errors: &[],
        duration: watch.started.elapsed(),
    };
    listeners.emit(|l| l.attempt_ended(&event));
}

/// Tells of a retry that is due: an event, and a line in the log.
pub(crate) fn scheduled(
    watch: Watch<'_>,
    progress: &Progress,
    route: &RetryRoute,
    delay: Duration,
    reason: DelayReason,
) {
    // The step keeps the failure it retries.
    let Some(error) = progress.last_error.as_ref() else {
        return;
    };
    if let Some((watch, listeners)) = watch {
        let event = RetryScheduled {
            target: watch.target(),
            attempt: progress.facts.attempts,
            delay,
            wait: reason.public(),
            reason: retry_reason(error),
            max_attempts: route.settings.max_attempts,
        };
        listeners.emit(|l| l.retry_scheduled(&event));
    }
    tracing::info!(
        attempt = progress.facts.attempts,
        max_attempts = route.settings.max_attempts,
        delay_ms = delay.as_millis() as u64,
        reason = reason.as_str(),
        error.type = error.kind().as_str(),
        http.response.status_code = error.status().map(|s| s.as_u16()),
        "retrying"
    );
}

/// Tells of a refused retry: the event of a retry that was due and is not
/// sent (refusals that mean no retry was due, such as spent attempts, are
/// none), and a line in the log.
pub(crate) fn refused(watch: Watch<'_>, progress: &Progress, refusal: Refusal, failed: ErrorKind) {
    if let (Some((watch, listeners)), Some(public)) = (watch, refusal.public()) {
        let event = RetryRefused {
            target: watch.target(),
            attempt: progress.facts.attempts,
            refusal: public,
        };
        listeners.emit(|l| l.retry_refused(&event));
    }
    if refusal != Refusal::NotRetryable {
        tracing::info!(
            attempt = progress.facts.attempts,
            reason = refusal.as_str(),
            error.type = failed.as_str(),
            "not retrying"
        );
    }
}

pub(crate) fn attempt_span(resend_count: u32) -> Span {
    tracing::info_span!(
        "rebound.attempt",
        http.request.resend_count = resend_count,
        http.response.status_code = tracing::field::Empty,
        rebound.class = tracing::field::Empty,
        rebound.decided_by = tracing::field::Empty,
        rebound.rule = tracing::field::Empty,
        rebound.error_codes = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

pub(crate) fn record_response<RB>(span: &Span, response: &Response<RB>, shared: &RetryRoute) {
    if span.is_disabled() {
        return;
    }
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    let Some(classifier) = shared.classifier.as_ref() else {
        span.record("rebound.class", StatusClass::Success.as_str());
        return;
    };
    let (class, rule) = crate::span::decide_head(classifier, status, response.headers());
    span.record("rebound.class", class.as_str());
    crate::span::record_decision(span, rule);
}

pub(crate) fn record_error(span: &Span, error: &Error) {
    if span.is_disabled() {
        return;
    }
    crate::span::record_error_fields(span, error);
    if let Some(class) = error.class() {
        span.record("rebound.class", class.as_str());
    }
}
