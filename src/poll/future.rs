use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, ready};
use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderMap, Request, Response, Uri, Version};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use tracing::Span;

use super::location::Target;
use super::step::{Answered, Counts, Followed, Progress, Refused, Step, Wait, after_body, step};
use super::{PollRoute, PollSettings, Shared, StatusRead};
use crate::deadline::OtherOrigin;
use crate::deadline::{CallDeadline, call_deadline};
use crate::error::{Error, ErrorKind};
use crate::events::{self, Listeners, PollScheduled, PollSent, PollWait};
use crate::info::{CallInfo, FinalUrl};
use crate::ready::ready_clone;
use crate::retry_after::retry_after_of;
use crate::span::UrlWithoutQuery;
use crate::timer::Timer;

/// What status requests keep of the original request.
pub(crate) struct RequestHead {
    uri: Uri,
    headers: HeaderMap,
    version: Version,
}

impl RequestHead {
    pub(crate) fn of<B>(request: &Request<B>) -> Self {
        RequestHead {
            uri: request.uri().clone(),
            headers: request.headers().clone(),
            version: request.version(),
        }
    }
}

impl RequestHead {
    pub(crate) fn new(uri: Uri, headers: HeaderMap, version: Version) -> Self {
        RequestHead {
            uri,
            headers,
            version,
        }
    }

    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }
}

/// Headers that belong to the original request's body or its write, never to
/// a status request: a status `GET` with the write's preconditions or range
/// could fail with 412 or answer 206.
const NOT_FOR_POLLS: [HeaderName; 17] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LOCATION,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::TRAILER,
    header::EXPECT,
    header::HOST,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
    HeaderName::from_static("idempotency-key"),
];

/// Headers that carry credentials, never sent to another origin unless the
/// policy says `forward_credentials = true`.
const CREDENTIALS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// What a call keeps in case it must poll.
struct PollState<S> {
    /// Copied before the request is sent.
    head: RequestHead,
    /// The end of an enclosing call, when the request carries one.
    outer: Option<Instant>,
    started: Option<Instant>,
    /// Attempts of the original request, and requests sent in all (its
    /// attempts, then each status request with its retries): what the
    /// server counted, reported whatever way the call ends.
    counts: Counts,
    /// Made when the first status URL arrives: the polling path allocates, a
    /// call that is not polled does not carry it.
    polling: Option<Box<Operation<S>>>,
}

/// An operation being polled.
struct Operation<S> {
    service: Option<S>,
    polls: u32,
    target: Followed,
    span: Span,
    /// Whether the request in flight fetches the finished operation's
    /// result.
    fetching: bool,
    /// Where the result will be, from the first answer's `Location`.
    result: Option<Box<Target>>,
}

pin_project! {
    /// The future of a [`Polling`](super::Polling) call. A response that is not
    /// pollable is returned as soon as it arrives; polling is a state machine
    /// of its own, with one timer and no task.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S::Response>,
        // What the call keeps in case it must poll; `None` when it never
        // can (no header to read a status URL from).
        kept: Option<PollState<S>>,
        shared: Arc<Shared<S>>,
        _request: PhantomData<fn() -> B>,
    }
}

pin_project! {
    /// Where the call is: the request or a poll in flight, the body of a
    /// status answer being read, the wait before the next poll, or the
    /// service getting ready to send it.
    #[project = StateProj]
    enum State<F, R> {
        Calling { #[pin] future: F },
        // Until the call's deadline: the timer, once armed.
        Reading { read: Option<Box<StatusRead<R>>>, #[pin] timer: Timer },
        Waiting { #[pin] timer: Timer },
        Readying,
        Done,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn new(
        first: S::Future,
        shared: Arc<Shared<S>>,
        head: RequestHead,
        outer: Option<Instant>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future: first },
            kept: Some(PollState {
                head,
                outer,
                started: None,
                counts: Counts::default(),
                polling: None,
            }),
            shared,
            _request: PhantomData,
        }
    }

    pub(crate) fn without_polling(first: S::Future, shared: Arc<Shared<S>>) -> Self {
        ResponseFuture {
            state: State::Calling { future: first },
            kept: None,
            shared,
            _request: PhantomData,
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    B: Default,
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
    RB: http_body::Body + Unpin,
{
    type Output = Result<Response<RB>, Error>;

    // Forced, with the poll layer's other forced inlines: 89 and 80
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> TaskPoll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let polling = this.kept.as_ref().and_then(|k| k.polling.as_deref());
                    let polled = match polling {
                        Some(polling) => polling.span.in_scope(|| future.poll(cx)),
                        None => future.poll(cx),
                    };
                    let response = match polled {
                        TaskPoll::Pending => {
                            if let Some(kept) = this.kept.as_mut() {
                                kept.started.get_or_insert_with(Instant::now);
                            }
                            return TaskPoll::Pending;
                        }
                        TaskPoll::Ready(Err(error)) => {
                            this.state.set(State::Done);
                            return TaskPoll::Ready(Err(failed(this.kept.as_ref(), error)));
                        }
                        TaskPoll::Ready(Ok(response)) => response,
                    };
                    this.state.set(State::Done);
                    let counts = count(this.kept.as_mut(), &response);
                    let (next, polls) = decide(this.kept.as_ref(), &this.shared.route, &response);
                    let act = act(
                        this.kept.as_mut(),
                        this.shared,
                        next,
                        response,
                        counts,
                        polls,
                    );
                    if let Some(result) = this.state.as_mut().take(act) {
                        return TaskPoll::Ready(result);
                    }
                }
                StateProj::Reading { read, timer } => {
                    let Some(reading) = read.as_deref_mut() else {
                        unreachable!("a status read is taken only as it ends")
                    };
                    if reading.poll_read(cx).is_pending() {
                        let late =
                            ready!(body_late(this.kept.as_ref(), &this.shared.route, timer, cx));
                        this.state.set(State::Done);
                        return TaskPoll::Ready(Err(late));
                    }
                    let Some(reading) = read.take() else {
                        unreachable!("checked above")
                    };
                    this.state.set(State::Done);
                    let act = after_read(this.kept.as_mut(), this.shared, *reading);
                    if let Some(result) = this.state.as_mut().take(act) {
                        return TaskPoll::Ready(result);
                    }
                }
                StateProj::Waiting { timer } => {
                    ready!(timer.poll_fired(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    let route = &this.shared.route;
                    let sent = match this.kept.as_mut() {
                        Some(kept) => ready!(kept.send::<B>(this.shared, route, cx)),
                        None => Err(Error::new(ErrorKind::PollRefused)),
                    };
                    match sent {
                        Ok(future) => this.state.set(State::Calling { future }),
                        Err(error) => {
                            this.state.set(State::Done);
                            return TaskPoll::Ready(Err(error));
                        }
                    }
                }
                StateProj::Done => panic!("poll::ResponseFuture polled after completion"),
            }
        }
    }
}

/// What the driver does after a step.
enum Act<R> {
    /// The call ends.
    Ready(Result<R, Error>),
    /// Wait until then, and poll.
    Wait(Instant),
    /// Read the status answer's body, up to so many bytes.
    Read(R, usize),
}

/// Acts on what a status body, read to its end, says of the operation.
fn after_read<S, RB>(
    mut kept: Option<&mut PollState<S>>,
    shared: &Shared<S>,
    reading: StatusRead<Response<RB>>,
) -> Act<Response<RB>>
where
    RB: http_body::Body + Unpin,
{
    let route = &shared.route;
    let Some(completion) = route.settings.completion.as_ref() else {
        unreachable!("the step reads a body only under a completion rule")
    };
    let (response, body, verdict) = reading.finish(completion);
    let counts = kept.as_deref().map_or_else(Counts::default, |k| k.counts);
    let progress = progress(kept.as_deref());
    let polls = progress.polls;
    let headers = response.headers();
    let next = after_body(
        verdict,
        &body,
        &progress,
        &route.settings,
        route.timeouts.total(),
        Instant::now,
        || retry_after_of(headers),
    );
    if let Step::Fail(failed) = next {
        let error = failed.error(response.status(), body, counts, polls);
        return Act::Ready(Err(failed_poll(kept.as_deref(), error)));
    }
    act(kept.take(), shared, next, response, counts, polls)
}

/// Acts on what the step decided about `response`.
fn act<S, RB>(
    kept: Option<&mut PollState<S>>,
    shared: &Shared<S>,
    next: Step,
    mut response: Response<RB>,
    counts: Counts,
    polls: u32,
) -> Act<Response<RB>> {
    let route = &shared.route;
    match next {
        Step::Return => {
            let target = kept.as_ref().and_then(|kept| kept.polling.as_deref());
            finish(&mut response, target.map(|p| p.target.uri()), counts, polls);
            Act::Ready(Ok(response))
        }
        Step::Accept => Act::Ready(Ok(response)),
        Step::Refuse(refused) => Act::Ready(Err(refuse(&refused, route, counts, polls))),
        Step::End(ending) => Act::Ready(Err(ending.error(counts))),
        Step::ReadBody => Act::Read(response, route.settings.max_body_bytes),
        // Only `after_body` fails an operation, and its caller takes that.
        Step::Fail(failed) => Act::Ready(Err(failed.error(
            response.status(),
            bytes::Bytes::new(),
            counts,
            polls,
        ))),
        Step::Wait(wait) => {
            let announced = log_wait(&wait, response.headers());
            let until = wait.until;
            if let Some(kept) = kept {
                kept.follow(wait);
                kept.announce(&shared.listeners, announced);
            }
            Act::Wait(until)
        }
    }
}

impl<F, RB: http_body::Body + Unpin> State<F, Response<RB>> {
    /// Moves to what `act` says; the call's result when it ends.
    fn take(
        mut self: Pin<&mut Self>,
        act: Act<Response<RB>>,
    ) -> Option<Result<Response<RB>, Error>> {
        match act {
            Act::Ready(result) => return Some(result),
            Act::Wait(until) => {
                self.set(State::Waiting { timer: Timer::Idle });
                if let StateProj::Waiting { timer } = self.project() {
                    timer.arm(until);
                }
            }
            Act::Read(response, cap) => {
                self.set(State::Reading {
                    read: Some(StatusRead::new(response, cap)),
                    timer: Timer::Idle,
                });
            }
        }
        None
    }
}

/// A status body that has not arrived: the call waits for it until its
/// deadline.
fn body_late<S>(
    kept: Option<&PollState<S>>,
    route: &PollRoute,
    mut timer: Pin<&mut Timer>,
    cx: &mut Context<'_>,
) -> TaskPoll<Error> {
    if !timer.is_armed() {
        let started = kept.and_then(|k| k.started).unwrap_or_else(Instant::now);
        let outer = kept.and_then(|k| k.outer);
        timer
            .as_mut()
            .arm(call_deadline(started, route.timeouts.total(), outer));
    }
    ready!(timer.poll_fired(cx));
    let (counts, polls) = kept.map_or((Counts::default(), 0), |k| {
        (k.counts, k.polling.as_ref().map_or(0, |p| p.polls))
    });
    TaskPoll::Ready(
        counts
            .stamp(Error::new(ErrorKind::DeadlineExceeded), polls)
            .with_detail("the status body did not arrive before the call's deadline"),
    )
}

/// An operation that failed by its status body: its poll's span says so.
fn failed_poll<S>(kept: Option<&PollState<S>>, error: Error) -> Error {
    if let Some(polling) = kept.and_then(|k| k.polling.as_deref()) {
        crate::span::record_error_fields(&polling.span, &error);
    }
    error
}

/// A failed request or poll: a status request's error carries the call's
/// counts, its own attempts among them.
fn failed<S>(kept: Option<&PollState<S>>, error: Error) -> Error {
    match kept {
        Some(PollState {
            counts,
            polling: Some(polling),
            ..
        }) => {
            crate::span::record_error_fields(&polling.span, &error);
            counts
                .after(error.attempts(), true)
                .stamp(error, polling.polls)
        }
        _ => error,
    }
}

/// Counts an answer's attempts, and gives the poll's span its status.
#[inline]
fn count<S, RB>(kept: Option<&mut PollState<S>>, response: &Response<RB>) -> Counts {
    let Some(kept) = kept else {
        return Counts::default().after(CallInfo::of(response).attempts(), false);
    };
    if let Some(polling) = &kept.polling {
        polling
            .span
            .record("http.response.status_code", response.status().as_u16());
    }
    kept.counts = kept
        .counts
        .after(CallInfo::of(response).attempts(), kept.polling.is_some());
    kept.counts
}

/// Runs the step on an answer. The clock and `Retry-After` are read only if
/// the step follows the answer.
#[inline]
fn decide<S, RB>(
    kept: Option<&PollState<S>>,
    route: &PollRoute,
    response: &Response<RB>,
) -> (Step, u32) {
    let progress = progress(kept);
    let headers = response.headers();
    let answer = Answered {
        class: route.classifier.classify_head(response.status(), headers),
        status: response.status(),
        headers,
    };
    let total = route.timeouts.total();
    let retry_after = || retry_after_of(headers);
    let next = step(
        &answer,
        &progress,
        &route.settings,
        total,
        Instant::now,
        retry_after,
    );
    (next, progress.polls)
}

/// What the call knows of the operation.
#[inline]
fn progress<S>(kept: Option<&PollState<S>>) -> Progress<'_> {
    let Some(kept) = kept else {
        return Progress::default();
    };
    let polling = kept.polling.as_deref();
    Progress {
        request: Some(&kept.head.uri),
        target: polling.map(|polling| polling.target.uri()),
        status_only: polling.is_some_and(|polling| polling.target.status_only),
        polls: polling.map_or(0, |polling| polling.polls),
        started: kept.started,
        fetching: polling.is_some_and(|polling| polling.fetching),
        result: polling.and_then(|polling| polling.result.as_deref()),
    }
}

/// The call's error when polling cannot start or go on.
pub(crate) fn refuse(refused: &Refused, route: &PollRoute, counts: Counts, polls: u32) -> Error {
    if let Refused::StatusUrl(refusal) = refused {
        tracing::warn!(reason = %refusal, "status url refused");
    }
    refused.error(&route.settings, counts, polls)
}

/// A polled operation's final answer says what the call sent, and where the
/// answer came from.
#[inline]
pub(crate) fn finish<RB>(
    response: &mut Response<RB>,
    target: Option<&Uri>,
    counts: Counts,
    polls: u32,
) {
    if polls == 0 {
        return;
    }
    let extensions = response.extensions_mut();
    extensions.insert(CallInfo::new(counts.attempts, polls).with_requests(counts.requests));
    if let Some(target) = target {
        extensions.insert(FinalUrl(target.clone()));
    }
}

/// Logs the wait before the next poll, and returns what its event says.
pub(crate) fn log_wait(wait: &Wait, headers: &HeaderMap) -> (u32, Duration, PollWait) {
    let reason = if headers.contains_key(header::RETRY_AFTER) {
        PollWait::RetryAfter
    } else {
        PollWait::Interval
    };
    tracing::info!(
        poll = wait.poll,
        delay_ms = wait.delay.as_millis() as u64,
        reason = reason.as_str(),
        "polling"
    );
    (wait.poll, wait.delay, reason)
}

impl<S> PollState<S> {
    /// Tells the listeners of the wait before the next poll, once the status
    /// URL it goes to is known.
    fn announce(&self, listeners: &Listeners, (poll, delay, wait): (u32, Duration, PollWait)) {
        let Some(polling) = self.polling.as_deref() else {
            return;
        };
        if listeners.is_some() {
            let event = PollScheduled {
                target: events::Target::new(&http::Method::GET, polling.target.uri()),
                poll,
                delay,
                wait,
            };
            listeners.emit(|l| l.poll_scheduled(&event));
        }
    }

    /// Takes on what the step decided: the start, and
    /// the status URL to poll.
    fn follow(&mut self, wait: Wait) {
        self.started = Some(wait.started);
        match (wait.target, self.polling.as_mut()) {
            (Some(target), Some(polling)) => {
                polling.target = target;
                polling.fetching = wait.fetch;
            }
            (Some(target), None) => {
                self.polling = Some(Box::new(Operation {
                    service: None,
                    polls: 0,
                    target,
                    span: Span::none(),
                    fetching: false,
                    result: wait.result,
                }))
            }
            (None, _) => {}
        }
    }

    /// Sends the next status request once the service is ready.
    fn send<B>(
        &mut self,
        shared: &Shared<S>,
        route: &PollRoute,
        cx: &mut Context<'_>,
    ) -> TaskPoll<Result<S::Future, Error>>
    where
        B: Default,
        S: Service<Request<B>, Error = Error> + Clone,
    {
        // Waiting and readying come only after a status URL, so the call
        // kept what polling needs.
        let PollState {
            head,
            outer,
            started,
            counts,
            polling: Some(polling),
        } = self
        else {
            return TaskPoll::Ready(Err(Error::new(ErrorKind::PollRefused)));
        };
        let service = match ready!(ready_clone(&mut polling.service, &shared.spare, cx)) {
            Ok(service) => service,
            Err(error) => return TaskPoll::Ready(Err(counts.stamp(error, polling.polls))),
        };
        let mut request = status_request(head, &polling.target.target, &route.settings);
        // The whole call's deadline bounds each poll, its attempts and its
        // retries too.
        let deadline = match *started {
            Some(started) => Some(call_deadline(started, route.timeouts.total(), *outer)),
            None => *outer,
        };
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(CallDeadline(deadline));
        }
        polling.polls += 1;
        if shared.listeners.is_some() {
            let event = PollSent {
                target: events::Target::new(&http::Method::GET, polling.target.uri()),
                poll: polling.polls,
            };
            shared.listeners.emit(|l| l.poll_sent(&event));
        }
        polling.span = poll_span(polling.polls, polling.target.uri());
        let future = {
            let _entered = polling.span.enter();
            service.call(request)
        };
        TaskPoll::Ready(Ok(future))
    }
}

/// The span of status request number `poll` to `target`.
pub(crate) fn poll_span(poll: u32, target: &Uri) -> Span {
    tracing::info_span!(
        "rebound.poll",
        rebound.poll = poll,
        url.full = %UrlWithoutQuery(target),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        rebound.error_codes = tracing::field::Empty,
    )
}

/// The `GET` of a status URL: the original request's headers without the
/// body's, and without credentials for another origin.
pub(crate) fn status_request<B: Default>(
    head: &RequestHead,
    target: &Target,
    settings: &PollSettings,
) -> Request<B> {
    let mut headers = head.headers.clone();
    for name in &NOT_FOR_POLLS {
        headers.remove(name);
    }
    if matches!(target, Target::OtherOrigin(_)) && !settings.forward_credentials {
        for name in CREDENTIALS.iter().chain(&settings.secret_headers) {
            headers.remove(name);
        }
    }
    let mut request = Request::new(B::default());
    *request.uri_mut() = target.uri().clone();
    *request.version_mut() = head.version;
    *request.headers_mut() = headers;
    if matches!(target, Target::OtherOrigin(_)) {
        // Nor the time the call has left (`timeouts.propagate`).
        request.extensions_mut().insert(OtherOrigin);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(forward_credentials: bool) -> PollSettings {
        PollSettings::builder()
            .location_headers(vec![HeaderName::from_static("location")])
            .forward_credentials(forward_credentials)
            .secret_headers(vec![HeaderName::from_static("x-api-key")])
            .build()
            .unwrap()
    }

    fn head() -> RequestHead {
        let request = Request::post("https://api.example/v3/data")
            .header("authorization", "Bearer t")
            .header("cookie", "s=1")
            .header("x-api-key", "k")
            .header("x-tenant", "acme")
            .header("content-type", "application/json")
            .header("content-length", "12")
            .header("idempotency-key", "w-1")
            .body(())
            .unwrap();
        RequestHead::of(&request)
    }

    #[test]
    fn status_requests_drop_body_headers_and_keep_the_rest_for_the_same_origin() {
        let target = Target::SameOrigin("https://api.example/ops/1".parse().unwrap());
        let request: Request<String> = status_request(&head(), &target, &settings(false));
        assert_eq!(request.method(), "GET");
        assert_eq!(request.uri(), "https://api.example/ops/1");
        let names: Vec<&str> = request.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["authorization", "cookie", "x-api-key", "x-tenant"]);
    }

    #[test]
    fn credentials_never_go_to_another_origin_unless_forwarded() {
        let target = Target::OtherOrigin("https://ops.example/1".parse().unwrap());
        let request: Request<String> = status_request(&head(), &target, &settings(false));
        let names: Vec<&str> = request.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-tenant"]);
        let request: Request<String> = status_request(&head(), &target, &settings(true));
        assert!(request.headers().contains_key("authorization"));
    }

    #[test]
    fn a_polled_answer_says_what_was_sent_and_where_it_came_from() {
        let ops: Uri = "https://api.example/ops/1".parse().unwrap();
        let counts = Counts {
            attempts: 1,
            requests: 4,
        };
        let mut response = Response::new(());
        finish(&mut response, Some(&ops), counts, 2);
        assert_eq!(FinalUrl::of(&response), Some(&ops));
        let info = CallInfo::of(&response);
        assert_eq!((info.attempts(), info.polls(), info.requests()), (1, 2, 4));
        // An answer to the first request went through no poll: nothing added.
        let mut response = Response::new(());
        finish(&mut response, Some(&ops), counts, 0);
        assert!(response.extensions().is_empty());
    }
}
