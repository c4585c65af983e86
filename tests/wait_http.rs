//! When to come back, over real HTTP on 127.0.0.1 through hyper-util's
//! client: each API's way of saying how long to wait (GitHub's
//! `x-ratelimit-reset`, the IETF draft's `RateLimit`, `RateLimit-Reset`,
//! Google's `retryDelay` in the body) is waited as asked, and a wait past
//! `retry.max_retry_after` ends the call as a long `Retry-After` does.
//!
//! The waits are read from the retry events, which carry the exact delay
//! the decision chose; the clock only confirms that the call did wait
//! (never less than asked), so the test does not depend on how fast the
//! machine is.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{get, hyper_client};
use http::Response;
use tower::{Layer, ServiceExt};
use tower_rebound::classify::WaitSource;
use tower_rebound::events::{Listener, RetryScheduled, WaitReason};
use tower_rebound::{CallInfo, ErrorKind, Policy, ResilienceLayer, RetryRefusal};
use tower_rebound_testkit::{Body, TestServer, respond};

/// GitHub's primary rate limit, as its REST documentation shows it.
const GITHUB_LIMIT: &str = r#"{"message": "API rate limit exceeded for 203.0.113.7. (But here's the good news: Authenticated requests get a higher rate limit.)", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}"#;

/// Google's `RESOURCE_EXHAUSTED`, with the `RetryInfo` detail of
/// google.rpc's error model, as Cloud APIs send it.
fn google_exhausted(delay: &str) -> String {
    format!(
        r#"{{"error": {{"code": 429, "message": "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'.", "status": "RESOURCE_EXHAUSTED", "details": [
            {{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"}},
            {{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "{delay}"}}
        ]}}}}"#
    )
}

fn with(mut response: Response<Body>, headers: &[(&'static str, String)]) -> Response<Body> {
    for (name, value) in headers {
        response.headers_mut().append(*name, value.parse().unwrap());
    }
    response
}

/// The first request to `/{api}/{secs}/{key}` is throttled the way `api`
/// does it, asking for `secs` seconds; the next one answers 200.
async fn server() -> TestServer {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let seen = Arc::clone(&seen);
        async move {
            let path = request.uri().path().to_owned();
            let count = {
                let mut seen = seen.lock().unwrap();
                let count = seen.entry(path.clone()).or_insert(0);
                *count += 1;
                *count
            };
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (api, secs) = match parts.as_slice() {
                [api, secs, _] if count == 1 => (*api, secs.parse::<u64>().unwrap()),
                _ => return respond(200, format!("done after {count}")),
            };
            let json = ("content-type", "application/json".to_owned());
            match api {
                // The server's own clock in Date, the reset as an epoch on it.
                "github" => {
                    let now = SystemTime::now();
                    let epoch = now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    with(
                        respond(403, GITHUB_LIMIT),
                        &[
                            json,
                            ("date", httpdate::fmt_http_date(now)),
                            ("x-ratelimit-limit", "60".into()),
                            ("x-ratelimit-remaining", "0".into()),
                            ("x-ratelimit-used", "60".into()),
                            ("x-ratelimit-reset", (epoch + secs).to_string()),
                            ("x-ratelimit-resource", "core".into()),
                        ],
                    )
                }
                // Units left: the reset is an hour away and not the wait.
                "github-left" => with(
                    respond(429, GITHUB_LIMIT),
                    &[
                        ("x-ratelimit-remaining", "17".into()),
                        ("x-ratelimit-reset", secs.to_string()),
                    ],
                ),
                "ratelimit" => with(
                    respond(429, "slow down"),
                    &[
                        ("ratelimit-policy", r#""default";q=100;w=60"#.into()),
                        ("ratelimit", format!(r#""default";r=0;t={secs}"#)),
                    ],
                ),
                "ratelimit-reset" => with(
                    respond(429, "slow down"),
                    &[
                        ("ratelimit-limit", "100".into()),
                        ("ratelimit-remaining", "0".into()),
                        ("ratelimit-reset", secs.to_string()),
                    ],
                ),
                "google" => with(respond(429, google_exhausted(&format!("{secs}s"))), &[json]),
                "retry-after" => with(
                    respond(429, "slow down"),
                    &[("retry-after", secs.to_string())],
                ),
                other => panic!("no such api {other}"),
            }
        }
    })
    .await
}

/// The standard preset, fast backoff, and GitHub's primary limit (a 403
/// that says the quota is spent) made retryable by a header rule.
fn policy(listener: Waits) -> Policy {
    Policy::from_toml_str(
        r#"
[retry]
max_attempts = 3
max_retry_after = "10s"
[retry.backoff]
initial = "10ms"
max = "20ms"
jitter = "none"
[timeouts]
attempt = "5s"
total = "30s"

[[classify.rules]]
name = "github-primary-limit"
status = [403, 429]
header = "x-ratelimit-remaining: 0"
class = "retryable"

# GitHub's two shapes: the message, and each error's code. (`auto` would
# read the object as the seed API's single error, its message alone.)
[error_body]
format = "fields"
[[error_body.fields]]
message = "/message"
more_info_url = "/documentation_url"
[[error_body.fields]]
errors = "/errors"
code = "/code"
message = "/message"
"#,
    )
    .unwrap()
    .with_listener(listener)
}

/// The delay and reason of every retry.
#[derive(Clone, Default)]
struct Waits(Arc<Mutex<Vec<(Duration, WaitReason)>>>);

impl Waits {
    fn all(&self) -> Vec<(Duration, WaitReason)> {
        self.0.lock().unwrap().clone()
    }
}

impl Listener for Waits {
    fn retry_scheduled(&self, e: &RetryScheduled<'_>) {
        self.0.lock().unwrap().push((e.delay(), e.wait()));
    }
}

/// Calls `path` and checks that the one retry waited `secs` for `reason`,
/// and that the call succeeded on its second attempt.
async fn waits_as_asked(path: &str, secs: u64, reason: WaitReason) {
    let server = server().await;
    let waits = Waits::default();
    let client = ResilienceLayer::new(policy(waits.clone())).layer(hyper_client());
    let started = Instant::now();
    let response = client
        .oneshot(get(&server.url(path)))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let took = started.elapsed();
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(CallInfo::of(&response).attempts(), 2, "{path}");
    assert_eq!(server.requests(), 2, "{path}");
    assert_eq!(waits.all(), [(Duration::from_secs(secs), reason)], "{path}");
    assert!(took >= Duration::from_secs(secs), "{path}: took {took:?}");
}

#[tokio::test]
async fn github_s_403_with_no_requests_left_waits_until_the_reset() {
    waits_as_asked("/github/2/a", 2, WaitReason::XRateLimitReset).await;
}

#[tokio::test]
async fn a_ratelimit_field_with_nothing_left_waits_its_t() {
    waits_as_asked("/ratelimit/3/a", 3, WaitReason::RateLimit).await;
}

#[tokio::test]
async fn ratelimit_reset_is_waited() {
    waits_as_asked("/ratelimit-reset/1/a", 1, WaitReason::RateLimit).await;
}

#[tokio::test]
async fn google_s_resource_exhausted_waits_its_retry_delay() {
    waits_as_asked("/google/2/a", 2, WaitReason::RetryDelay).await;
}

#[tokio::test]
async fn a_reset_with_requests_left_is_not_a_wait() {
    let server = server().await;
    let waits = Waits::default();
    let client = ResilienceLayer::new(policy(waits.clone())).layer(hyper_client());
    let response = client
        .oneshot(get(&server.url("/github-left/3600/a")))
        .await
        .unwrap();
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    assert_eq!(
        waits.all(),
        [(Duration::from_millis(10), WaitReason::Backoff)]
    );
}

#[tokio::test]
async fn a_wait_past_max_retry_after_ends_the_call_whoever_asked() {
    let server = server().await;
    // api, the source the error names
    let rows = [
        ("retry-after", WaitSource::RetryAfter),
        ("github", WaitSource::XRateLimitReset),
        ("ratelimit", WaitSource::RateLimit),
        ("ratelimit-reset", WaitSource::RateLimit),
        ("google", WaitSource::RetryDelay),
    ];
    for (api, source) in rows {
        let waits = Waits::default();
        let client = ResilienceLayer::new(policy(waits.clone())).layer(hyper_client());
        let started = Instant::now();
        let error = client
            .oneshot(get(&server.url(&format!("/{api}/60/long"))))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::RetriesExhausted, "{api}");
        assert_eq!(
            error.retry_refused(),
            Some(RetryRefusal::RetryAfter),
            "{api}"
        );
        assert_eq!(error.attempts(), 1, "{api}");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(60)), "{api}");
        assert_eq!(error.retry_after_source(), Some(source), "{api}");
        assert!(waits.all().is_empty(), "{api}");
        assert!(started.elapsed() < Duration::from_secs(5), "{api}: no wait");
    }
    assert_eq!(server.requests(), rows.len());
}

#[tokio::test]
async fn github_s_message_and_errors_are_both_read() {
    let server = TestServer::start(|_| async {
        let body = r#"{"message": "Validation Failed", "errors": [
            {"resource": "Issue", "field": "title", "code": "missing_field"},
            {"resource": "Issue", "field": "labels", "code": "invalid", "message": "labels is invalid"}
        ], "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue"}"#;
        with(respond(422, body), &[("content-type", "application/json; charset=utf-8".into())])
    })
    .await;
    let client = ResilienceLayer::new(policy(Waits::default())).layer(hyper_client());
    let error = client
        .oneshot(get(&server.url("/repos/o/r/issues")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Terminal);
    let errors = error.api_errors();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0].message(), Some("Validation Failed"));
    assert_eq!(
        errors[0].more_info_url(),
        Some("https://docs.github.com/rest/issues/issues#create-an-issue")
    );
    assert_eq!(
        error.error_codes().collect::<Vec<_>>(),
        ["missing_field", "invalid"]
    );
    assert_eq!(errors[2].message(), Some("labels is invalid"));
}
