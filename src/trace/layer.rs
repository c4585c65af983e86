use std::sync::Arc;

use tower_layer::Layer;

use super::{Trace, TraceRoute};
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
    routes: Vec<TraceRoute>,
    listeners: Listeners,
}

impl TraceLayer {
    /// A layer that names outcomes by `classifier`.
    pub fn new(classifier: Arc<Classifier>) -> Self {
        TraceLayer {
            routes: vec![TraceRoute {
                classifier,
                name: Arc::from(""),
            }],
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

    pub(crate) fn listeners(&self) -> &Listeners {
        &self.listeners
    }

    /// The same layer, naming the outcomes and routes of a policy's routes
    /// after its own.
    /// What the call span says of each route, the policy's own first.
    pub(crate) fn route_names(&self) -> Arc<[TraceRoute]> {
        self.routes.iter().cloned().collect()
    }

    pub(crate) fn routes(mut self, routes: impl IntoIterator<Item = TraceRoute>) -> Self {
        self.routes.truncate(1);
        self.routes.extend(routes);
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            routes: self.routes.iter().cloned().collect(),
            listeners: self.listeners.clone(),
        }
    }
}
