//! rebound as a reqwest-middleware middleware.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Extensions;
use http_body_util::Full;
use reqwest_middleware::{Middleware, Next};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Policy, ResilienceLayer};

/// A reqwest-middleware middleware that runs each request through the rebound
/// stack of a policy: the rest of the middleware chain (and reqwest itself)
/// is the client the stack wraps, so each attempt and each status request
/// goes down the chain again.
///
/// Calls that fail come back as `reqwest_middleware::Error::Middleware`
/// holding a [`rebound::Error`](crate::Error) (downcast it to read the kind
/// and the API's error codes); failures of reqwest itself stay its own
/// errors, as their source. Request bodies are replayed when reqwest holds
/// them in memory; a streaming body is sent once and never retried.
///
/// ```no_run
/// use rebound::{client::ReboundMiddleware, Policy};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
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

/// The rest of the chain, as the client the stack wraps.
#[derive(Clone)]
struct Rest<'a> {
    next: Next<'a>,
    extensions: Extensions,
}

impl<'a> Service<http::Request<Full<Bytes>>> for Rest<'a> {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest_middleware::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'a>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Full<Bytes>>) -> Self::Future {
        let next = self.next.clone();
        let mut extensions = self.extensions.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::wrap))?;
            let response = next.run(request, &mut extensions).await?;
            Ok(http::Response::from(response))
        })
    }
}

#[async_trait::async_trait]
impl Middleware for ReboundMiddleware {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let Some(bytes) = request.body().map_or(Some(&[][..]), |b| b.as_bytes()) else {
            // A streaming body can be sent only once: straight down the chain.
            return next.run(request, extensions).await;
        };
        let body = Full::new(Bytes::copy_from_slice(bytes));
        let mut http_request = http::Request::new(body);
        *http_request.method_mut() = request.method().clone();
        *http_request.uri_mut() = request
            .url()
            .as_str()
            .parse()
            .map_err(reqwest_middleware::Error::middleware)?;
        *http_request.headers_mut() = request.headers().clone();
        *http_request.version_mut() = request.version();
        let rest = Rest {
            next,
            extensions: extensions.clone(),
        };
        let mut stack = self.layer.layer(rest);
        let sent = async {
            std::future::poll_fn(|cx| stack.poll_ready(cx)).await?;
            stack.call(http_request).await
        };
        match sent.await {
            Ok(response) => Ok(reqwest::Response::from(response)),
            Err(error) => Err(reqwest_middleware::Error::middleware(error)),
        }
    }
}
