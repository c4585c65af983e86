//! Policies per route: two routes and the policy's own settings, each with
//! its own attempts and timeouts, as a server on 127.0.0.1 sees them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{get, hyper_client};
use http::Method;
use tower::{Layer, ServiceExt};
use tower_rebound::config::Route;
use tower_rebound::retry::RetrySettings;
use tower_rebound::route::RouteMatch;
use tower_rebound::{ErrorKind, Policy, ResilienceLayer, Timeouts};
use tower_rebound_testkit::{TestServer, respond};

const POLICY: &str = r#"
[classify]
retryable = [500]
[retry]
max_attempts = 4
[retry.backoff]
initial = "1ms"
max = "2ms"
# The server fails every call: a fixed bucket of 20, so that the budget
# refuses none of these calls' retries (a new process's scaled bucket holds 3).
[retry.budget]
min_reserve = 20
[timeouts]
attempt = "5s"
total = "30s"
[circuit_breaker]
enabled = false

[[routes]]
name = "writes"
methods = ["POST"]
[routes.retry]
max_attempts = 2

[[routes]]
name = "slow"
path_prefix = "/v3/slow"
[routes.timeouts]
attempt = "200ms"
[routes.retry]
max_attempts = 3
"#;

/// A server that answers 500 to everything, but stalls under `/v3/slow/`,
/// and remembers the method and path of each request.
async fn server() -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let server = TestServer::start(move |request| {
        log.lock()
            .unwrap()
            .push(format!("{} {}", request.method(), request.uri().path()));
        let stall = request.uri().path().starts_with("/v3/slow/");
        async move {
            if stall {
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
            respond(500, "[{\"code\":\"Down\"}]")
        }
    })
    .await;
    (server, seen)
}

fn count(seen: &Mutex<Vec<String>>, line: &str) -> usize {
    seen.lock().unwrap().iter().filter(|l| *l == line).count()
}

fn post(url: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post(url)
        .header("idempotency-key", "k-1")
        .body(http_body_util::Full::default())
        .unwrap()
}

#[tokio::test]
async fn each_route_takes_its_own_attempts_and_timeouts() {
    let (server, seen) = server().await;
    let policy = Policy::from_toml_str(POLICY).unwrap();
    assert_eq!(policy.routes().len(), 2);
    let client = ResilienceLayer::new(policy).layer(hyper_client());

    // No route: the policy's own 4 attempts.
    let error = client
        .clone()
        .oneshot(get(&server.url("/v3/devices")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.attempts(), 4);
    assert_eq!(count(&seen, "GET /v3/devices"), 4);

    // "writes": 2 attempts.
    let error = client
        .clone()
        .oneshot(post(&server.url("/v3/devices")))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 2);
    assert_eq!(count(&seen, "POST /v3/devices"), 2);

    // "slow": 3 attempts of 200 ms each, where the policy's own take 5 s.
    let started = Instant::now();
    let error = client
        .clone()
        .oneshot(get(&server.url("/v3/slow/report")))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.attempts(), 3);
    let source = std::error::Error::source(&error).unwrap();
    let timed_out = source
        .downcast_ref::<tower_rebound::AttemptTimedOut>()
        .expect("the attempt timeout ended each attempt");
    assert_eq!(timed_out.after(), Duration::from_millis(200));
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    // Three attempts of 5 s would take 15 s: far above this on any machine.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(count(&seen, "GET /v3/slow/report"), 3);

    // Segment by segment: /v3/slowpoke is not under /v3/slow.
    let error = client
        .oneshot(get(&server.url("/v3/slowpoke")))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 4);
}

#[tokio::test]
async fn routes_in_code_and_a_selector_by_header() {
    let (server, seen) = server().await;
    let base = Policy::from_toml_str(
        "[classify]\nretryable = [500]\n[retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n\
         [retry.budget]\nmin_reserve = 20\n[circuit_breaker]\nenabled = false\n",
    )
    .unwrap();
    let once = Route::new(RouteMatch::new().path_prefix("/v3/once").unwrap(), &base)
        .named("once")
        .with_retry(RetrySettings::builder().max_attempts(1).build().unwrap());
    let twice = Route::new(RouteMatch::new().methods([Method::PATCH]), &base)
        .named("twice")
        .with_retry(RetrySettings::builder().max_attempts(2).build().unwrap())
        .with_timeouts(Timeouts::new(Duration::from_secs(1), Duration::from_secs(5)).unwrap());
    let policy = base
        .with_route(once)
        .unwrap()
        .with_route(twice)
        .unwrap()
        // A header names the route, whatever the path.
        .with_selector(|request| (request.headers.get("x-route")? == "twice").then_some(1));
    let client = ResilienceLayer::new(policy).layer(hyper_client());

    let error = client
        .clone()
        .oneshot(get(&server.url("/v3/once/a")))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 1);
    let mut request = get(&server.url("/v3/once/b"));
    request
        .headers_mut()
        .insert("x-route", "twice".parse().unwrap());
    let error = client.clone().oneshot(request).await.unwrap_err();
    assert_eq!(error.attempts(), 2, "the selector chose over the matcher");
    let error = client
        .oneshot(get(&server.url("/v3/other")))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 4, "no route: the policy's own");
    assert_eq!(count(&seen, "GET /v3/once/a"), 1);
    assert_eq!(count(&seen, "GET /v3/once/b"), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn the_call_span_names_the_route() {
    let captured = common::Captured::default();
    let _guard = captured.install(tracing_subscriber::fmt::format::FmtSpan::CLOSE);
    let (server, _) = server().await;
    let client = ResilienceLayer::new(Policy::from_toml_str(POLICY).unwrap()).layer(hyper_client());
    let _ = client.clone().oneshot(post(&server.url("/v3/a"))).await;
    let _ = client.oneshot(get(&server.url("/v3/b"))).await;
    let logs = captured.text();
    let closes: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("}: tower_rebound::trace: close"))
        .collect();
    assert_eq!(closes.len(), 2, "{logs}");
    assert!(
        closes[0].contains("rebound.route=\"writes\""),
        "{}",
        closes[0]
    );
    assert!(!closes[1].contains("rebound.route"), "{}", closes[1]);
}

#[test]
fn route_mistakes_point_at_their_line() {
    let cases = [
        (
            "[[routes]]\nhots = \"api.example\"\n",
            2,
            "unknown field `hots`",
        ),
        (
            "[[routes]]\nhost = \"*.*.example\"\n",
            2,
            "invalid host pattern",
        ),
        (
            "[[routes]]\nmethods = [\"GET\", \"get\"]\n",
            2,
            "invalid method \"get\"",
        ),
        (
            "[[routes]]\npath_prefix = \"/v3\"\n[[routes]]\npath_prefix = \"/v3/exports\"\n",
            3,
            "route 1 can never match: route 0 before it",
        ),
        (
            "[[routes]]\nhost = \"api.example\"\n[routes.circuit_breaker]\nenabled = false\n",
            3,
            "a route cannot set circuit_breaker",
        ),
        (
            "[[routes]]\n[routes.retry.budget]\ncapacity = 1\n",
            2,
            "a route cannot set retry.budget",
        ),
        (
            "[[routes]]\nmethods = [\"POST\"]\n[routes.retry]\nmax_attempts = 20\n",
            4,
            "retry.max_attempts is out of bounds",
        ),
    ];
    for (text, line, needle) in cases {
        let error = Policy::from_toml_str(text).unwrap_err();
        assert!(error.message().contains(needle), "{text}: {error}");
        assert_eq!(error.line(), Some(line), "{text}: {error}");
    }
}

#[test]
fn a_route_moves_a_status_to_another_class_and_keeps_the_rest() {
    let policy = Policy::from_toml_str(
        "[classify]\nretryable = [429, 500]\nunsupported = [503]\n\
         [[routes]]\nhost = \"api.example\"\n[routes.classify]\nretryable = [503]\n",
    )
    .unwrap();
    let route = &policy.routes()[0];
    let class = |status: u16| {
        route
            .classify_settings()
            .classify(http::StatusCode::from_u16(status).unwrap())
    };
    use tower_rebound::classify::StatusClass::*;
    assert_eq!(class(503), Retryable);
    // The route's list replaces the file's retryable list...
    assert_eq!(class(429), Terminal);
    // ...and the rest of the file's table stays.
    assert_eq!(
        policy.classify(http::StatusCode::SERVICE_UNAVAILABLE),
        Unsupported
    );
    assert_eq!(route.retry_settings(), policy.retry_settings());
}

#[test]
fn a_route_chooses_its_own_error_body_format() {
    use tower_rebound::classify::ErrorBodyFormat;
    let policy = Policy::from_toml_str(
        "[error_body]\nformat = \"fields\"\n[error_body.fields]\nerrors = \"/error\"\ncode = \"/code\"\n\
         [[routes]]\npath_prefix = \"/problems\"\n[routes.error_body]\nformat = \"problem\"\n\
         [[routes]]\npath_prefix = \"/auto\"\n[routes.error_body]\nformat = \"auto\"\n",
    )
    .unwrap();
    let error_body = |i: usize| policy.routes()[i].classify_settings().error_body().clone();
    // A format that reads no pointers leaves the file's behind...
    assert_eq!(error_body(0).format(), ErrorBodyFormat::Problem);
    assert_eq!(error_body(0).fields(), None);
    // ...and one that reads them keeps them.
    assert_eq!(error_body(1).format(), ErrorBodyFormat::Auto);
    assert_eq!(error_body(1).fields().unwrap().errors(), "/error");
    let file = policy.classify_settings().error_body();
    assert_eq!(file.format(), ErrorBodyFormat::Fields);

    // A route that names both contradicts itself, at its own line.
    let error = Policy::from_toml_str(
        "[[routes]]\npath_prefix = \"/x\"\n[routes.error_body]\nformat = \"connio\"\n\
         [routes.error_body.fields]\ncode = \"/code\"\n",
    )
    .unwrap_err();
    assert!(error.message().contains("is never read"), "{error}");
    assert_eq!(error.line(), Some(5), "{error}");
}
