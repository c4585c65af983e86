use std::sync::Arc;

use tower_layer::Layer;

use super::Trace;
use crate::status::Classifier;

/// Wraps a service in [`Trace`].
///
/// `classifier` tells the layer which responses are `accepted` (pollable,
/// returned as they are) rather than `success`: the same table the classify
/// layer below uses.
///
/// ```
/// use rebound::classify::ClassifySettings;
/// use rebound::trace::TraceLayer;
///
/// let classify = ClassifySettings::builder().pollable([202]).build()?;
/// let layer = TraceLayer::new(classify.classifier().clone());
/// # let _ = layer;
/// # Ok::<_, rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TraceLayer {
    classifier: Arc<Classifier>,
}

impl TraceLayer {
    /// A layer that names outcomes by `classifier`.
    pub fn new(classifier: Arc<Classifier>) -> Self {
        TraceLayer { classifier }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            classifier: Arc::clone(&self.classifier),
        }
    }
}
