//! A stand-in for a Google Cloud API over HTTP/JSON, as AIP-151 (long-running
//! operations), AIP-193 (errors) and AIP-194 (retries) describe it: a method
//! that takes a while answers `200` with a `google.longrunning.Operation`,
//! `{"name": "operations/...", "done": false}`, which lives at
//! `/v1/operations/...` until it is `{"done": true}` with a `response` or an
//! `error` (a `google.rpc.Status`: `code`, `message`, `status`, `details`);
//! while it runs, `done` is left out, as proto3 JSON leaves out a `false`.
//! Errors are `{"error": {"code", "message", "status", "details"}}`, with an
//! `ErrorInfo`, and a `RetryInfo` whose `retryDelay` says when to come back.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/projects/P/instances/NAME:start` | 200, the Operation `operations/start-NAME`, not done |
//! | `GET /v1/operations/start-NAME` | running (no `done`), then done: with the instance, or, when NAME begins `fails`, with `FAILED_PRECONDITION` and an `ErrorInfo` |
//! | `GET /v1/projects/P/instances/busy-KEY` | 429 `RESOURCE_EXHAUSTED`, `RetryInfo` of 2 s, once; then the instance |
//! | `GET /v1/projects/P/instances/flaky-KEY` | 503 `UNAVAILABLE` once; then the instance |
//! | `GET /v1/projects/P/instances/broken` | 500 `INTERNAL` |
//! | `GET /v1/projects/P/instances/missing` | 404 `NOT_FOUND` |
//! | `GET /v1/projects/P/instances/NAME` | 200 with the instance |

use http::{Method, Response};

use super::{PerPath, Scenario, json, segments};
use crate::{Body, TestRequest, TestServer};

/// The `retryDelay` of a `RESOURCE_EXHAUSTED`, in seconds.
pub const RETRY_DELAY_SECS: u64 = 2;

/// Starts the stand-in on a free port.
pub async fn start() -> TestServer {
    start_on(0).await.expect("bind a port on 127.0.0.1")
}

/// Starts the stand-in on `port` (0 for a free one).
pub async fn start_on(port: u16) -> std::io::Result<TestServer> {
    super::serve(port, answer).await
}

/// The demo's requests.
pub fn scenarios() -> Vec<Scenario> {
    let start = |what, name: &str| {
        Scenario::new(
            what,
            Method::POST,
            &format!("/v1/projects/demo/instances/{name}:start"),
        )
        .with_body("{}")
    };
    vec![
        Scenario::get("200 with the instance", "/v1/projects/demo/instances/web-1"),
        start("200 Operation, done: false", "web-demo"),
        start("200 Operation that will fail", "fails-demo"),
        Scenario::get(
            "429 RESOURCE_EXHAUSTED, retryDelay 2s",
            "/v1/projects/demo/instances/busy-demo",
        ),
        Scenario::get(
            "503 UNAVAILABLE, then 200",
            "/v1/projects/demo/instances/flaky-demo",
        ),
        Scenario::get("500 INTERNAL", "/v1/projects/demo/instances/broken"),
        Scenario::get("404 NOT_FOUND", "/v1/projects/demo/instances/missing"),
    ]
}

fn answer(seen: &PerPath, request: &TestRequest) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let count = seen.count(&path);
    match (request.method().clone(), segments(&path).as_slice()) {
        (Method::POST, ["v1", "projects", _, "instances", verb]) if verb.ends_with(":start") => {
            let name = verb.trim_end_matches(":start");
            json(
                200,
                format!(
                    r#"{{"name":"operations/start-{name}","metadata":{{"@type":"type.googleapis.com/google.cloud.demo.v1.OperationMetadata","verb":"start"}},"done":false}}"#
                ),
            )
        }
        (Method::GET, ["v1", "operations", operation]) => {
            let metadata = r#""metadata":{"@type":"type.googleapis.com/google.cloud.demo.v1.OperationMetadata","verb":"start"}"#;
            let body = if count == 1 {
                format!(r#"{{"name":"operations/{operation}",{metadata}}}"#)
            } else if operation.starts_with("start-fails") {
                format!(
                    r#"{{"name":"operations/{operation}",{metadata},"done":true,"error":{{"code":9,"message":"The instance is being deleted and cannot be started.","status":"FAILED_PRECONDITION","details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"INSTANCE_BEING_DELETED","domain":"demo.googleapis.com"}}]}}}}"#
                )
            } else {
                let instance = operation.trim_start_matches("start-");
                format!(
                    r#"{{"name":"operations/{operation}",{metadata},"done":true,"response":{{"@type":"type.googleapis.com/google.cloud.demo.v1.Instance","name":"projects/demo/instances/{instance}","state":"RUNNING"}}}}"#
                )
            };
            json(200, body)
        }
        (Method::GET, ["v1", "projects", _, "instances", "missing"]) => error(
            404,
            "NOT_FOUND",
            "Instance projects/demo/instances/missing was not found.",
            "",
        ),
        (Method::GET, ["v1", "projects", _, "instances", "broken"]) => {
            error(500, "INTERNAL", "Internal error encountered.", "")
        }
        (Method::GET, ["v1", "projects", _, "instances", name])
            if name.starts_with("busy") && count == 1 =>
        {
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'demo.googleapis.com'.",
                &format!(
                    r#","details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{{"service":"demo.googleapis.com"}}}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{RETRY_DELAY_SECS}s"}}]"#
                ),
            )
        }
        (Method::GET, ["v1", "projects", _, "instances", name])
            if name.starts_with("flaky") && count == 1 =>
        {
            error(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                "",
            )
        }
        (Method::GET, ["v1", "projects", project, "instances", name]) => json(
            200,
            format!(r#"{{"name":"projects/{project}/instances/{name}","state":"RUNNING"}}"#),
        ),
        _ => error(404, "NOT_FOUND", "The requested URL was not found.", ""),
    }
}

/// An error as Google writes it: the HTTP status as `code`, the canonical
/// code's name as `status`, and `rest` (the `details`) after them.
fn error(code: u16, status: &str, message: &str, rest: &str) -> Response<Body> {
    json(
        code,
        format!(r#"{{"error":{{"code":{code},"message":"{message}","status":"{status}"{rest}}}}}"#),
    )
}
