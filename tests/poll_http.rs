//! The poll layer over real HTTP on 127.0.0.1, through hyper-util's client.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::hyper_client;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_rebound::{CallInfo, ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, api_error, respond};

/// The seed API's write path, with status URLs of every kind:
/// `POST /write/NAME` answers 202 with `Location` taken from `?location=`
/// (default `/ops/NAME`); `GET /ops/NAME` answers 202 twice, then what NAME
/// says: `ok` a 200 with a body, `gone` a 404 with an error body, `flaky` one
/// 500 first.
async fn api(received: Arc<Mutex<Vec<(String, HeaderMap)>>>) -> TestServer {
    let polls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let polls = Arc::clone(&polls);
        let received = Arc::clone(&received);
        async move {
            let path = request.uri().path().to_owned();
            received
                .lock()
                .unwrap()
                .push((path.clone(), request.headers().clone()));
            if let Some(name) = path.strip_prefix("/write/") {
                let location = request
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("location="))
                    .map_or_else(|| format!("/ops/{name}"), str::to_owned);
                let mut response = respond(202, "");
                response
                    .headers_mut()
                    .insert("location", location.parse().unwrap());
                return response;
            }
            let name = path.strip_prefix("/ops/").unwrap_or("?").to_owned();
            let n = {
                let mut polls = polls.lock().unwrap();
                let n = polls.entry(name.clone()).or_insert(0);
                *n += 1;
                *n
            };
            match (name.as_str(), n) {
                ("flaky", 1) => api_error(500, &[("InternalError", "Try again")]),
                (_, n) if n <= 2 => respond(202, ""),
                ("gone", _) => api_error(404, &[("OperationNotFound", "No such operation")]),
                _ => respond(200, format!("{{\"result\":\"{name}\"}}")),
            }
        }
    })
    .await
}

fn policy(extra: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [500]\nterminal = [404]\n\
         [retry.backoff]\ninitial = \"5ms\"\nmax = \"10ms\"\n\
         [poll]\ninterval = \"10ms\"\nmax_interval = \"20ms\"\n{extra}\n"
    ))
    .unwrap()
}

fn write(url: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("authorization", "Bearer secret-token")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"value\":1}")))
        .unwrap()
}

#[tokio::test]
async fn a_write_is_polled_to_its_200() {
    let received = Arc::default();
    let server = api(Arc::clone(&received)).await;
    let client = ResilienceLayer::new(policy("")).layer(hyper_client());
    let response = client
        .oneshot(write(&server.url("/write/ok")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).polls(), 3);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"result":"ok"}"#);
    let paths: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(paths, ["/write/ok", "/ops/ok", "/ops/ok", "/ops/ok"]);
}

#[tokio::test]
async fn an_operation_ending_in_404_gives_terminal_with_its_code() {
    let server = api(Arc::default()).await;
    let client = ResilienceLayer::new(policy("")).layer(hyper_client());
    let error = client
        .oneshot(write(&server.url("/write/gone")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Terminal);
    assert_eq!(error.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(error.polls(), 3);
    assert_eq!(
        error.error_codes().collect::<Vec<_>>(),
        ["OperationNotFound"]
    );
}

#[tokio::test]
async fn a_poll_that_hits_a_500_is_retried_without_restarting() {
    let received = Arc::default();
    let server = api(Arc::clone(&received)).await;
    let client = ResilienceLayer::new(policy("")).layer(hyper_client());
    let response = client
        .oneshot(write(&server.url("/write/flaky")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let paths: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    // Poll 1 meets a 500 and is retried (202); poll 2 gets the result.
    assert_eq!(
        paths,
        ["/write/flaky", "/ops/flaky", "/ops/flaky", "/ops/flaky"]
    );
    assert_eq!(CallInfo::of(&response).polls(), 2);
}

#[tokio::test]
async fn a_cross_origin_location_is_refused_and_the_other_origin_sees_nothing() {
    let other_received = Arc::default();
    let other = api(Arc::clone(&other_received)).await;
    let server = api(Arc::default()).await;
    let client = ResilienceLayer::new(policy("")).layer(hyper_client());
    let url = server.url(&format!("/write/ok?location={}", other.url("/ops/ok")));
    let error = client.oneshot(write(&url)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PollRefused);
    assert!(error.to_string().contains("another origin"), "{error}");
    assert_eq!(other.requests(), 0);
    assert!(other_received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_allowed_origin_receives_no_credentials_unless_forwarded() {
    for forward in [false, true] {
        let other_received: Arc<Mutex<Vec<(String, HeaderMap)>>> = Arc::default();
        let other = api(Arc::clone(&other_received)).await;
        let server = api(Arc::default()).await;
        let origin = other.url("");
        let client = ResilienceLayer::new(policy(&format!(
            "allowed_origins = [\"{origin}\"]\nforward_credentials = {forward}"
        )))
        .layer(hyper_client());
        let url = server.url(&format!("/write/ok?location={}", other.url("/ops/ok")));
        let response = client.oneshot(write(&url)).await.unwrap();
        assert_eq!(response.status(), 200);
        let received = other_received.lock().unwrap();
        assert_eq!(received.len(), 3);
        for (path, headers) in received.iter() {
            assert_eq!(path, "/ops/ok");
            assert_eq!(
                headers.contains_key("authorization"),
                forward,
                "forward = {forward}"
            );
            assert!(!headers.contains_key("content-type"));
        }
    }
}
