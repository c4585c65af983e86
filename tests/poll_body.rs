//! Operations whose progress is in the body of a `200`, over
//! real HTTP on 127.0.0.1, through the assembled stack and through a stack
//! of the standalone layers made by hand: both must end each operation the
//! same way.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{STACKS, Stack, send};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower_rebound::poll::StatusBody;
use tower_rebound::{CallInfo, Error, ErrorKind, FinalUrl, Policy};
use tower_rebound_testkit::apis::azure;
use tower_rebound_testkit::{TestServer, respond};

/// A stand-in for Azure's and Google's long-running operations.
///
/// `POST /NAME` answers 202 with the status URL `/ops/NAME` in
/// `Azure-AsyncOperation`. `GET /ops/NAME` answers 200 twice with a running
/// body, then the body NAME names: Azure's `ok`, `failed`, `canceled`;
/// Google's `g-ok`, `g-failed` (whose running bodies are Operations with
/// `done: false`, the first with `done` left out as proto3 JSON does).
async fn operations() -> TestServer {
    let polls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let polls = Arc::clone(&polls);
        async move {
            let path = request.uri().path().to_owned();
            let Some(name) = path.strip_prefix("/ops/") else {
                let mut response = respond(202, "");
                let location = format!("/ops{path}");
                response
                    .headers_mut()
                    .insert("azure-asyncoperation", location.parse().unwrap());
                return response;
            };
            let n = {
                let mut polls = polls.lock().unwrap();
                let n = polls.entry(name.to_owned()).or_insert(0);
                *n += 1;
                *n
            };
            let google = name.starts_with("g-");
            let body = match (name, n) {
                (_, 1) if google => r#"{"name":"operations/7"}"#,
                (_, 2) if google => r#"{"name":"operations/7","done":false}"#,
                (_, 1) => r#"{"status":"NotStarted"}"#,
                (_, 2) => r#"{"status":"InProgress"}"#,
                ("ok", _) => r#"{"status":"Succeeded","id":"7"}"#,
                ("failed", _) => {
                    r#"{"status":"Failed","error":{"code":"QuotaExceeded","message":"No cores left."}}"#
                }
                ("canceled", _) => r#"{"status":"Canceled"}"#,
                ("g-ok", _) => r#"{"name":"operations/7","done":true,"response":{"id":7}}"#,
                ("g-failed", _) => {
                    r#"{"name":"operations/7","done":true,"error":{"code":8,"message":"Quota.","status":"RESOURCE_EXHAUSTED"}}"#
                }
                _ => "?",
            };
            respond(200, body)
        }
    })
    .await
}

const AZURE: &str = "status_pointer = \"/status\"\n\
    running = [\"NotStarted\", \"InProgress\", \"Running\"]\n\
    succeeded = [\"Succeeded\"]\nfailed = [\"Failed\"]\ncanceled = [\"Canceled\"]\n";

const GOOGLE: &str = "done_pointer = \"/done\"\nerror_pointer = \"/error\"\n";

fn policy(rule: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [500]\nterminal = [404]\n\
         [poll]\ninterval = \"5ms\"\nmax_interval = \"10ms\"\n\
         location_headers = [\"azure-asyncoperation\", \"location\"]\n{rule}"
    ))
    .unwrap()
}

async fn call(
    stack: Stack,
    policy: &Policy,
    server: &TestServer,
    name: &str,
) -> Result<http::Response<Incoming>, Error> {
    let request = Request::post(server.url(&format!("/{name}")))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    send(stack, policy, request).await
}

/// A finished operation's answer: 200 after 3 polls (4 requests), its
/// status body in `StatusBody`, its own body spent.
async fn assert_succeeded(
    stack: Stack,
    result: Result<http::Response<Incoming>, Error>,
    body: &str,
) {
    let response = result.unwrap_or_else(|e| panic!("{stack:?}: {e}"));
    assert_eq!(response.status(), 200, "{stack:?}");
    let info = CallInfo::of(&response);
    assert_eq!(
        (info.attempts(), info.polls(), info.requests()),
        (1, 3, 4),
        "{stack:?}"
    );
    assert_eq!(
        StatusBody::of(&response).map(|b| &b[..]),
        Some(body.as_bytes()),
        "{stack:?}"
    );
    let rest = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        rest.is_empty(),
        "{stack:?}: the body was read for StatusBody"
    );
}

#[tokio::test]
async fn azure_an_operation_in_progress_is_polled_until_it_succeeded() {
    for stack in STACKS {
        let server = operations().await;
        let result = call(stack, &policy(AZURE), &server, "ok").await;
        assert_succeeded(stack, result, r#"{"status":"Succeeded","id":"7"}"#).await;
        assert_eq!(server.requests(), 4, "{stack:?}");
    }
}

#[tokio::test]
async fn azure_a_failed_operation_is_terminal_with_its_error_code() {
    for stack in STACKS {
        let server = operations().await;
        let error = call(stack, &policy(AZURE), &server, "failed")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(200), "{stack:?}");
        assert_eq!(
            error.error_codes().collect::<Vec<_>>(),
            ["QuotaExceeded"],
            "{stack:?}"
        );
        assert_eq!(
            error.api_errors()[0].message(),
            Some("No cores left."),
            "{stack:?}"
        );
        assert_eq!(
            (error.attempts(), error.polls(), error.requests()),
            (1, 3, 4),
            "{stack:?}"
        );
        assert!(
            error.to_string().contains("the operation failed"),
            "{stack:?}: {error}"
        );
        assert_eq!(server.requests(), 4, "{stack:?}");
    }
}

#[tokio::test]
async fn azure_a_canceled_operation_is_terminal_and_says_so() {
    for stack in STACKS {
        let server = operations().await;
        let error = call(stack, &policy(AZURE), &server, "canceled")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert_eq!(error.error_codes().count(), 0, "{stack:?}");
        assert_eq!(error.polls(), 3, "{stack:?}");
        assert!(
            error.to_string().contains("the operation was canceled"),
            "{stack:?}: {error}"
        );
    }
}

#[tokio::test]
async fn google_an_operation_is_polled_until_done_with_its_response() {
    for stack in STACKS {
        let server = operations().await;
        let result = call(stack, &policy(GOOGLE), &server, "g-ok").await;
        let body = r#"{"name":"operations/7","done":true,"response":{"id":7}}"#;
        assert_succeeded(stack, result, body).await;
    }
}

#[tokio::test]
async fn google_an_operation_done_with_an_error_is_terminal_with_its_codes() {
    for stack in STACKS {
        let server = operations().await;
        let error = call(stack, &policy(GOOGLE), &server, "g-failed")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        let api = &error.api_errors()[0];
        assert_eq!(
            (api.code(), api.cause()),
            (Some("8"), Some("RESOURCE_EXHAUSTED")),
            "{stack:?}"
        );
        assert_eq!(api.message(), Some("Quota."), "{stack:?}");
        assert_eq!(
            (error.attempts(), error.polls(), error.requests()),
            (1, 3, 4),
            "{stack:?}"
        );
    }
}

#[tokio::test]
async fn without_a_rule_the_first_200_ends_the_call_and_its_body_streams() {
    for stack in STACKS {
        let server = operations().await;
        let response = call(stack, &policy(""), &server, "failed").await.unwrap();
        assert_eq!(CallInfo::of(&response).polls(), 1, "{stack:?}");
        assert!(StatusBody::of(&response).is_none(), "{stack:?}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"status":"NotStarted"}"#, "{stack:?}");
    }
}

#[tokio::test]
async fn a_body_the_rule_cannot_read_ends_the_call_terminal() {
    // max_body_bytes cuts the running body: it says nothing.
    for stack in STACKS {
        let server = operations().await;
        let policy = policy(&format!("{AZURE}max_body_bytes = 8\n"));
        let error = call(stack, &policy, &server, "ok").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert_eq!(error.polls(), 1, "{stack:?}");
        assert!(
            error.to_string().contains("poll.max_body_bytes"),
            "{stack:?}: {error}"
        );
    }
}

#[tokio::test]
async fn a_status_body_is_read_no_further_than_max_body_bytes() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tower_rebound_testkit::Body;
    for stack in STACKS {
        let produced = Arc::new(AtomicU64::new(0));
        let server = {
            let produced = Arc::clone(&produced);
            TestServer::start(move |request| {
                let produced = Arc::clone(&produced);
                async move {
                    if request.method() == http::Method::POST {
                        let mut response = respond(202, "");
                        response
                            .headers_mut()
                            .insert("azure-asyncoperation", "/ops/1".parse().unwrap());
                        return response;
                    }
                    // A status body that never ends.
                    let body = Body::counted(&[b' '; 1024], u64::MAX, produced);
                    http::Response::new(body)
                }
            })
            .await
        };
        let policy = policy(&format!("{AZURE}max_body_bytes = 4096\n"));
        let error = call(stack, &policy, &server, "x").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert!(
            error.to_string().contains("4096 bytes read"),
            "{stack:?}: {error}"
        );
        // What the connection buffered beyond the cap, and no more.
        let pulled = produced.load(Ordering::Relaxed);
        assert!(pulled < 4 << 20, "{stack:?}: {pulled} bytes pulled");
    }
}

/// Google's start: `POST /v1/things/NAME` answers 200 with the Operation
/// `{"name": "operations/NAME", "done": false}`; `GET /v1/operations/NAME`
/// answers it once more, then done as NAME says (`g-ok`, `g-failed`).
async fn google() -> TestServer {
    TestServer::start(move |request| async move {
        let path = request.uri().path().to_owned();
        if let Some(name) = path.strip_prefix("/v1/things/") {
            return respond(
                200,
                format!(r#"{{"name":"operations/{name}","done":false}}"#),
            );
        }
        let name = path
            .strip_prefix("/v1/operations/")
            .unwrap_or("?")
            .to_owned();
        let body = match name.as_str() {
            "g-ok" => r#"{"name":"operations/g-ok","done":true,"response":{"id":7}}"#,
            "g-failed" => {
                r#"{"done":true,"error":{"code":5,"message":"Gone.","status":"NOT_FOUND"}}"#
            }
            _ => r#"{"done":false}"#,
        };
        respond(200, body)
    })
    .await
}

#[tokio::test]
async fn google_an_operation_named_in_the_first_answer_is_polled_at_its_url() {
    let rule = format!("{GOOGLE}status_url = \"{{origin}}/{{first_segment}}/{{name}}\"\n");
    for stack in STACKS {
        let server = google().await;
        let response = call(stack, &policy(&rule), &server, "v1/things/g-ok")
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{stack:?}");
        let info = CallInfo::of(&response);
        assert_eq!(
            (info.attempts(), info.polls(), info.requests()),
            (1, 1, 2),
            "{stack:?}"
        );
        assert_eq!(
            tower_rebound::FinalUrl::of(&response).map(ToString::to_string),
            Some(server.url("/v1/operations/g-ok")),
            "{stack:?}"
        );
        let body = StatusBody::of(&response).cloned().unwrap_or_default();
        assert!(body.ends_with(br#""response":{"id":7}}"#), "{stack:?}");

        let server = google().await;
        let error = call(stack, &policy(&rule), &server, "v1/things/g-failed")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert_eq!(
            error.api_errors()[0].cause(),
            Some("NOT_FOUND"),
            "{stack:?}"
        );
        assert_eq!(
            (error.attempts(), error.polls(), error.requests()),
            (1, 1, 2),
            "{stack:?}"
        );
    }
}

/// Resource Manager's operations as its stand-in answers them, under the
/// `azure` preset's `[poll]`, through one stack: a `Location` judged by its
/// status code, a provider's own word for running, and the codes of a
/// failed and a canceled operation's error objects. Without the preset's
/// routes, which the layers made by hand do not read: each operation ends
/// with its last status answer.
async fn azure_operations(stack: Stack, server: &TestServer) {
    let policy = Policy::from_toml_str("extends = \"azure\"\nroutes = []\n").unwrap();
    let tag = format!("{stack:?}").to_lowercase();
    let url = |resource: String| {
        server.url(&format!(
            "{}?api-version=2024-07-01",
            azure::in_group(&resource)
        ))
    };
    let put = Request::put(url(format!(
        "Microsoft.Storage/storageAccounts/store-{tag}"
    )))
    .body(Full::new(Bytes::from_static(br#"{"location":"westus"}"#)))
    .unwrap();
    let start = |vm: &str| {
        Request::post(url(format!(
            "Microsoft.Compute/virtualMachines/{vm}-{tag}/start"
        )))
        .body(Full::default())
        .unwrap()
    };
    let (location_only, own_word, failed, canceled) = tokio::join!(
        send(stack, &policy, put),
        send(stack, &policy, start("vm-own")),
        send(stack, &policy, start("vm-failed")),
        send(stack, &policy, start("vm-canceled")),
    );

    let response = location_only.unwrap_or_else(|e| panic!("{stack:?}: {e}"));
    assert_eq!(response.status(), 200, "{stack:?}");
    assert_eq!(CallInfo::of(&response).polls(), 2, "{stack:?}");
    assert!(StatusBody::of(&response).is_none(), "{stack:?}");
    let polled = FinalUrl::of(&response).unwrap().to_string();
    assert!(
        polled.contains("/Microsoft.Storage/operations/store-"),
        "{stack:?}: {polled}"
    );

    let response = own_word.unwrap_or_else(|e| panic!("{stack:?}: {e}"));
    assert_eq!(response.status(), 200, "{stack:?}");
    assert_eq!(CallInfo::of(&response).polls(), 2, "{stack:?}");
    let body = StatusBody::of(&response).cloned().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&body).contains(r#""status":"Succeeded""#),
        "{stack:?}: {body:?}"
    );

    for (result, detail, codes) in [
        (
            failed,
            "the operation failed",
            &["AllocationFailed", "SkuNotAvailable"][..],
        ),
        (
            canceled,
            "the operation was canceled",
            &["OperationCanceled"][..],
        ),
    ] {
        let error = result.expect_err(detail);
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert!(error.to_string().contains(detail), "{stack:?}: {error}");
        assert_eq!(error.error_codes().collect::<Vec<_>>(), codes, "{stack:?}");
    }
}

#[tokio::test]
async fn azure_s_operations_end_alike_in_both_stacks() {
    let server = azure::start().await;
    tokio::join!(
        azure_operations(Stack::Assembled, &server),
        azure_operations(Stack::ByHand, &server),
    );
}
