//! reqwest's client as a Tower service, for the rebound stack.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Policy;
use crate::error::BoxError;
use crate::stack::{Resilience, ResilienceLayer};

/// `reqwest::Client` as a `Service<http::Request<B>>` answering
/// `http::Response<reqwest::Body>`, whose body streams. Errors are reqwest's
/// own, kept as the source of rebound's transport errors.
///
/// ```no_run
/// use http_body_util::Full;
/// use tower_rebound::{client::Reqwest, Policy, ResilienceLayer};
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = ResilienceLayer::new(Policy::preset("connio")?)
///     .layer(Reqwest::new(reqwest::Client::new()));
/// let request = http::Request::get("http://127.0.0.1:8080/v3/devices/_dev_1")
///     .body(Full::<bytes::Bytes>::default())?;
/// let response = client.oneshot(request).await?;
/// println!("{}", response.status());
/// # Ok(())
/// # }
/// ```
///
/// reqwest 0.13 retries by itself, by default the requests an HTTP/2 server
/// refused (`REFUSED_STREAM`, a graceful `GOAWAY`) when their body can be
/// cloned. Under rebound that would stack a second retry loop, unseen by the
/// budget, the breaker and the counts, under rebound's. This adapter hands
/// reqwest bodies it cannot clone, so reqwest never replays them, and
/// [`Reqwest::from_builder`] and [`Reqwest::default`] also build the client
/// with `.retry(reqwest::retry::never())`; a client for
/// [`ReboundMiddleware`](super::ReboundMiddleware), whose bodies reqwest may
/// clone, should be built so too. rebound sends a refused request again
/// itself, as a retry it counts.
#[derive(Debug, Clone)]
pub struct Reqwest {
    client: ::reqwest::Client,
}

impl Default for Reqwest {
    /// A reqwest client with its defaults, its own retries off.
    fn default() -> Self {
        Reqwest::from_builder(::reqwest::Client::builder())
            .unwrap_or_else(|_| Reqwest::new(::reqwest::Client::default()))
    }
}

impl Reqwest {
    /// Adapts `client` as it is: if it retries by itself (reqwest's
    /// default), its retries are below rebound's and uncounted.
    pub fn new(client: ::reqwest::Client) -> Self {
        Reqwest { client }
    }

    /// The client `builder` makes, with reqwest's own retries turned off,
    /// so that rebound's are the only ones.
    ///
    /// ```
    /// use tower_rebound::client::Reqwest;
    ///
    /// let client = Reqwest::from_builder(reqwest::Client::builder().user_agent("app/1.0"))?;
    /// # let _ = client;
    /// # Ok::<_, reqwest::Error>(())
    /// ```
    pub fn from_builder(builder: ::reqwest::ClientBuilder) -> Result<Self, ::reqwest::Error> {
        let client = builder.retry(::reqwest::retry::never()).build()?;
        Ok(Reqwest { client })
    }

    /// The reqwest client.
    pub fn get_ref(&self) -> &::reqwest::Client {
        &self.client
    }
}

/// reqwest's client in the rebound stack.
pub type ReqwestClient = Resilience<Reqwest>;

/// `client` in the stack of `policy`, as it is (see [`Reqwest`] on
/// reqwest's own retries).
pub fn reqwest(client: ::reqwest::Client, policy: Policy) -> ReqwestClient {
    ResilienceLayer::new(policy).layer(Reqwest::new(client))
}

impl<B> Service<http::Request<B>> for Reqwest
where
    B: http_body::Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<::reqwest::Body>;
    type Error = ::reqwest::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // reqwest's client queues internally: it is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let request = request.map(::reqwest::Body::wrap);
        match ::reqwest::Request::try_from(request) {
            Ok(request) => {
                let pending = self.client.execute(request);
                Box::pin(async move { pending.await.map(http::Response::from) })
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}
