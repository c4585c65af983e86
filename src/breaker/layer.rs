use std::sync::Arc;

use tower_layer::Layer;

use super::registry::Registry;
use super::{BreakerHandle, BreakerSettings, CircuitBreaker};
use crate::events::{Listener, Listeners};
use crate::rng::SharedRng;

/// Wraps a service in [`CircuitBreaker`]. Clones of the layer, and every
/// service it wraps, share their breakers.
///
/// ```
/// use tower_rebound::breaker::{BreakerSettings, CircuitBreakerLayer};
///
/// let layer = CircuitBreakerLayer::new(BreakerSettings::builder().consecutive_failures(5).build()?);
/// assert!(layer.handle().is_enabled());
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    registry: Option<Arc<Registry>>,
    settings: BreakerSettings,
    seed: u64,
    listeners: Listeners,
}

impl std::fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("enabled", &self.registry.is_some())
            .finish()
    }
}

impl CircuitBreakerLayer {
    /// The settings its breakers follow.
    pub(crate) fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// Breakers as `settings` say (none when they are not enabled).
    pub fn new(settings: BreakerSettings) -> Self {
        CircuitBreakerLayer::with_seed(settings, SharedRng::from_entropy().next_u64())
    }

    /// Like [`new`](Self::new), with the jitter of grown open times drawn
    /// from a generator seeded with `seed`.
    pub fn with_seed(settings: BreakerSettings, seed: u64) -> Self {
        CircuitBreakerLayer::build(settings, seed, Listeners::default())
    }

    fn build(settings: BreakerSettings, seed: u64, listeners: Listeners) -> Self {
        let registry = settings
            .per_host()
            .then(|| Arc::new(Registry::new(settings, seed, listeners.clone())));
        CircuitBreakerLayer {
            registry,
            settings,
            seed,
            listeners,
        }
    }

    /// The same layer, telling `listener` of each change of state and each
    /// call refused (after the listeners it has); see
    /// [`events`](crate::events). The layer gets breakers of its own: set
    /// listeners before taking a [`handle`](Self::handle).
    pub fn listener(self, listener: impl Listener) -> Self {
        let listeners = self.listeners.and(Arc::new(listener));
        CircuitBreakerLayer::build(self.settings, self.seed, listeners)
    }

    pub(crate) fn listeners_from(self, listeners: &Listeners) -> Self {
        CircuitBreakerLayer::build(self.settings, self.seed, listeners.clone())
    }

    /// This layer's breakers, for the assembled stack's driver.
    pub(crate) fn registry(&self) -> Option<Arc<Registry>> {
        self.registry.clone()
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
            last: None,
        }
    }
}
