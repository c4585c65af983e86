use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderName, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use tracing::Span;

use super::decision::{DelayReason, Refusal, RequestFacts, is_idempotent};
use super::key::idempotency_key;
use super::replay::{ReplayBody, Template};
use super::step::{Progress, Step, step, succeed};
use super::{RetryRoute, Shared};
use crate::call::{self, CallContext, CallRequest, Head};
use crate::deadline::call_deadline;
use crate::error::{Error, ErrorKind};
use crate::events::{
    AttemptEnded, AttemptStarted, Listeners, RetryRefused, RetryScheduled, Target, retry_reason,
};
use crate::ready::ready_clone;
use crate::status::StatusClass;
use crate::timer::Timer;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

pin_project! {
    /// The future of a [`Retry`](super::Retry) call: the retry loop as a state
    /// machine, so that a call that succeeds at once allocates nothing.
    ///
    /// What the loop keeps of a call between its attempts lies in the future
    /// itself, not in a struct of its own: built apart and moved in, such a
    /// struct cost the success path copies and a drop of its own
    /// (STACK_LOOP=retry). The driver's pieces borrow it as a `Call`.
    #[project = Projection]
    pub struct ResponseFuture<S, R>
    where
        R: CallRequest,
        S: Service<R>,
    {
        #[pin]
        state: State<S::Future>,
        // The service that sends the retries, cloned from the shared spare
        // when the first retry is due.
        service: Option<S>,
        // An unsent copy of the request, from which each retry is made.
        template: Option<Template<R::Body>>,
        shared: Arc<Shared<S>>,
        progress: Progress,
        // When the call started; read at the first moment it matters, so that
        // an answer that is ready at once reads no clock.
        started: Option<Instant>,
        // The route and the end of an enclosing call (a poll of an
        // operation), when the request carries one: no retry may go past it.
        context: CallContext,
        span: Span,
        // Where the request goes and when the attempt in flight started:
        // kept only when someone listens for events.
        watch: Option<Box<AttemptWatch>>,
    }
}

/// What the loop keeps of a call, borrowed from the future for one poll,
/// and the pieces of the driver: each runs a step or sends, and tells spans
/// and listeners.
struct Call<'a, S, B> {
    service: &'a mut Option<S>,
    template: &'a mut Option<Template<B>>,
    shared: &'a Arc<Shared<S>>,
    progress: &'a mut Progress,
    started: &'a mut Option<Instant>,
    context: &'a CallContext,
    span: &'a mut Span,
    watch: &'a mut Option<Box<AttemptWatch>>,
}

/// What the events of a call's attempts say of it.
struct AttemptWatch {
    method: http::Method,
    uri: http::Uri,
    started: Instant,
}

impl AttemptWatch {
    fn target(&self) -> Target<'_> {
        Target::new(&self.method, &self.uri)
    }

    /// Tells the listeners that attempt number `attempt` starts now.
    fn start(&mut self, listeners: &Listeners, attempt: u32) {
        self.started = Instant::now();
        let event = AttemptStarted {
            target: self.target(),
            attempt,
        };
        listeners.emit(|l| l.attempt_started(&event));
    }
}

pin_project! {
    /// Where the loop is. The attempt in flight and the timers are never
    /// needed at once, so they share their room.
    #[project = StateProj]
    enum State<F> {
        /// An attempt is in flight. Its timeouts are classify's business.
        Running { #[pin] future: F },
        /// Waiting before the next attempt.
        Waiting { #[pin] timer: Timer },
        /// The service is getting ready for the next attempt; the timer, when
        /// armed, is the end of the call.
        Readying { #[pin] timer: Timer },
        Done,
    }
}

impl<S, R, RB> ResponseFuture<S, R>
where
    R: CallRequest,
    R::Body: ReplayBody,
    S: Service<R, Response = Response<RB>, Error = Error> + Clone,
{
    // Forced, with the retry layer's other forced inlines: 53 and 39
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    pub(crate) fn new(service: &mut S, mut call: R, shared: Arc<Shared<S>>) -> Self {
        let route = call::route(&shared.routes, call.context().route);
        route.budget.record_call();
        let settings = &route.settings;
        let request = call.request_mut();
        let idempotent = is_idempotent(request.method());
        // Looked up only where it matters: a retry of an idempotent request
        // is safe with or without a key.
        let has_idempotency_key = !idempotent && {
            let key = HeaderName::from_static(IDEMPOTENCY_KEY);
            if settings.add_idempotency_key && !request.headers().contains_key(&key) {
                // Without the system's randomness no key is added, and the
                // write is not retried: better than a key others can guess.
                if let Some(value) = idempotency_key() {
                    request.headers_mut().insert(key.clone(), value);
                }
            }
            request.headers().contains_key(&key)
        };
        let facts = RequestFacts {
            idempotent,
            has_idempotency_key,
            attempts: 1,
        };
        let context = call.context();
        // Inside an assembled stack the template is always kept: the poll
        // layer above takes its head rather than copying the request again.
        let template = if settings.max_attempts > 1 || R::IN_STACK {
            Some(Template::of(call.request()))
        } else {
            None
        };
        let span = attempt_span(0);
        let watch = shared.listeners.is_some().then(|| {
            let watch = Box::new(AttemptWatch {
                method: call.request().method().clone(),
                uri: call.request().uri().clone(),
                started: Instant::now(),
            });
            let event = AttemptStarted {
                target: watch.target(),
                attempt: 1,
            };
            shared.listeners.emit(|l| l.attempt_started(&event));
            watch
        });
        let future = {
            let _entered = span.enter();
            service.call(call)
        };
        ResponseFuture {
            state: State::Running { future },
            service: None,
            template,
            shared,
            progress: Progress::new(facts),
            started: None,
            context,
            span,
            watch,
        }
    }
}

impl<S, R, RB> Future for ResponseFuture<S, R>
where
    R: CallRequest,
    R::Body: ReplayBody,
    S: Service<R, Response = Response<RB>, Error = Error> + Clone,
{
    type Output = Result<R::Answer<RB>, Error>;

    // Forced, with the retry layer's other forced inlines: 53 and 39
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut state, mut call) = self.project().split();
        loop {
            match state.as_mut().project() {
                StateProj::Running { future } => {
                    // Polled and matched here, the response stays where the
                    // attempt put it: each step through a `ready!` or a helper
                    // that returns it or takes it by value cost the success
                    // path a copy (STACK_LOOP=retry).
                    let polled = {
                        let _entered = call.span.enter();
                        future.poll(cx)
                    };
                    let error = match polled {
                        Poll::Ready(Ok(mut response)) => {
                            call.answered(&mut response);
                            state.set(State::Done);
                            return Poll::Ready(Ok(R::answer(response, call.head())));
                        }
                        Poll::Ready(Err(error)) => error,
                        Poll::Pending => {
                            call.started.get_or_insert_with(Instant::now);
                            return Poll::Pending;
                        }
                    };
                    let error = match call.step(error) {
                        Step::Fail(error) | Step::Refuse { error, .. } => error,
                        Step::Retry { delay, until, .. } => {
                            if delay.is_zero() {
                                state.set(State::Readying { timer: Timer::Idle });
                            } else {
                                state.set(State::Waiting { timer: Timer::Idle });
                                if let StateProj::Waiting { timer } = state.as_mut().project() {
                                    timer.arm(until);
                                }
                            }
                            continue;
                        }
                    };
                    state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Waiting { timer } => {
                    ready!(timer.poll_fired(cx));
                    state.set(State::Readying { timer: Timer::Idle });
                }
                StateProj::Readying { timer } => match ready!(call.poll_send(timer, cx)) {
                    Ok(future) => state.set(State::Running { future }),
                    Err(error) => {
                        state.set(State::Done);
                        return Poll::Ready(Err(error));
                    }
                },
                StateProj::Done => panic!("retry::ResponseFuture polled after completion"),
            }
        }
    }
}

/// Where the loop is, pinned for one poll.
type Pinned<'a, F> = Pin<&'a mut State<F>>;

impl<'a, S, R> Projection<'a, S, R>
where
    R: CallRequest,
    S: Service<R>,
{
    /// Where the loop is, and the rest of the call for the driver's pieces.
    #[inline(always)]
    fn split(self) -> (Pinned<'a, S::Future>, Call<'a, S, R::Body>) {
        let call = Call {
            service: self.service,
            template: self.template,
            shared: self.shared,
            progress: self.progress,
            started: self.started,
            context: self.context,
            span: self.span,
            watch: self.watch,
        };
        (self.state, call)
    }
}

impl<S, B> Call<'_, S, B>
where
    B: ReplayBody,
{
    fn route(&self) -> &RetryRoute {
        call::route(&self.shared.routes, self.context.route)
    }

    fn watch(&self) -> Watch<'_> {
        self.watch.as_deref().map(|w| (w, &self.shared.listeners))
    }

    /// The end of the call, which no wait and no attempt may pass.
    fn end(&self, started: Instant) -> Instant {
        call_deadline(
            started,
            self.route().timeouts.total(),
            self.context.deadline,
        )
    }

    /// Runs the step on an attempt's failure, and tells spans and listeners
    /// what it was and what follows.
    fn step(&mut self, error: Error) -> Step {
        attempt_failed(self.span, self.watch(), self.progress, &error);
        let route = call::route(&self.shared.routes, self.context.route);
        let (started, deadline, template) =
            (&mut *self.started, self.context.deadline, &*self.template);
        let step = step(
            &mut *self.progress,
            error,
            &route.settings,
            &route.budget,
            || {
                let now = Instant::now();
                let started = *started.get_or_insert(now);
                (
                    now,
                    call_deadline(started, route.timeouts.total(), deadline),
                )
            },
            || template.as_ref().is_some_and(Template::is_replayable),
            || route.jitter.next_u64(),
        );
        let watch = self.watch();
        match &step {
            Step::Fail(_) => {}
            Step::Refuse {
                refusal, failed, ..
            } => refused(watch, self.progress, *refusal, *failed),
            Step::Retry { delay, reason, .. } => {
                scheduled(watch, self.progress, route, *delay, *reason)
            }
        }
        step
    }

    /// Runs the step on the response that ends the call, in place, and
    /// tells spans and listeners.
    #[inline(always)]
    fn answered<RB>(&mut self, response: &mut Response<RB>) {
        let route = call::route(&self.shared.routes, self.context.route);
        succeed(self.progress, response, &route.budget);
        attempt_answered(self.span, self.watch(), self.progress, route, response);
    }

    /// The request's head for the caller's answer, taken only when asked.
    #[inline(always)]
    fn head(&mut self) -> impl FnOnce() -> Option<Head> + '_ {
        || self.template.take().map(Template::into_head)
    }

    /// Sends the next attempt once the service is ready, unless the call
    /// ends first.
    fn poll_send<R>(
        &mut self,
        mut timer: Pin<&mut Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Future, Error>>
    where
        R: CallRequest<Body = B>,
        S: Service<R, Error = Error> + Clone,
    {
        let deadline = self.end(self.started.unwrap_or_else(Instant::now));
        let service = match ready_clone(self.service, &self.shared.spare, cx) {
            Poll::Ready(Ok(service)) => service,
            Poll::Ready(Err(error)) => {
                return Poll::Ready(Err(self.progress.not_ready_error(error)));
            }
            Poll::Pending => {
                if !timer.is_armed() {
                    timer.as_mut().arm(deadline);
                }
                ready!(timer.poll_fired(cx));
                return Poll::Ready(Err(self.progress.deadline_error()));
            }
        };
        // The copy is made only now, when it is sent: a retry that is never
        // sent copies nothing.
        let Some(request) = self.template.as_ref().and_then(Template::request) else {
            return Poll::Ready(Err(self.progress.unreplayable_error()));
        };
        // No attempt may outlive the call: classify ends it by then.
        let request = R::from_parts(request, self.context.with_deadline(deadline));
        *self.span = attempt_span(self.progress.facts.attempts);
        self.progress.facts.attempts += 1;
        if let Some(watch) = self.watch.as_deref_mut() {
            watch.start(&self.shared.listeners, self.progress.facts.attempts);
        }
        let _entered = self.span.enter();
        Poll::Ready(Ok(service.call(request)))
    }
}

/// Who listens to the call's events, and what they say of it.
type Watch<'a> = Option<(&'a AttemptWatch, &'a Listeners)>;

/// Records a failed attempt in its span and tells the listeners.
fn attempt_failed(span: &Span, watch: Watch<'_>, progress: &Progress, error: &Error) {
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
fn attempt_answered<RB>(
    span: &Span,
    watch: Watch<'_>,
    progress: &Progress,
    route: &RetryRoute,
    response: &Response<RB>,
) {
    if !span.is_disabled() {
        record_response(span, response, route);
    }
    if let Some((watch, listeners)) = watch {
        answered(watch, listeners, progress, route, response);
    }
}

/// Tells the listeners of the attempt that answered the call.
fn answered<RB>(
    watch: &AttemptWatch,
    listeners: &Listeners,
    progress: &Progress,
    route: &RetryRoute,
    response: &Response<RB>,
) {
    let class = route
        .classifier
        .as_ref()
        .map_or(StatusClass::Success, |classifier| {
            classifier.classify_head(response.status(), response.headers())
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
fn scheduled(
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
fn refused(watch: Watch<'_>, progress: &Progress, refusal: Refusal, failed: ErrorKind) {
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

fn attempt_span(resend_count: u32) -> Span {
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

fn record_response<RB>(span: &Span, response: &Response<RB>, shared: &RetryRoute) {
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

fn record_error(span: &Span, error: &Error) {
    if span.is_disabled() {
        return;
    }
    crate::span::record_error_fields(span, error);
    if let Some(class) = error.class() {
        span.record("rebound.class", class.as_str());
    }
}
