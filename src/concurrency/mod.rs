//! The concurrency limit: how many requests may be in flight to a host at
//! once.
//!
//! A slow host that is sent more than it can answer queues the requests it
//! holds, and every one of them waits longer; a client that keeps sending
//! makes it worse until nothing finishes in time. The limit keeps the
//! requests in flight to what the host answers well: a fixed bulkhead
//! (`max_in_flight`), or, with `adaptive`, a limit that follows the host's
//! latency ([`gradient`](self) after Netflix's concurrency-limits; see
//! [`ConcurrencySettings`]). A request with no free slot waits in a bounded
//! queue, or ends at once as [`Overloaded`](crate::ErrorKind::Overloaded),
//! not sent and not retried: the host is not asked for more than it can do.
//!
//! It sits under the rate limit and above the breaker, in the design's
//! order: every attempt and status request takes a slot after its turn, and
//! a request the breaker refuses gives its slot back at once. A slot is held
//! from the request's sending to its answer's head (and, for a failure, its
//! body read), as tower's `ConcurrencyLimit` holds it to its response.

mod gradient;
mod settings;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::deadline::{CallDeadline, Timeouts, call_deadline};
use crate::error::{Error, ErrorKind};
use crate::events::{ConcurrencyLimitChanged, Listeners};
use gradient::{Bounds, Gradient, Sample};

pub(crate) use settings::RawConcurrency;
pub use settings::{ConcurrencyBuilder, ConcurrencyScope, ConcurrencySettings};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The most keys kept apart; the keys after share one slot set.
const MAX_KEYS: usize = crate::host_key::DEFAULT_MAX_HOSTS;

/// The slots of every key of one limit.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) settings: ConcurrencySettings,
    listeners: Listeners,
    keys: Mutex<HashMap<Box<str>, Arc<Slots>>>,
    /// Where the keys past [`MAX_KEYS`] go; with `scope = "policy"`, the
    /// one set of slots every request takes.
    overflow: Arc<Slots>,
}

/// The slots of one key.
#[derive(Debug)]
pub(crate) struct Slots {
    /// The key, for the events: `scheme://host:port`, or empty.
    key: Box<str>,
    state: Mutex<SlotState>,
    freed: Notify,
}

#[derive(Debug)]
struct SlotState {
    in_flight: u32,
    waiting: u32,
    /// The limit now: `max_in_flight`, or the adaptive limit's.
    limit: u32,
    gradient: Option<Gradient>,
}

/// What a request gets from the limit.
pub(crate) enum Admission {
    /// A slot: send the request.
    Slot(Permit),
    /// No slot now: wait for one (the queue has room).
    Queue(BoxFuture<Result<Permit, Error>>),
    /// No slot, and no room to wait: `overloaded`.
    Refuse(Error),
}

/// A request's slot, given back when dropped; [`Permit::finish`] tells the
/// adaptive limit how the request went first.
#[derive(Debug)]
pub(crate) struct Permit {
    slots: Arc<Slots>,
    limits: Arc<Limits>,
    /// When the request took its slot, for the adaptive limit.
    since: Option<Instant>,
}

impl Limits {
    pub(crate) fn new(settings: ConcurrencySettings, listeners: Listeners) -> Limits {
        // One limit for the whole policy is this one, keyed by nothing.
        let key = match settings.scope {
            ConcurrencyScope::Policy => "",
            ConcurrencyScope::Host => crate::events::instrument::OTHER,
        };
        let overflow = Arc::new(Slots::new(&settings, key.into()));
        Limits {
            settings,
            listeners,
            keys: Mutex::new(HashMap::new()),
            overflow,
        }
    }

    /// The slots `uri`'s request takes.
    pub(crate) fn slots(&self, uri: &http::Uri) -> Arc<Slots> {
        if self.settings.scope == ConcurrencyScope::Policy {
            return Arc::clone(&self.overflow);
        }
        let mut key = String::with_capacity(32);
        let _ = crate::host_key::write_key(uri, &mut key);
        let mut keys = lock(&self.keys);
        if let Some(slots) = keys.get(key.as_str()) {
            return Arc::clone(slots);
        }
        if keys.len() >= MAX_KEYS {
            return Arc::clone(&self.overflow);
        }
        let key = key.into_boxed_str();
        let slots = Arc::new(Slots::new(&self.settings, key.clone()));
        keys.insert(key, slots.clone());
        slots
    }

    /// A slot for `uri`'s request now, a wait for one until `deadline` at
    /// the latest, or a refusal.
    /// `deadline` is asked only of a request that must wait: one that gets
    /// its slot at once reads no clock.
    pub(crate) fn admit(
        self: &Arc<Self>,
        uri: &http::Uri,
        deadline: impl FnOnce() -> Option<Instant>,
    ) -> Admission {
        let slots = self.slots(uri);
        {
            let mut state = lock(&slots.state);
            if state.in_flight < state.limit {
                state.in_flight += 1;
                drop(state);
                return Admission::Slot(self.permit(slots));
            }
            if state.waiting >= self.settings.queue {
                let detail = format!(
                    "{} requests in flight, the limit, and {} waiting (concurrency.queue = {})",
                    state.in_flight, state.waiting, self.settings.queue
                );
                return Admission::Refuse(Error::overloaded(detail));
            }
            state.waiting += 1;
        }
        let now = Instant::now();
        let until = deadline().map_or(now + self.settings.queue_timeout, |deadline| {
            deadline.min(now + self.settings.queue_timeout)
        });
        Admission::Queue(Box::pin(Arc::clone(self).wait(slots, until)))
    }

    fn permit(self: &Arc<Self>, slots: Arc<Slots>) -> Permit {
        Permit {
            slots,
            limits: Arc::clone(self),
            since: self.settings.adaptive.then(Instant::now),
        }
    }

    /// Waits in the queue for a slot until `until`.
    async fn wait(self: Arc<Self>, slots: Arc<Slots>, until: Instant) -> Result<Permit, Error> {
        let waiting = Waiting(Arc::clone(&slots));
        let mut deadline = std::pin::pin!(tokio::time::sleep_until(until));
        loop {
            let freed = slots.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = lock(&slots.state);
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    state.waiting -= 1;
                    std::mem::forget(waiting);
                    drop(state);
                    return Ok(self.permit(Arc::clone(&slots)));
                }
            }
            let woke = std::future::poll_fn(|cx| {
                if freed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                deadline.as_mut().poll(cx).map(|()| false)
            })
            .await;
            if !woke {
                let state = lock(&slots.state);
                return Err(Error::overloaded(format!(
                    "no slot came free within concurrency.queue_timeout or the call's deadline ({} in flight, the limit)",
                    state.in_flight
                )));
            }
        }
    }
}

/// A place in the queue, given back however the wait ends.
struct Waiting(Arc<Slots>);

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.waiting = state.waiting.saturating_sub(1);
    }
}

impl Slots {
    fn new(settings: &ConcurrencySettings, key: Box<str>) -> Slots {
        let gradient = settings.adaptive.then(|| Gradient::new(settings.initial));
        Slots {
            key,
            state: Mutex::new(SlotState {
                in_flight: 0,
                waiting: 0,
                limit: if settings.adaptive {
                    settings.initial
                } else {
                    settings.max_in_flight
                },
                gradient,
            }),
            freed: Notify::new(),
        }
    }

    /// Requests in flight now, and the limit.
    pub(crate) fn in_flight(&self) -> (u32, u32) {
        let state = lock(&self.state);
        (state.in_flight, state.limit)
    }
}

impl Permit {
    /// Gives the slot back, telling the adaptive limit how long the request
    /// took and whether it was dropped (timed out or throttled).
    pub(crate) fn finish<RB>(mut self, result: Result<&Response<RB>, &Error>) {
        let Some(since) = self.since.take() else {
            return;
        };
        let dropped = match result {
            Ok(response) => throttled(response.status()),
            Err(error) => {
                matches!(error.kind(), ErrorKind::Timeout) || error.status().is_some_and(throttled)
            }
        };
        let settings = &self.limits.settings;
        let bounds = Bounds {
            min: settings.min_in_flight,
            max: settings.max_in_flight,
            tolerance: settings.tolerance,
        };
        let (from, to) = {
            let mut state = lock(&self.slots.state);
            let sample = Sample {
                latency: since.elapsed(),
                in_flight: state.in_flight,
                dropped,
            };
            let from = state.limit;
            if let Some(gradient) = state.gradient.as_mut() {
                state.limit = gradient.sample(sample, bounds);
            }
            (from, state.limit)
        };
        let listeners = &self.limits.listeners;
        if from != to && listeners.is_some() {
            let event = ConcurrencyLimitChanged {
                key: &self.slots.key,
                from,
                to,
            };
            listeners.emit(|l| l.concurrency_limit(&event));
        }
    }
}

/// Whether a status says the host is shedding load.
fn throttled(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (wake, more) = {
            let mut state = lock(&self.slots.state);
            state.in_flight = state.in_flight.saturating_sub(1);
            let free = state.limit.saturating_sub(state.in_flight);
            (state.waiting > 0 && free > 0, free)
        };
        if wake {
            // A limit that grew may free more than one slot.
            for _ in 0..more.min(2) {
                self.slots.freed.notify_one();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Applies a [`ConcurrencySettings`] to a service; a layer with the limit
/// off passes every request straight through.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_rebound::concurrency::{ConcurrencyLimitLayer, ConcurrencySettings};
///
/// let settings = ConcurrencySettings::builder().max_in_flight(4).build()?;
/// let layer = ConcurrencyLimitLayer::new(settings);
/// # let _ = ServiceBuilder::new().layer(layer);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConcurrencyLimitLayer {
    limits: Option<Arc<Limits>>,
    /// Bounds a first attempt's wait in the queue, which carries no
    /// deadline of the call.
    total: Option<Duration>,
}

impl ConcurrencyLimitLayer {
    /// The limit of `settings`; its clones, and the services they wrap,
    /// share its slots.
    pub fn new(settings: ConcurrencySettings) -> ConcurrencyLimitLayer {
        ConcurrencyLimitLayer::build(settings, Listeners::default())
    }

    pub(crate) fn build(settings: ConcurrencySettings, listeners: Listeners) -> Self {
        ConcurrencyLimitLayer {
            limits: settings
                .enabled
                .then(|| Arc::new(Limits::new(settings, listeners))),
            total: None,
        }
    }

    /// The same layer, with a wait in the queue bounded by the end of the
    /// call as `timeouts` says (a request after the first carries it).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.total = Some(timeouts.total());
        self
    }

    /// The limit as a step of the assembled stack, when it is on.
    pub(crate) fn limits(&self) -> Option<Arc<Limits>> {
        self.limits.clone()
    }

    /// The settings of the limit; `None` when it is off.
    pub(crate) fn settings(&self) -> Option<&ConcurrencySettings> {
        self.limits.as_ref().map(|limits| &limits.settings)
    }

    /// Requests in flight to `uri`'s key now, and its limit; `None` when
    /// the limit is off.
    pub fn in_flight(&self, uri: &http::Uri) -> Option<(u32, u32)> {
        Some(self.limits.as_ref()?.slots(uri).in_flight())
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit {
            inner,
            limits: self.limits.clone(),
            total: self.total,
        }
    }
}

/// A service under a concurrency limit; see [`ConcurrencyLimitLayer`].
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    limits: Option<Arc<Limits>>,
    total: Option<Duration>,
}

impl<S> ConcurrencyLimit<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for ConcurrencyLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Error> + Clone,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, Request<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(limits) = &self.limits else {
            return ResponseFuture::called(self.inner.call(request), None);
        };
        let total = self.total;
        let deadline = || {
            CallDeadline::of(&request)
                .or_else(|| total.map(|total| call_deadline(Instant::now(), total, None)))
        };
        match limits.admit(request.uri(), deadline) {
            Admission::Slot(permit) => {
                ResponseFuture::called(self.inner.call(request), Some(permit))
            }
            Admission::Refuse(error) => ResponseFuture {
                state: State::Refused { error: Some(error) },
            },
            Admission::Queue(wait) => {
                // The service polled ready goes with the request; this one is
                // a clone that will be polled ready for the next.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Queued {
                        wait,
                        pending: Some(Box::new((service, request))),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The future of a [`ConcurrencyLimit`] call.
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S, R>,
    }
}

pin_project! {
    #[project = Projection]
    enum State<S, R>
    where
        S: Service<R>,
    {
        /// Waiting in the queue for a slot.
        Queued {
            wait: BoxFuture<Result<Permit, Error>>,
            pending: Option<Box<(S, R)>>,
        },
        /// Sent, holding its slot.
        Called { #[pin] future: S::Future, permit: Option<Permit> },
        /// Refused before it was sent.
        Refused { error: Option<Error> },
    }
}

impl<S: Service<R>, R> ResponseFuture<S, R> {
    fn called(future: S::Future, permit: Option<Permit>) -> Self {
        ResponseFuture {
            state: State::Called { future, permit },
        }
    }
}

impl<S: Service<R>, R> std::fmt::Debug for ResponseFuture<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, R, RB> Future for ResponseFuture<S, R>
where
    S: Service<R, Response = Response<RB>, Error = Error>,
{
    type Output = Result<Response<RB>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                Projection::Queued { wait, pending } => {
                    let permit = ready!(wait.as_mut().poll(cx));
                    let (permit, (mut service, request)) = match (permit, pending.take()) {
                        (Ok(permit), Some(pending)) => (permit, *pending),
                        (Err(error), _) => return Poll::Ready(Err(error)),
                        (Ok(_), None) => {
                            return Poll::Ready(Err(Error::new(ErrorKind::Overloaded)));
                        }
                    };
                    let future = service.call(request);
                    this.state.set(State::Called {
                        future,
                        permit: Some(permit),
                    });
                }
                Projection::Called { future, permit } => {
                    let result = ready!(future.poll(cx));
                    if let Some(permit) = permit.take() {
                        permit.finish(result.as_ref());
                    }
                    return Poll::Ready(result);
                }
                Projection::Refused { error } => {
                    let error = error
                        .take()
                        .unwrap_or_else(|| Error::new(ErrorKind::Overloaded));
                    return Poll::Ready(Err(error));
                }
            }
        }
    }
}
