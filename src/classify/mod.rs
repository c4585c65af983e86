//! Classification: every response becomes success, pollable or a typed error.
//!
//! The classify layer is the innermost layer of the stack, so that every layer
//! above sees one vocabulary. It maps each status to a [`StatusClass`] through
//! the policy's table:
//!
//! - `success` and `pollable` responses pass through as `Ok(response)`, their
//!   body still streaming: nothing is buffered or copied on the success path;
//! - every other class becomes `Err(`[`Error`]`)`, carrying the
//!   status, the API errors parsed from the body (read up to
//!   `error_body.max_bytes` and never further, in the policy's
//!   `error_body.format`: see [`parse_error_body`]), the capped raw body and
//!   the wait the server asked for (`Retry-After`, a rate-limit reset
//!   header, or a delay in the body: see [`WaitSource`]);
//! - a failure of the inner client becomes an error of kind
//!   [`Transport`](crate::ErrorKind::Transport) that keeps the client's error as
//!   its source;
//! - an attempt that takes longer than `timeouts.attempt` (the response head
//!   and, for an error, its body) ends as a transport failure whose source is
//!   [`AttemptTimedOut`](crate::AttemptTimedOut); one cut short by the end of
//!   the whole call (`timeouts.total`) ends as
//!   [`DeadlineExceeded`](crate::ErrorKind::DeadlineExceeded). The timeout
//!   lives here, under the breaker, so that the breaker counts timeouts.
//!
//! ```
//! # use std::convert::Infallible;
//! # use http::{Request, Response, StatusCode};
//! # use http_body_util::Full;
//! # use bytes::Bytes;
//! use tower_rebound::classify::{ClassifyLayer, ClassifySettings};
//! use tower_rebound::ErrorKind;
//! use tower::{Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = tower::service_fn(|_req: Request<Full<Bytes>>| async {
//!     let body = r#"[{"code":"ResourceNotFound","cause":"Resource not found"}]"#;
//!     Ok::<_, Infallible>(
//!         Response::builder().status(404).body(Full::new(Bytes::from(body))).unwrap(),
//!     )
//! });
//! let settings = ClassifySettings::builder()
//!     .retryable([429, 500])
//!     .terminal([400, 404])
//!     .build()?;
//! let mut client = ClassifyLayer::new(settings).layer(client);
//!
//! let request = Request::get("http://api.example/devices/1").body(Full::default())?;
//! let error = client.ready().await?.call(request).await.unwrap_err();
//! assert_eq!(error.kind(), ErrorKind::Terminal);
//! assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
//! assert_eq!(error.api_errors()[0].code(), Some("ResourceNotFound"));
//! # Ok(())
//! # }
//! ```

pub(crate) mod error_body;
mod future;
mod layer;
mod settings;
pub(crate) mod step;
#[cfg(feature = "tower-http")]
mod tower_http;
mod wait;

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::deadline::CallDeadline;
use crate::deadline::Timeouts;
use crate::error::{BoxError, Error};

pub(crate) use error_body::RawErrorBody;
pub use error_body::{
    ErrorBodyBuilder, ErrorBodyFormat, ErrorBodySettings, ErrorFields, ErrorFieldsBuilder,
    parse_api_errors, parse_error_body,
};
pub(crate) use future::ErrorBodyRead;
pub use future::ResponseFuture;
pub use layer::ClassifyLayer;
pub(crate) use settings::RawClassify;
pub use settings::{ClassifyBuilder, ClassifySettings};
// The vocabulary classify speaks, defined on the ground floor for every layer.
pub use crate::retry_after::{UnknownWaitSource, WaitSource, parse_retry_after};
pub use crate::status::{Classifier, Decision, Rule, RuleInput, StatusClass, UnknownClass};
#[cfg(feature = "tower-http")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-http")))]
pub use tower_http::{PolicyClassifier, PolicyFailure};
pub use wait::{parse_ratelimit, parse_reset, quota_spent, server_wait};

/// The start of a success's body that a rule read for error codes (a rule
/// with `code` and a success `status`): up to `error_body.max_bytes`, and the
/// rest of the network frame that crossed it, so that nothing is lost. The
/// answer's own body yields what follows, nothing when `truncated` is false.
///
/// ```
/// # use tower_rebound::classify::SuccessBody;
/// let response = http::Response::new(());
/// assert!(SuccessBody::of(&response).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessBody {
    /// The bytes read.
    pub bytes: bytes::Bytes,
    /// Whether the read stopped at the cap: the body yields what follows,
    /// if anything.
    pub truncated: bool,
}

impl SuccessBody {
    /// What a rule read of a success's body, when one did.
    pub fn of<B>(response: &Response<B>) -> Option<&SuccessBody> {
        response.extensions().get::<SuccessBody>()
    }
}

/// Classifies the responses of the inner service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Classify<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What every call of one [`Classify`] service reads, behind one pointer: a
/// call's future carries one reference count for all of it.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: ClassifySettings,
    pub(crate) timeouts: Timeouts,
}

impl<S> Classify<S> {
    /// Classifies the responses of `inner` under `settings`, each attempt
    /// bounded by `timeouts`.
    pub fn new(inner: S, settings: ClassifySettings, timeouts: Timeouts) -> Self {
        Classify {
            inner,
            shared: Arc::new(Shared { settings, timeouts }),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Classify<S> {
    pub(crate) fn with_shared(inner: S, shared: Arc<Shared>) -> Self {
        Classify { inner, shared }
    }
}

impl<S, B, RB> Service<Request<B>> for Classify<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body + Unpin,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::transport(e.into()))
    }

    // Forced, with the classify layer's other forced inlines: 43 and 64
    // fewer instructions per call, ready and pending path (STACK_LOOP).
    #[inline(always)]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let deadline = CallDeadline::of(&request);
        let timeouts = &self.shared.timeouts;
        timeouts.stamp(&mut request, |now| {
            Some(crate::deadline::call_deadline(
                now,
                timeouts.total(),
                deadline,
            ))
        });
        let shared = Arc::clone(&self.shared);
        ResponseFuture::new(self.inner.call(request), shared, deadline)
    }
}
