use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::registry::Cell;
use super::state::{Admission, Permit, Verdict};
use super::{CircuitBreaker, report};
use crate::call::CallRequest;
use crate::classify::StatusClass;
use crate::error::{Error, ErrorKind};
use crate::rate_limit::{Pauses, pause_after};

pin_project! {
    /// The future of a [`CircuitBreaker`](super::CircuitBreaker) call.
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        kind: Kind<S, R>,
        // The rate limit's key, when a `429` is to pause it.
        pauses: Option<Box<Pauses>>,
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
        Waiting { wait: Box<Wait<S, R>> },
        /// Rejected without being sent.
        Rejected { error: Option<Error> },
        /// Waiting for a turn of the rate limit, then admitted by `breaker`.
        Limited { wait: Box<Limited<S, R>> },
        /// A `429` pausing the rate limit's key before it is handed up.
        Pausing {
            pause: BoxFuture<()>,
            result: Option<Box<Result<S::Response, S::Error>>>,
        },
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A call waiting for its turn.
pub(crate) struct Limited<S, R> {
    breaker: CircuitBreaker<S>,
    request: Option<R>,
    acquire: BoxFuture<Result<(), Error>>,
    pauses: Option<Box<Pauses>>,
}

impl<S: Service<R>, R> ResponseFuture<S, R> {
    #[inline(always)]
    pub(crate) fn passed(future: S::Future, pauses: Option<Box<Pauses>>) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: None,
            },
            pauses,
        }
    }

    #[inline(always)]
    pub(crate) fn admitted(
        future: S::Future,
        cell: Arc<Cell>,
        permit: Permit,
        pauses: Option<Box<Pauses>>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: Some(PermitGuard::new(cell, permit)),
            },
            pauses,
        }
    }

    pub(crate) fn rejected(error: Error) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
            pauses: None,
        }
    }

    /// A call that waits for a probe's verdict until `until` at the latest,
    /// then goes through `service` (a clone, made ready when it is needed).
    #[cold]
    pub(crate) fn waiting(
        service: S,
        request: R,
        cell: Arc<Cell>,
        ticket: u64,
        until: Instant,
        pauses: Option<Box<Pauses>>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Waiting {
                wait: Box::new(Wait {
                    service,
                    request: Some(request),
                    cell,
                    ticket,
                    until,
                    timer: Box::pin(tokio::time::sleep_until(until)),
                    notified: None,
                    admitted: None,
                    settled: false,
                }),
            },
            pauses,
        }
    }

    /// A call that waits for its turn, then is admitted by `breaker`.
    #[cold]
    pub(crate) fn limited(
        breaker: CircuitBreaker<S>,
        request: R,
        acquire: BoxFuture<Result<(), Error>>,
        pauses: Option<Box<Pauses>>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Limited {
                wait: Box::new(Limited {
                    breaker,
                    request: Some(request),
                    acquire,
                    pauses,
                }),
            },
            pauses: None,
        }
    }
}

/// The error of a call the breaker refused, and the listeners' event.
pub(crate) fn refused(cell: &Cell, retry_in: Option<std::time::Duration>) -> Error {
    if cell.listeners.is_some() {
        let event = crate::events::BreakerRejected { key: &cell.key };
        cell.listeners.emit(|l| l.breaker_rejected(&event));
    }
    Error::circuit_open(retry_in)
}

/// A call waiting for the verdict of a probe, with what it needs to be sent
/// when the verdict is good.
///
/// It registers for the cell's wake-up before it looks at the state, so
/// that a verdict between the two is not missed, and it looks again when
/// the open time runs out (then it may be the probe itself: a quiet host
/// gets its probe without another call), so it never waits on a probe that
/// is not coming. Dropped before it ends, it counts as rejected (or, once
/// let through, as cancelled).
pub(crate) struct Wait<S, R> {
    service: S,
    request: Option<R>,
    cell: Arc<Cell>,
    ticket: u64,
    /// The end of the wait: `wait_for_probe`, or the end of the call.
    until: Instant,
    timer: Pin<Box<Sleep>>,
    notified: Option<Pin<Box<OwnedNotified>>>,
    /// Let through, waiting for the inner service to be ready.
    admitted: Option<PermitGuard>,
    /// Counted as admitted or rejected already.
    settled: bool,
}

impl<S: Service<R, Error = Error>, R> Wait<S, R> {
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<Result<(S::Future, PermitGuard), Error>> {
        loop {
            if self.admitted.is_some() {
                let ready = ready!(self.service.poll_ready(cx));
                // Dropped on an error, the permit is cancelled.
                let guard = self.admitted.take();
                let request = self.request.take();
                self.settled = true;
                return Poll::Ready(match (ready, guard, request) {
                    (Ok(()), Some(guard), Some(request)) => Ok((self.service.call(request), guard)),
                    (Err(error), ..) => Err(error),
                    _ => Err(Error::circuit_open(None)),
                });
            }
            if self.notified.is_none() {
                let mut notified = Box::pin(Arc::clone(&self.cell.verdicts).notified_owned());
                notified.as_mut().enable();
                self.notified = Some(notified);
            }
            let (admission, transition, remaining) = self.cell.resume(self.ticket);
            if let Some(transition) = transition {
                report(&self.cell, &transition);
            }
            match admission {
                Admission::Admit(permit) => {
                    self.admitted = Some(PermitGuard::new(Arc::clone(&self.cell), permit));
                    continue;
                }
                Admission::Reject { retry_in } => {
                    self.settled = true;
                    return Poll::Ready(Err(refused(&self.cell, retry_in)));
                }
                Admission::Wait { .. } => {}
            }
            let now = Instant::now();
            if now >= self.until {
                self.settled = true;
                self.cell.give_up();
                return Poll::Ready(Err(refused(&self.cell, remaining)));
            }
            let wake = remaining
                .and_then(|left| now.checked_add(left))
                .map_or(self.until, |at| at.min(self.until));
            if self.timer.deadline() != wake {
                self.timer.as_mut().reset(wake);
            }
            if let Some(notified) = self.notified.as_mut() {
                if notified.as_mut().poll(cx).is_ready() {
                    self.notified = None;
                    continue;
                }
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl<S, R> Drop for Wait<S, R> {
    fn drop(&mut self) {
        if !self.settled && self.admitted.is_none() {
            self.cell.give_up();
        }
    }
}

/// A call the breaker let through. Dropped before the call ends, it tells the
/// breaker so, and a probe gives its slot back.
struct PermitGuard {
    cell: Option<Arc<Cell>>,
    permit: Permit,
    started: Option<Instant>,
}

impl PermitGuard {
    // Forced, as it was when `admitted` built the guard itself: 28 fewer
    // instructions per call on the ready path (STACK_LOOP=breaker).
    #[inline(always)]
    fn new(cell: Arc<Cell>, permit: Permit) -> Self {
        let started = cell.settings.slow_call_duration.map(|_| Instant::now());
        PermitGuard {
            cell: Some(cell),
            permit,
            started,
        }
    }

    fn finish<RB>(&mut self, result: &Result<Response<RB>, Error>) {
        if let Some(cell) = self.cell.take() {
            if let Some(throttle) = &cell.throttle {
                // The host accepted the request: it answered, and not with
                // a failure worth retrying.
                let accepted = match result {
                    Ok(_) => true,
                    Err(error) => {
                        error.status().is_some()
                            && error.class() != Some(crate::status::StatusClass::Retryable)
                    }
                };
                if accepted {
                    throttle.accepted(Instant::now());
                }
            }
            let verdict = verdict(result, cell.settings.count_throttling);
            let verdict = match (verdict, self.started, cell.settings.slow_call_duration) {
                (Verdict::Success, Some(started), Some(slow)) if started.elapsed() > slow => {
                    Verdict::Failure
                }
                (verdict, ..) => verdict,
            };
            if let Some(transition) = cell.record(self.permit, verdict) {
                report(&cell, &transition);
            }
        }
    }
}

impl Drop for PermitGuard {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.cancel(self.permit);
        }
    }
}

impl std::fmt::Debug for PermitGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermitGuard").finish_non_exhaustive()
    }
}

/// What a call's outcome says about the host.
pub(crate) fn verdict<RB>(result: &Result<Response<RB>, Error>, count_throttling: bool) -> Verdict {
    let Err(error) = result else {
        return Verdict::Success;
    };
    match error.class() {
        Some(StatusClass::Retryable) if error.is_throttling() && !count_throttling => {
            Verdict::Ignored
        }
        Some(StatusClass::Retryable) => Verdict::Failure,
        Some(StatusClass::Unsupported) => Verdict::Ignored,
        // The host answered, as it should: the request was at fault.
        Some(StatusClass::Terminal | StatusClass::Success | StatusClass::Pollable) => {
            Verdict::Success
        }
        None => match error.kind() {
            // The host answered the handshake: the certificate is at fault,
            // and sending again would meet it again.
            ErrorKind::Transport if error.is_certificate() => Verdict::Ignored,
            ErrorKind::Transport | ErrorKind::Timeout | ErrorKind::DeadlineExceeded => {
                Verdict::Failure
            }
            _ => Verdict::Ignored,
        },
    }
}

impl<S, R, RB> Future for ResponseFuture<S, R>
where
    S: Service<R, Response = Response<RB>, Error = Error> + Clone,
    R: CallRequest,
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
                    if let Some(guard) = permit {
                        guard.finish(&result);
                    }
                    let mut this = self.as_mut().project();
                    let Some(pause) = this.pauses.take().and_then(|p| pause_after(*p, &result))
                    else {
                        return Poll::Ready(result);
                    };
                    this.kind.set(Kind::Pausing {
                        pause,
                        result: Some(Box::new(result)),
                    });
                }
                Projection::Pausing { pause, result } => {
                    ready!(pause.as_mut().poll(cx));
                    let result = result.take().map_or_else(
                        || {
                            Err(Error::new(ErrorKind::Transport)
                                .with_detail("breaker::ResponseFuture polled after completion"))
                        },
                        |r| *r,
                    );
                    self.as_mut()
                        .project()
                        .kind
                        .set(Kind::Rejected { error: None });
                    return Poll::Ready(result);
                }
                Projection::Limited { wait } => {
                    let turn = ready!(wait.acquire.as_mut().poll(cx));
                    let request = wait.request.take();
                    let pauses = wait.pauses.take();
                    let admitted = match (turn, request) {
                        (Ok(()), Some(request)) => wait.breaker.admit(request, pauses),
                        (Err(error), _) => ResponseFuture::rejected(error),
                        (Ok(()), None) => ResponseFuture::rejected(Error::rate_limited(None)),
                    };
                    self.set(admitted);
                }
                Projection::Rejected { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(|| {
                        Error::new(ErrorKind::Transport)
                            .with_detail("breaker::ResponseFuture polled after completion")
                    })));
                }
                Projection::Waiting { wait } => match ready!(wait.poll_wait(cx)) {
                    Ok((future, guard)) => self.as_mut().project().kind.set(Kind::Called {
                        future,
                        permit: Some(guard),
                    }),
                    Err(error) => {
                        self.as_mut()
                            .project()
                            .kind
                            .set(Kind::Rejected { error: None });
                        return Poll::Ready(Err(error));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
