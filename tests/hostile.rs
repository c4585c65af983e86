//! Hostile servers over real TCP on 127.0.0.1: each misbehaviour ends in the
//! right typed outcome within the policy's bounds, reads a bounded number of
//! bytes, leaves no task behind, and the next call on the same client works.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Counting;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{Layer, ServiceExt};
use tower_rebound::{ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, respond};

/// The servers run on a runtime of their own, so that the client's runtime
/// counts only the client's tasks.
struct Hostile {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<TestServer>,
    healthy: Option<TestServer>,
}

impl Hostile {
    fn start<F, Fut>(serve: F) -> Hostile
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Started from a thread of its own: the test's thread is already in
        // a runtime, where blocking is not allowed.
        let (server, healthy) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    runtime.block_on(async {
                        let server = TestServer::start_raw(serve).await;
                        let healthy = TestServer::start(|_| async { respond(200, "fine") }).await;
                        (server, healthy)
                    })
                })
                .join()
                .expect("the servers start")
        });
        Hostile {
            runtime: Some(runtime),
            server: Some(server),
            healthy: Some(healthy),
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url("/v3/devices")
    }

    fn healthy_url(&self) -> String {
        self.healthy.as_ref().unwrap().url("/")
    }

    fn connections(&self) -> usize {
        self.server.as_ref().unwrap().connections()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        drop(self.server.take());
        drop(self.healthy.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The most any call here may take. Each hostile server stalls for 600 s or
/// promises waits of years, and each call is bounded by timeouts of at most
/// 5 s: a call that honours its bounds ends far below this even on a loaded
/// 2-core machine, and one that does not runs far past it.
const LOADED_MACHINE: Duration = Duration::from_secs(60);

/// Reads the request head, so that the server answers after it.
async fn read_request(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf).await;
}

fn policy() -> Policy {
    Policy::from_toml_str(
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [429, 500]\n\
         [retry]\nmax_attempts = 3\nmax_retry_after = \"5s\"\n[retry.backoff]\ninitial = \"5ms\"\nmax = \"10ms\"\n\
         [timeouts]\nattempt = \"300ms\"\ntotal = \"5s\"\n\
         [circuit_breaker]\nenabled = false\n\
         [poll]\ninterval = \"10ms\"\nmax_interval = \"10ms\"\nmax_polls = 5\n",
    )
    .unwrap()
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// One call to the hostile server through the stack, over a client that
/// counts the response body bytes the stack pulls; then checks that nothing
/// was left behind and that the same client still works.
async fn call(
    hostile: &Hostile,
    request: Request<Full<Bytes>>,
) -> (tower_rebound::Error, u64, Duration) {
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let read = Arc::new(AtomicU64::new(0));
    let counted = {
        let read = Arc::clone(&read);
        common::hyper_client().map_response(move |r: http::Response<hyper::body::Incoming>| {
            r.map(|b| Counting::new(b, Arc::clone(&read)))
        })
    };
    let client = ResilienceLayer::with_seed(policy(), 1).layer(counted);
    let started = Instant::now();
    let error = client
        .clone()
        .oneshot(request)
        .await
        .expect_err("the hostile server makes the call fail");
    let elapsed = started.elapsed();

    let next = client.clone().oneshot(get(&hostile.healthy_url())).await;
    assert!(
        next.is_ok(),
        "the next call on the same client works: {next:?}"
    );
    drop(client);
    // Connection tasks end once their connections are gone.
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    common::eventually(
        &format!("no task left behind (before the call: {tasks_before})"),
        || alive() <= tasks_before,
    )
    .await;
    (error, read.load(Ordering::Relaxed), elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_after_the_request() {
    let hostile = Hostile::start(|mut stream| async move {
        read_request(&mut stream).await;
        // A zero linger makes the close a reset. (Deprecated for blocking on
        // drop, which a zero linger does not do.)
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
        drop(stream);
    });
    let (error, _, elapsed) = call(&hostile, get(&hostile.url())).await;
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(error.attempts(), 3);
    assert!(elapsed < LOADED_MACHINE, "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_headers() {
    let hostile = Hostile::start(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
    });
    let (error, _, _) = call(&hostile, get(&hostile.url())).await;
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(std::error::Error::source(&error).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_in_the_middle_of_an_error_body() {
    let hostile = Hostile::start(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 200\r\n\r\n[{\"code\":\"Broken\"},{\"co")
            .await;
    });
    let (error, read, _) = call(&hostile, get(&hostile.url())).await;
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));
    assert!(error.body_truncated());
    assert_eq!(
        error.error_codes().collect::<Vec<_>>(),
        ["Broken"],
        "the complete errors before the cut"
    );
    assert!(read < 200 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_before_the_headers() {
    let hostile = Hostile::start(|mut stream| async move {
        read_request(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
    let (error, _, elapsed) = call(&hostile, get(&hostile.url())).await;
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(
        std::error::Error::source(&error)
            .unwrap()
            .is::<tower_rebound::AttemptTimedOut>()
    );
    assert_eq!(error.attempts(), 3);
    // Three attempts of 300 ms and two short waits, far below the stall.
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < LOADED_MACHINE,
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_in_the_middle_of_an_error_body() {
    let hostile = Hostile::start(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\n[{")
            .await;
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
    let (error, _, elapsed) = call(&hostile, get(&hostile.url())).await;
    // Each attempt's own timeout (300 ms) ended its read of the body, not
    // the call's total (5 s), which would have ended the first attempt as
    // `deadline_exceeded`: three attempts, each cut by the attempt timeout.
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    let source = std::error::Error::source(&error).expect("the timeout is the source");
    assert!(
        source.is::<tower_rebound::AttemptTimedOut>(),
        "{error}: {source}"
    );
    assert_eq!(source.to_string(), "attempt timed out after 300ms");
    assert_eq!(error.attempts(), 3, "{error}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < LOADED_MACHINE,
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_error_body_and_a_million_tiny_chunks() {
    for chunk in [&b"x"[..], &[b'y'; 8192][..]] {
        let chunk = chunk.to_vec();
        let hostile = Hostile::start(move |mut stream| {
            let chunk = chunk.clone();
            async move {
                read_request(&mut stream).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await;
                let frame = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk,
                    b"\r\n".to_vec(),
                ]
                .concat();
                // A million chunks, or until the client goes away.
                for _ in 0..1_000_000 {
                    if stream.write_all(&frame).await.is_err() {
                        break;
                    }
                }
            }
        });
        let (error, read, elapsed) = call(&hostile, get(&hostile.url())).await;
        match error.kind() {
            // The cap is reached: the rest is not read.
            ErrorKind::RetriesExhausted => {
                assert!(error.body_truncated());
                assert_eq!(error.body().len(), 64 * 1024);
            }
            // Or, for one-byte chunks on a slow machine, the attempt timeout
            // comes first: the read is bounded in time as well as in bytes.
            ErrorKind::Timeout => {
                let source = std::error::Error::source(&error).unwrap();
                assert!(source.is::<tower_rebound::AttemptTimedOut>(), "{source}");
            }
            other => panic!("unexpected outcome {other:?}: {error}"),
        }
        // Three attempts, each reading up to the cap and one frame past it.
        assert!(read <= 3 * (64 * 1024 + 8192), "read {read} bytes");
        assert!(elapsed < LOADED_MACHINE, "{elapsed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_of_a_hundred_billion_seconds() {
    let hostile = Hostile::start(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 99999999999\r\nContent-Length: 0\r\n\r\n")
            .await;
    });
    let (error, _, elapsed) = call(&hostile, get(&hostile.url())).await;
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(99_999_999_999))
    );
    assert_eq!(error.attempts(), 1, "ended at once, not after a wait");
    assert!(elapsed < LOADED_MACHINE, "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_url_that_points_at_itself_forever() {
    let hostile = Hostile::start(|mut stream| async move {
        loop {
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let answer =
                b"HTTP/1.1 202 Accepted\r\nLocation: /v3/devices\r\nContent-Length: 0\r\n\r\n";
            if stream.write_all(answer).await.is_err() {
                return;
            }
        }
    });
    let write = Request::post(hostile.url())
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (error, _, elapsed) = call(&hostile, write).await;
    assert_eq!(error.kind(), ErrorKind::PollTimeout);
    assert_eq!(error.polls(), 5);
    assert!(elapsed < LOADED_MACHINE, "{elapsed:?}");
    assert!(hostile.connections() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_with_no_length() {
    let hostile = Hostile::start(|mut stream| async move {
        read_request(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.0 500 Internal Server Error\r\n\r\n[{\"code\":\"Legacy\",\"cause\":\"old server\"}]")
            .await;
    });
    let (error, _, _) = call(&hostile, get(&hostile.url())).await;
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.error_codes().collect::<Vec<_>>(), ["Legacy"]);
    assert!(
        !error.body_truncated(),
        "the body ends where the connection does"
    );
}
