use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::registry::Cell;
use super::report;
use super::state::{Permit, Verdict};
use crate::classify::StatusClass;
use crate::error::{Error, ErrorKind};

pin_project! {
    /// The future of a [`CircuitBreaker`](super::CircuitBreaker) call.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = Projection]
    enum Kind<F> {
        /// Sent to the inner service; the outcome is recorded when it ends.
        Called {
            #[pin]
            future: F,
            permit: Option<PermitGuard>,
        },
        /// Rejected without being sent.
        Rejected { error: Option<Error> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn passed(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: None,
            },
        }
    }

    pub(crate) fn admitted(future: F, cell: Arc<Cell>, permit: Permit) -> Self {
        let started = cell.settings.slow_call_duration.map(|_| Instant::now());
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: Some(PermitGuard {
                    cell: Some(cell),
                    permit,
                    started,
                }),
            },
        }
    }

    pub(crate) fn rejected(error: Error) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
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
            ErrorKind::Transport | ErrorKind::DeadlineExceeded => Verdict::Failure,
            _ => Verdict::Ignored,
        },
    }
}

impl<F, RB> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, Error>>,
{
    type Output = Result<Response<RB>, Error>;

    // Forced, with the breaker layer's other forced inlines: 119 and 139
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            Projection::Called { future, permit } => {
                let result = ready!(future.poll(cx));
                if let Some(guard) = permit {
                    guard.finish(&result);
                }
                Poll::Ready(result)
            }
            Projection::Rejected { error } => Poll::Ready(Err(error
                .take()
                .expect("breaker::ResponseFuture polled after completion"))),
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
}
