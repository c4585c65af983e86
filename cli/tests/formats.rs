//! `rebound request` against servers that answer errors in each body format:
//! the JSON report's `error_codes` are what the policy's `[error_body]` read.

mod common;

use common::{rebound_async, temp_dir};
use std::process::{Command, Output};

use http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use tower_rebound_testkit::{Body, TestServer, api_error, respond};

/// The report: exactly one JSON object on one line of stderr.
fn report(output: &Output) -> Value {
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    serde_json::from_str(lines[0]).unwrap()
}

/// A response with `status`, `body` and a `Content-Type`.
fn typed(status: u16, content_type: &'static str, body: impl Into<Body>) -> http::Response<Body> {
    let mut response = respond(status, body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Errors in each format: `/problem` (RFC 9457, with a `code` extension at
/// `/problem/coded`), `/azure`, `/google` and the seed API's `/connio`.
async fn server() -> TestServer {
    TestServer::start(|request| async move {
        match request.uri().path() {
            "/problem" => typed(
                404,
                "application/problem+json",
                r#"{"type":"https://errors.example/device-not-found","title":"Device not found",
                    "status":404,"detail":"No device 7.","instance":"/devices/7"}"#,
            ),
            "/problem/coded" => typed(
                404,
                "Application/Problem+JSON; charset=utf-8",
                r#"{"type":"about:blank","title":"Not Found","code":"DeviceNotFound"}"#,
            ),
            "/azure" => typed(
                404,
                "application/json; charset=utf-8",
                r#"{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'rg-7' could not be found."}}"#,
            ),
            "/google" => typed(
                404,
                "application/json; charset=UTF-8",
                r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#,
            ),
            "/connio" => api_error(
                404,
                &[
                    ("ResourceNotFound", "Resource not found"),
                    ("BadPath", "No such path"),
                ],
            ),
            _ => respond(500, "unexpected path"),
        }
    })
    .await
}

/// A policy file with `[classify]` written out and then `error_body`.
fn policy(name: &str, error_body: &str) -> String {
    let path = temp_dir(name).join("policy.toml");
    std::fs::write(
        &path,
        format!(
            "[classify]\nsuccess = [200]\nterminal = [400, 404]\nretryable = [429, 500]\n\n{error_body}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// The report of `rebound request URL -p POLICY --report json`, after
/// checking that the call ended as a terminal 404 in one attempt.
async fn request(server: &TestServer, path: &str, policy: &str) -> Value {
    let output = rebound_async(vec![
        "request".into(),
        server.url(path),
        "-p".into(),
        policy.to_owned(),
        "--report".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{path}");
    let report = report(&output);
    assert_eq!(report["outcome"], "terminal", "{path}: {report}");
    assert_eq!(report["status"], 404, "{path}: {report}");
    assert_eq!(report["attempts"], 1, "{path}: {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_json_is_read_by_its_content_type() {
    let server = server().await;
    // The default format: no [error_body] at all.
    let auto = policy("problem-auto", "");
    let r = request(&server, "/problem", &auto).await;
    assert_eq!(
        r["error_codes"],
        json!(["https://errors.example/device-not-found"])
    );
    // A `code` member is the code; `about:blank` is not.
    let r = request(&server, "/problem/coded", &auto).await;
    assert_eq!(r["error_codes"], json!(["DeviceNotFound"]));

    // Named, the format reads the body whatever its type; connio's format
    // finds nothing in a problem detail.
    let problem = policy("problem-named", "[error_body]\nformat = \"problem\"\n");
    let r = request(&server, "/problem", &problem).await;
    assert_eq!(
        r["error_codes"],
        json!(["https://errors.example/device-not-found"])
    );
    let connio = policy("problem-connio", "[error_body]\nformat = \"connio\"\n");
    let r = request(&server, "/problem", &connio).await;
    assert_eq!(r["error_codes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_errors_through_pointers() {
    let server = server().await;
    let azure = policy(
        "azure",
        "[error_body]\nformat = \"fields\"\n\n[error_body.fields]\nerrors = \"/error\"\n\
         code = \"/code\"\nmessage = \"/message\"\n",
    );
    let r = request(&server, "/azure", &azure).await;
    assert_eq!(r["error_codes"], json!(["ResourceGroupNotFound"]));
    // Without the pointers the envelope is raw bytes only.
    let r = request(&server, "/azure", &policy("azure-none", "")).await;
    assert_eq!(r["error_codes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_errors_through_pointers_with_a_numeric_code() {
    let server = server().await;
    // `auto` with pointers: the connio shape finds nothing, so the pointers
    // are read.
    let google = policy(
        "google",
        "[error_body.fields]\nerrors = \"/error\"\ncode = \"/code\"\ncause = \"/status\"\n\
         message = \"/message\"\n",
    );
    let r = request(&server, "/google", &google).await;
    assert_eq!(r["error_codes"], json!(["404"]));
    // The same policy still reads the seed API's shape first.
    let r = request(&server, "/connio", &google).await;
    assert_eq!(r["error_codes"], json!(["ResourceNotFound", "BadPath"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connio_array() {
    let server = server().await;
    let connio = policy("connio", "[error_body]\nformat = \"connio\"\n");
    let r = request(&server, "/connio", &connio).await;
    assert_eq!(r["error_codes"], json!(["ResourceNotFound", "BadPath"]));
    // A format that does not read arrays finds nothing in it.
    let problem = policy("connio-problem", "[error_body]\nformat = \"problem\"\n");
    let r = request(&server, "/connio", &problem).await;
    assert_eq!(r["error_codes"], json!([]));
}

#[test]
fn check_points_at_error_body_mistakes() {
    let dir = temp_dir("check");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[classify]\nterminal = [404]\n\n[error_body]\nformat = \"fields\"\n\n\
         [error_body.fields]\nerrors = \"/error\"\ncode = \"code\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:9:8: invalid JSON pointer \"code\" in error_body.fields.code",
            path.display()
        )),
        "{stderr}"
    );
}
