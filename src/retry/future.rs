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

use super::decision::{Decision, DelayReason, Refusal, RequestFacts, decide, is_idempotent};
use super::key::idempotency_key;
use super::replay::{ReplayBody, Template};
use super::{RetryCause, RetryRoute, Shared};
use crate::call::{self, CallContext, CallRequest};
use crate::deadline::call_deadline;
use crate::error::{Error, ErrorKind};
use crate::events::{
    AttemptEnded, AttemptStarted, Listeners, RetryRefused, RetryScheduled, Target, WaitReason,
    retry_reason,
};
use crate::info::CallInfo;
use crate::ready::ready_clone;
use crate::status::StatusClass;
use crate::timer::Timer;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

pin_project! {
    /// The future of a [`Retry`](super::Retry) call: the retry loop as a state
    /// machine, so that a call that succeeds at once allocates nothing.
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
        facts: RequestFacts,
        // When the call started; read at the first moment it matters, so that
        // an answer that is ready at once reads no clock.
        started: Option<Instant>,
        // The route and the end of an enclosing call (a poll of an
        // operation), when the request carries one: no retry may go past it.
        context: CallContext,
        previous_delay: Duration,
        last_error: Option<Error>,
        span: Span,
        // Where the request goes and when the attempt in flight started:
        // kept only when someone listens for events.
        watch: Option<Box<AttemptWatch>>,
    }
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
            facts,
            started: None,
            context,
            previous_delay: Duration::ZERO,
            last_error: None,
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
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Running { future } => {
                    let polled = {
                        let _entered = this.span.enter();
                        future.poll(cx)
                    };
                    let error = match polled {
                        Poll::Ready(Ok(mut response)) => {
                            let route = call::route(&this.shared.routes, this.context.route);
                            route.budget.deposit();
                            record_response(this.span, &response, route);
                            if let Some(watch) = this.watch.as_deref() {
                                let class = route.classifier.as_ref().map_or(
                                    StatusClass::Success,
                                    |classifier| {
                                        classifier
                                            .classify_head(response.status(), response.headers())
                                    },
                                );
                                let event = AttemptEnded {
                                    target: watch.target(),
                                    attempt: this.facts.attempts,
                                    status: Some(response.status()),
                                    class: Some(class),
                                    error: None,
                                    duration: watch.started.elapsed(),
                                };
                                this.shared.listeners.emit(|l| l.attempt_ended(&event));
                            }
                            if this.facts.attempts > 1 {
                                if let Some(last) = this.last_error.as_ref() {
                                    route.budget.refund(if last.is_throttling() {
                                        RetryCause::Throttling
                                    } else {
                                        RetryCause::Transient
                                    });
                                }
                                let info = CallInfo::new(this.facts.attempts, 0);
                                response.extensions_mut().insert(info);
                            }
                            this.state.set(State::Done);
                            let template = this.template;
                            let answer =
                                R::answer(response, || template.take().map(Template::into_head));
                            return Poll::Ready(Ok(answer));
                        }
                        Poll::Ready(Err(error)) => error,
                        Poll::Pending => {
                            this.started.get_or_insert_with(Instant::now);
                            return Poll::Pending;
                        }
                    };
                    // An attempt an open circuit stopped was never sent.
                    let sent = match error.kind() {
                        ErrorKind::CircuitOpen | ErrorKind::Throttled | ErrorKind::RateLimited => {
                            this.facts.attempts - 1
                        }
                        _ => this.facts.attempts,
                    };
                    let error = error.with_attempts(sent);
                    record_error(this.span, &error);
                    if let Some(watch) = this.watch.as_deref() {
                        let event = AttemptEnded {
                            target: watch.target(),
                            attempt: this.facts.attempts,
                            status: error.status(),
                            class: error.class(),
                            error: Some(error.kind()),
                            duration: watch.started.elapsed(),
                        };
                        this.shared.listeners.emit(|l| l.attempt_ended(&event));
                    }
                    if error.kind() == ErrorKind::DeadlineExceeded {
                        // Classify cut the attempt at the end of the call.
                        this.state.set(State::Done);
                        let error = match this.last_error.take() {
                            Some(last) => last.with_kind(ErrorKind::DeadlineExceeded),
                            None => error,
                        };
                        return Poll::Ready(Err(error.with_attempts(this.facts.attempts)));
                    }
                    if !error.is_retryable() {
                        // Nothing to decide, and no clock to read: an answer
                        // that is never retried (an open circuit among them)
                        // costs no more than a success.
                        if error.class().is_some() {
                            // The server answered, and not with a failure.
                            call::route(&this.shared.routes, this.context.route)
                                .budget
                                .deposit();
                        }
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error));
                    }
                    let now = Instant::now();
                    let started = *this.started.get_or_insert(now);
                    let template = &*this.template;
                    let shared = call::route(&this.shared.routes, this.context.route);
                    let settings = &shared.settings;
                    let retry = this.facts.attempts;
                    let previous = *this.previous_delay;
                    let decision = decide(
                        &error,
                        this.facts,
                        settings,
                        &shared.budget,
                        now,
                        Some(call_deadline(
                            started,
                            shared.timeouts.total(),
                            this.context.deadline,
                        )),
                        || template.as_ref().is_some_and(Template::is_replayable),
                        || {
                            settings
                                .backoff
                                .delay(retry, previous, shared.jitter.next_u64())
                        },
                    );
                    match decision {
                        Decision::Stop(refusal) => {
                            this.state.set(State::Done);
                            if let Some(watch) = this.watch.as_deref() {
                                refused_event(&this.shared.listeners, watch, refusal, this.facts);
                            }
                            return Poll::Ready(Err(refuse(error, refusal, shared, this.facts)));
                        }
                        Decision::Retry { delay, reason } => {
                            if let Some(watch) = this.watch.as_deref() {
                                let event = RetryScheduled {
                                    target: watch.target(),
                                    attempt: this.facts.attempts,
                                    delay,
                                    wait: match reason {
                                        DelayReason::RetryAfter => WaitReason::RetryAfter,
                                        DelayReason::Backoff => WaitReason::Backoff,
                                    },
                                    reason: retry_reason(&error),
                                };
                                this.shared.listeners.emit(|l| l.retry_scheduled(&event));
                            }
                            tracing::info!(
                                attempt = this.facts.attempts,
                                max_attempts = settings.max_attempts,
                                delay_ms = delay.as_millis() as u64,
                                reason = reason.as_str(),
                                error.type = error.kind().as_str(),
                                http.response.status_code = error.status().map(|s| s.as_u16()),
                                "retrying"
                            );
                            *this.previous_delay = delay;
                            *this.last_error = Some(error);
                            if delay.is_zero() {
                                this.state.set(State::Readying { timer: Timer::Idle });
                            } else {
                                this.state.set(State::Waiting { timer: Timer::Idle });
                                if let StateProj::Waiting { timer } = this.state.as_mut().project()
                                {
                                    timer.arm(now + delay);
                                }
                            }
                        }
                    }
                }
                StateProj::Waiting { timer } => {
                    ready!(timer.poll_fired(cx));
                    this.state.set(State::Readying { timer: Timer::Idle });
                }
                StateProj::Readying { mut timer } => {
                    let deadline = call_deadline(
                        this.started.unwrap_or_else(Instant::now),
                        call::route(&this.shared.routes, this.context.route)
                            .timeouts
                            .total(),
                        this.context.deadline,
                    );
                    let service = match ready_clone(this.service, &this.shared.spare, cx) {
                        Poll::Ready(Ok(service)) => service,
                        Poll::Ready(Err(error)) => {
                            let attempts = this.facts.attempts;
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error.with_attempts(attempts)));
                        }
                        Poll::Pending => {
                            if !timer.is_armed() {
                                timer.as_mut().arm(deadline);
                            }
                            ready!(timer.poll_fired(cx));
                            this.state.set(State::Done);
                            let error = deadline_error(this.last_error.take());
                            return Poll::Ready(Err(error.with_attempts(this.facts.attempts)));
                        }
                    };
                    // The copy is made only now, when it is sent: a retry that
                    // is never sent copies nothing.
                    let Some(request) = this.template.as_ref().and_then(Template::request) else {
                        // The body outgrew its recording since the decision.
                        this.state.set(State::Done);
                        let error = this.last_error.take().map_or_else(
                            || Error::new(ErrorKind::Transport),
                            |e| {
                                e.with_detail(
                                    "the request body cannot be replayed, so it was sent once",
                                )
                            },
                        );
                        return Poll::Ready(Err(error.with_attempts(this.facts.attempts)));
                    };
                    // No attempt may outlive the call: classify ends it by then.
                    let request = R::from_parts(request, this.context.with_deadline(deadline));
                    *this.span = attempt_span(this.facts.attempts);
                    this.facts.attempts += 1;
                    if let Some(watch) = this.watch.as_deref_mut() {
                        watch.started = Instant::now();
                        let event = AttemptStarted {
                            target: watch.target(),
                            attempt: this.facts.attempts,
                        };
                        this.shared.listeners.emit(|l| l.attempt_started(&event));
                    }
                    let future = {
                        let _entered = this.span.enter();
                        service.call(request)
                    };
                    this.state.set(State::Running { future });
                }
                StateProj::Done => panic!("retry::ResponseFuture polled after completion"),
            }
        }
    }
}

/// The event of a retry that was due and is not sent; refusals that mean
/// no retry was due (not retryable, unsafe, attempts spent) are none.
fn refused_event(
    listeners: &Listeners,
    watch: &AttemptWatch,
    refusal: Refusal,
    facts: &RequestFacts,
) {
    let Some(refusal) = refusal.public() else {
        return;
    };
    let event = RetryRefused {
        target: watch.target(),
        attempt: facts.attempts,
        refusal,
    };
    listeners.emit(|l| l.retry_refused(&event));
}

fn deadline_error(last: Option<Error>) -> Error {
    match last {
        Some(error) => error.with_kind(ErrorKind::DeadlineExceeded),
        None => Error::new(ErrorKind::DeadlineExceeded),
    }
}

/// The error a refused retry ends the call with, and the event that says why.
fn refuse(error: Error, refusal: Refusal, shared: &RetryRoute, facts: &RequestFacts) -> Error {
    if refusal != Refusal::NotRetryable {
        tracing::info!(
            attempt = facts.attempts,
            reason = refusal.as_str(),
            error.type = error.kind().as_str(),
            "not retrying"
        );
    }
    let error = match refusal.public() {
        Some(public) => error.with_refusal(public),
        None => error,
    };
    match refusal {
        Refusal::NotRetryable | Refusal::UnsafeMethod | Refusal::AttemptsExhausted => error,
        Refusal::NotReplayable => {
            error.with_detail("the request body cannot be replayed, so it was sent once")
        }
        Refusal::RetryAfterTooLong { asked } => error
            .with_kind(ErrorKind::RetriesExhausted)
            .with_detail(format!(
                "the server asked to wait {}s, more than retry.max_retry_after ({}s)",
                asked.as_secs(),
                shared.settings.max_retry_after.as_secs()
            )),
        Refusal::Deadline => error.with_kind(ErrorKind::DeadlineExceeded),
        Refusal::Budget => error.with_kind(ErrorKind::BudgetExhausted),
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
