use std::sync::Arc;

use tower_layer::Layer;

use super::{Classify, ClassifySettings};
use crate::Policy;

/// Wraps a client in [`Classify`], with the status table and error-body cap of
/// a policy.
#[derive(Debug, Clone)]
pub struct ClassifyLayer {
    settings: Arc<ClassifySettings>,
}

impl ClassifyLayer {
    /// A layer that classifies under `policy`.
    pub fn new(policy: &Policy) -> Self {
        ClassifyLayer {
            settings: policy.classify_settings(),
        }
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Classify<S> {
        Classify::from_settings(inner, Arc::clone(&self.settings))
    }
}
