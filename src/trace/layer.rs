use std::sync::Arc;

use tower_layer::Layer;

use super::Trace;
use crate::events::{Listener, Listeners};
use crate::status::Classifier;

/// Wraps a service in [`Trace`].
///
/// `classifier` tells the layer which responses are `accepted` (pollable,
/// returned as they are) rather than `success`: the same table the classify
/// layer below uses.
///
/// ```
/// use tower_rebound::classify::ClassifySettings;
/// use tower_rebound::trace::TraceLayer;
///
/// let classify = ClassifySettings::builder().pollable([202]).build()?;
/// let layer = TraceLayer::new(classify.classifier().clone());
/// # let _ = layer;
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TraceLayer {
    classifier: Arc<Classifier>,
    listeners: Listeners,
}

impl TraceLayer {
    /// A layer that names outcomes by `classifier`.
    pub fn new(classifier: Arc<Classifier>) -> Self {
        TraceLayer {
            classifier,
            listeners: Listeners::default(),
        }
    }

    /// The same layer, telling `listener` when each call ends (after the
    /// listeners it has).
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners = self.listeners.and(Arc::new(listener));
        self
    }

    pub(crate) fn listeners_from(mut self, listeners: &Listeners) -> Self {
        self.listeners = listeners.clone();
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            classifier: Arc::clone(&self.classifier),
            listeners: self.listeners.clone(),
        }
    }
}
