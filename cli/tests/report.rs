//! What the command reports of a call against what the server saw: every
//! request counted (retries of the write and of status requests), the
//! failure's cause named on one line, a refused retry said, and a body that
//! cannot be written failing the command.

mod common;

use common::{rebound_async, temp_dir};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tower_rebound_testkit::{TestServer, api_error, respond};

/// A policy with short waits that retries 500s and polls 202s.
fn policy_file(name: &str) -> PathBuf {
    let path = temp_dir(name).join("policy.toml");
    std::fs::write(
        &path,
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [500]\nterminal = [404]\n\
         [retry]\nmax_attempts = 3\n\
         [retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n\
         [poll]\ninterval = \"1ms\"\nmax_interval = \"2ms\"\n",
    )
    .unwrap();
    path
}

/// Each write fails once, then is accepted with a status URL of its own;
/// each status URL fails once, answers 202 once, then 200.
async fn operations() -> TestServer {
    let writes = Arc::new(AtomicUsize::new(0));
    let polls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let writes = Arc::clone(&writes);
        let polls = Arc::clone(&polls);
        async move {
            if request.method() == http::Method::POST {
                let n = writes.fetch_add(1, Ordering::SeqCst);
                if n % 2 == 0 {
                    return api_error(500, &[("InternalError", "try again")]);
                }
                let mut response = respond(202, "");
                let location = format!("/ops/{n}");
                response
                    .headers_mut()
                    .insert("location", location.parse().unwrap());
                return response;
            }
            let seen = {
                let mut polls = polls.lock().unwrap();
                let seen = polls.entry(request.uri().path().to_owned()).or_insert(0);
                *seen += 1;
                *seen
            };
            match seen {
                1 => api_error(500, &[("InternalError", "try again")]),
                2 => respond(202, ""),
                _ => respond(200, "{\"done\":true}"),
            }
        }
    })
    .await
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// `COMMAND --report json -p POLICY` and `more`, then a write with an
/// `Idempotency-Key` (so that it may be retried) to `url`.
fn write_args(command: &str, policy: &std::path::Path, more: &[&str], url: &str) -> Vec<String> {
    let mut all = args(&[command, "--report", "json", "-p", policy.to_str().unwrap()]);
    all.extend(args(more));
    all.extend(args(&["-X", "POST", "-H", "Idempotency-Key: w-1", url]));
    all
}

fn report_of(stderr: &[u8]) -> Value {
    let stderr = String::from_utf8_lossy(stderr);
    let line = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reports_every_request_the_server_saw() {
    let server = operations().await;
    let policy = policy_file("count-request");
    let output = rebound_async(write_args(
        "request",
        &policy,
        &["-d", "{}"],
        &server.url("/write"),
    ))
    .await;
    let r = report_of(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{r}");
    assert_eq!(r["outcome"], "success");
    // The write twice, the status URL three times (its first poll twice).
    assert_eq!(server.requests(), 5);
    assert_eq!(r["requests"], 5, "{r}");
    assert_eq!(
        (r["attempts"].as_u64(), r["polls"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(r["error"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_counts_what_the_server_saw_polls_and_their_retries_included() {
    let server = operations().await;
    let policy = policy_file("count-load");
    let output = rebound_async(write_args(
        "load",
        &policy,
        &["--rate", "20", "--duration", "1s"],
        &server.url("/write"),
    ))
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let r: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(output.status.code(), Some(0), "{r}");
    assert_eq!(r["calls"], 20, "{r}");
    let requests = r["requests"].as_u64().unwrap();
    assert_eq!(requests, server.requests() as u64, "{r}");
    // Each call sends at least the write, its status URL's 500 and 202 and
    // the 200: four requests, five when its write met a 500.
    assert!(requests >= 4 * 20, "{r}");
    let amplification = r["amplification"].as_f64().unwrap();
    assert!((amplification - requests as f64 / 20.0).abs() < 1e-9, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_says_its_retry_was_refused_as_unsafe() {
    let server =
        TestServer::start(|_| async { api_error(500, &[("InternalError", "oops")]) }).await;
    let policy = policy_file("unsafe");
    let output = rebound_async(args(&[
        "request",
        "--report",
        "json",
        "-p",
        policy.to_str().unwrap(),
        "-X",
        "POST",
        "-d",
        "{}",
        &server.url("/write"),
    ]))
    .await;
    let r = report_of(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{r}");
    assert_eq!(server.requests(), 1);
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["retry_refused"], "unsafe_method", "{r}");
    assert_eq!(r["error_codes"], serde_json::json!(["InternalError"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_names_a_refused_connection_and_a_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = rebound_async(args(&[
        "request",
        "--report",
        "json",
        "-p",
        "none",
        &format!("http://127.0.0.1:{port}/"),
    ]))
    .await;
    let r = report_of(&output.stderr);
    assert_eq!(r["outcome"], "transport", "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("refused"), "{r}");

    // A server that accepts and never answers: each attempt times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let policy = temp_dir("timeout").join("policy.toml");
    std::fs::write(
        &policy,
        "[retry]\nmax_attempts = 2\n[retry.backoff]\ninitial = \"1ms\"\nmax = \"1ms\"\n\
         [timeouts]\nattempt = \"300ms\"\n",
    )
    .unwrap();
    let output = rebound_async(args(&[
        "request",
        "--report",
        "json",
        "-p",
        policy.to_str().unwrap(),
        &url,
    ]))
    .await;
    held.abort();
    let r = report_of(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{r}");
    assert_eq!(r["outcome"], "timeout", "{r}");
    assert_eq!(r["attempts"], 2, "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("no answer within 300ms (timeouts.attempt)"),
        "{r}"
    );
    assert!(!error.contains("reachable"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_cannot_be_written_fails_the_command_with_one_line() {
    if !std::path::Path::new("/dev/full").exists() {
        panic!("this test needs /dev/full");
    }
    let server = TestServer::start(|_| async { respond(200, "x".repeat(100_000)) }).await;
    let output = rebound_async(args(&[
        "request",
        "-p",
        "none",
        "-o",
        "/dev/full",
        &server.url("/big"),
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("rebound: cannot write -o /dev/full"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
