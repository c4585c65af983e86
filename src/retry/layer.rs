use std::sync::Arc;

use tower_layer::Layer;

use super::{Budget, Retry, RetryRoute, RetrySettings, Shared};
use crate::deadline::Timeouts;
use crate::events::{Listener, Listeners};
use crate::rng::SharedRng;
use crate::status::Classifier;

/// Wraps a service in [`Retry`]. Clones share the budget and the jitter
/// generator.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::retry::{RetryLayer, RetrySettings};
/// use tower_rebound::Timeouts;
///
/// let layer = RetryLayer::new(RetrySettings::builder().max_attempts(3).build()?)
///     .timeouts(Timeouts::new(Duration::from_secs(2), Duration::from_secs(20))?);
/// assert_eq!(layer.budget().settings().capacity, 20.0);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer {
    settings: Arc<RetrySettings>,
    budget: Arc<Budget>,
    classifier: Option<Arc<Classifier>>,
    timeouts: Timeouts,
    jitter: Arc<SharedRng>,
    /// The settings of each route of a policy, after its own.
    listeners: Listeners,
}

impl RetryLayer {
    /// A layer that retries under `settings`, with a budget of its own made
    /// from `settings.budget()`, and the default [`Timeouts`].
    pub fn new(settings: impl Into<Arc<RetrySettings>>) -> Self {
        let settings = settings.into();
        RetryLayer {
            budget: Arc::new(Budget::new(settings.budget())),
            settings,
            classifier: None,
            timeouts: Timeouts::default(),
            jitter: Arc::new(SharedRng::from_entropy()),
            listeners: Listeners::default(),
        }
    }

    /// The same layer, telling `listener` of each attempt and each retry
    /// decision (after the listeners it has); see [`events`](crate::events).
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners = self.listeners.and(Arc::new(listener));
        self
    }

    pub(crate) fn listeners_from(mut self, listeners: &Listeners) -> Self {
        self.listeners = listeners.clone();
        self
    }

    /// The same layer, drawing on `budget`, which other layers may share.
    pub fn budget_from(mut self, budget: Arc<Budget>) -> Self {
        self.budget = budget;
        self
    }

    /// The same layer, with the whole call (attempts and waits) bounded by
    /// `timeouts.total()`.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The same layer, naming in each attempt's span the class of a response
    /// that passed through (success or pollable) by `classifier`.
    pub fn classifier(mut self, classifier: Arc<Classifier>) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// The same layer, with jitter drawn from a generator seeded with `seed`:
    /// the same seed gives the same waits, for tests and simulations.
    pub fn seed(mut self, seed: u64) -> Self {
        self.jitter = Arc::new(SharedRng::seeded(seed));
        self
    }

    /// What a call of this layer's settings needs: the assembled stack's
    /// plan holds one for each route.
    pub(crate) fn route(&self) -> RetryRoute {
        RetryRoute {
            settings: Arc::clone(&self.settings),
            budget: Arc::clone(&self.budget),
            classifier: self.classifier.clone(),
            timeouts: self.timeouts,
            jitter: Arc::clone(&self.jitter),
        }
    }

    /// The budget this layer's retries draw on.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }
}

impl<S: Clone> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            shared: Arc::new(Shared {
                spare: inner.clone(),
                route: self.route(),
                listeners: self.listeners.clone(),
            }),
            inner,
        }
    }
}
