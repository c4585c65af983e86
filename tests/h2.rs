//! Requests an HTTP/2 server did not process, over h2c (HTTP/2 with prior
//! knowledge, plain TCP) on 127.0.0.1: the server is written with h2, so that
//! it can refuse streams and go away at chosen moments, and it records what it
//! saw. The client is rebound's hyper-util client speaking HTTP/2 only.
#![cfg(feature = "rustls")]

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use h2::server::{Connection, SendResponse};
use http::{Request, Response};
use http_body_util::Full;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tower::ServiceExt;
use tower_rebound::client::{HttpVersions, HttpsClient};
use tower_rebound::{CallInfo, ErrorKind, Policy};

/// The h2 frame types the tests look for.
const HEADERS: u8 = 0x1;
const GOAWAY: u8 = 0x7;

/// The client's connection preface, before its first frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// rebound's https client held to HTTP/2, which speaks h2c to http:// URLs;
/// no certificate is ever checked, so the root store is empty.
fn client() -> HttpsClient {
    let tls = rustls::ClientConfig::builder_with_provider(tower_rebound::client::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    // POST is replayed only when that is known to be safe.
    let policy = Policy::preset("connio").unwrap();
    tower_rebound::client::hyper_https_versions(policy, tls, HttpVersions::Http2PriorKnowledge)
}

fn request(method: http::Method, url: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(b"{\"name\":\"lamp\"}")))
        .unwrap()
}

/// What the server did with one request: the connection (counted from 1),
/// the stream, the path, and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    connection: usize,
    stream: u32,
    method: String,
    path: String,
    outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Answered,
    Reset(Reason),
    /// The server went away with the request received and unanswered.
    Abandoned,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn seen(
    log: &Log,
    connection: usize,
    head: &http::request::Parts,
    respond: &SendResponse<Bytes>,
    outcome: Outcome,
) {
    log.lock().unwrap().push(Seen {
        connection,
        stream: respond.stream_id().as_u32(),
        method: head.method.to_string(),
        path: head.uri.path().to_owned(),
        outcome,
    });
}

fn ok() -> Response<()> {
    Response::builder().status(200).body(()).unwrap()
}

/// Reads a request body to its end, or to the stream's reset, giving the
/// flow-control window back.
async fn read_body(mut body: h2::RecvStream) {
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
}

/// A server that answers each request by `answer`'s verdict: `Some(reason)`
/// resets the stream with it, `None` answers 200. `answer` gets the number of
/// the request, counted from 1 across connections.
async fn resetting_server(answer: fn(usize) -> Option<Reason>) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::default();
    let requests = Arc::new(AtomicUsize::new(0));
    let served = Arc::clone(&log);
    tokio::spawn(async move {
        let mut connection = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            connection += 1;
            let (log, requests) = (Arc::clone(&served), Arc::clone(&requests));
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        let outcome = match answer(n) {
                            Some(reason) => {
                                respond.send_reset(reason);
                                Outcome::Reset(reason)
                            }
                            None => {
                                respond.send_response(ok(), true).unwrap();
                                Outcome::Answered
                            }
                        };
                        let (head, body) = request.into_parts();
                        seen(&log, connection, &head, &respond, outcome);
                        read_body(body).await;
                    });
                }
            });
        }
    });
    (port, log)
}

fn refuse_first(n: usize) -> Option<Reason> {
    (n == 1).then_some(Reason::REFUSED_STREAM)
}

#[tokio::test]
async fn a_post_whose_stream_the_server_refused_is_sent_again() {
    let (port, log) = resetting_server(refuse_first).await;
    let url = format!("http://127.0.0.1:{port}/v3/devices");
    let response = client()
        .oneshot(request(http::Method::POST, &url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    let log = log.lock().unwrap().clone();
    let outcomes: Vec<_> = log.iter().map(|s| (s.method.as_str(), s.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("POST", Outcome::Reset(Reason::REFUSED_STREAM)),
            ("POST", Outcome::Answered)
        ]
    );
    // The connection stays up: the replay is the next stream on it.
    assert_eq!(
        log.iter()
            .map(|s| (s.connection, s.stream))
            .collect::<Vec<_>>(),
        [(1, 1), (1, 3)]
    );
}

#[tokio::test]
async fn a_get_whose_stream_the_server_refused_is_sent_again() {
    let (port, log) = resetting_server(refuse_first).await;
    let url = format!("http://127.0.0.1:{port}/v3/devices");
    let response = client()
        .oneshot(request(http::Method::GET, &url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    let outcomes: Vec<_> = log.lock().unwrap().iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Reset(Reason::REFUSED_STREAM), Outcome::Answered]
    );
}

#[tokio::test]
async fn a_post_whose_stream_the_server_reset_otherwise_is_sent_once() {
    fn internal_error(_: usize) -> Option<Reason> {
        Some(Reason::INTERNAL_ERROR)
    }
    fn cancel(_: usize) -> Option<Reason> {
        Some(Reason::CANCEL)
    }
    for (answer, reason) in [
        (
            internal_error as fn(usize) -> Option<Reason>,
            Reason::INTERNAL_ERROR,
        ),
        (cancel, Reason::CANCEL),
    ] {
        let (port, log) = resetting_server(answer).await;
        let url = format!("http://127.0.0.1:{port}/v3/devices");
        let error = client()
            .oneshot(request(http::Method::POST, &url))
            .await
            .unwrap_err();
        // The server may have acted on it: the transport failure ends the call.
        assert_eq!(error.kind(), ErrorKind::Transport, "{reason:?}: {error:?}");
        assert_eq!(error.attempts(), 1, "{reason:?}");
        assert!(!error.is_unprocessed(), "{reason:?}: {error:?}");
        assert!(error.is_retryable());
        let outcomes: Vec<_> = log.lock().unwrap().iter().map(|s| s.outcome).collect();
        assert_eq!(outcomes, [Outcome::Reset(reason)]);
    }
}

/// The bytes of one connection, both ways, with the client's bytes held back
/// from h2 once `hold` is called: they are read off the socket and kept, so
/// that h2 never sees the streams they open.
#[derive(Default)]
struct Wire {
    state: Mutex<WireState>,
    /// Woken at each read while holding.
    read: Notify,
}

#[derive(Default)]
struct WireState {
    /// Whether the client's bytes are kept from h2.
    holding: bool,
    /// Every byte the client sent, held or not.
    inbound: Vec<u8>,
    /// How many of them h2 got.
    delivered: usize,
    /// Every byte the server wrote.
    outbound: Vec<u8>,
}

impl Wire {
    fn hold(&self) {
        self.state.lock().unwrap().holding = true;
    }

    /// The client's frames: (type, stream id, held back from h2).
    fn inbound_frames(&self) -> Vec<(u8, u32, bool)> {
        let state = self.state.lock().unwrap();
        let bytes = state.inbound.strip_prefix(PREFACE).expect("client preface");
        frames(bytes)
            .into_iter()
            .map(|(kind, stream, at, _)| (kind, stream, PREFACE.len() + at >= state.delivered))
            .collect()
    }

    /// The server's GOAWAY frames: (last stream id, error code).
    fn goaways(&self) -> Vec<(u32, Reason)> {
        let state = self.state.lock().unwrap();
        frames(&state.outbound)
            .into_iter()
            .filter(|(kind, ..)| *kind == GOAWAY)
            .map(|(_, _, _, payload)| {
                let last = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                (last, Reason::from(code))
            })
            .collect()
    }

    /// Waits until the client sent a frame of `kind` on `stream` that h2
    /// did not get. The connection must be driven meanwhile: only its reads
    /// take the bytes off the socket.
    async fn until_held(&self, kind: u8, stream: u32) {
        loop {
            let read = self.read.notified();
            if self.inbound_frames().contains(&(kind, stream, true)) {
                return;
            }
            read.await;
        }
    }
}

/// The whole frames in `bytes`: (type, stream id, offset, payload).
fn frames(mut bytes: &[u8]) -> Vec<(u8, u32, usize, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        if bytes.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & 0x7fff_ffff;
        out.push((bytes[3], stream, at, &bytes[9..9 + len]));
        bytes = &bytes[9 + len..];
        at += 9 + len;
    }
    out
}

/// A TCP stream that records its bytes in a [`Wire`].
struct Recorded {
    tcp: TcpStream,
    wire: Arc<Wire>,
}

impl AsyncRead for Recorded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.wire.state.lock().unwrap().holding {
            let before = buf.filled().len();
            std::task::ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
            let mut state = this.wire.state.lock().unwrap();
            state.inbound.extend_from_slice(&buf.filled()[before..]);
            state.delivered = state.inbound.len();
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The client closed: h2 hears nothing of it either.
                return Poll::Pending;
            }
            let mut state = this.wire.state.lock().unwrap();
            state.inbound.extend_from_slice(read.filled());
            drop(state);
            this.wire.read.notify_waiters();
        }
    }
}

impl AsyncWrite for Recorded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = std::task::ready!(Pin::new(&mut this.tcp).poll_write(cx, buf))?;
        let mut state = this.wire.state.lock().unwrap();
        state.outbound.extend_from_slice(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

type ServerConn = Connection<Recorded, Bytes>;

/// Runs `work` while driving `conn`, which reads frames and writes what the
/// server's streams queued.
async fn driving<T>(conn: &mut ServerConn, work: impl Future<Output = T>) -> T {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(done);
        }
        let _ = conn.poll_closed(cx);
        work.as_mut().poll(cx)
    })
    .await
}

/// Drives `conn` until it has closed.
async fn until_closed(conn: &mut ServerConn) {
    let _ = poll_fn(|cx| conn.poll_closed(cx)).await;
}

/// A listener that hands its first connection to the test, to script, and
/// answers 200 to every request on the connections after it.
struct GoawayServer {
    port: u16,
    log: Log,
    /// The first connection and its wire, for the test to script.
    first: oneshot::Receiver<(ServerConn, Arc<Wire>)>,
    /// The wires of later connections.
    later: Arc<Mutex<Vec<Arc<Wire>>>>,
}

async fn goaway_server() -> GoawayServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::default();
    let later: Arc<Mutex<Vec<Arc<Wire>>>> = Arc::default();
    let (first_tx, first) = oneshot::channel();
    let (served, wires) = (Arc::clone(&log), Arc::clone(&later));
    tokio::spawn(async move {
        let mut first_tx = Some(first_tx);
        let mut connection = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            connection += 1;
            let wire = Arc::new(Wire::default());
            let io = Recorded {
                tcp,
                wire: Arc::clone(&wire),
            };
            let mut conn = h2::server::handshake(io).await.unwrap();
            if let Some(tx) = first_tx.take() {
                let _ = tx.send((conn, wire));
                continue;
            }
            wires.lock().unwrap().push(wire);
            let log = Arc::clone(&served);
            tokio::spawn(async move {
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    respond.send_response(ok(), true).unwrap();
                    let (head, _) = request.into_parts();
                    seen(&log, connection, &head, &respond, Outcome::Answered);
                }
            });
        }
    });
    GoawayServer {
        port,
        log,
        first,
        later,
    }
}

#[tokio::test]
async fn a_post_above_the_last_stream_of_a_goaway_is_sent_again_on_a_new_connection() {
    let server = goaway_server().await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let client = client();

    // One connection carries both POSTs, the second opened once the server
    // has the first and reads nothing more.
    let first = tokio::spawn(
        client
            .clone()
            .oneshot(request(http::Method::POST, &format!("{base}/first"))),
    );
    let (mut conn, wire) = server.first.await.unwrap();
    let (request1, mut respond1) = conn.accept().await.unwrap().unwrap();
    let (head1, body1) = request1.into_parts();
    driving(&mut conn, read_body(body1)).await;
    wire.hold();
    let second = tokio::spawn(
        client
            .clone()
            .oneshot(request(http::Method::POST, &format!("{base}/second"))),
    );
    // The second POST is on the wire, as stream 3, and h2 never saw it.
    let waited = tokio::time::timeout(
        Duration::from_secs(5),
        driving(&mut conn, wire.until_held(HEADERS, 3)),
    );
    waited.await.expect("the second POST reaches the server");

    // The first is answered; then GOAWAY names it as the last stream.
    respond1.send_response(ok(), true).unwrap();
    seen(&server.log, 1, &head1, &respond1, Outcome::Answered);
    let first = driving(&mut conn, first).await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(CallInfo::of(&first).attempts(), 1);
    conn.abrupt_shutdown(Reason::NO_ERROR);
    until_closed(&mut conn).await;
    assert_eq!(wire.goaways(), [(1, Reason::NO_ERROR)]);

    let second = second.await.unwrap().unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(CallInfo::of(&second).attempts(), 2);

    let log = server.log.lock().unwrap().clone();
    let answered: Vec<_> = log
        .iter()
        .map(|s| (s.connection, s.stream, s.path.as_str(), s.outcome))
        .collect();
    assert_eq!(
        answered,
        [
            (1, 1, "/first", Outcome::Answered),
            (2, 1, "/second", Outcome::Answered),
        ]
    );
    // On the first connection the client sent two requests; h2 got one.
    let headers: Vec<_> = wire
        .inbound_frames()
        .into_iter()
        .filter(|(kind, ..)| *kind == HEADERS)
        .collect();
    assert_eq!(headers, [(HEADERS, 1, false), (HEADERS, 3, true)]);
    let later = server.later.lock().unwrap();
    assert_eq!(later.len(), 1);
}

#[tokio::test]
async fn a_post_the_server_received_before_it_went_away_is_not_sent_again() {
    let server = goaway_server().await;
    let url = format!("http://127.0.0.1:{}/v3/devices", server.port);
    let call = tokio::spawn(client().oneshot(request(http::Method::POST, &url)));

    let (mut conn, wire) = server.first.await.unwrap();
    let (request, respond) = conn.accept().await.unwrap().unwrap();
    let (head, body) = request.into_parts();
    seen(&server.log, 1, &head, &respond, Outcome::Abandoned);
    driving(&mut conn, read_body(body)).await;
    // The request is processed, and covered by the GOAWAY: no answer comes.
    conn.abrupt_shutdown(Reason::NO_ERROR);
    until_closed(&mut conn).await;
    assert_eq!(wire.goaways(), [(1, Reason::NO_ERROR)]);

    let error = call.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    assert_eq!(error.attempts(), 1);
    assert!(!error.is_unprocessed(), "{error:?}");
    assert!(!error.is_connect());
    assert_eq!(server.log.lock().unwrap().len(), 1);
    assert!(server.later.lock().unwrap().is_empty(), "no new connection");
}

/// A stream the server refused reaches rebound through the reqwest adapter:
/// reqwest's own retries are off (and could not replay the adapter's body
/// anyway), so rebound's are the only ones, each counted.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn a_refused_stream_through_reqwest_is_rebound_s_to_retry() {
    use tower::Layer;
    use tower_rebound::ResilienceLayer;
    use tower_rebound::client::Reqwest;

    let h2c = || reqwest::Client::builder().http2_prior_knowledge();
    for (attempts, sent) in [(1, 1), (2, 2)] {
        let policy =
            Policy::from_toml_str(&format!("[retry]\nmax_attempts = {attempts}\n")).unwrap();
        let (port, log) = resetting_server(refuse_first).await;
        let url = format!("http://127.0.0.1:{port}/v3/devices");
        let client = ResilienceLayer::new(policy).layer(Reqwest::from_builder(h2c()).unwrap());
        let result = client.oneshot(request(http::Method::GET, &url)).await;
        match (attempts, result) {
            (1, Err(error)) => assert_eq!(error.kind(), ErrorKind::Transport, "{error}"),
            (2, Ok(response)) => assert_eq!(CallInfo::of(&response).attempts(), 2),
            (_, other) => panic!("{attempts} attempts: {other:?}"),
        }
        assert_eq!(log.lock().unwrap().len(), sent, "{attempts} attempts");
    }
    // The default adapter builds its client the same way.
    let _ = Reqwest::default();
}
