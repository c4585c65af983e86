use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use http::{HeaderMap, Response, StatusCode, header};
use http_body::Body;
use pin_project_lite::pin_project;

use tokio::time::Instant;

use super::{ErrorBodySettings, Shared, parse_error_body};
use crate::deadline::call_deadline;
use crate::error::{ApiError, BoxError, Error, ErrorKind, ResponseFailure};
use crate::retry_after::retry_after_of;
use crate::status::{Classifier, Decision, RuleInput};
use crate::timer::Timer;

pin_project! {
    /// The future of a [`Classify`](super::Classify) call.
    ///
    /// A success or pollable response is returned as soon as its head arrives,
    /// without allocating. Only an error response moves to a second state, which
    /// reads its body up to the cap.
    pub struct ResponseFuture<F, RB> {
        #[pin]
        state: State<F, RB>,
        // Armed when the attempt first waits: an answer that is ready at once
        // reads no clock.
        #[pin]
        timer: Timer,
        // The end of the whole call, when the retry layer set one.
        deadline: Option<Instant>,
        // Whether the timer stands for the end of the whole call rather than
        // for this attempt's own timeout.
        timer_is_deadline: bool,
        shared: Arc<Shared>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        Calling { #[pin] future: F },
        Reading { read: Pin<Box<ErrorBodyRead<RB>>> },
        Done,
    }
}

impl<F, RB> ResponseFuture<F, RB> {
    // Forced, with the classify layer's other forced inlines: 43 and 64
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    pub(crate) fn new(future: F, shared: Arc<Shared>, deadline: Option<Instant>) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            timer: Timer::Idle,
            deadline,
            timer_is_deadline: false,
            shared,
        }
    }
}

impl<F, RB, E> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: Body,
{
    type Output = Result<Response<RB>, Error>;

    // Forced, with the classify layer's other forced inlines: 43 and 64
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let polled = match this.state.as_mut().project() {
                StateProj::Calling { future } => match future.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(response)) => {
                        let classifier = &this.shared.settings.classifier;
                        let decision = if classifier.rules().is_empty() {
                            Decision::new(classifier.classify(response.status()), None)
                        } else {
                            classifier
                                .decide(&RuleInput::new(response.status(), response.headers()))
                        };
                        if decision.class().passes_through() {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                        let (parts, body) = response.into_parts();
                        let read = ErrorBodyRead {
                            body,
                            status: parts.status,
                            retry_after: retry_after_of(&parts.headers),
                            headers: parts.headers,
                            decision,
                            classifier: Arc::clone(classifier),
                            buf: BytesMut::new(),
                            truncated: false,
                        };
                        this.state.set(State::Reading {
                            read: Box::pin(read),
                        });
                        continue;
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Error::transport(e.into())),
                },
                StateProj::Reading { read } => read
                    .as_mut()
                    .poll_read(cx, &this.shared.settings.error_body),
                StateProj::Done => panic!("classify::ResponseFuture polled after completion"),
            };
            if let Poll::Ready(error) = polled {
                this.state.set(State::Done);
                return Poll::Ready(Err(error));
            }
            // Waiting: on the response head, or on the rest of an error body.
            if !this.timer.is_armed() {
                let now = Instant::now();
                let attempt_end = now + this.shared.timeouts.attempt();
                // A first attempt starts the call: its end is the call's.
                let call_end = call_deadline(now, this.shared.timeouts.total(), *this.deadline);
                *this.timer_is_deadline = call_end <= attempt_end;
                this.timer.as_mut().arm(attempt_end.min(call_end));
            }
            ready!(this.timer.as_mut().poll_fired(cx));
            this.state.set(State::Done);
            let error = if *this.timer_is_deadline {
                Error::new(ErrorKind::DeadlineExceeded)
            } else {
                Error::attempt_timed_out(this.shared.timeouts.attempt())
            };
            return Poll::Ready(Err(error));
        }
    }
}

pin_project! {
    /// Reads an error body up to the cap, then turns it into an [`Error`].
    struct ErrorBodyRead<RB> {
        #[pin]
        body: RB,
        status: StatusCode,
        headers: HeaderMap,
        // The class of the head; rules that read error codes may change it
        // once the body is read.
        decision: Decision,
        classifier: Arc<Classifier>,
        retry_after: Option<Duration>,
        buf: BytesMut,
        truncated: bool,
    }
}

impl<RB: Body> ErrorBodyRead<RB> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        settings: &ErrorBodySettings,
    ) -> Poll<Error> {
        let mut this = self.project();
        loop {
            let room = settings.max_bytes() - this.buf.len();
            if room == 0 {
                // Reading on to learn whether more follows would read past the
                // cap; a body that has not announced its end counts as cut.
                *this.truncated = !this.body.is_end_stream();
                break;
            }
            match ready!(this.body.as_mut().poll_frame(cx)) {
                None => break,
                Some(Err(_)) => {
                    // The status already says what happened; a body that broke
                    // off is kept as far as it came.
                    *this.truncated = true;
                    break;
                }
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    if data.remaining() > room {
                        this.buf.put((&mut data).take(room));
                        *this.truncated = true;
                        break;
                    }
                    this.buf.put(data);
                }
            }
        }
        let body = std::mem::take(this.buf).freeze();
        let api_errors = parse_error_body(settings, this.headers.get(header::CONTENT_TYPE), &body);
        let mut decision = *this.decision;
        if this.classifier.reads_codes() {
            let codes: Vec<&str> = api_errors.iter().filter_map(ApiError::code).collect();
            let input = RuleInput::new(*this.status, this.headers).with_codes(&codes);
            decision = this.classifier.decide(&input);
        }
        let failure = ResponseFailure {
            api_errors,
            body,
            body_truncated: *this.truncated,
            retry_after: *this.retry_after,
            rule: decision
                .rule()
                .and_then(|i| this.classifier.rule_label(i))
                .cloned(),
        };
        Poll::Ready(Error::from_response(
            *this.status,
            decision.class(),
            failure,
        ))
    }
}
