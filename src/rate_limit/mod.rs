//! The rate limit layer: a turn for every attempt, counted here or shared by
//! every replica through Redis.
//!
//! It sits under the retry layer, so every attempt and every status request
//! of the poll layer takes a turn, and above the breaker, so an attempt the
//! limit holds back says nothing about the host's health. The assembled
//! stack ([`ResilienceLayer`](crate::ResilienceLayer)) takes the turn inside
//! its breaker layer, before the breaker's admission: the same order, with no
//! layer of its own, whose future every call would move once more (302
//! instructions per call with the limit off, against 35 this way).
//!
//! - **Turns** come from GCRA ([`take`]), at `per_second` with `burst` at
//!   once. With `wait` on, an attempt with no turn waits for the next one
//!   (reserved in order, never past the call's deadline); otherwise, or when
//!   the turn would come too late, it ends as `rate_limited`, not sent.
//! - **Shared** (`backend = "redis"`, feature `redis`): each turn is one Lua
//!   script run by Redis, one round trip. With `lease = n`, a round trip takes
//!   up to `n` turns and the process keeps the rest for its next attempts
//!   (for at most [`LEASE_TTL`]): at 1,000 attempts a second, `lease = 5`
//!   makes at most 200 round trips a second. The price is over-admission: a
//!   process may hold up to `n - 1` turns taken earlier, so over any interval
//!   the fleet may send up to `processes x (n - 1)` more than `per_second x
//!   interval + burst`. Round trips of one key in one process go one at a
//!   time; the attempts behind one take from its lease, waiting for it at
//!   most `redis_timeout` and never past their deadline, and limit
//!   themselves locally when it brings them nothing.
//! - **Redis down or slow** (no answer within `redis_timeout`): the attempt
//!   that saw it, and every attempt after it, take turns from a local limiter
//!   at `fallback_per_second` instead; calls never fail because of Redis, and
//!   wait for it at most `redis_timeout`, once. Redis is left alone for
//!   [`STORE_RETRY`], then one attempt per key tries it again while the
//!   others take local turns at once: a server that came back is used again
//!   within a second. Each change is a `tracing` event and
//!   a [`Listener::rate_limit_backend`](crate::events::Listener::rate_limit_backend)
//!   event.
//! - **Shared pauses**: a `429` with `Retry-After` (at most `max_pause`)
//!   pauses the key here at once and, through Redis, for every process that
//!   shares it: their attempts wait it out (or end as `rate_limited`).

mod gcra;
mod limiter;
#[cfg(feature = "redis")]
mod redis;
mod settings;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::quota_spent;
use crate::deadline::CallDeadline;
use crate::error::Error;
use crate::events::Listeners;
use crate::retry_after::WaitSource;

pub use gcra::{Grant, Rate, take};
pub(crate) use limiter::Limiter;
pub use limiter::{LEASE_TTL, STORE_RETRY};
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub(crate) use settings::RawRateLimit;
pub use settings::{Backend, LimitScope, RateLimitBuilder, RateLimitSettings};
pub use store::{Acquire, MemoryStore, Store, StoreError, StoreFuture};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The limit and the key a `429` pauses.
pub(crate) type Pauses = (Arc<Limiter>, Arc<str>);

/// The limit's steps, without a service: the rate limit layer's future and
/// the assembled stack's driver both take their turns through it.
#[derive(Clone, Debug)]
pub(crate) struct Hook {
    limiter: Arc<Limiter>,
}

impl Hook {
    /// The key of a request's limit.
    #[inline]
    pub(crate) fn key(&self, uri: &http::Uri) -> Arc<str> {
        key_of(&self.limiter, uri)
    }

    /// A turn now, without waiting or a round trip, when there is one.
    #[inline]
    pub(crate) fn try_now(&self, key: &str) -> bool {
        self.limiter.try_now(key)
    }

    /// What a `429` of this call, or an answer that says its quota is
    /// spent, pauses, when pauses are on.
    #[inline]
    pub(crate) fn pauses(&self, key: &Arc<str>) -> Option<Box<Pauses>> {
        let settings = &self.limiter.settings;
        (settings.share_pauses || settings.pace)
            .then(|| Box::new((Arc::clone(&self.limiter), Arc::clone(key))))
    }

    /// The wait for a turn, until `deadline` at the latest (the end of the
    /// call, when it is known).
    #[cold]
    pub(crate) fn acquire(
        &self,
        key: Arc<str>,
        deadline: Option<tokio::time::Instant>,
    ) -> BoxFuture<Result<(), Error>> {
        Box::pin(Arc::clone(&self.limiter).acquire(key, deadline))
    }
}

/// The pause a finished attempt asks of `pauses`' key, as a future to run
/// before its result is handed up.
pub(crate) fn pause_after<RB>(
    pauses: Pauses,
    result: &Result<Response<RB>, Error>,
) -> Option<BoxFuture<()>> {
    let settings = &pauses.0.settings;
    let pause = pause_of(result, settings.share_pauses, settings.pace)?;
    let (limiter, key) = pauses;
    Some(Box::pin(limiter.pause(key, pause)))
}

/// Applies a [`RateLimitSettings`] to a service; a layer with the limit off
/// passes every request straight through.
#[derive(Clone, Debug, Default)]
pub struct RateLimitLayer {
    limiter: Option<Arc<Limiter>>,
}

impl RateLimitLayer {
    /// The limit of `settings`, counted where its `backend` says.
    pub fn new(settings: RateLimitSettings) -> RateLimitLayer {
        RateLimitLayer::build(settings, None, Listeners::default())
    }

    /// The limit of `settings`, its turns shared through `store` (such as a
    /// [`MemoryStore`] several simulated processes share) whatever its
    /// `backend` says.
    pub fn with_store(settings: RateLimitSettings, store: Arc<dyn Store>) -> RateLimitLayer {
        RateLimitLayer::build(settings, Some(store), Listeners::default())
    }

    pub(crate) fn build(
        settings: RateLimitSettings,
        store: Option<Arc<dyn Store>>,
        listeners: Listeners,
    ) -> RateLimitLayer {
        if !settings.enabled {
            return RateLimitLayer::default();
        }
        let store = store.or_else(|| backend_store(&settings));
        RateLimitLayer {
            limiter: Some(Arc::new(Limiter::new(settings, store, listeners))),
        }
    }

    /// The limit as a step of another layer, when it is on.
    pub(crate) fn hook(&self) -> Option<Hook> {
        Some(Hook {
            limiter: Arc::clone(self.limiter.as_ref()?),
        })
    }

    /// The settings of the limit; `None` when it is off.
    pub(crate) fn settings(&self) -> Option<&RateLimitSettings> {
        self.limiter.as_ref().map(|limiter| &limiter.settings)
    }

    /// Times this limit fell back to its local limiter since it was made,
    /// and times it came back to the shared store.
    pub fn fallbacks(&self) -> (u64, u64) {
        self.limiter.as_ref().map_or((0, 0), |l| l.fallbacks())
    }
}

#[cfg(feature = "redis")]
fn backend_store(settings: &RateLimitSettings) -> Option<Arc<dyn Store>> {
    match &settings.backend {
        Backend::Local => None,
        Backend::Redis { url } => match RedisStore::new(url, settings.redis_timeout) {
            Ok(store) => Some(Arc::new(store)),
            Err(error) => {
                // Checked when the settings were built; never here.
                tracing::warn!(%error, "rate limit store not made: limiting locally");
                None
            }
        },
    }
}

#[cfg(not(feature = "redis"))]
fn backend_store(_: &RateLimitSettings) -> Option<Arc<dyn Store>> {
    None
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            hook: self.hook(),
        }
    }
}

/// A service under a rate limit; see [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    hook: Option<Hook>,
}

impl<S> RateLimit<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    #[inline(always)]
    fn call_any<B, RB>(&mut self, request: Request<B>) -> ResponseFuture<S, Request<B>, RB>
    where
        S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
    {
        let Some(hook) = &self.hook else {
            return ResponseFuture::called(self.inner.call(request), None);
        };
        let key = hook.key(request.uri());
        if hook.try_now(&key) {
            let pauses = hook.pauses(&key);
            let future = self.inner.call(request);
            return ResponseFuture::called(future, pauses);
        }
        // The service polled ready goes with the request; this one is a
        // clone that will be polled ready for the next.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let pauses = hook.pauses(&key);
        let acquire = hook.acquire(key, CallDeadline::of(&request));
        ResponseFuture {
            state: State::Acquiring {
                acquire,
                pending: Some(Box::new((service, request, pauses))),
            },
        }
    }
}

/// The key of a request's limit: the prefix, and the host for scope `host`.
fn key_of(limiter: &Limiter, uri: &http::Uri) -> Arc<str> {
    let prefix = &limiter.settings.key;
    match limiter.settings.scope {
        LimitScope::Policy => Arc::from(prefix.as_str()),
        LimitScope::Host => {
            let mut key = String::with_capacity(prefix.len() + 32);
            key.push_str(prefix);
            key.push(':');
            let _ = crate::host_key::write_key(uri, &mut key);
            Arc::from(key)
        }
    }
}

impl<S, B, RB> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, Request<B>, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.call_any(request)
    }
}

pin_project! {
    /// The future of a [`RateLimit`] call.
    pub struct ResponseFuture<S, R, RB>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R, RB>,
    }
}

pin_project! {
    #[project = Projection]
    enum State<S, R, RB>
    where
        S: Service<R>,
    {
        // The slow states keep what they hold on the heap: the future of
        // a stack whose limit is off, or whose turn came at once, stays the
        // inner future and a pointer.
        /// Waiting for a turn.
        Acquiring {
            acquire: BoxFuture<Result<(), Error>>,
            pending: Option<Box<(S, R, Option<Box<Pauses>>)>>,
        },
        /// Sent; `pauses` when a 429 is to pause the key.
        Called { #[pin] future: S::Future, pauses: Option<Box<Pauses>> },
        /// A 429 is pausing the key before it is handed up.
        Pausing {
            pause: BoxFuture<()>,
            result: Option<Box<Result<Response<RB>, Error>>>,
        },
        Done,
    }
}

impl<S, R, RB> ResponseFuture<S, R, RB>
where
    S: Service<R>,
{
    #[inline(always)]
    fn called(future: S::Future, pauses: Option<Box<Pauses>>) -> Self {
        ResponseFuture {
            state: State::Called { future, pauses },
        }
    }
}

impl<S, R, RB> std::fmt::Debug for ResponseFuture<S, R, RB>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The pause a result asks of its key: a `429`'s `Retry-After` (with
/// `share_pauses`), or, with `pace`, the reset of a quota the answer says
/// is spent, whatever its status (GitHub's `403` and its `200`s alike).
fn pause_of<RB>(
    result: &Result<Response<RB>, Error>,
    throttled: bool,
    pace: bool,
) -> Option<Duration> {
    let too_many = StatusCode::TOO_MANY_REQUESTS;
    match result {
        Err(error) if throttled && error.status() == Some(too_many) => error.retry_after(),
        Ok(response) if throttled && response.status() == too_many => {
            crate::retry_after::retry_after_of(response.headers())
        }
        // classify read the failure's headers: a wait from a quota's
        // reset is a spent quota's.
        Err(error) if pace => match error.retry_after_source() {
            Some(WaitSource::RateLimit | WaitSource::XRateLimitReset) => error.retry_after(),
            _ => None,
        },
        Ok(response) if pace => quota_spent(response.headers()),
        _ => None,
    }
}

/// Whether an answer's pause is worth taking in before it goes on: a `429`,
/// or an answer whose headers say its quota is spent. What the assembled
/// stack asks of a success before it lets it pass.
#[inline]
pub(crate) fn pauses_for<RB>(pauses: &Pauses, response: &Response<RB>) -> bool {
    let settings = &pauses.0.settings;
    (settings.share_pauses && response.status() == StatusCode::TOO_MANY_REQUESTS)
        || (settings.pace && quota_spent(response.headers()).is_some())
}

impl<S, R, RB> Future for ResponseFuture<S, R, RB>
where
    S: Service<R, Response = Response<RB>, Error = Error>,
{
    type Output = Result<Response<RB>, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                Projection::Acquiring { acquire, pending } => {
                    let turn = ready!(acquire.as_mut().poll(cx));
                    let Some(pending) = pending.take() else {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(Error::rate_limited(None)));
                    };
                    let (mut service, request, pauses) = *pending;
                    match turn {
                        Ok(()) => {
                            let future = service.call(request);
                            this.state.set(State::Called { future, pauses });
                        }
                        Err(error) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                    }
                }
                Projection::Called { future, pauses } => {
                    let result = ready!(future.poll(cx));
                    let Some(pause) = pauses.take().and_then(|p| pause_after(*p, &result)) else {
                        this.state.set(State::Done);
                        return Poll::Ready(result);
                    };
                    this.state.set(State::Pausing {
                        pause,
                        result: Some(Box::new(result)),
                    });
                }
                Projection::Pausing { pause, result } => {
                    ready!(pause.as_mut().poll(cx));
                    let result = result.take();
                    this.state.set(State::Done);
                    return Poll::Ready(
                        result.map_or_else(|| Err(Error::rate_limited(None)), |r| *r),
                    );
                }
                Projection::Done => {
                    return Poll::Ready(Err(Error::rate_limited(None)));
                }
            }
        }
    }
}
