//! A timer that exists in a future without a heap allocation and is armed
//! only when it is needed: an answer that is ready at once never touches the
//! clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pin_project! {
    #[project = TimerProj]
    pub(crate) enum Timer {
        Idle,
        Armed { #[pin] sleep: Sleep },
    }
}

impl Timer {
    pub(crate) fn is_armed(&self) -> bool {
        matches!(self, Timer::Armed { .. })
    }

    /// Sets the timer to fire at `at`, reusing its registration if it has one.
    pub(crate) fn arm(mut self: Pin<&mut Self>, at: Instant) {
        match self.as_mut().project() {
            TimerProj::Armed { sleep } => sleep.reset(at),
            TimerProj::Idle => self.set(Timer::Armed {
                sleep: tokio::time::sleep_until(at),
            }),
        }
    }

    /// Ready once an armed timer has fired; an idle timer never fires.
    pub(crate) fn poll_fired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project() {
            TimerProj::Armed { sleep } => sleep.poll(cx),
            TimerProj::Idle => Poll::Pending,
        }
    }
}
