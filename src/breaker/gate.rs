//! The breaker's steps, without a service: whether a request may be sent
//! ([`gate`]), the wait for a probe's verdict ([`ProbeWait`]), and what an
//! answer says of the host ([`PermitGuard::finish`], [`verdict`]).
//!
//! The breaker layer's future and the assembled stack's driver both run
//! them, so that a breaker alone and a breaker in the stack behave the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Response, Uri};
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};

use super::registry::{Cell, LastHost, Registry};
use super::report;
use super::state::{Admission, Permit, Verdict};
use crate::error::{Error, ErrorKind};
use crate::status::StatusClass;

/// What the breaker says of a request about to be sent.
pub(crate) enum Gate {
    /// Send it; the guard records its outcome.
    Admit(PermitGuard),
    /// Do not send it: the call's attempt fails with this error.
    Reject(Error),
    /// Wait for a probe's verdict first.
    Wait(Box<ProbeWait>),
}

/// Asks the breaker of `uri`'s key whether a request may go now.
///
/// `deadline` gives, for the time it is read, the end of the call: a call
/// that waits for a probe's verdict stops waiting at `wait_for_probe` or at
/// that end, whichever comes first.
// Forced, as `admit` was when it built the future itself: the closed
// breaker's path is a load and a branch (STACK_LOOP=breaker).
#[inline(always)]
pub(crate) fn gate(
    registry: &Registry,
    uri: &Uri,
    last: &mut Option<LastHost>,
    deadline: impl Fn(Instant) -> Option<Instant>,
) -> Gate {
    let cell = registry.cell_via(uri, last);
    if let Some(throttle) = &cell.throttle {
        if !throttle.admit(Instant::now(), cell.rng.next_u64()) {
            // Rejected here, at no cost to the host.
            return Gate::Reject(Error::new(ErrorKind::Throttled).with_attempts(0));
        }
    }
    let wait_until = |now: Instant| {
        let own = now.checked_add(cell.settings.wait_for_probe).unwrap_or(now);
        deadline(now).map_or(own, |deadline| deadline.min(own))
    };
    let (admission, transition) = cell.admit(wait_until);
    if let Some(transition) = transition {
        report(&cell, &transition);
    }
    match admission {
        Admission::Admit(permit) => Gate::Admit(PermitGuard::new(cell, permit)),
        Admission::Reject { retry_in } => Gate::Reject(refused(&cell, retry_in)),
        Admission::Wait { ticket } => {
            let until = wait_until(Instant::now());
            Gate::Wait(Box::new(ProbeWait::new(cell, ticket, until)))
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

/// A call waiting for the verdict of a probe.
///
/// It registers for the cell's wake-up before it looks at the state, so
/// that a verdict between the two is not missed, and it looks again when
/// the open time runs out (then it may be the probe itself: a quiet host
/// gets its probe without another call), so it never waits on a probe that
/// is not coming. Dropped before it ends, it counts as rejected.
pub(crate) struct ProbeWait {
    cell: Arc<Cell>,
    ticket: u64,
    /// The end of the wait: `wait_for_probe`, or the end of the call.
    until: Instant,
    timer: Pin<Box<Sleep>>,
    notified: Option<Pin<Box<OwnedNotified>>>,
    /// Counted as admitted or rejected already.
    settled: bool,
}

impl ProbeWait {
    fn new(cell: Arc<Cell>, ticket: u64, until: Instant) -> Self {
        ProbeWait {
            cell,
            ticket,
            until,
            timer: Box::pin(tokio::time::sleep_until(until)),
            notified: None,
            settled: false,
        }
    }

    /// Waits until the call is let through (with the guard that records
    /// its outcome) or refused.
    pub(crate) fn poll_verdict(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<PermitGuard, Error>> {
        loop {
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
                    self.settled = true;
                    return Poll::Ready(Ok(PermitGuard::new(Arc::clone(&self.cell), permit)));
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

impl Drop for ProbeWait {
    fn drop(&mut self) {
        if !self.settled {
            self.cell.give_up();
        }
    }
}

/// A call the breaker let through. Dropped before the call ends, it tells the
/// breaker so, and a probe gives its slot back.
pub(crate) struct PermitGuard {
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

    /// Records what the answer says of the host.
    pub(crate) fn finish<RB>(self, result: &Result<Response<RB>, Error>) {
        // The host accepted the request: it answered, and not with a
        // failure worth retrying.
        let accepted = match result {
            Ok(_) => true,
            Err(error) => error.status().is_some() && error.class() != Some(StatusClass::Retryable),
        };
        let count_throttling = self
            .cell
            .as_ref()
            .is_some_and(|cell| cell.settings.count_throttling);
        self.record(accepted, verdict(result, count_throttling));
    }

    /// Records an answer that passed classify: a success, as [`finish`]
    /// records it, without the answer in a `Result`.
    ///
    /// [`finish`]: PermitGuard::finish
    #[inline]
    pub(crate) fn succeeded(self) {
        self.record(true, Verdict::Success);
    }

    fn record(mut self, accepted: bool, verdict: Verdict) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        if let Some(throttle) = &cell.throttle {
            if accepted {
                throttle.accepted(Instant::now());
            }
        }
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
