use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::gate::{PermitGuard, ProbeWait};
use crate::error::{Error, ErrorKind};

pin_project! {
    /// The future of a [`CircuitBreaker`](super::CircuitBreaker) call.
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        kind: Kind<S, R>,
    }
}

pin_project! {
    #[project = Projection]
    enum Kind<S, R>
    where
        S: Service<R>,
    {
        /// Sent to the inner service; the outcome is recorded when it ends.
        Called {
            #[pin]
            future: S::Future,
            permit: Option<PermitGuard>,
        },
        /// Not sent yet: waiting for the verdict of a probe.
        Waiting { wait: Box<Waiting<S, R>> },
        /// Rejected without being sent.
        Rejected { error: Option<Error> },
    }
}

/// A call waiting for a probe's verdict, with what it needs to be sent when
/// the verdict is good: a clone of the service, made ready only then.
pub(crate) struct Waiting<S, R> {
    probe: Box<ProbeWait>,
    service: S,
    request: Option<R>,
    /// Let through, waiting for the service to be ready.
    admitted: Option<PermitGuard>,
}

impl<S: Service<R>, R> ResponseFuture<S, R> {
    #[inline(always)]
    pub(crate) fn called(future: S::Future, permit: Option<PermitGuard>) -> Self {
        ResponseFuture {
            kind: Kind::Called { future, permit },
        }
    }

    pub(crate) fn rejected(error: Error) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }

    /// A call that waits for a probe's verdict, then goes through `service`
    /// (a clone, made ready when it is needed).
    #[cold]
    pub(crate) fn waiting(service: S, request: R, probe: Box<ProbeWait>) -> Self {
        ResponseFuture {
            kind: Kind::Waiting {
                wait: Box::new(Waiting {
                    probe,
                    service,
                    request: Some(request),
                    admitted: None,
                }),
            },
        }
    }
}

impl<S: Service<R, Error = Error>, R> Waiting<S, R> {
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(S::Future, PermitGuard), Error>> {
        if self.admitted.is_none() {
            self.admitted = Some(ready!(self.probe.poll_verdict(cx))?);
        }
        // Dropped on an error, the permit is cancelled.
        ready!(self.service.poll_ready(cx))?;
        match (self.admitted.take(), self.request.take()) {
            (Some(guard), Some(request)) => Poll::Ready(Ok((self.service.call(request), guard))),
            _ => Poll::Ready(Err(Error::circuit_open(None))),
        }
    }
}

impl<S, R, RB> Future for ResponseFuture<S, R>
where
    S: Service<R, Response = Response<RB>, Error = Error>,
{
    type Output = Result<Response<RB>, Error>;

    // Forced, with the breaker layer's other forced inlines: 119 and 139
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().kind.project() {
                Projection::Called { future, permit } => {
                    let result = ready!(future.poll(cx));
                    if let Some(guard) = permit.take() {
                        guard.finish(&result);
                    }
                    return Poll::Ready(result);
                }
                Projection::Rejected { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(|| {
                        Error::new(ErrorKind::Transport)
                            .with_detail("breaker::ResponseFuture polled after completion")
                    })));
                }
                Projection::Waiting { wait } => {
                    let sent = ready!(wait.poll_send(cx));
                    let kind = match sent {
                        Ok((future, guard)) => Kind::Called {
                            future,
                            permit: Some(guard),
                        },
                        Err(error) => Kind::Rejected { error: Some(error) },
                    };
                    self.as_mut().project().kind.set(kind);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::gate::verdict;
    use crate::breaker::state::Verdict;
    use crate::classify::StatusClass;
    use crate::error::ErrorKind;
    use crate::error::ResponseFailure;
    use http::StatusCode;

    fn status(code: u16, class: StatusClass) -> Result<Response<()>, Error> {
        Err(Error::from_response(
            StatusCode::from_u16(code).unwrap(),
            class,
            ResponseFailure::default(),
        ))
    }

    #[test]
    fn what_counts_as_a_failure() {
        assert_eq!(verdict(&Ok(Response::new(())), false), Verdict::Success);
        assert_eq!(
            verdict(&status(500, StatusClass::Retryable), false),
            Verdict::Failure
        );
        assert_eq!(
            verdict(&status(503, StatusClass::Retryable), false),
            Verdict::Failure
        );
        assert_eq!(
            verdict(&status(404, StatusClass::Terminal), false),
            Verdict::Success
        );
        assert_eq!(
            verdict(&status(503, StatusClass::Unsupported), false),
            Verdict::Ignored
        );
        assert_eq!(
            verdict(&status(429, StatusClass::Retryable), false),
            Verdict::Ignored
        );
        assert_eq!(
            verdict(&status(429, StatusClass::Retryable), true),
            Verdict::Failure
        );
        // A spent quota (GitHub's 403 primary limit) is throttling too; a
        // 403 that waits a Retry-After is not.
        let waited = |source| {
            Err::<Response<()>, _>(Error::from_response(
                StatusCode::FORBIDDEN,
                StatusClass::Retryable,
                ResponseFailure {
                    retry_after: Some(std::time::Duration::from_secs(2)),
                    retry_after_source: Some(source),
                    ..ResponseFailure::default()
                },
            ))
        };
        use crate::retry_after::WaitSource;
        assert_eq!(
            verdict(&waited(WaitSource::XRateLimitReset), false),
            Verdict::Ignored
        );
        assert_eq!(
            verdict(&waited(WaitSource::XRateLimitReset), true),
            Verdict::Failure
        );
        assert_eq!(
            verdict(&waited(WaitSource::RetryAfter), false),
            Verdict::Failure
        );
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            verdict::<()>(&Err(Error::transport(Box::new(io))), false),
            Verdict::Failure
        );
        let timed_out = Error::attempt_timed_out(std::time::Duration::from_secs(1));
        assert_eq!(verdict::<()>(&Err(timed_out), false), Verdict::Failure);
        let cut = Error::new(ErrorKind::DeadlineExceeded);
        assert_eq!(verdict::<()>(&Err(cut), false), Verdict::Failure);
        let open = Error::circuit_open(None);
        assert_eq!(verdict::<()>(&Err(open), false), Verdict::Ignored);
    }

    #[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
    #[test]
    fn a_refused_certificate_says_nothing_of_the_host() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let error = Error::transport(Box::new(io));
        assert!(error.is_certificate());
        assert!(!error.is_retryable());
        assert_eq!(verdict::<()>(&Err(error), false), Verdict::Ignored);
    }
}
