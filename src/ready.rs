//! The one step the retry and poll layers share: ready a clone of the inner
//! service, then send through it.
//!
//! A layer that sends more than one request per call (a retry, a status
//! request) cannot use the service it was called through: Tower's contract
//! gives each `poll_ready` one `call`. So each keeps a spare clone, made when
//! the layer wrapped the service, and clones it only when a second request is
//! due; a call that needs one request clones nothing.

use std::task::{Context, Poll};

use tower_service::Service;

/// The service to send the next request through: a clone of `spare`, made on
/// first use and kept in `slot`, once it is ready.
pub(crate) fn ready_clone<'a, S, R>(
    slot: &'a mut Option<S>,
    spare: &S,
    cx: &mut Context<'_>,
) -> Poll<Result<&'a mut S, S::Error>>
where
    S: Service<R> + Clone,
{
    let service = slot.get_or_insert_with(|| spare.clone());
    match service.poll_ready(cx) {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(service)),
        Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        Poll::Pending => Poll::Pending,
    }
}
