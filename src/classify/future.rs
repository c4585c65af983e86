use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use tokio::time::Instant;

use super::step::{self, ErrorBody, Head, Limit, Read};
use super::{ClassifySettings, Shared, SuccessBody};
use crate::error::{BoxError, Error};
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
        // What the armed timer stands for: this attempt's own timeout or
        // the end of the whole call.
        limit: Limit,
        shared: Arc<Shared>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        Calling { #[pin] future: F },
        Reading { read: Option<Box<ErrorBodyRead<RB>>> },
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
            limit: Limit::Attempt,
            shared,
        }
    }
}

impl<F, RB, E> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: Body + Unpin,
{
    type Output = Result<Response<RB>, Error>;

    // Forced, with the classify layer's other forced inlines: 43 and 64
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let settings = &this.shared.settings;
        loop {
            let polled = match this.state.as_mut().project() {
                StateProj::Calling { future } => match future.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(response)) => match step::head(
                        response.status(),
                        response.headers(),
                        &settings.classifier,
                        &settings.error_body,
                        || response.body().is_end_stream(),
                    ) {
                        Head::Pass(_) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                        Head::Fail(error) => Poll::Ready(error),
                        Head::ReadBody(read) => {
                            let read = Some(ErrorBodyRead::new(response, read));
                            this.state.set(State::Reading { read });
                            continue;
                        }
                    },
                    Poll::Ready(Err(e)) => Poll::Ready(Error::transport(e.into())),
                },
                StateProj::Reading { read } => match read.as_deref_mut().map(|r| r.poll_read(cx)) {
                    Some(Poll::Pending) => Poll::Pending,
                    _ => match read.take().map(|r| (*r).finish(settings)) {
                        Some(Ok(response)) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response));
                        }
                        Some(Err(error)) => Poll::Ready(error),
                        None => Poll::Ready(Error::new(crate::error::ErrorKind::Transport)),
                    },
                },
                StateProj::Done => panic!("classify::ResponseFuture polled after completion"),
            };
            if let Poll::Ready(error) = polled {
                this.state.set(State::Done);
                return Poll::Ready(Err(error));
            }
            // Waiting: on the response head, or on the rest of an error body.
            if !this.timer.is_armed() {
                let timeout = step::timeout(Instant::now(), &this.shared.timeouts, *this.deadline);
                *this.limit = timeout.by;
                this.timer.as_mut().arm(timeout.at);
            }
            ready!(this.timer.as_mut().poll_fired(cx));
            this.state.set(State::Done);
            return Poll::Ready(Err(this.limit.error(this.shared.timeouts.attempt())));
        }
    }
}

/// Reads the body of an answer up to the cap: a failure's, which then
/// becomes an [`Error`], or a success's that a rule reads for error codes,
/// which may become one.
pub(crate) struct ErrorBodyRead<RB> {
    response: Response<RB>,
    read: ErrorBody,
}

impl<RB: Body + Unpin> ErrorBodyRead<RB> {
    pub(crate) fn new(response: Response<RB>, read: ErrorBody) -> Box<Self> {
        Box::new(ErrorBodyRead { response, read })
    }

    /// Reads to the end of the body or to the cap.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let body = self.response.body_mut();
        while self.read.next(|| body.is_end_stream()) == Read::More {
            let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
            if self.read.take(frame) == Read::Done {
                break;
            }
        }
        Poll::Ready(())
    }

    /// What the body read makes of the answer: a success that stays one,
    /// with the bytes read in [`SuccessBody`] and the rest in its body, or
    /// the error.
    pub(crate) fn finish(self, settings: &ClassifySettings) -> Result<Response<RB>, Error> {
        let ErrorBodyRead {
            mut response,
            mut read,
        } = self;
        let status = response.status();
        let concluded = read.conclude(
            status,
            response.headers(),
            &settings.classifier,
            &settings.error_body,
        );
        let bytes = concluded?;
        let truncated = read.truncated();
        response
            .extensions_mut()
            .insert(SuccessBody { bytes, truncated });
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::Request;
    use http_body::Frame;
    use tower::ServiceExt;

    use super::*;
    use crate::classify::{Classify, ErrorBodySettings};
    use crate::deadline::Timeouts;
    use crate::error::ErrorKind;

    /// A body that must not be read: with no room for it, the layer only
    /// asks whether it has ended.
    #[derive(Debug)]
    struct Unread {
        ended: bool,
    }

    impl Body for Unread {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            panic!("an error body with no room was read");
        }

        fn is_end_stream(&self) -> bool {
            self.ended
        }
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_room_the_error_body_is_not_read() {
        for ended in [false, true] {
            let client = tower::service_fn(move |_: Request<()>| async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(500)
                        .header("retry-after", "3")
                        .body(Unread { ended })
                        .unwrap(),
                )
            });
            let settings = ClassifySettings::builder()
                .retryable([500])
                .error_body(ErrorBodySettings::new(0).unwrap())
                .build()
                .unwrap();
            let error = Classify::new(client, settings, Timeouts::default())
                .oneshot(Request::new(()))
                .await
                .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
            assert!(error.body().is_empty());
            // A body that has not said it ended counts as cut at the cap.
            assert_eq!(error.body_truncated(), !ended);
            assert_eq!(error.retry_after(), Some(std::time::Duration::from_secs(3)));
        }
    }
}
