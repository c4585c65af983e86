//! rebound's classes where tower-http expects a classifier.

use std::fmt;
use std::sync::Arc;

use http::{Response, StatusCode};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, NeverClassifyEos, SharedClassifier,
};

use super::ClassifySettings;
use crate::status::{Classifier, StatusClass};

/// A tower-http classifier that judges responses as a rebound policy does:
/// `success` and `pollable` statuses succeed, every other class fails with
/// its [`StatusClass`].
///
/// With tower-http's `TraceLayer`, the failure callbacks then see rebound's
/// classes (`retryable`, `terminal`, `unsupported`) instead of "5xx":
///
/// ```
/// use tower_rebound::{classify::PolicyClassifier, Policy};
/// use tower_http::trace::TraceLayer;
///
/// let policy = Policy::preset("connio").unwrap();
/// let classifier = PolicyClassifier::new(policy.classify_settings());
/// let layer = TraceLayer::new(classifier.into_make_classifier());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct PolicyClassifier {
    classifier: Arc<Classifier>,
}

/// Why [`PolicyClassifier`] judged a response or an error a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyFailure {
    /// A status of a failing class.
    Status(StatusCode, StatusClass),
    /// The inner service failed, before any response.
    Error(String),
}

impl fmt::Display for PolicyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyFailure::Status(status, class) => {
                write!(f, "{class} (status {})", status.as_u16())
            }
            PolicyFailure::Error(error) => write!(f, "transport: {error}"),
        }
    }
}

impl PolicyClassifier {
    /// A classifier with the status table of `settings`.
    pub fn new(settings: &ClassifySettings) -> Self {
        PolicyClassifier {
            classifier: Arc::clone(settings.classifier()),
        }
    }

    /// The form tower-http's layers take (`MakeClassifier`).
    pub fn into_make_classifier(self) -> SharedClassifier<Self> {
        SharedClassifier::new(self)
    }
}

impl ClassifyResponse for PolicyClassifier {
    type FailureClass = PolicyFailure;
    type ClassifyEos = NeverClassifyEos<PolicyFailure>;

    fn classify_response<B>(
        self,
        response: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        let status = response.status();
        let class = self.classifier.classify_head(status, response.headers());
        if class.passes_through() {
            ClassifiedResponse::Ready(Ok(()))
        } else {
            ClassifiedResponse::Ready(Err(PolicyFailure::Status(status, class)))
        }
    }

    fn classify_error<E>(self, error: &E) -> Self::FailureClass
    where
        E: fmt::Display + 'static,
    {
        PolicyFailure::Error(error.to_string())
    }
}
