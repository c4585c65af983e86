use std::sync::Arc;

use tower_layer::Layer;

use super::{Poll, PollSettings};
use crate::Policy;
use crate::classify::ClassifySettings;

/// Wraps a service in [`Poll`], with the `[poll]` settings of a policy.
#[derive(Debug, Clone)]
pub struct PollLayer {
    settings: Arc<PollSettings>,
    classify: Arc<ClassifySettings>,
}

impl PollLayer {
    /// A layer that polls as `policy` says.
    pub fn new(policy: &Policy) -> Self {
        PollLayer {
            settings: policy.poll_settings(),
            classify: policy.classify_settings(),
        }
    }
}

impl<S: Clone> Layer<S> for PollLayer {
    type Service = Poll<S>;

    fn layer(&self, inner: S) -> Poll<S> {
        Poll::from_settings(
            inner,
            Arc::clone(&self.settings),
            Arc::clone(&self.classify),
        )
    }
}
