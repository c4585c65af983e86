//! A request on its way down the layers, with what its call decided before
//! the first attempt.
//!
//! Each layer is a Tower layer of its own and takes plain `http::Request`s.
//! Inside a stack that [`ResilienceLayer`](crate::ResilienceLayer) assembled,
//! the layers pass a [`Call`] instead: the request, plus the route the call
//! took and the end of the whole call. Every layer of the call reads them
//! there, without a lookup, an allocation or a shared counter; retries and
//! status requests carry them on. A plain request carries its deadline (set
//! by a layer above for the requests after the first) in an extension, and
//! takes the policy's own settings.

use http::{HeaderMap, Request, Response, Uri, Version};
use tokio::time::Instant;

use crate::deadline::CallDeadline;

/// What a call decided before its first attempt, carried by every request it
/// sends.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallContext {
    /// The index of the route the call took: 0 for the policy's own
    /// sections, `n` for its `n`-th route.
    pub(crate) route: usize,
    /// When the call must end, once a layer has worked it out.
    pub(crate) deadline: Option<Instant>,
}

/// The entry of `routes` for route `index`: the first (the policy's own)
/// when there is none for it.
pub(crate) fn route<T>(routes: &[T], index: usize) -> &T {
    routes.get(index).unwrap_or(&routes[0])
}

impl CallContext {
    /// The deadline of the call: the one this context carries, or, for a
    /// first attempt, which carries none yet, `now` plus the total timeout
    /// of its route (`totals[0]` is the policy's own, `totals[n]` the
    /// `n`-th route's).
    pub(crate) fn deadline_or_start(
        self,
        totals: Option<&[std::time::Duration]>,
        now: Instant,
    ) -> Option<Instant> {
        self.deadline.or_else(|| {
            let totals = totals?;
            let total = totals.get(self.route).or(totals.first())?;
            now.checked_add(*total)
        })
    }

    pub(crate) fn with_deadline(self, deadline: Instant) -> Self {
        CallContext {
            deadline: Some(deadline),
            ..self
        }
    }
}

/// A request as rebound's layers pass it down: an `http::Request`, or, inside
/// a stack built by [`ResilienceLayer`](crate::ResilienceLayer), a [`Call`].
///
/// Sealed: implemented by those two types only.
pub trait CallRequest: sealed::Sealed + Sized {
    /// The type of the request's body.
    type Body;

    /// Whether this is the request type of an assembled stack.
    #[doc(hidden)]
    const IN_STACK: bool;

    /// What a layer that keeps the request's head answers with: the
    /// response alone, or, in an assembled stack, with the head handed over.
    #[doc(hidden)]
    type Answer<RB>;

    #[doc(hidden)]
    fn answer<RB>(response: Response<RB>, head: impl FnOnce() -> Option<Head>) -> Self::Answer<RB>;

    #[doc(hidden)]
    fn request(&self) -> &Request<Self::Body>;

    #[doc(hidden)]
    fn request_mut(&mut self) -> &mut Request<Self::Body>;

    #[doc(hidden)]
    fn context(&self) -> CallContext;

    #[doc(hidden)]
    fn from_parts(request: Request<Self::Body>, context: CallContext) -> Self;

    #[doc(hidden)]
    fn into_request(self) -> Request<Self::Body>;
}

impl<B> CallRequest for Request<B> {
    type Body = B;
    const IN_STACK: bool = false;
    type Answer<RB> = Response<RB>;

    #[inline]
    fn answer<RB>(response: Response<RB>, _: impl FnOnce() -> Option<Head>) -> Response<RB> {
        response
    }

    #[inline]
    fn request(&self) -> &Request<B> {
        self
    }

    #[inline]
    fn request_mut(&mut self) -> &mut Request<B> {
        self
    }

    #[inline]
    fn context(&self) -> CallContext {
        CallContext {
            route: 0,
            deadline: CallDeadline::of(self),
        }
    }

    fn from_parts(mut request: Request<B>, context: CallContext) -> Self {
        // A plain request has nowhere else to carry the deadline.
        if let Some(deadline) = context.deadline {
            request.extensions_mut().insert(CallDeadline(deadline));
        }
        request
    }

    #[inline]
    fn into_request(self) -> Request<B> {
        self
    }
}

/// A request inside a stack built by
/// [`ResilienceLayer`](crate::ResilienceLayer): the request, the route its
/// call took and the end of the call.
#[doc(hidden)]
#[derive(Debug)]
pub struct Call<B> {
    request: Request<B>,
    context: CallContext,
}

impl<B> Call<B> {
    pub(crate) fn new(request: Request<B>, context: CallContext) -> Self {
        Call { request, context }
    }
}

impl<B> CallRequest for Call<B> {
    type Body = B;
    const IN_STACK: bool = true;
    type Answer<RB> = Handover<RB>;

    #[inline]
    fn answer<RB>(response: Response<RB>, head: impl FnOnce() -> Option<Head>) -> Handover<RB> {
        Handover {
            response,
            head: head(),
        }
    }

    #[inline]
    fn request(&self) -> &Request<B> {
        &self.request
    }

    #[inline]
    fn request_mut(&mut self) -> &mut Request<B> {
        &mut self.request
    }

    #[inline]
    fn context(&self) -> CallContext {
        self.context
    }

    #[inline]
    fn from_parts(request: Request<B>, context: CallContext) -> Self {
        Call { request, context }
    }

    #[inline]
    fn into_request(self) -> Request<B> {
        self.request
    }
}

mod sealed {
    pub trait Sealed {}
    impl<B> Sealed for http::Request<B> {}
    impl<B> Sealed for super::Call<B> {}

    pub trait SealedAnswer {}
    impl<RB> SealedAnswer for http::Response<RB> {}
    impl<RB> SealedAnswer for super::Handover<RB> {}
}

/// A layer's service inside a stack built by
/// [`ResilienceLayer`](crate::ResilienceLayer), where requests are [`Call`]s.
///
/// The layers' own services take `http::Request`s only, so that a stack
/// made by hand infers its request type as Tower users expect; this wrapper
/// gives the same service the assembled stack's request type.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct InStack<T>(pub(crate) T);

/// What a status request needs of the original request: handed by the retry
/// layer to the poll layer above it in an assembled stack, so that a call
/// copies the request's head once.
#[doc(hidden)]
#[derive(Debug)]
pub struct Head {
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) version: Version,
}

/// A response inside an assembled stack, with the head of the request the
/// retry layer kept.
#[doc(hidden)]
#[derive(Debug)]
pub struct Handover<RB> {
    pub(crate) response: Response<RB>,
    pub(crate) head: Option<Head>,
}

/// A response as the poll layer receives it: plain, or handed over with the
/// request's head.
#[doc(hidden)]
pub trait Answer: sealed::SealedAnswer {
    /// The response body.
    type Body;

    #[doc(hidden)]
    fn split(self) -> (Response<Self::Body>, Option<Head>);
}

impl<RB> Answer for Response<RB> {
    type Body = RB;

    #[inline]
    fn split(self) -> (Response<RB>, Option<Head>) {
        (self, None)
    }
}

impl<RB> Answer for Handover<RB> {
    type Body = RB;

    #[inline]
    fn split(self) -> (Response<RB>, Option<Head>) {
        (self.response, self.head)
    }
}
