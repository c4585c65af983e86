//! A scriptable HTTP/1.1 server on 127.0.0.1, for rebound's tests and demo.
//!
//! [`TestServer::start`] serves every request with a handler; the server counts
//! what it receives, and [`Body::counted`] bodies count the bytes the
//! connection actually pulled, so tests can assert how much a client read.
//! [`TestServer::start_raw`] hands each raw TCP connection to a function, for
//! servers that misbehave below HTTP.

pub mod apis;
pub mod redis;
pub mod seed;
pub mod sim;
#[cfg(feature = "tls")]
mod tls;

#[cfg(feature = "tls")]
pub use tls::{TestCertificate, TlsOptions};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A response body for test handlers.
pub struct Body {
    kind: BodyKind,
}

enum BodyKind {
    Full(Option<Bytes>),
    Repeat {
        chunk: Bytes,
        remaining: u64,
        produced: Arc<AtomicU64>,
    },
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body::from(Bytes::new())
    }

    /// `total` bytes sent as repeated `chunk`s, produced lazily (a huge body
    /// costs no memory); every byte the connection pulls is added to
    /// `produced`. `u64::MAX` makes a body that never ends.
    pub fn counted(chunk: &'static [u8], total: u64, produced: Arc<AtomicU64>) -> Self {
        Body {
            kind: BodyKind::Repeat {
                chunk: Bytes::from_static(chunk),
                remaining: total,
                produced,
            },
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body {
            kind: BodyKind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::from(Bytes::from(text))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.kind {
            BodyKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Repeat {
                chunk,
                remaining,
                produced,
            } => {
                if *remaining == 0 || chunk.is_empty() {
                    return Poll::Ready(None);
                }
                let n = (chunk.len() as u64).min(*remaining);
                *remaining -= n;
                produced.fetch_add(n, Ordering::Relaxed);
                Poll::Ready(Some(Ok(Frame::data(chunk.slice(..n as usize)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Full(bytes) => bytes.is_none(),
            BodyKind::Repeat { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            BodyKind::Repeat { remaining, .. } if *remaining == u64::MAX => SizeHint::new(),
            BodyKind::Repeat { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

/// A response with `status` and a body.
pub fn respond(status: u16, body: impl Into<Body>) -> Response<Body> {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response
}

/// A response with `status` and a JSON error array in the seed API's format,
/// one element per `(code, cause)`.
pub fn api_error(status: u16, errors: &[(&str, &str)]) -> Response<Body> {
    let items: Vec<String> = errors
        .iter()
        .map(|(code, cause)| {
            format!(
                r#"{{"code":"{code}","cause":"{cause}","message":"{cause}.","moreInfoUrl":"https://docs.connio.com/v3/error/{}"}}"#,
                code.to_ascii_lowercase()
            )
        })
        .collect();
    let mut response = respond(status, format!("[{}]", items.join(",")));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A request as the handler sees it: the head and the whole body.
pub type TestRequest = Request<Bytes>;

type Handler =
    dyn Fn(TestRequest) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync;

/// A hyper service that counts each request and hands it, its body read, to
/// `handler`.
fn counted_service(
    handler: Arc<Handler>,
    counter: Arc<AtomicUsize>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    service_fn(move |request: Request<Incoming>| {
        let handler = Arc::clone(&handler);
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok::<_, Infallible>(handler(Request::from_parts(parts, body)).await)
        }
    })
}

/// An HTTP server on 127.0.0.1 that stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves each request with `handler`, over HTTP/1.1 with keep-alive, on
    /// a free port.
    pub async fn start<F, Fut>(handler: F) -> TestServer
    where
        F: Fn(TestRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        TestServer::start_on(0, handler)
            .await
            .expect("bind a port on 127.0.0.1")
    }

    /// Like [`start`](Self::start), on a given port of 127.0.0.1.
    pub async fn start_on<F, Fut>(port: u16, handler: F) -> std::io::Result<TestServer>
    where
        F: Fn(TestRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Arc<Handler> = Arc::new(move |request| Box::pin(handler(request)));
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let server = TestServer::serve_raw(listener, move |stream| {
            let service = counted_service(Arc::clone(&handler), Arc::clone(&counter));
            async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        Ok(server.with_request_counter(requests))
    }

    /// Hands each accepted TCP connection to `serve`, for misbehaviour below
    /// HTTP (closing at once, sending broken headers, stalling).
    pub async fn start_raw<F, Fut>(serve: F) -> TestServer
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port on 127.0.0.1");
        TestServer::serve_raw(listener, serve)
    }

    fn serve_raw<F, Fut>(listener: TcpListener, serve: F) -> TestServer
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().expect("a bound address");
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream));
            }
        });
        TestServer {
            addr,
            requests: Arc::new(AtomicUsize::new(0)),
            connections,
            task,
        }
    }

    fn with_request_counter(mut self, requests: Arc<AtomicUsize>) -> Self {
        self.requests = requests;
        self
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many HTTP requests the server has received.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// How many TCP connections the server has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client double that answers every request at once with the same status
/// and body: no I/O, so benchmarks and allocation counts see only the layers
/// above it.
#[derive(Debug, Clone)]
pub struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    /// Answers `status` with `body`.
    pub fn new(status: u16, body: &'static str) -> Self {
        Answer {
            status: StatusCode::from_u16(status).expect("a valid status"),
            body: Bytes::from_static(body.as_bytes()),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for Answer {
    type Response = Response<http_body_util::Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        let mut response = Response::new(http_body_util::Full::new(self.body.clone()));
        *response.status_mut() = self.status;
        std::future::ready(Ok(response))
    }
}

/// What a [`Scripted`] client does with one request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answers with a status, headers and a body.
    Respond {
        /// The status.
        status: u16,
        /// Header names and values.
        headers: Vec<(&'static str, String)>,
        /// The body.
        body: Bytes,
    },
    /// Fails as a client does when a connection breaks, with this I/O error.
    Fail(std::io::ErrorKind),
    /// Never answers.
    Hang,
}

impl Step {
    /// Answers `status` with an empty body.
    pub fn status(status: u16) -> Step {
        Step::Respond {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Answers `status` with a header.
    pub fn with_header(status: u16, name: &'static str, value: impl Into<String>) -> Step {
        Step::Respond {
            status,
            headers: vec![(name, value.into())],
            body: Bytes::new(),
        }
    }
}

/// A request as a [`Scripted`] client saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived, on Tokio's clock (paused in tests).
    pub at: tokio::time::Instant,
    /// Its method.
    pub method: http::Method,
    /// Its URI.
    pub uri: http::Uri,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its whole body.
    pub body: Bytes,
}

/// A client double that follows a script, one [`Step`] per request (the last
/// step repeats), and records every request it receives. No I/O: for tests on
/// paused time.
#[derive(Debug, Clone)]
pub struct Scripted {
    state: Arc<std::sync::Mutex<ScriptState>>,
}

#[derive(Debug)]
struct ScriptState {
    steps: std::collections::VecDeque<Step>,
    seen: Vec<Seen>,
}

impl Scripted {
    /// A client that takes `steps` in order, repeating the last one.
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        let steps: std::collections::VecDeque<Step> = steps.into_iter().collect();
        assert!(!steps.is_empty(), "a script needs at least one step");
        Scripted {
            state: Arc::new(std::sync::Mutex::new(ScriptState {
                steps,
                seen: Vec::new(),
            })),
        }
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests were received.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    /// How many handles to this script exist (the test's own included): a
    /// dropped call must give its clone back.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.state)
    }
}

impl<B> tower_service::Service<Request<B>> for Scripted
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    type Response = Response<http_body_util::Full<Bytes>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let at = tokio::time::Instant::now();
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::from_static(b"<body error>"),
            };
            let step = {
                let mut state = state.lock().unwrap();
                state.seen.push(Seen {
                    at,
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body,
                });
                if state.steps.len() > 1 {
                    state.steps.pop_front().unwrap()
                } else {
                    state.steps[0].clone()
                }
            };
            match step {
                Step::Respond {
                    status,
                    headers,
                    body,
                } => {
                    let mut response = Response::new(http_body_util::Full::new(body));
                    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
                    for (name, value) in headers {
                        response.headers_mut().append(
                            name,
                            http::HeaderValue::from_str(&value).expect("a valid header value"),
                        );
                    }
                    Ok(response)
                }
                Step::Fail(kind) => Err(std::io::Error::from(kind)),
                Step::Hang => std::future::pending().await,
            }
        })
    }
}
