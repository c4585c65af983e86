use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, ready};

use http::header::{self, HeaderName};
use http::{HeaderMap, Request, Response, Uri, Version};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;
use tracing::Span;

use super::location::{Target, resolve_status_url};
use super::{OnAccepted, PollSettings, Shared};
use crate::call::{self, Answer, CallContext, CallRequest, Head};
use crate::deadline::call_deadline;
use crate::error::{Error, ErrorKind};
use crate::events::{self, PollSent};
use crate::info::{CallInfo, FinalUrl};
use crate::ready::ready_clone;
use crate::retry_after::retry_after_of;
use crate::span::UrlWithoutQuery;
use crate::status::StatusClass;
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

impl From<Head> for RequestHead {
    fn from(head: Head) -> Self {
        RequestHead {
            uri: head.uri,
            headers: head.headers,
            version: head.version,
        }
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
    /// Copied before the request is sent, or, in an assembled stack, handed
    /// over by the retry layer with the first answer.
    head: Option<RequestHead>,
    context: CallContext,
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
    target: Target,
    span: Span,
}

pin_project! {
    /// The future of a [`Polling`](super::Polling) call. A response that is not
    /// pollable is returned as soon as it arrives; polling is a state machine
    /// of its own, with one timer and no task.
    pub struct ResponseFuture<S, R>
    where
        R: CallRequest,
        S: Service<R>,
    {
        #[pin]
        step: Step<S::Future>,
        // What the call keeps in case it must poll; `None` when it never
        // can (no header to read a status URL from).
        state: Option<PollState<S>>,
        shared: Arc<Shared<S>>,
        // The call's route, which says how to poll.
        route: usize,
        _request: PhantomData<fn() -> R>,
    }
}

pin_project! {
    /// Where the call is: the request or a poll in flight, the wait before
    /// the next poll, or the service getting ready to send it.
    #[project = StepProj]
    enum Step<F> {
        Calling { #[pin] future: F },
        Waiting { #[pin] timer: Timer },
        Readying,
        Done,
    }
}

impl<S, R> ResponseFuture<S, R>
where
    R: CallRequest,
    S: Service<R>,
{
    pub(crate) fn new(
        first: S::Future,
        shared: Arc<Shared<S>>,
        head: Option<RequestHead>,
        context: CallContext,
    ) -> Self {
        ResponseFuture {
            step: Step::Calling { future: first },
            route: context.route,
            state: Some(PollState {
                head,
                context,
                started: None,
                counts: Counts::default(),
                polling: None,
            }),
            shared,
            _request: PhantomData,
        }
    }

    pub(crate) fn without_polling(first: S::Future, shared: Arc<Shared<S>>, route: usize) -> Self {
        ResponseFuture {
            step: Step::Calling { future: first },
            state: None,
            shared,
            route,
            _request: PhantomData,
        }
    }
}

/// What a polled call has sent so far.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Attempts of the original request.
    attempts: u32,
    /// Every request: the attempts, and each status request's.
    requests: u32,
}

impl Counts {
    /// The counts after an answer that took `sent` attempts: the original
    /// request's when nothing was polled yet, a status request's after.
    fn after(self, sent: u32, polled: bool) -> Counts {
        Counts {
            attempts: if polled { self.attempts } else { sent },
            requests: self.requests.saturating_add(sent),
        }
    }

    /// `error` with the call's counts: the status request's own attempts
    /// are already in `requests`.
    fn stamp(self, error: Error, polls: u32) -> Error {
        error
            .with_attempts(self.attempts)
            .with_polls(polls)
            .with_requests(self.requests)
    }
}

/// How a call ends when polling cannot go on.
fn poll_error(kind: ErrorKind, counts: Counts, polls: u32, detail: Option<String>) -> Error {
    let error = counts.stamp(Error::new(kind), polls);
    match detail {
        Some(detail) => error.with_detail(detail),
        None => error,
    }
}

impl<S, R, A, RB> Future for ResponseFuture<S, R>
where
    R: CallRequest,
    R::Body: Default,
    S: Service<R, Response = A, Error = Error> + Clone,
    A: Answer<Body = RB>,
{
    type Output = Result<Response<RB>, Error>;

    // Forced, with the poll layer's other forced inlines: 89 and 80
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> TaskPoll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.step.as_mut().project() {
                StepProj::Calling { future } => {
                    let counts = this
                        .state
                        .as_ref()
                        .map_or_else(Counts::default, |s| s.counts);
                    let polling = this.state.as_ref().and_then(|s| s.polling.as_deref());
                    let polled = match polling {
                        Some(polling) => {
                            let _entered = polling.span.enter();
                            future.poll(cx)
                        }
                        None => future.poll(cx),
                    };
                    let polls = polling.map_or(0, |p| p.polls);
                    let response = match polled {
                        TaskPoll::Pending => {
                            if let Some(state) = this.state.as_mut() {
                                state.started.get_or_insert_with(Instant::now);
                            }
                            return TaskPoll::Pending;
                        }
                        TaskPoll::Ready(Err(error)) => {
                            this.step.set(Step::Done);
                            if let Some(polling) = polling {
                                crate::span::record_error_fields(&polling.span, &error);
                                // The status request's attempts were sent too.
                                let counts = counts.after(error.attempts(), true);
                                return TaskPoll::Ready(Err(counts.stamp(error, polls)));
                            }
                            return TaskPoll::Ready(Err(error));
                        }
                        TaskPoll::Ready(Ok(answer)) => answer.split(),
                    };
                    let (mut response, handed) = response;
                    let status = response.status();
                    if let Some(polling) = polling {
                        polling
                            .span
                            .record("http.response.status_code", status.as_u16());
                    }
                    let counts =
                        counts.after(CallInfo::of(&response).attempts(), polling.is_some());
                    if let Some(state) = this.state.as_mut() {
                        state.counts = counts;
                    }
                    let route = call::route(&this.shared.routes, *this.route);
                    if route.classifier.classify_head(status, response.headers())
                        != StatusClass::Pollable
                    {
                        this.step.set(Step::Done);
                        if polls > 0 {
                            let info = CallInfo::new(counts.attempts, polls)
                                .with_requests(counts.requests);
                            let extensions = response.extensions_mut();
                            extensions.insert(info);
                            if let Some(PollState {
                                polling: Some(polling),
                                ..
                            }) = this.state.as_ref()
                            {
                                extensions.insert(FinalUrl(polling.target.uri().clone()));
                            }
                        }
                        return TaskPoll::Ready(Ok(response));
                    }
                    let settings = &route.settings;
                    if let (Some(state), Some(head)) = (this.state.as_mut(), handed) {
                        state.head.get_or_insert_with(|| head.into());
                    }
                    // Without the request's head no status request can be
                    // made: the 202 is what the call has.
                    let Some(PollState {
                        head: Some(head),
                        polling,
                        started,
                        ..
                    }) = this.state.as_mut()
                    else {
                        this.step.set(Step::Done);
                        return TaskPoll::Ready(accepted(response, settings, counts));
                    };
                    // The operation goes on: where, and after how long?
                    let found = settings
                        .location_headers
                        .iter()
                        .find_map(|name| response.headers().get(name));
                    match found {
                        // RFC 9110: relative to the URL that answered.
                        Some(value) => match resolve_status_url(
                            &head.uri,
                            polling
                                .as_ref()
                                .map_or(&head.uri, |polling| polling.target.uri()),
                            value.as_bytes(),
                            &settings.allowed_origins,
                        ) {
                            Ok(target) => match polling.as_mut() {
                                Some(polling) => polling.target = target,
                                None => {
                                    *polling = Some(Box::new(Operation {
                                        service: None,
                                        polls: 0,
                                        target,
                                        span: Span::none(),
                                    }))
                                }
                            },
                            Err(refusal) => {
                                this.step.set(Step::Done);
                                tracing::warn!(reason = %refusal, "status url refused");
                                return TaskPoll::Ready(Err(poll_error(
                                    ErrorKind::PollRefused,
                                    counts,
                                    polls,
                                    Some(refusal.to_string()),
                                )));
                            }
                        },
                        // A later answer may leave the URL out: keep polling it.
                        None if polling.is_some() => {}
                        None => {
                            this.step.set(Step::Done);
                            return TaskPoll::Ready(accepted(response, settings, counts));
                        }
                    }
                    let now = Instant::now();
                    let started = *started.get_or_insert(now);
                    let wait = retry_after_of(response.headers())
                        .map(|asked| asked.min(settings.max_interval))
                        .unwrap_or_else(|| settings.interval_before(polls + 1));
                    let resume = now + wait;
                    let polling_for = resume.saturating_duration_since(started);
                    let ending =
                        if polls >= settings.max_polls || polling_for > settings.max_duration {
                            Some(ErrorKind::PollTimeout)
                        } else if resume >= call_deadline(started, route.timeouts.total(), None) {
                            Some(ErrorKind::DeadlineExceeded)
                        } else {
                            None
                        };
                    if let Some(kind) = ending {
                        this.step.set(Step::Done);
                        let detail = format!(
                            "the operation was still going after {polls} polls and {}ms",
                            now.saturating_duration_since(started).as_millis()
                        );
                        return TaskPoll::Ready(Err(poll_error(kind, counts, polls, Some(detail))));
                    }
                    tracing::info!(
                        poll = polls + 1,
                        delay_ms = wait.as_millis() as u64,
                        reason = if response.headers().contains_key(http::header::RETRY_AFTER) {
                            "retry_after"
                        } else {
                            "interval"
                        },
                        "polling"
                    );
                    drop(response);
                    this.step.set(Step::Waiting { timer: Timer::Idle });
                    if let StepProj::Waiting { timer } = this.step.as_mut().project() {
                        timer.arm(now + wait);
                    }
                }
                StepProj::Waiting { timer } => {
                    ready!(timer.poll_fired(cx));
                    this.step.set(Step::Readying);
                }
                StepProj::Readying => {
                    // Waiting and readying come only after a status URL, so
                    // the call kept what polling needs.
                    let Some(PollState {
                        head: Some(head),
                        context,
                        started,
                        counts,
                        polling: Some(polling),
                    }) = this.state.as_mut()
                    else {
                        this.step.set(Step::Done);
                        return TaskPoll::Ready(Err(Error::new(ErrorKind::PollRefused)));
                    };
                    let service =
                        match ready!(ready_clone(&mut polling.service, &this.shared.spare, cx)) {
                            Ok(service) => service,
                            Err(error) => {
                                let polls = polling.polls;
                                this.step.set(Step::Done);
                                return TaskPoll::Ready(Err(counts.stamp(error, polls)));
                            }
                        };
                    let route = call::route(&this.shared.routes, *this.route);
                    let request = status_request(head, &polling.target, &route.settings);
                    // The whole call's deadline bounds each poll, its
                    // attempts and its retries too.
                    let context = match *started {
                        Some(started) => context.with_deadline(call_deadline(
                            started,
                            route.timeouts.total(),
                            context.deadline,
                        )),
                        None => *context,
                    };
                    let request = R::from_parts(request, context);
                    polling.polls += 1;
                    if this.shared.listeners.is_some() {
                        let event = PollSent {
                            target: events::Target::new(&http::Method::GET, polling.target.uri()),
                            poll: polling.polls,
                        };
                        this.shared.listeners.emit(|l| l.poll_sent(&event));
                    }
                    polling.span = tracing::info_span!(
                        "rebound.poll",
                        rebound.poll = polling.polls,
                        url.full = %UrlWithoutQuery(polling.target.uri()),
                        http.response.status_code = tracing::field::Empty,
                        error.type = tracing::field::Empty,
                        rebound.error_codes = tracing::field::Empty,
                    );
                    let future = {
                        let _entered = polling.span.enter();
                        service.call(request)
                    };
                    this.step.set(Step::Calling { future });
                }
                StepProj::Done => panic!("poll::ResponseFuture polled after completion"),
            }
        }
    }
}

/// A 202 with no status URL: returned as it is, or an error, as the policy
/// says.
fn accepted<RB>(
    response: Response<RB>,
    settings: &PollSettings,
    counts: Counts,
) -> Result<Response<RB>, Error> {
    match settings.on_accepted {
        OnAccepted::Succeed => Ok(response),
        OnAccepted::Error => {
            let looked_in: Vec<&str> = settings
                .location_headers
                .iter()
                .map(HeaderName::as_str)
                .collect();
            Err(poll_error(
                ErrorKind::PollRefused,
                counts,
                0,
                Some(format!(
                    "the 202 names no status url (looked in: {}) and poll.on_accepted is \"error\"",
                    looked_in.join(", ")
                )),
            ))
        }
    }
}

/// The `GET` of a status URL: the original request's headers without the
/// body's, and without credentials for another origin.
fn status_request<B: Default>(
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
}
