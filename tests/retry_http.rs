//! The retry layer over real HTTP on 127.0.0.1, through hyper-util's client.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{get, hyper_client};
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt};
use tower_rebound::{CallInfo, ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, api_error, respond};

/// `/flaky/N/KEY` fails with 500 N times per KEY, then answers 200;
/// `/throttle/KEY` answers 429 with `Retry-After: 1` once, then 200.
async fn flaky_server() -> TestServer {
    let failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let failures = Arc::clone(&failures);
        async move {
            let path = request.uri().path().to_owned();
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let mut failures = failures.lock().unwrap();
            let seen = failures.entry(path.clone()).or_insert(0);
            *seen += 1;
            match parts.as_slice() {
                ["flaky", n, _] if *seen <= n.parse::<u32>().unwrap() => {
                    api_error(500, &[("InternalError", "Try again")])
                }
                ["throttle", _] if *seen == 1 => {
                    let mut response = api_error(429, &[("TooManyRequests", "Slow down")]);
                    response
                        .headers_mut()
                        .insert("retry-after", "1".parse().unwrap());
                    response
                }
                _ => respond(200, format!("done after {seen}")),
            }
        }
    })
    .await
}

fn policy() -> Policy {
    Policy::from_toml_str(
        r#"
[classify]
success = [200]
retryable = [429, 500]
[retry]
max_attempts = 4
[retry.backoff]
initial = "10ms"
max = "50ms"
[timeouts]
attempt = "300ms"
total = "10s"
"#,
    )
    .unwrap()
}

fn post(url: &str, key: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::post(url)
        .body(Full::new(Bytes::from_static(b"{\"value\":1}")))
        .unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn two_500s_then_200_succeeds_after_three_attempts() {
    let server = flaky_server().await;
    let client = ResilienceLayer::new(policy()).layer(hyper_client());
    let response = client
        .oneshot(get(&server.url("/flaky/2/a")))
        .await
        .unwrap();
    assert_eq!(CallInfo::of(&response).attempts(), 3);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"done after 3");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn post_with_500_is_sent_once() {
    let server = flaky_server().await;
    let client = ResilienceLayer::new(policy()).layer(hyper_client());
    let error = client
        .oneshot(post(&server.url("/flaky/1/b"), None))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.error_codes().collect::<Vec<_>>(), ["InternalError"]);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn post_with_an_idempotency_key_is_retried() {
    let server = flaky_server().await;
    let client = ResilienceLayer::new(policy()).layer(hyper_client());
    let response = client
        .oneshot(post(&server.url("/flaky/1/c"), Some("order-42")))
        .await
        .unwrap();
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn retry_after_one_second_waits_at_least_a_second() {
    let server = flaky_server().await;
    let client = ResilienceLayer::new(policy()).layer(hyper_client());
    let started = Instant::now();
    let response = client
        .oneshot(get(&server.url("/throttle/d")))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(CallInfo::of(&response).attempts(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_ends_in_transport() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = ResilienceLayer::new(policy()).layer(hyper_client());
    // Even a POST: a refused connection never sent the request.
    let error = client
        .oneshot(post(&format!("http://127.0.0.1:{port}/"), None))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(error.is_connect());
    assert_eq!(error.attempts(), 4);
}

#[tokio::test]
async fn a_server_that_stalls_after_the_headers_trips_the_attempt_timeout() {
    let server = TestServer::start_raw(|mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 100\r\n\r\n[{\"code\":";
        let _ = stream.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let client = ResilienceLayer::new(policy()).layer(hyper_client());
    let started = Instant::now();
    let error = client
        .oneshot(get(&server.url("/stall")))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.attempts(), 4);
    let source = std::error::Error::source(&error).unwrap();
    assert!(source.is::<tower_rebound::AttemptTimedOut>(), "{source}");
    // Four attempts of 300 ms and three short waits; far from the 30 s stall.
    assert!(elapsed >= Duration::from_millis(1200), "{elapsed:?}");
    // The stall is 30 s; a loaded machine meets 20 s.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert_eq!(server.connections(), 4);
}
