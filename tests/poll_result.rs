//! Where a finished operation's result is (`poll.result`,
//! `poll.result_pointer`) and which `201 Created` starts an operation
//! (`poll.created_headers`), over real HTTP on 127.0.0.1, through the
//! assembled stack and through a stack of the standalone layers made by hand.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{STACKS, Stack, send};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower_rebound::poll::{OperationResult, StatusBody};
use tower_rebound::{CallInfo, Error, ErrorKind, FinalUrl, Policy};
use tower_rebound_testkit::{TestServer, respond};

/// Azure's and Google's operations, as their documentation describes them.
///
/// - `PUT /vm/NAME`: `201` with `Azure-AsyncOperation: /ops/NAME`; `GET
///   /vm/NAME` is the resource.
/// - `PUT /plain/NAME`: `201` with only the resource's `Location`.
/// - `POST /act/NAME`: `202` with `Azure-AsyncOperation: /ops/NAME` and
///   `Location: /results/NAME`; `GET /results/NAME` is the result.
/// - `POST /evil/NAME`: as `/act/`, its `Location` on another host.
/// - `GET /ops/NAME`: `InProgress` once, then `Succeeded`.
/// - `POST /v1/things:run`: `200` with the Operation `operations/NAME`, not
///   done; `GET /v1/operations/NAME` is done with a `response` (`g-ok`) or
///   done with nothing (`g-empty`).
///
/// Every request is logged as `METHOD PATH`.
async fn operations() -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let polls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = Arc::clone(&log);
    let server = TestServer::start(move |request| {
        let polls = Arc::clone(&polls);
        let log = Arc::clone(&seen);
        async move {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            log.lock().unwrap().push(format!("{method} {path}"));
            let segments: Vec<&str> = path.trim_start_matches('/').splitn(2, '/').collect();
            let header = |mut response: http::Response<_>, pairs: &[(&'static str, String)]| {
                for (name, value) in pairs {
                    response.headers_mut().insert(*name, value.parse().unwrap());
                }
                response
            };
            match (method, segments.as_slice()) {
                (Method::PUT, ["vm", name]) => header(
                    respond(201, r#"{"provisioningState":"Creating"}"#),
                    &[
                        ("azure-asyncoperation", format!("/ops/{name}")),
                        ("location", format!("/vm/{name}")),
                    ],
                ),
                (Method::PUT, ["plain", name]) => header(
                    respond(201, r#"{"id":"plain"}"#),
                    &[("location", format!("/plain/{name}"))],
                ),
                (Method::GET, ["vm", name]) => respond(
                    200,
                    format!(r#"{{"id":"{name}","provisioningState":"Succeeded"}}"#),
                ),
                (Method::POST, ["act", name]) => header(
                    respond(202, ""),
                    &[
                        ("azure-asyncoperation", format!("/ops/{name}")),
                        ("location", format!("/results/{name}")),
                    ],
                ),
                (Method::POST, ["evil", name]) => header(
                    respond(202, ""),
                    &[
                        ("azure-asyncoperation", format!("/ops/{name}")),
                        ("location", "http://evil.example/steal".to_owned()),
                    ],
                ),
                (Method::GET, ["results", name]) => {
                    respond(200, format!(r#"{{"result":"{name}"}}"#))
                }
                (Method::GET, ["ops", name]) => {
                    let n = {
                        let mut polls = polls.lock().unwrap();
                        let n = polls.entry((*name).to_owned()).or_insert(0);
                        *n += 1;
                        *n
                    };
                    let status = if n == 1 { "InProgress" } else { "Succeeded" };
                    respond(200, format!(r#"{{"status":"{status}"}}"#))
                }
                (Method::POST, ["v1", "things:run"]) => {
                    respond(200, r#"{"name":"operations/g-ok","done":false}"#)
                }
                (Method::POST, ["v1", "empty:run"]) => {
                    respond(200, r#"{"name":"operations/g-empty"}"#)
                }
                (Method::GET, ["v1", "operations/g-ok"]) => respond(
                    200,
                    r#"{"name":"operations/g-ok","done":true,"response":{"id":7,"tags":["a"]}}"#,
                ),
                (Method::GET, ["v1", "operations/g-empty"]) => {
                    respond(200, r#"{"name":"operations/g-empty","done":true}"#)
                }
                _ => respond(404, "{}"),
            }
        }
    })
    .await;
    (server, log)
}

const AZURE: &str = "location_headers = [\"azure-asyncoperation\", \"location\"]\n\
    created_headers = [\"azure-asyncoperation\"]\n\
    status_pointer = \"/status\"\n\
    running = [\"NotStarted\", \"InProgress\", \"Running\"]\n\
    succeeded = [\"Succeeded\"]\nfailed = [\"Failed\"]\ncanceled = [\"Canceled\"]\n";

const GOOGLE: &str = "done_pointer = \"/done\"\n\
    status_url = \"{origin}/{first_segment}/{name}\"\n\
    result_pointer = \"/response\"\n";

fn policy(poll: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200, 201]\npollable = [202]\nretryable = [500]\nterminal = [404]\n\
         [poll]\ninterval = \"5ms\"\nmax_interval = \"10ms\"\n{poll}"
    ))
    .unwrap()
}

async fn call(
    stack: Stack,
    policy: &Policy,
    server: &TestServer,
    method: Method,
    path: &str,
) -> Result<http::Response<Incoming>, Error> {
    let request = Request::builder()
        .method(method)
        .uri(server.url(path))
        .header("idempotency-key", "k-1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    send(stack, policy, request).await
}

async fn body(response: http::Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn azure_put_201_is_polled_then_the_resource_itself_is_fetched() {
    for stack in STACKS {
        let (server, log) = operations().await;
        let policy = policy(&format!("{AZURE}result = \"original\"\n"));
        let response = call(stack, &policy, &server, Method::PUT, "/vm/a")
            .await
            .unwrap_or_else(|e| panic!("{stack:?}: {e}"));
        assert_eq!(response.status(), 200, "{stack:?}");
        let info = CallInfo::of(&response);
        // Two status requests and the fetch of the resource.
        assert_eq!(
            (info.attempts(), info.polls(), info.requests()),
            (1, 3, 4),
            "{stack:?}"
        );
        assert_eq!(
            FinalUrl::of(&response).map(|u| u.path().to_owned()),
            Some("/vm/a".to_owned()),
            "{stack:?}"
        );
        assert_eq!(
            body(response).await,
            r#"{"id":"a","provisioningState":"Succeeded"}"#,
            "{stack:?}: the resource's own body streams"
        );
        assert_eq!(
            *log.lock().unwrap(),
            ["PUT /vm/a", "GET /ops/a", "GET /ops/a", "GET /vm/a"],
            "{stack:?}"
        );
    }
}

#[tokio::test]
async fn a_201_without_an_operation_header_is_a_success_as_it_is() {
    for stack in STACKS {
        let (server, log) = operations().await;
        let policy = policy(&format!("{AZURE}result = \"original\"\n"));
        let response = call(stack, &policy, &server, Method::PUT, "/plain/b")
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{stack:?}");
        assert_eq!(CallInfo::of(&response).polls(), 0, "{stack:?}");
        assert_eq!(body(response).await, r#"{"id":"plain"}"#, "{stack:?}");
        assert_eq!(log.lock().unwrap().len(), 1, "{stack:?}");
    }
}

#[tokio::test]
async fn without_created_headers_a_201_naming_an_operation_is_not_polled() {
    for stack in STACKS {
        let (server, log) = operations().await;
        let policy = policy("location_headers = [\"azure-asyncoperation\", \"location\"]\n");
        let response = call(stack, &policy, &server, Method::PUT, "/vm/c")
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{stack:?}");
        assert_eq!(*log.lock().unwrap(), ["PUT /vm/c"], "{stack:?}");
    }
}

#[tokio::test]
async fn azure_post_fetches_the_location_its_first_answer_named() {
    for stack in STACKS {
        let (server, log) = operations().await;
        let policy = policy(&format!("{AZURE}result = \"location\"\n"));
        let response = call(stack, &policy, &server, Method::POST, "/act/d")
            .await
            .unwrap_or_else(|e| panic!("{stack:?}: {e}"));
        assert_eq!(response.status(), 200, "{stack:?}");
        assert_eq!(CallInfo::of(&response).requests(), 4, "{stack:?}");
        assert_eq!(body(response).await, r#"{"result":"d"}"#, "{stack:?}");
        assert_eq!(
            *log.lock().unwrap(),
            ["POST /act/d", "GET /ops/d", "GET /ops/d", "GET /results/d"],
            "{stack:?}"
        );
    }
}

#[tokio::test]
async fn by_default_the_last_status_answer_is_the_result() {
    for stack in STACKS {
        let (server, log) = operations().await;
        let response = call(stack, &policy(AZURE), &server, Method::POST, "/act/e")
            .await
            .unwrap();
        assert_eq!(
            StatusBody::of(&response).map(|b| b.to_vec()),
            Some(br#"{"status":"Succeeded"}"#.to_vec()),
            "{stack:?}"
        );
        assert_eq!(log.lock().unwrap().len(), 3, "{stack:?}");
    }
}

#[tokio::test]
async fn a_result_location_on_another_origin_is_refused_before_any_poll() {
    for stack in STACKS {
        let (server, log) = operations().await;
        let policy = policy(&format!("{AZURE}result = \"location\"\n"));
        let error = call(stack, &policy, &server, Method::POST, "/evil/f")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::PollRefused, "{stack:?}: {error}");
        assert_eq!(*log.lock().unwrap(), ["POST /evil/f"], "{stack:?}");
    }
}

#[tokio::test]
async fn google_the_result_is_the_operation_s_response() {
    for stack in STACKS {
        let (server, log) = operations().await;
        let response = call(
            stack,
            &policy(GOOGLE),
            &server,
            Method::POST,
            "/v1/things:run",
        )
        .await
        .unwrap_or_else(|e| panic!("{stack:?}: {e}"));
        assert_eq!(response.status(), 200, "{stack:?}");
        assert_eq!(
            OperationResult::of(&response).map(|b| b.to_vec()),
            Some(br#"{"id":7,"tags":["a"]}"#.to_vec()),
            "{stack:?}"
        );
        assert_eq!(
            *log.lock().unwrap(),
            ["POST /v1/things:run", "GET /v1/operations/g-ok"],
            "{stack:?}"
        );
    }
}

#[tokio::test]
async fn google_an_operation_done_with_no_response_has_no_result() {
    for stack in STACKS {
        let (server, _log) = operations().await;
        let response = call(
            stack,
            &policy(GOOGLE),
            &server,
            Method::POST,
            "/v1/empty:run",
        )
        .await
        .unwrap();
        assert!(OperationResult::of(&response).is_none(), "{stack:?}");
        assert!(StatusBody::of(&response).is_some(), "{stack:?}");
    }
}

#[test]
fn result_pointer_needs_a_body_rule_and_result_is_one_of_three() {
    let error = Policy::from_toml_str("[poll]\nresult_pointer = \"/response\"\n").unwrap_err();
    assert!(
        error.to_string().contains("poll.result_pointer needs"),
        "{error}"
    );
    let error = Policy::from_toml_str("[poll]\nresult = \"body\"\n").unwrap_err();
    assert!(error.to_string().contains("status"), "{error}");
    let error = Policy::from_toml_str("[poll]\ncreated_headers = [\"bad header\"]\n").unwrap_err();
    assert!(error.to_string().contains("invalid header name"), "{error}");
}
