use tower_layer::Layer;

use super::{Poll, PollSettings};
use crate::Policy;
use crate::classify::ClassifySettings;

/// Wraps a service in [`Poll`], with the `[poll]` settings of a policy.
#[derive(Debug, Clone)]
pub struct PollLayer {
    settings: &'static PollSettings,
    classify: &'static ClassifySettings,
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
        Poll {
            spare: std::sync::Arc::new(inner.clone()),
            inner,
            settings: self.settings,
            classify: self.classify,
        }
    }
}
