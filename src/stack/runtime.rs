//! The live state of a stack: what its calls spend, count and learn.

use std::sync::Arc;

use crate::breaker::{BreakerHandle, CircuitBreakerLayer};
use crate::concurrency::ConcurrencyLimitLayer;
use crate::config::Policy;
use crate::rate_limit::RateLimitLayer;
use crate::retry::Budget;

/// The live state of a stack: its retry budget, its rate limit, its
/// concurrency limit and its circuit breakers.
///
/// A [`Policy`] is a value and shares nothing; each stack built from it has a
/// runtime of its own. Stacks that should spend one budget, take turns of one
/// limit and trip one set of breakers share a runtime on purpose:
///
/// ```
/// use tower_rebound::{Policy, ResilienceLayer, Runtime};
///
/// let policy = Policy::preset("standard")?;
/// let shared = Runtime::new(&policy);
/// let a = ResilienceLayer::with_runtime(policy.clone(), &shared);
/// let b = ResilienceLayer::with_runtime(policy, &shared);
/// assert!(std::sync::Arc::ptr_eq(a.runtime().budget(), b.runtime().budget()));
/// # Ok::<_, tower_rebound::PolicyError>(())
/// ```
///
/// Each part keeps the settings it was made with: a stack whose policy says
/// otherwise of a part it shares still uses the runtime's. A stack that
/// swaps its policy ([`ReloadableLayer`](crate::ReloadableLayer)) keeps each
/// part whose settings the new policy leaves the same.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub(crate) budget: Arc<Budget>,
    pub(crate) limit: RateLimitLayer,
    pub(crate) concurrency: ConcurrencyLimitLayer,
    pub(crate) breakers: CircuitBreakerLayer,
}

impl Runtime {
    /// A runtime for stacks of `policy`: a full budget, a limit with no
    /// turns taken, every breaker closed.
    pub fn new(policy: &Policy) -> Runtime {
        Runtime {
            budget: Arc::new(Budget::new(policy.retry_settings().budget())),
            limit: policy.rate_limit_layer(),
            concurrency: policy.concurrency_layer(),
            breakers: policy.breaker_layer(),
        }
    }

    /// The retry budget.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The rate limit (off when the policy that made it has none).
    pub fn rate_limit(&self) -> &RateLimitLayer {
        &self.limit
    }

    /// The concurrency limit (off when the policy that made it has none).
    pub fn concurrency(&self) -> &ConcurrencyLimitLayer {
        &self.concurrency
    }

    /// A handle on the circuit breakers.
    pub fn breakers(&self) -> BreakerHandle {
        self.breakers.handle()
    }
}
