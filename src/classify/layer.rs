use std::sync::Arc;

use tower_layer::Layer;

use super::{Classify, ClassifySettings, Shared};
use crate::deadline::Timeouts;

/// Wraps a client in [`Classify`].
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::classify::{ClassifyLayer, ClassifySettings};
/// use tower_rebound::Timeouts;
///
/// let settings = ClassifySettings::builder().retryable([429, 500]).build()?;
/// let layer = ClassifyLayer::new(settings)
///     .timeouts(Timeouts::new(Duration::from_secs(2), Duration::from_secs(10))?);
/// # let _ = layer;
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClassifyLayer {
    settings: Arc<ClassifySettings>,
    timeouts: Timeouts,
}

impl ClassifyLayer {
    /// A layer that classifies under `settings`, with the default
    /// [`Timeouts`].
    pub fn new(settings: impl Into<Arc<ClassifySettings>>) -> Self {
        ClassifyLayer {
            settings: settings.into(),
            timeouts: Timeouts::default(),
        }
    }

    /// The same layer, with each attempt bounded by `timeouts.attempt()` and
    /// a first attempt by the whole call's `timeouts.total()` too.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Classify<S> {
        Classify::with_shared(
            inner,
            Arc::new(Shared {
                settings: (*self.settings).clone(),
                timeouts: self.timeouts,
            }),
        )
    }
}
