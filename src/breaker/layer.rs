use std::sync::Arc;

use tower_layer::Layer;

use super::registry::Registry;
use super::{BreakerHandle, CircuitBreaker};
use crate::Policy;
use crate::rng::SharedRng;

/// Wraps a service in [`CircuitBreaker`], with the settings of a policy.
/// Clones of the layer, and every service it wraps, share their breakers.
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    registry: Option<Arc<Registry>>,
}

impl std::fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("enabled", &self.registry.is_some())
            .finish()
    }
}

impl CircuitBreakerLayer {
    /// Breakers as `policy` sets them (none when its `enabled = false`).
    pub fn new(policy: &Policy) -> Self {
        CircuitBreakerLayer::build(policy, SharedRng::from_entropy().next_u64())
    }

    /// Like [`new`](Self::new), with the jitter of grown open times drawn
    /// from a generator seeded with `seed`.
    pub fn with_seed(policy: &Policy, seed: u64) -> Self {
        CircuitBreakerLayer::build(policy, seed)
    }

    fn build(policy: &Policy, seed: u64) -> Self {
        let config = policy.breaker_config();
        let registry = config.enabled.then(|| {
            Arc::new(Registry::new(
                config.settings,
                config.scope,
                config.max_hosts,
                seed,
            ))
        });
        CircuitBreakerLayer { registry }
    }

    /// A handle on this layer's breakers.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle::new(self.registry.clone())
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            registry: self.registry.clone(),
        }
    }
}
