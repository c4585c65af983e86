//! rebound as a reqwest-middleware middleware.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Extensions;
use http_body::{Body, Frame, SizeHint};
use reqwest::ResponseBuilderExt;
use reqwest_middleware::{Middleware, Next};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Policy;
use crate::error::BoxError;
use crate::retry::ReplayBody;
use crate::stack::ResilienceLayer;

/// A reqwest-middleware middleware that runs each request through the rebound
/// stack of a policy: the rest of the middleware chain (and reqwest itself)
/// is the client the stack wraps, so each attempt and each status request
/// goes down the chain again.
///
/// Calls that fail come back as `reqwest_middleware::Error::Middleware`
/// holding a [`tower_rebound::Error`](crate::Error) (downcast it to read the kind
/// and the API's error codes); failures of reqwest itself stay its own
/// errors, as their source, with the query and userinfo of their URL
/// removed.
///
/// Every request goes through the whole stack: breaker, classification,
/// timeouts and spans. A body reqwest holds in memory is replayed by retries;
/// a streaming body is sent once, so a retryable answer to it ends the call
/// (the error says the body could not be replayed). What reqwest keeps
/// beside the request (its per-request `timeout`, its extensions) goes with
/// every attempt and every status request.
///
/// ```no_run
/// use tower_rebound::{client::ReboundMiddleware, Policy};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // reqwest's own retries off: rebound's are the only ones, each counted.
/// let reqwest = reqwest::Client::builder()
///     .retry(reqwest::retry::never())
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest)
///     .with(ReboundMiddleware::new(Policy::preset("connio")?))
///     .build();
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReboundMiddleware {
    layer: ResilienceLayer,
}

impl ReboundMiddleware {
    /// A middleware with the stack of `policy`. Its breakers and retry budget
    /// are shared by every request through this middleware.
    pub fn new(policy: Policy) -> Self {
        ReboundMiddleware {
            layer: ResilienceLayer::new(policy),
        }
    }
}

/// A request body as the stack sees it: bytes in memory, which retries copy
/// by reference count, or reqwest's stream, which can be sent once.
enum ChainBody {
    Memory(Option<Bytes>),
    Stream(reqwest::Body),
}

impl ChainBody {
    fn of(body: reqwest::Body) -> Self {
        match body.as_bytes() {
            Some(bytes) => ChainBody::Memory(Some(Bytes::copy_from_slice(bytes))),
            None => ChainBody::Stream(body),
        }
    }

    fn into_reqwest(self) -> reqwest::Body {
        match self {
            ChainBody::Memory(bytes) => reqwest::Body::from(bytes.unwrap_or_default()),
            ChainBody::Stream(body) => body,
        }
    }
}

impl Default for ChainBody {
    fn default() -> Self {
        ChainBody::Memory(None)
    }
}

impl Body for ChainBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ChainBody::Memory(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ChainBody::Stream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ChainBody::Memory(bytes) => bytes.is_none(),
            ChainBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ChainBody::Memory(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ChainBody::Stream(body) => body.size_hint(),
        }
    }
}

impl ReplayBody for ChainBody {
    fn try_clone(&self) -> Option<Self> {
        match self {
            ChainBody::Memory(bytes) => Some(ChainBody::Memory(bytes.clone())),
            ChainBody::Stream(_) => None,
        }
    }
}

/// The rest of the chain, as the client the stack wraps.
#[derive(Clone)]
struct Rest<'a> {
    next: Next<'a>,
    extensions: Extensions,
}

impl<'a> Service<http::Request<ChainBody>> for Rest<'a> {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest_middleware::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'a>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<ChainBody>) -> Self::Future {
        let next = self.next.clone();
        let mut extensions = self.extensions.clone();
        Box::pin(async move {
            // The request's extensions hold reqwest's per-request settings
            // (its timeout among them): they go with every attempt.
            let request = reqwest::Request::try_from(request.map(ChainBody::into_reqwest))?;
            let response = next.run(request, &mut extensions).await?;
            Ok(with_url(response))
        })
    }
}

/// reqwest's response as an `http::Response` that remembers its URL, so that
/// the response the caller gets says which URL answered (the status URL,
/// after polling).
fn with_url(response: reqwest::Response) -> http::Response<reqwest::Body> {
    let url = response.url().clone();
    let (parts, body) = http::Response::from(response).into_parts();
    let mut converted = http::Response::builder()
        .url(url)
        .status(parts.status)
        .version(parts.version)
        .body(body)
        .unwrap_or_default();
    *converted.headers_mut() = parts.headers;
    converted.extensions_mut().extend(parts.extensions);
    converted
}

#[async_trait::async_trait]
impl Middleware for ReboundMiddleware {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let request = http::Request::<reqwest::Body>::try_from(request)
            .map_err(|e| reqwest_middleware::Error::Reqwest(crate::error::redact_reqwest(e)))?
            .map(ChainBody::of);
        let rest = Rest {
            next,
            extensions: extensions.clone(),
        };
        let mut stack = self.layer.layer(rest);
        let sent = async {
            std::future::poll_fn(|cx| stack.poll_ready(cx)).await?;
            stack.call(request).await
        };
        match sent.await {
            Ok(response) => Ok(reqwest::Response::from(response)),
            Err(error) => Err(reqwest_middleware::Error::middleware(error)),
        }
    }
}
