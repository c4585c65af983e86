use std::sync::Arc;

use tower_layer::Layer;

use super::{PollRoute, PollSettings, Polling};
use crate::deadline::Timeouts;
use crate::events::{Listener, Listeners};
use crate::status::Classifier;

/// Wraps a service in [`Polling`].
///
/// `classifier` says which statuses are pollable: the same table the classify
/// layer below uses.
///
/// ```
/// use tower_rebound::classify::ClassifySettings;
/// use tower_rebound::poll::{PollSettings, PollingLayer};
///
/// let classify = ClassifySettings::builder().pollable([202]).build()?;
/// let layer = PollingLayer::new(PollSettings::default(), classify.classifier().clone());
/// # let _ = layer;
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PollingLayer {
    settings: Arc<PollSettings>,
    classifier: Arc<Classifier>,
    timeouts: Timeouts,
    /// The settings of each route of a policy, after its own.
    listeners: Listeners,
}

impl PollingLayer {
    /// A layer that polls as `settings` say, the operations whose statuses
    /// `classifier` calls pollable, with the default [`Timeouts`].
    pub fn new(settings: impl Into<Arc<PollSettings>>, classifier: Arc<Classifier>) -> Self {
        PollingLayer {
            settings: settings.into(),
            classifier,
            timeouts: Timeouts::default(),
            listeners: Listeners::default(),
        }
    }

    /// The same layer, telling `listener` of each status request it sends
    /// (after the listeners it has); see [`events`](crate::events).
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners = self.listeners.and(Arc::new(listener));
        self
    }

    pub(crate) fn listeners_from(mut self, listeners: &Listeners) -> Self {
        self.listeners = listeners.clone();
        self
    }

    /// The same layer, with the whole call (the request and every poll)
    /// bounded by `timeouts.total()`.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// What a call of this layer's settings needs: the assembled stack's
    /// plan holds one for each route.
    pub(crate) fn route(&self) -> PollRoute {
        PollRoute {
            settings: Arc::clone(&self.settings),
            classifier: Arc::clone(&self.classifier),
            timeouts: self.timeouts,
        }
    }
}

impl<S: Clone> Layer<S> for PollingLayer {
    type Service = Polling<S>;

    fn layer(&self, inner: S) -> Polling<S> {
        Polling::from_route(inner, self.route(), self.listeners.clone())
    }
}
