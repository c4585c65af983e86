use std::sync::Arc;

use tower_layer::Layer;

use super::Trace;
use crate::Policy;
use crate::classify::ClassifySettings;

/// Wraps a service in [`Trace`]. The policy tells the layer which responses
/// are `accepted` rather than `success`.
#[derive(Debug, Clone)]
pub struct TraceLayer {
    settings: Arc<ClassifySettings>,
}

impl TraceLayer {
    /// A layer that records outcomes as `policy` names them.
    pub fn new(policy: &Policy) -> Self {
        TraceLayer {
            settings: policy.classify_settings(),
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            settings: Arc::clone(&self.settings),
        }
    }
}
