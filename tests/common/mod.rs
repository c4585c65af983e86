//! What the integration tests share: a real hyper-util client, and a body
//! wrapper that counts the bytes a layer pulls from the connection.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

pub type HyperClient = Client<HttpConnector, Full<Bytes>>;

/// hyper-util's client over plain HTTP, as a user would build it.
pub fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url).body(Full::default()).unwrap()
}

/// A response body that adds every data byte it yields to a shared counter.
#[derive(Debug)]
pub struct Counting<B> {
    inner: B,
    read: Arc<AtomicU64>,
}

impl<B> Counting<B> {
    pub fn new(inner: B, read: Arc<AtomicU64>) -> Self {
        Counting { inner, read }
    }
}

impl<B: Body + Unpin> Body for Counting<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.read
                    .fetch_add(data.remaining() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Waits until `condition` holds, checking every few milliseconds, and fails
/// the test if it still does not after 30 s: long enough for a loaded
/// machine, and a test that waits for what it checks, not for a guess.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "still not true after 30 s: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Everything a fmt subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// A fmt subscriber writing here, at TRACE, with the span events asked
    /// for, as this thread's default until the guard drops.
    pub fn install(
        &self,
        spans: tracing_subscriber::fmt::format::FmtSpan,
    ) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(spans)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The two ways to stack a policy over hyper-util's client: assembled
/// (`ResilienceLayer`), and by hand from the standalone layers in the
/// design's order. Both must end every call the same way.
#[derive(Clone, Copy, Debug)]
pub enum Stack {
    Assembled,
    ByHand,
}

pub const STACKS: [Stack; 2] = [Stack::Assembled, Stack::ByHand];

/// `request` through `policy`'s stack of kind `stack`.
pub async fn send(
    stack: Stack,
    policy: &tower_rebound::Policy,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, tower_rebound::Error> {
    use tower::{Layer, ServiceBuilder, ServiceExt};
    match stack {
        Stack::Assembled => {
            tower_rebound::ResilienceLayer::new(policy.clone())
                .layer(hyper_client())
                .oneshot(request)
                .await
        }
        Stack::ByHand => {
            ServiceBuilder::new()
                .layer(policy.trace_layer())
                .layer(policy.polling_layer())
                .layer(policy.retry_layer())
                .layer(policy.classify_layer())
                .service(hyper_client())
                .oneshot(request)
                .await
        }
    }
}
