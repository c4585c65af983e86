//! What a call of the assembled stack reads, chosen once before its first
//! attempt: the plan of its route, and its clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::{BreakerCache, BreakerRegistry};
use crate::classify;
use crate::concurrency::Limits;
use crate::config::Policy;
use crate::deadline::{Timeouts, call_deadline};
use crate::events::Listeners;
use crate::poll::{PollRoute, PollingLayer};
use crate::rate_limit::Hook;
use crate::retry::{RetryLayer, RetryRoute};
use crate::route::RouteTable;
use crate::status::Classifier;

/// Everything a call on one route reads: what classifies its answers, how
/// it retries and polls, its timeouts and its name. One per route, chosen
/// once per call.
#[derive(Debug, Clone)]
pub(crate) struct RoutePlan {
    /// The route's name, for the span and the events; `None` for the
    /// policy's own sections.
    pub(crate) name: Option<Arc<str>>,
    pub(crate) classifier: Arc<Classifier>,
    pub(crate) classify: Arc<classify::Shared>,
    pub(crate) retry: RetryRoute,
    pub(crate) poll: PollRoute,
    pub(crate) timeouts: Timeouts,
}

/// The plans of a policy's routes (its own first) and the state every call
/// of the stack shares: the breakers, the rate limit and the listeners.
#[derive(Clone)]
pub(crate) struct Plans {
    /// How a call picks its route; `None` for a policy without routes,
    /// which then spends nothing on it.
    pub(crate) routes: Option<Arc<RouteTable>>,
    pub(crate) plans: Box<[RoutePlan]>,
    pub(crate) breakers: Option<Arc<BreakerRegistry>>,
    pub(crate) limit: Option<Hook>,
    pub(crate) concurrency: Option<Arc<Limits>>,
    pub(crate) listeners: Listeners,
}

impl std::fmt::Debug for Plans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plans")
            .field("plans", &self.plans)
            .field("breakers", &self.breakers.is_some())
            .finish_non_exhaustive()
    }
}

impl Plans {
    /// The plans of `policy`, with `retry`'s budget and jitter for every
    /// route.
    pub(crate) fn of(
        policy: &Policy,
        retry: &RetryLayer,
        poll: &PollingLayer,
        breakers: Option<Arc<BreakerRegistry>>,
        limit: Option<Hook>,
        concurrency: Option<Arc<Limits>>,
    ) -> Plans {
        let own = RoutePlan {
            name: None,
            classifier: Arc::clone(policy.classify_settings().classifier()),
            classify: Arc::new(classify::Shared {
                settings: (**policy.classify_settings()).clone(),
                timeouts: policy.timeouts(),
            }),
            retry: retry.route(),
            poll: poll.route(),
            timeouts: policy.timeouts(),
        };
        let base = own.retry.clone();
        let routes = policy.routes().iter().enumerate().map(|(index, route)| {
            let classifier = Arc::clone(route.classify.classifier());
            let name = route.name.clone().unwrap_or_else(|| index.to_string());
            RoutePlan {
                name: Some(Arc::from(name)),
                classify: Arc::new(classify::Shared {
                    settings: (*route.classify).clone(),
                    timeouts: route.timeouts,
                }),
                retry: RetryRoute {
                    settings: Arc::clone(&route.retry),
                    classifier: Some(Arc::clone(&classifier)),
                    timeouts: route.timeouts,
                    ..base.clone()
                },
                poll: PollRoute {
                    settings: Arc::clone(&route.poll),
                    classifier: Arc::clone(&classifier),
                    timeouts: route.timeouts,
                },
                classifier,
                timeouts: route.timeouts,
            }
        });
        let plans: Box<[RoutePlan]> = std::iter::once(own).chain(routes).collect();
        Plans {
            routes: policy.route_table(),
            plans,
            breakers,
            limit,
            concurrency,
            listeners: policy.listeners().clone(),
        }
    }

    /// The index of the plan `request` takes.
    #[inline]
    pub(crate) fn select<B>(&self, request: &http::Request<B>) -> usize {
        match &self.routes {
            None => 0,
            Some(routes) => routes.select(&crate::route::RouteRequest::of(request)),
        }
    }

    /// The plan at `index` (the policy's own when there is none).
    #[inline]
    pub(crate) fn plan(&self, index: usize) -> &RoutePlan {
        self.plans.get(index).unwrap_or(&self.plans[0])
    }
}

/// A call's start and end, read from the clock once: at the first moment
/// either matters, so that an answer that is ready at once reads no clock.
/// Every wait of the call (an attempt's, a backoff, a turn, a probe's
/// verdict, a poll's interval) is bounded by its end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallClock {
    started: Option<Instant>,
    total: Duration,
}

impl CallClock {
    pub(crate) fn new(total: Duration) -> Self {
        CallClock {
            started: None,
            total,
        }
    }

    /// When the call started, if the clock was read yet.
    pub(crate) fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Starts the call at `now`, unless it started before.
    pub(crate) fn start(&mut self, now: Instant) -> Instant {
        *self.started.get_or_insert(now)
    }

    /// The end of the call, starting it at `now` if it has not started.
    pub(crate) fn end(&mut self, now: Instant) -> Instant {
        let started = self.start(now);
        call_deadline(started, self.total, None)
    }

    /// The end of the call, as it would be if it started at `now`, without
    /// starting it.
    pub(crate) fn end_if_started(&self, now: Instant) -> Instant {
        call_deadline(self.started.unwrap_or(now), self.total, None)
    }
}

/// The breaker of the host a service called last, kept by each clone of the
/// stack's service: a client that calls one host finds its breaker without
/// the registry's lock.
pub(crate) type LastHost = Option<BreakerCache>;

/// What every call of one client reads, behind one pointer: the plans and
/// the spare client that sends the requests after the first. A call holds
/// one reference count for all of it, the one count two threads calling
/// one client both write.
pub(crate) struct Shared<S> {
    pub(crate) spare: S,
    pub(crate) plans: Plans,
}

impl<S> std::ops::Deref for Shared<S> {
    type Target = Plans;

    fn deref(&self) -> &Plans {
        &self.plans
    }
}
