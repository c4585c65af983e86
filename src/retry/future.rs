use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use tracing::Span;

use super::replay::{ReplayBody, Template};
use super::report::{
    AttemptWatch, Watch, attempt_answered, attempt_failed, attempt_span, refused, scheduled,
};
use super::step::{Progress, Step, begin, step, succeed};
use super::{RetryRoute, Shared};
use crate::deadline::{CallDeadline, call_deadline};
use crate::error::Error;
use crate::ready::ready_clone;
use crate::timer::Timer;

pin_project! {
    /// The future of a [`Retry`](super::Retry) call: the retry loop as a state
    /// machine, so that a call that succeeds at once allocates nothing.
    ///
    /// What the loop keeps of a call between its attempts lies in the future
    /// itself, not in a struct of its own: built apart and moved in, such a
    /// struct cost the success path copies and a drop of its own
    /// (STACK_LOOP=retry). The driver's pieces borrow it as a `Call`.
    #[project = Projection]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future>,
        // The service that sends the retries, cloned from the shared spare
        // when the first retry is due.
        service: Option<S>,
        // An unsent copy of the request, from which each retry is made.
        template: Option<Template<B>>,
        shared: Arc<Shared<S>>,
        progress: Progress,
        // When the call started; read at the first moment it matters, so that
        // an answer that is ready at once reads no clock.
        started: Option<Instant>,
        // The end of an enclosing call (a poll of an operation), when the
        // request carries one: no retry may go past it.
        outer: Option<Instant>,
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
    outer: Option<Instant>,
    span: &'a mut Span,
    watch: &'a mut Option<Box<AttemptWatch>>,
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

impl<S, B, RB> ResponseFuture<S, B>
where
    B: ReplayBody,
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
{
    // Forced, with the retry layer's other forced inlines: 53 and 39
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    pub(crate) fn new(service: &mut S, mut request: Request<B>, shared: Arc<Shared<S>>) -> Self {
        let route = &shared.route;
        let settings = &route.settings;
        let facts = begin(settings, &route.budget, &mut request);
        let outer = CallDeadline::of(&request);
        let template = (settings.max_attempts > 1).then(|| Template::of(&request));
        let span = attempt_span(0);
        let watch = AttemptWatch::first(&shared.listeners, &request);
        let future = {
            let _entered = span.enter();
            service.call(request)
        };
        ResponseFuture {
            state: State::Running { future },
            service: None,
            template,
            shared,
            progress: Progress::new(facts),
            started: None,
            outer,
            span,
            watch,
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    B: ReplayBody,
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
{
    type Output = Result<Response<RB>, Error>;

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
                            return Poll::Ready(Ok(response));
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

impl<'a, S, B> Projection<'a, S, B>
where
    S: Service<Request<B>>,
{
    /// Where the loop is, and the rest of the call for the driver's pieces.
    #[inline(always)]
    fn split(self) -> (Pinned<'a, S::Future>, Call<'a, S, B>) {
        let call = Call {
            service: self.service,
            template: self.template,
            shared: self.shared,
            progress: self.progress,
            started: self.started,
            outer: *self.outer,
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
        &self.shared.route
    }

    fn watch(&self) -> Watch<'_> {
        self.watch.as_deref().map(|w| (w, &self.shared.listeners))
    }

    /// The end of the call, which no wait and no attempt may pass.
    fn end(&self, started: Instant) -> Instant {
        call_deadline(started, self.route().timeouts.total(), self.outer)
    }

    /// Runs the step on an attempt's failure, and tells spans and listeners
    /// what it was and what follows.
    fn step(&mut self, error: Error) -> Step {
        attempt_failed(self.span, self.watch(), self.progress, &error);
        let route = &self.shared.route;
        let (started, deadline, template) = (&mut *self.started, self.outer, &*self.template);
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
        let route = &self.shared.route;
        succeed(self.progress, response, &route.budget);
        attempt_answered(
            self.span,
            self.watch(),
            self.progress,
            route,
            response,
            None,
        );
    }

    /// Sends the next attempt once the service is ready, unless the call
    /// ends first.
    fn poll_send(
        &mut self,
        mut timer: Pin<&mut Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Future, Error>>
    where
        S: Service<Request<B>, Error = Error> + Clone,
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
        let Some(mut request) = self.template.as_ref().and_then(Template::request) else {
            return Poll::Ready(Err(self.progress.unreplayable_error()));
        };
        // No attempt may outlive the call: classify ends it by then.
        request.extensions_mut().insert(CallDeadline(deadline));
        *self.span = attempt_span(self.progress.facts.attempts);
        self.progress.facts.attempts += 1;
        if let Some(watch) = self.watch.as_deref_mut() {
            watch.start(&self.shared.listeners, self.progress.facts.attempts);
        }
        let _entered = self.span.enter();
        Poll::Ready(Ok(service.call(request)))
    }
}
