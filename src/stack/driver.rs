//! The assembled stack's future: one driver that runs every concern's steps
//! (the limit's turn, the breaker's gate, classify, retry, poll, the call's
//! span) over one client future, one timer and one plan.
//!
//! The standalone layers run the same steps, each around its inner service;
//! here the steps follow each other in one state machine, so that the
//! client's future is stored once and never moved into another future.
//! Decisions live in the steps: this file only says which step runs when,
//! and what it sends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use tracing::Span;

use super::plan::{CallClock, LastHost, Shared};
use crate::breaker::{self, PermitGuard, ProbeWait};
use crate::classify::ErrorBodyRead;
use crate::classify::step::{self as classify_step, Head, Limit};
use crate::concurrency::{Admission, Permit};
use crate::error::{BoxError, Error, ErrorKind};
use crate::events::{self, PollSent};
use crate::poll::step::{self as poll_step, Answered, Counts};
use crate::poll::{self, RequestHead, StatusRead, Target};
use crate::rate_limit::{Pauses, pause_after, pauses_for};
use crate::retry::ReplayBody;
use crate::retry::replay::Template;
use crate::retry::report::{
    AttemptWatch, attempt_answered, attempt_failed, attempt_span, refused, scheduled,
};
use crate::retry::step::{self as retry_step, Progress, begin};
use crate::retry_after::retry_after_of;
use crate::status::{Classifier, StatusClass};
use crate::timer::Timer;
use crate::trace::{self, CallWatch};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pin_project! {
    /// The future of a [`Resilience`](super::Resilience) call.
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, RB>,
        // The one timer of the call: the attempt's timeout while a request
        // is in flight, the end of a wait while waiting.
        #[pin]
        timer: Timer,
        call: Call<S, B>,
        // The call's span, entered whenever the call is polled; last, so
        // that the spans of its requests close before it.
        span: Span,
    }
}

pin_project! {
    /// Where the call is.
    #[project = StateProj]
    enum State<F, RB> {
        /// A request is in flight; the timer, once armed, is its timeout.
        Sending { #[pin] future: F },
        /// The body of a failure, or of a success a rule reads for error
        /// codes, is being read, under the same timeout.
        Reading { read: Option<Box<ErrorBodyRead<RB>>> },
        /// The body of a `200` status answer is being read, to learn how
        /// the operation is going; the timer, once armed, is the call's end.
        Status { read: Option<Box<StatusRead<Response<RB>>>> },
        /// Refused before it was sent (an open breaker, a throttle).
        Refused { error: Option<Error> },
        /// Waiting for a turn of the rate limit.
        Turn { acquire: BoxFuture<Result<(), Error>> },
        /// Waiting in the concurrency limit's queue for a slot.
        Queued { wait: BoxFuture<Result<Permit, Error>> },
        /// Waiting for the verdict of the breaker's probe.
        Probe { wait: Box<ProbeWait> },
        /// A `429` pauses the rate limit's key before it is taken in.
        Pausing {
            pause: BoxFuture<()>,
            result: Option<Box<Result<Response<RB>, Error>>>,
        },
        /// Waiting out a backoff or a poll's interval: the timer's end.
        Waiting,
        /// The spare service is getting ready for the next request; the
        /// timer, once armed, is the end of the call.
        Readying,
        Done,
    }
}

/// What the call keeps between its steps.
pub(crate) struct Call<S, B> {
    shared: Arc<Shared<S>>,
    route: usize,
    clock: CallClock,
    service: Option<S>,
    /// What the next request is, once the service is ready.
    next: Next<B>,
    /// The breaker's permit of the request in flight.
    permit: Option<PermitGuard>,
    /// The concurrency limit's slot of the request in flight.
    slot: Option<Permit>,
    /// What a `429` of the request in flight pauses.
    pauses: Option<Box<Pauses>>,
    /// The request in flight's retry loop: a status request starts its own.
    template: Option<Template<B>>,
    progress: Progress,
    /// What ends the request in flight if it gets no answer in time.
    limit: Limit,
    /// The class of the last answer that passed classify, decided there
    /// once: the poll step, the events and the call's end read it.
    class: StatusClass,
    attempt_span: Span,
    watch: Option<Box<AttemptWatch>>,
    /// The operation, once the call polls one.
    operation: Option<Box<Operation>>,
    counts: Counts,
    /// What the call's span needs to name the outcome, when it is recorded.
    classifier: Option<Arc<Classifier>>,
    call_watch: Option<Box<CallWatch>>,
}

/// An operation being polled.
struct Operation {
    head: RequestHead,
    target: poll_step::Followed,
    polls: u32,
    span: Span,
    /// Whether the request in flight fetches the finished operation's
    /// result.
    fetching: bool,
    /// Where the result will be, from the first answer's `Location`.
    result: Option<Box<Target>>,
}

/// What the call sends once the service is ready.
enum Next<B> {
    /// Another attempt of the request, from its template.
    Retry,
    /// The next status request.
    Poll,
    /// A request that had its turn, and goes to the breaker's gate. Boxed,
    /// as only a request that waited needs it: the future stays small for
    /// every other call.
    Gate(Box<Request<B>>),
    /// A request the breaker let through after a wait.
    Send(Box<Request<B>>),
}

impl<S, B, RB> ResponseFuture<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody + Default,
{
    /// Starts a call: picks its plan, opens its span and sends the first
    /// attempt through `service`, which is ready.
    #[inline(always)]
    pub(crate) fn start(
        service: &mut S,
        shared: &Arc<Shared<S>>,
        last: &mut LastHost,
        mut request: Request<B>,
    ) -> Self {
        let route = shared.select(&request);
        let plan = shared.plan(route);
        let (span, classifier) = trace::open(
            request.method(),
            request.uri(),
            plan.name.as_deref(),
            &plan.classifier,
        );
        let call_watch = CallWatch::start(
            request.method(),
            request.uri(),
            plan.name.as_ref(),
            &plan.classifier,
            &shared.listeners,
        );
        let _entered = span.enter();
        let progress = Progress::new(begin(
            &plan.retry.settings,
            &plan.retry.budget,
            &mut request,
        ));
        let polls = plan.poll.settings.follows;
        let template =
            (plan.retry.settings.max_attempts > 1 || polls).then(|| Template::of(&request));
        let attempt_span = attempt_span(0);
        let watch = AttemptWatch::first(&shared.listeners, &request);
        let mut call = Call {
            shared: Arc::clone(shared),
            route,
            clock: CallClock::new(plan.timeouts.total()),
            service: None,
            next: Next::Retry,
            permit: None,
            slot: None,
            pauses: None,
            template,
            progress,
            limit: Limit::Attempt,
            class: StatusClass::Success,
            attempt_span,
            watch,
            operation: None,
            counts: Counts::default(),
            classifier,
            call_watch,
        };
        let state = call.admit(request, service, last);
        drop(_entered);
        ResponseFuture {
            state,
            timer: Timer::Idle,
            call,
            span,
        }
    }
}

impl<S, B> Call<S, B>
where
    S: Service<Request<B>> + Clone,
{
    /// The rate limit's turn, then the breaker's gate; sends the request
    /// through `service` (ready) when both let it through at once.
    #[inline(always)]
    fn admit<RB>(
        &mut self,
        request: Request<B>,
        service: &mut S,
        last: &mut LastHost,
    ) -> State<S::Future, RB> {
        if let Some(limit) = &self.shared.limit {
            let key = limit.key(request.uri());
            self.pauses = limit.pauses(&key);
            if !limit.try_now(&key) {
                let end = self.clock.end(Instant::now());
                let acquire = limit.acquire(key, Some(end));
                self.next = Next::Gate(Box::new(request));
                return State::Turn { acquire };
            }
        }
        self.gate(request, service, last)
    }

    /// The concurrency limit's slot, then the breaker's gate.
    #[inline(always)]
    fn gate<RB>(
        &mut self,
        request: Request<B>,
        service: &mut S,
        last: &mut LastHost,
    ) -> State<S::Future, RB> {
        if let (Some(limits), None) = (&self.shared.concurrency, &self.slot) {
            let clock = &mut self.clock;
            match limits.admit(request.uri(), || Some(clock.end(Instant::now()))) {
                Admission::Slot(slot) => self.slot = Some(slot),
                Admission::Queue(wait) => {
                    self.next = Next::Gate(Box::new(request));
                    return State::Queued { wait };
                }
                Admission::Refuse(error) => return State::Refused { error: Some(error) },
            }
        }
        let Some(registry) = &self.shared.breakers else {
            return self.send(request, service);
        };
        let clock = &self.clock;
        match breaker::admit_to(registry, request.uri(), last, |now| {
            Some(clock.end_if_started(now))
        }) {
            breaker::Gate::Admit(permit) => {
                self.permit = Some(permit);
                self.send(request, service)
            }
            breaker::Gate::Reject(error) => {
                // Not sent: its slot is free for another.
                self.slot = None;
                State::Refused { error: Some(error) }
            }
            breaker::Gate::Wait(wait) => {
                self.next = Next::Send(Box::new(request));
                State::Probe { wait }
            }
        }
    }

    #[inline(always)]
    fn send<RB>(&mut self, mut request: Request<B>, service: &mut S) -> State<S::Future, RB> {
        let clock = &mut self.clock;
        let timeouts = &self.shared.plan(self.route).timeouts;
        timeouts.stamp(&mut request, |now| Some(clock.end(now)));
        let future = {
            let _poll = self.operation.as_ref().map(|op| op.span.enter());
            let _attempt = self.attempt_span.enter();
            service.call(request)
        };
        State::Sending { future }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody + Default,
    RB: Body + Unpin,
{
    type Output = Result<Response<RB>, Error>;

    /// Each turn of the loop polls the state; a state that yields the result
    /// of the request in flight says whether it was `sent` (reached the
    /// client, so that the breaker and the limit take it in). The success
    /// path takes the answer in place: it moves only into the output.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let call = this.call;
        let _entered = this.span.enter();
        loop {
            let (result, sent) = match this.state.as_mut().project() {
                StateProj::Sending { future } => {
                    let polled = {
                        let _poll = call.operation.as_ref().map(|op| op.span.enter());
                        let _attempt = call.attempt_span.enter();
                        future.poll(cx)
                    };
                    match polled {
                        Poll::Ready(Ok(mut response)) => match call.head(&response) {
                            Head::Pass(class) if call.passes(&response, class) => {
                                this.timer.set(Timer::Idle);
                                let flow = call.answered(&mut response, this.timer.as_mut());
                                if let Flow::Read(cap) = flow {
                                    let read = Some(StatusRead::new(response, cap));
                                    this.state.set(State::Status { read });
                                    continue;
                                }
                                this.state.set(flow.state());
                                if let Flow::End(None) = flow {
                                    call.end(this.span, Ok(&response));
                                    return Poll::Ready(Ok(response));
                                }
                                match call.ended::<RB>(this.span, flow) {
                                    Some(error) => return Poll::Ready(Err(error)),
                                    None => continue,
                                }
                            }
                            // `passes` took the class in.
                            Head::Pass(_) => (Ok(response), true),
                            Head::Fail(error) => (Err(error), true),
                            Head::ReadBody(read) => {
                                let read = Some(ErrorBodyRead::new(response, read));
                                this.state.set(State::Reading { read });
                                continue;
                            }
                        },
                        Poll::Ready(Err(error)) => (Err(Error::transport(error.into())), true),
                        Poll::Pending => {
                            (Err(ready!(call.timed_out(this.timer.as_mut(), cx))), true)
                        }
                    }
                }
                StateProj::Reading { read } => {
                    (ready!(call.poll_read(read, this.timer.as_mut(), cx)), true)
                }
                StateProj::Status { read } => {
                    let read = ready!(call.poll_status(read, this.timer.as_mut(), cx));
                    match call.conclude(this.state.as_mut(), this.span, read) {
                        Some(output) => return Poll::Ready(output),
                        None => continue,
                    }
                }
                StateProj::Done => panic!("Resilience's future polled after completion"),
                _ => {
                    match ready!(call.poll_between(this.state.as_mut(), this.timer.as_mut(), cx)) {
                        Between::Again => continue,
                        Between::Result(result) => (result, false),
                        Between::Failed(error) => {
                            // No request was sent: the call ends as it is.
                            this.state.set(State::Done);
                            let error = call.request_failed(error);
                            return Poll::Ready(Err(call.fail::<RB>(this.span, error)));
                        }
                    }
                }
            };
            let (state, timer) = (this.state.as_mut(), this.timer.as_mut());
            if let Some(output) = call.settle(state, timer, this.span, result, sent) {
                return Poll::Ready(output);
            }
        }
    }
}

/// What a state between two requests yields.
enum Between<RB> {
    /// The state moved on: poll again.
    Again,
    /// A result the breaker and the limit have taken in already, or that
    /// never reached the client.
    Result(Result<Response<RB>, Error>),
    /// The next request could not be sent: the call ends with this error.
    Failed(Error),
}

/// What follows a request's result.
enum Flow {
    /// Wait for the armed timer, then send the next request.
    Wait,
    /// Send the next request now.
    Ready,
    /// The call ends: with the answer in hand (`None`), or with an error.
    End(Option<Error>),
    /// Read the body of the answer in hand, up to so many bytes.
    Read(usize),
}

impl Flow {
    /// The state the call moves to.
    fn state<F, RB>(&self) -> State<F, RB> {
        match self {
            Flow::Wait => State::Waiting,
            Flow::Ready => State::Readying,
            // The answer moves into the read: its callers set that state.
            Flow::End(_) | Flow::Read(_) => State::Done,
        }
    }
}

impl<S, B> Call<S, B>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody + Default,
{
    /// Classify's step on an answer's head; the answer stays where it is.
    #[inline(always)]
    fn head<RB: Body>(&self, response: &Response<RB>) -> Head {
        let settings = &self.shared.plan(self.route).classify.settings;
        classify_step::head(
            response.status(),
            response.headers(),
            &settings.classifier,
            &settings.error_body,
            || response.body().is_end_stream(),
        )
    }

    /// Takes in an answer that passed classify, when that needs no move of
    /// it: the breaker records a success, and the answer pauses no limit
    /// (a `429` that passes, which may, takes the general path).
    #[inline(always)]
    fn passes<RB>(&mut self, response: &Response<RB>, class: StatusClass) -> bool {
        self.class = class;
        if let Some(pauses) = self.pauses.as_deref() {
            if pauses_for(pauses, response) {
                return false;
            }
            self.pauses = None;
        }
        if let Some(permit) = self.permit.take() {
            permit.succeeded();
        }
        if let Some(slot) = self.slot.take() {
            slot.finish(Ok(response));
        }
        true
    }

    /// Polls a state between two requests: a refusal, the limit's turn, a
    /// probe's verdict, a pause, a wait, or the service getting ready.
    fn poll_between<RB>(
        &mut self,
        mut state: Pin<&mut State<S::Future, RB>>,
        mut timer: Pin<&mut Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Between<RB>> {
        let between = match state.as_mut().project() {
            StateProj::Refused { error } => {
                let error = error.take().unwrap_or_else(|| Error::circuit_open(None));
                Between::Result(Err(error))
            }
            StateProj::Turn { acquire } => match ready!(acquire.as_mut().poll(cx)) {
                Ok(()) => {
                    state.set(State::Readying);
                    Between::Again
                }
                Err(error) => Between::Result(Err(error)),
            },
            StateProj::Queued { wait } => match ready!(wait.as_mut().poll(cx)) {
                Ok(slot) => {
                    self.slot = Some(slot);
                    state.set(State::Readying);
                    Between::Again
                }
                Err(error) => Between::Result(Err(error)),
            },
            StateProj::Probe { wait } => match ready!(wait.poll_verdict(cx)) {
                Ok(permit) => {
                    self.permit = Some(permit);
                    state.set(State::Readying);
                    Between::Again
                }
                Err(error) => Between::Result(Err(error)),
            },
            StateProj::Pausing { pause, result } => {
                ready!(pause.as_mut().poll(cx));
                Between::Result(result.take().map_or_else(
                    || Err(Error::new(ErrorKind::Transport).with_detail("paused twice")),
                    |result| *result,
                ))
            }
            StateProj::Waiting => {
                ready!(timer.as_mut().poll_fired(cx));
                timer.set(Timer::Idle);
                state.set(State::Readying);
                Between::Again
            }
            StateProj::Readying => {
                let next = ready!(self.poll_next(timer.as_mut(), cx));
                timer.set(Timer::Idle);
                match next {
                    Ok(next) => {
                        state.set(next);
                        Between::Again
                    }
                    Err(error) => Between::Failed(error),
                }
            }
            // `poll` handles these itself and never hands them here; were
            // one to come, the call ends rather than spin.
            StateProj::Sending { .. }
            | StateProj::Reading { .. }
            | StateProj::Status { .. }
            | StateProj::Done => Between::Failed(
                Error::new(ErrorKind::Transport).with_detail("the driver lost its state"),
            ),
        };
        Poll::Ready(between)
    }

    /// Takes in a request's result: the breaker and the limit when it was
    /// sent, then the retry and poll steps. Returns the call's output when
    /// the call ends.
    fn settle<RB: Body + Unpin>(
        &mut self,
        mut state: Pin<&mut State<S::Future, RB>>,
        mut timer: Pin<&mut Timer>,
        span: &Span,
        result: Result<Response<RB>, Error>,
        sent: bool,
    ) -> Option<Result<Response<RB>, Error>> {
        if sent {
            timer.set(Timer::Idle);
            if let Some(pause) = self.take_in(&result) {
                let result = Some(Box::new(result));
                state.set(State::Pausing { pause, result });
                return None;
            }
        }
        let flow = match result {
            Ok(mut response) => match self.answered(&mut response, timer.as_mut()) {
                Flow::End(None) => {
                    state.set(State::Done);
                    self.end(span, Ok(&response));
                    return Some(Ok(response));
                }
                Flow::Read(cap) => {
                    let read = Some(StatusRead::new(response, cap));
                    state.set(State::Status { read });
                    return None;
                }
                flow => flow,
            },
            Err(error) => self.failed(error, timer.as_mut()),
        };
        state.set(flow.state());
        self.ended::<RB>(span, flow).map(Err)
    }

    /// Reads the body of a failure, or of a success a rule reads, under
    /// the request's timeout.
    fn poll_read<RB: Body + Unpin>(
        &mut self,
        read: &mut Option<Box<ErrorBodyRead<RB>>>,
        timer: Pin<&mut Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<RB>, Error>> {
        if let Some(Poll::Pending) = read.as_deref_mut().map(|r| r.poll_read(cx)) {
            return self.timed_out(timer, cx).map(Err);
        }
        let settings = &self.shared.plan(self.route).classify.settings;
        let Some(read) = read.take() else {
            return Poll::Ready(Err(Error::new(ErrorKind::Transport)));
        };
        let result = (*read).finish(settings);
        if result.is_ok() {
            // A success a rule read, and let through.
            self.class = StatusClass::Success;
        }
        Poll::Ready(result)
    }

    /// The breaker and the limit take in the result of a request that was
    /// sent; returns the pause a `429` asks of the limit, to run before the
    /// result goes on.
    fn take_in<RB>(&mut self, result: &Result<Response<RB>, Error>) -> Option<BoxFuture<()>> {
        if let Some(permit) = self.permit.take() {
            permit.finish(result);
        }
        if let Some(slot) = self.slot.take() {
            slot.finish(result.as_ref());
        }
        self.pauses.take().and_then(|p| pause_after(*p, result))
    }

    /// Ends the call when `flow` says it ends with an error, and returns it.
    fn ended<RB>(&mut self, span: &Span, flow: Flow) -> Option<Error> {
        match flow {
            Flow::End(Some(error)) => Some(self.fail::<RB>(span, error)),
            _ => None,
        }
    }

    /// Ends the call with `error`, and returns it.
    fn fail<RB>(&mut self, span: &Span, error: Error) -> Error {
        self.end::<RB>(span, Err(&error));
        error
    }

    /// Arms the request's timeout when it first waits; the error that ends
    /// it once the timeout fires.
    fn timed_out(&mut self, mut timer: Pin<&mut Timer>, cx: &mut Context<'_>) -> Poll<Error> {
        let timeouts = self.shared.plan(self.route).timeouts;
        if !timer.is_armed() {
            let now = Instant::now();
            let end = self.clock.end(now);
            let timeout = classify_step::timeout(now, &timeouts, Some(end));
            self.limit = timeout.by;
            timer.as_mut().arm(timeout.at);
        }
        ready!(timer.poll_fired(cx));
        Poll::Ready(self.limit.error(timeouts.attempt()))
    }

    /// Runs the retry step on a request's failure, and tells spans and
    /// listeners what follows.
    fn failed(&mut self, error: Error, mut timer: Pin<&mut Timer>) -> Flow {
        let _poll = self.operation.as_ref().map(|op| op.span.enter());
        let plan = self.shared.plan(self.route);
        let listeners = &self.shared.listeners;
        let watch = self.watch.as_deref().map(|w| (w, listeners));
        attempt_failed(&self.attempt_span, watch, &self.progress, &error);
        let (clock, template) = (&mut self.clock, &self.template);
        let step = retry_step::step(
            &mut self.progress,
            error,
            &plan.retry.settings,
            &plan.retry.budget,
            || {
                let now = Instant::now();
                (now, clock.end(now))
            },
            || template.as_ref().is_some_and(Template::is_replayable),
            || plan.retry.jitter.next_u64(),
        );
        let error = match step {
            retry_step::Step::Fail(error) => error,
            retry_step::Step::Refuse {
                error,
                refusal,
                failed,
            } => {
                refused(watch, &self.progress, refusal, failed);
                error
            }
            retry_step::Step::Retry {
                delay,
                reason,
                until,
            } => {
                scheduled(watch, &self.progress, &plan.retry, delay, reason);
                self.next = Next::Retry;
                if delay.is_zero() {
                    return Flow::Ready;
                }
                timer.as_mut().arm(until);
                return Flow::Wait;
            }
        };
        drop(_poll);
        Flow::End(Some(self.request_failed(error)))
    }

    /// A request that fails for good: a status request's error carries the
    /// call's counts, its own attempts among them.
    fn request_failed(&self, error: Error) -> Error {
        match &self.operation {
            Some(op) => {
                crate::span::record_error_fields(&op.span, &error);
                self.counts
                    .after(error.attempts(), true)
                    .stamp(error, op.polls)
            }
            None => error,
        }
    }

    /// Runs the retry and poll steps on an answer that passed classify, in
    /// place.
    #[inline(always)]
    fn answered<RB>(&mut self, response: &mut Response<RB>, timer: Pin<&mut Timer>) -> Flow {
        let plan = self.shared.plan(self.route);
        retry_step::succeed(&self.progress, response, &plan.retry.budget);
        let listeners = &self.shared.listeners;
        let watch = self.watch.as_deref().map(|w| (w, listeners));
        attempt_answered(
            &self.attempt_span,
            watch,
            &self.progress,
            &plan.retry,
            response,
            Some(self.class),
        );
        if !plan.poll.settings.follows {
            // No status URL can ever be followed.
            return Flow::End(None);
        }
        self.follow(response, timer)
    }

    /// The poll step on an answer: it ends the call, or the operation goes
    /// on.
    fn follow<RB>(&mut self, response: &mut Response<RB>, timer: Pin<&mut Timer>) -> Flow {
        let plan = self.shared.plan(self.route);
        let polled = self.operation.is_some();
        if let Some(op) = &self.operation {
            op.span
                .record("http.response.status_code", response.status().as_u16());
        }
        self.counts = self.counts.after(self.progress.facts.attempts, polled);
        let headers = response.headers();
        let answer = Answered {
            class: self.class,
            status: response.status(),
            headers,
        };
        let progress = self.poll_progress();
        let polls = progress.polls;
        let step = poll_step::step(
            &answer,
            &progress,
            &plan.poll.settings,
            plan.poll.timeouts.total(),
            Instant::now,
            || retry_after_of(headers),
        );
        self.act(step, response, polls, timer)
    }

    /// What the call knows of the operation, for the poll step.
    fn poll_progress(&self) -> poll_step::Progress<'_> {
        let op = self.operation.as_deref();
        poll_step::Progress {
            request: match op {
                Some(op) => Some(op.head.uri()),
                None => self.template.as_ref().map(Template::uri),
            },
            target: op.map(|op| op.target.uri()),
            status_only: op.is_some_and(|op| op.target.status_only),
            polls: op.map_or(0, |op| op.polls),
            started: self.clock.started(),
            fetching: op.is_some_and(|op| op.fetching),
            result: op.and_then(|op| op.result.as_deref()),
        }
    }

    /// Reads what a status body says, and acts on it: the answer when it
    /// ends the call, else what follows.
    fn after_body<RB: Body + Unpin>(
        &mut self,
        reading: StatusRead<Response<RB>>,
        timer: Pin<&mut Timer>,
    ) -> Result<Response<RB>, Flow> {
        let plan = self.shared.plan(self.route);
        let Some(completion) = plan.poll.settings.completion.as_ref() else {
            unreachable!("the step reads a body only under a completion rule")
        };
        let (mut response, body, verdict) = reading.finish(completion);
        let progress = self.poll_progress();
        let polls = progress.polls;
        let headers = response.headers();
        let step = poll_step::after_body(
            verdict,
            &body,
            &progress,
            &plan.poll.settings,
            plan.poll.timeouts.total(),
            Instant::now,
            || retry_after_of(headers),
        );
        if let poll_step::Step::Fail(failed) = step {
            let error = failed.error(response.status(), body, self.counts, polls);
            if let Some(op) = &self.operation {
                crate::span::record_error_fields(&op.span, &error);
            }
            return Err(Flow::End(Some(error)));
        }
        match self.act(step, &mut response, polls, timer) {
            Flow::End(None) => Ok(response),
            flow => Err(flow),
        }
    }

    /// Ends the call with the answer a status body let through, or moves on
    /// as `flow` says; returns the call's output when it ends.
    fn conclude<RB>(
        &mut self,
        mut state: Pin<&mut State<S::Future, RB>>,
        span: &Span,
        read: Result<Response<RB>, Flow>,
    ) -> Option<Result<Response<RB>, Error>> {
        match read {
            Ok(response) => {
                state.set(State::Done);
                self.end(span, Ok(&response));
                Some(Ok(response))
            }
            Err(flow) => {
                state.set(flow.state());
                self.ended::<RB>(span, flow).map(Err)
            }
        }
    }

    /// Reads a status answer's body, under the call's end, then acts on
    /// what it says: the answer when it ends the call, else what follows.
    fn poll_status<RB: Body + Unpin>(
        &mut self,
        read: &mut Option<Box<StatusRead<Response<RB>>>>,
        mut timer: Pin<&mut Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<RB>, Flow>> {
        let Some(reading) = read.as_deref_mut() else {
            return Poll::Ready(Err(Flow::End(Some(Error::new(ErrorKind::Transport)))));
        };
        if reading.poll_read(cx).is_pending() {
            return match self.body_late(timer.as_mut(), cx) {
                Some(error) => Poll::Ready(Err(Flow::End(Some(error)))),
                None => Poll::Pending,
            };
        }
        let Some(reading) = read.take() else {
            return Poll::Ready(Err(Flow::End(Some(Error::new(ErrorKind::Transport)))));
        };
        timer.set(Timer::Idle);
        Poll::Ready(self.after_body(*reading, timer))
    }

    /// A status body that has not arrived: the call waits for it until its
    /// end.
    fn body_late(&mut self, mut timer: Pin<&mut Timer>, cx: &mut Context<'_>) -> Option<Error> {
        if !timer.is_armed() {
            let end = self.clock.end(Instant::now());
            timer.as_mut().arm(end);
        }
        match timer.poll_fired(cx) {
            Poll::Pending => None,
            Poll::Ready(()) => {
                let polls = self.operation.as_ref().map_or(0, |op| op.polls);
                let error = self
                    .counts
                    .stamp(Error::new(ErrorKind::DeadlineExceeded), polls)
                    .with_detail("the status body did not arrive before the call's deadline");
                Some(error)
            }
        }
    }

    /// Acts on the poll step's decision about `response`.
    fn act<RB>(
        &mut self,
        step: poll_step::Step,
        response: &mut Response<RB>,
        polls: u32,
        mut timer: Pin<&mut Timer>,
    ) -> Flow {
        let plan = self.shared.plan(self.route);
        let wait = match step {
            poll_step::Step::Return => {
                let target = self.operation.as_ref().map(|op| op.target.uri());
                poll::finish(response, target, self.counts, polls);
                return Flow::End(None);
            }
            poll_step::Step::Accept => return Flow::End(None),
            poll_step::Step::Refuse(refused) => {
                let error = poll::refuse(&refused, &plan.poll, self.counts, polls);
                return Flow::End(Some(error));
            }
            poll_step::Step::End(ending) => return Flow::End(Some(ending.error(self.counts))),
            poll_step::Step::ReadBody => return Flow::Read(plan.poll.settings.max_body_bytes),
            // Only `after_body` fails an operation, and its caller takes that.
            poll_step::Step::Fail(failed) => {
                let status = response.status();
                let body = bytes::Bytes::new();
                return Flow::End(Some(failed.error(status, body, self.counts, polls)));
            }
            poll_step::Step::Wait(wait) => wait,
        };
        let (poll, delay, reason) = poll::log_wait(&wait, response.headers());
        self.clock.start(wait.started);
        match (wait.target, self.operation.as_mut()) {
            (Some(target), Some(op)) => {
                op.target = target;
                op.fetching = wait.fetch;
            }
            (Some(target), None) => {
                let Some(template) = self.template.take() else {
                    return Flow::End(Some(Error::new(ErrorKind::PollRefused)));
                };
                let (uri, headers, version) = template.into_head();
                self.operation = Some(Box::new(Operation {
                    head: RequestHead::new(uri, headers, version),
                    target,
                    polls: 0,
                    span: Span::none(),
                    fetching: false,
                    result: wait.result,
                }));
            }
            (None, _) => {}
        }
        if let (Some(op), true) = (&self.operation, self.shared.listeners.is_some()) {
            let event = events::PollScheduled {
                target: events::Target::new(&http::Method::GET, op.target.uri()),
                poll,
                delay,
                wait: reason,
            };
            self.shared.listeners.emit(|l| l.poll_scheduled(&event));
        }
        self.next = Next::Poll;
        timer.as_mut().arm(wait.until);
        Flow::Wait
    }

    /// Readies the spare service, then sends the next request, unless the
    /// call ends first.
    fn poll_next<RB>(
        &mut self,
        mut timer: Pin<&mut Timer>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<State<S::Future, RB>, Error>> {
        let spare = &self.shared.spare;
        let service = self.service.get_or_insert_with(|| S::clone(spare));
        match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => {
                let error = Error::transport(error.into());
                return Poll::Ready(Err(self.progress.not_ready_error(error)));
            }
            Poll::Pending => {
                if !timer.is_armed() {
                    let end = self.clock.end(Instant::now());
                    timer.as_mut().arm(end);
                }
                ready!(timer.poll_fired(cx));
                return Poll::Ready(Err(self.progress.deadline_error()));
            }
        }
        let Some(mut service) = self.service.take() else {
            return Poll::Ready(Err(self.progress.deadline_error()));
        };
        let state = match std::mem::replace(&mut self.next, Next::Retry) {
            Next::Retry => self.retry(&mut service),
            Next::Poll => Ok(self.status_request(&mut service)),
            Next::Gate(request) => Ok(self.gate(*request, &mut service, &mut None)),
            Next::Send(request) => Ok(self.send(*request, &mut service)),
        };
        self.service = Some(service);
        Poll::Ready(state)
    }

    /// Another attempt of the request in flight.
    fn retry<RB>(&mut self, service: &mut S) -> Result<State<S::Future, RB>, Error> {
        // The copy is made only now, when it is sent: a retry that is never
        // sent copies nothing.
        let Some(request) = self.template.as_ref().and_then(Template::request) else {
            return Err(self.progress.unreplayable_error());
        };
        self.attempt_span = {
            let _poll = self.operation.as_ref().map(|op| op.span.enter());
            attempt_span(self.progress.facts.attempts)
        };
        self.progress.facts.attempts += 1;
        if let Some(watch) = self.watch.as_deref_mut() {
            watch.start(&self.shared.listeners, self.progress.facts.attempts);
        }
        Ok(self.admit(request, service, &mut None))
    }

    /// The next status request of the operation, with a retry loop of its
    /// own.
    fn status_request<RB>(&mut self, service: &mut S) -> State<S::Future, RB> {
        let shared = Arc::clone(&self.shared);
        let plan = shared.plan(self.route);
        let Some(op) = self.operation.as_deref_mut() else {
            return State::Refused {
                error: Some(Error::new(ErrorKind::PollRefused)),
            };
        };
        let mut request: Request<B> =
            poll::status_request(&op.head, &op.target.target, &plan.poll.settings);
        op.polls += 1;
        if shared.listeners.is_some() {
            let event = PollSent {
                target: events::Target::new(&http::Method::GET, op.target.uri()),
                poll: op.polls,
            };
            shared.listeners.emit(|l| l.poll_sent(&event));
        }
        op.span = poll::poll_span(op.polls, op.target.uri());
        self.progress = Progress::new(begin(
            &plan.retry.settings,
            &plan.retry.budget,
            &mut request,
        ));
        self.template = (plan.retry.settings.max_attempts > 1).then(|| Template::of(&request));
        self.attempt_span = {
            let _poll = op.span.enter();
            attempt_span(0)
        };
        self.watch = AttemptWatch::first(&shared.listeners, &request);
        self.admit(request, service, &mut None)
    }

    /// Ends the call: its span and its listeners learn the outcome.
    #[inline(always)]
    fn end<RB>(&mut self, span: &Span, result: Result<&Response<RB>, &Error>) {
        let class = result.is_ok().then_some(self.class);
        if let Some(classifier) = &self.classifier {
            trace::record(span, result, classifier);
        }
        if let Some(watch) = self.call_watch.take() {
            watch.end(result, class);
        }
    }
}
