use std::sync::Arc;

use tower_layer::Layer;

use super::{Retry, Shared};
use crate::Policy;
use crate::rng::SharedRng;

/// Wraps a service in [`Retry`], with the retry settings, timeouts and budget
/// of a policy. Clones share the budget and the jitter generator.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

impl RetryLayer {
    /// A layer that retries under `policy`, sharing the policy's budget.
    pub fn new(policy: &Policy) -> Self {
        RetryLayer::build(policy, SharedRng::from_entropy())
    }

    /// Like [`new`](Self::new), with jitter drawn from a generator seeded with
    /// `seed`: the same seed gives the same waits, for tests and simulations.
    pub fn with_seed(policy: &Policy, seed: u64) -> Self {
        RetryLayer::build(policy, SharedRng::seeded(seed))
    }

    fn build(policy: &Policy, jitter: SharedRng) -> Self {
        RetryLayer {
            shared: Arc::new(Shared {
                settings: policy.retry_settings(),
                budget: policy.budget(),
                classify: policy.classify_settings(),
                jitter,
            }),
        }
    }
}

impl<S: Clone> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            spare: Arc::new(inner.clone()),
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}
