//! The end of a call: one type and one calculation for every layer.
//!
//! A call must end by `timeouts.total` after it started, waits and retries and
//! polls included. Each layer that waits or sends again works out the same
//! instant here, and hands it to the requests it sends after the first in a
//! [`CallDeadline`], so that no attempt and no poll outlives the call.

use std::time::Duration;

use tokio::time::Instant;

/// When the logical call must end, carried by the requests a layer sends
/// after the first one (retries, status requests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallDeadline(pub(crate) Instant);

impl CallDeadline {
    /// The deadline a request carries, if any.
    pub(crate) fn of<B>(request: &http::Request<B>) -> Option<Instant> {
        request.extensions().get::<CallDeadline>().map(|d| d.0)
    }
}

/// The end of a call that started at `started` and may last `total`, or the
/// end of the call that encloses it (`outer`), whichever comes first.
pub(crate) fn call_deadline(started: Instant, total: Duration, outer: Option<Instant>) -> Instant {
    let own = started
        .checked_add(total)
        .unwrap_or(started + Duration::from_secs(86_400 * 365));
    outer.map_or(own, |outer| own.min(outer))
}
