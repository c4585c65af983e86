//! The poll layer on paused time, against a scripted client.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_rebound::{CallInfo, ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

fn policy(poll: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [500]\nterminal = [404]\n\
         [retry.backoff]\ninitial = \"10ms\"\njitter = \"none\"\n\
         [timeouts]\ntotal = \"120s\"\n\
         [poll]\ninterval = \"1s\"\nmultiplier = 2\nmax_interval = \"5s\"\n{poll}\n"
    ))
    .unwrap()
}

fn write() -> Request<Full<Bytes>> {
    Request::post("https://api.example/v3/devices/7/data")
        .header("authorization", "Bearer secret-token")
        .header("content-type", "application/json")
        .header("x-tenant", "acme")
        .body(Full::new(Bytes::from_static(b"{\"v\":1}")))
        .unwrap()
}

fn accepted(location: &str) -> Step {
    Step::with_header(202, "location", location)
}

fn done(body: &'static str) -> Step {
    Step::Respond {
        status: 200,
        headers: vec![],
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn gaps(script: &Scripted) -> Vec<Duration> {
    let seen = script.seen();
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn a_write_is_followed_to_its_result() {
    let script = Scripted::new([
        accepted("/v3/ops/1"),
        accepted("/v3/ops/1"),
        Step::status(202),
        done("{\"ok\":true}"),
    ]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
    let response = client.oneshot(write()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(CallInfo::of(&response).polls(), 3);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"{\"ok\":true}");

    let seen = script.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].method, Method::POST);
    for poll in &seen[1..] {
        assert_eq!(poll.method, Method::GET);
        assert_eq!(poll.uri, "https://api.example/v3/ops/1");
        assert!(poll.body.is_empty());
        // The same origin gets the request's headers, but not its body's.
        assert_eq!(poll.headers["authorization"], "Bearer secret-token");
        assert_eq!(poll.headers["x-tenant"], "acme");
        assert!(!poll.headers.contains_key("content-type"));
    }
    // interval 1 s growing by 2: 1, 2, 4 s.
    assert_eq!(
        gaps(&script),
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_sets_the_wait_capped_by_max_interval() {
    let script = Scripted::new([
        Step::Respond {
            status: 202,
            headers: vec![
                ("operation-location", "/ops/2".into()),
                ("retry-after", "3".into()),
            ],
            body: Bytes::new(),
        },
        Step::with_header(202, "retry-after", "60"),
        done("ok"),
    ]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
    client.oneshot(write()).await.unwrap();
    assert_eq!(
        gaps(&script),
        [Duration::from_secs(3), Duration::from_secs(5)]
    );
    assert_eq!(script.seen()[1].uri, "https://api.example/ops/2");
}

#[tokio::test(start_paused = true)]
async fn operation_location_wins_over_location() {
    let script = Scripted::new([
        Step::Respond {
            status: 202,
            headers: vec![
                ("location", "/result/9".into()),
                ("operation-location", "/ops/9".into()),
            ],
            body: Bytes::new(),
        },
        done("ok"),
    ]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
    client.oneshot(write()).await.unwrap();
    assert_eq!(script.seen()[1].uri, "https://api.example/ops/9");
}

#[tokio::test(start_paused = true)]
async fn max_polls_and_max_duration_end_the_call_on_time() {
    let script = Scripted::new([accepted("/ops/1")]);
    let client = ResilienceLayer::with_seed(policy("max_polls = 3"), 1).layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(write()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PollTimeout);
    assert_eq!(error.polls(), 3);
    // Three polls after 1, 2 and 4 s; the fourth would be due 5 s later.
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert_eq!(script.calls(), 4);

    let script = Scripted::new([accepted("/ops/1")]);
    let client =
        ResilienceLayer::with_seed(policy("max_duration = \"10s\""), 1).layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(write()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PollTimeout);
    // Polls at 1, 3, 7 s; the next (12 s) would pass 10 s: the call ends at 7 s.
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert_eq!(error.polls(), 3);
    assert!(error.to_string().contains("3 polls"), "{error}");

    let script = Scripted::new([accepted("/ops/1")]);
    let text = "[classify]\npollable = [202]\n[poll]\ninterval = \"1s\"\nmultiplier = 2\nmax_duration = \"1h\"\n\
                [timeouts]\ntotal = \"5s\"\n";
    let client = ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), 1).layer(script);
    let error = client.oneshot(write()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_202_without_a_status_url_is_accepted_or_an_error() {
    let script = Scripted::new([Step::status(202)]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
    let response = client.oneshot(write()).await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(CallInfo::of(&response).polls(), 0);
    assert_eq!(script.calls(), 1);

    let client = ResilienceLayer::with_seed(policy("on_accepted = \"error\""), 1)
        .layer(Scripted::new([Step::status(202)]));
    let error = client.oneshot(write()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PollRefused);
    assert!(error.to_string().contains("names no status url"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn an_operation_that_fails_gives_its_error_codes() {
    let script = Scripted::new([
        accepted("/ops/1"),
        Step::Respond {
            status: 404,
            headers: vec![],
            body: Bytes::from_static(br#"[{"code":"OperationNotFound","cause":"gone"}]"#),
        },
    ]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script);
    let error = client.oneshot(write()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Terminal);
    assert_eq!(error.polls(), 1);
    assert_eq!(
        error.error_codes().collect::<Vec<_>>(),
        ["OperationNotFound"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_poll_is_retried_without_restarting_the_operation() {
    let script = Scripted::new([accepted("/ops/1"), Step::status(500), done("ok")]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
    let response = client.oneshot(write()).await.unwrap();
    let info = CallInfo::of(&response);
    // One poll, the write sent once, and three requests: the write and the
    // status request twice.
    assert_eq!((info.polls(), info.attempts(), info.requests()), (1, 1, 3));
    let methods: Vec<Method> = script.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(
        methods,
        [Method::POST, Method::GET, Method::GET],
        "the write was sent once"
    );
}

#[tokio::test(start_paused = true)]
async fn status_urls_elsewhere_are_refused_without_a_request() {
    for (location, reason) in [
        ("https://evil.example/ops/1", "another origin"),
        ("http://api.example/ops/1", "downgrades"),
        ("https://user:pw@api.example/ops", "userinfo"),
        ("javascript:alert(1)", "not http"),
    ] {
        let script = Scripted::new([accepted(location), done("never")]);
        let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
        let error = client.oneshot(write()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::PollRefused, "{location}");
        assert!(error.to_string().contains(reason), "{location}: {error}");
        assert_eq!(script.calls(), 1, "{location}: nothing was sent there");
    }
}

#[tokio::test(start_paused = true)]
async fn an_allowed_origin_gets_no_credentials_unless_forwarded() {
    let allowed = "allowed_origins = [\"https://ops.example\"]\nsecret_headers = [\"X-Tenant\"]";
    let script = Scripted::new([accepted("https://ops.example/status/1"), done("ok")]);
    let client = ResilienceLayer::with_seed(policy(allowed), 1).layer(script.clone());
    client.oneshot(write()).await.unwrap();
    let poll = &script.seen()[1];
    assert_eq!(poll.uri, "https://ops.example/status/1");
    assert!(!poll.headers.contains_key("authorization"));
    assert!(!poll.headers.contains_key("x-tenant"));

    let forwarded = format!("{allowed}\nforward_credentials = true");
    let script = Scripted::new([accepted("https://ops.example/status/1"), done("ok")]);
    let client = ResilienceLayer::with_seed(policy(&forwarded), 1).layer(script.clone());
    client.oneshot(write()).await.unwrap();
    let poll = &script.seen()[1];
    assert_eq!(poll.headers["authorization"], "Bearer secret-token");
    assert_eq!(poll.headers["x-tenant"], "acme");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_poll_leaves_nothing_behind() {
    let script = Scripted::new([accepted("/ops/1")]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
    let handles = script.handles();
    let call =
        tokio::time::timeout(Duration::from_millis(1500), client.clone().oneshot(write())).await;
    assert!(call.is_err());
    assert_eq!(script.calls(), 2);
    assert_eq!(script.handles(), handles);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_poll_never_outlives_the_call() {
    // The operation is accepted at 0 s; the first poll (at 1 s) hangs. Each
    // attempt may take 10 s, but the whole call ends at timeouts.total, 3 s.
    let text = "[classify]\npollable = [202]\nretryable = [500]\n\
                [poll]\ninterval = \"1s\"\n[timeouts]\nattempt = \"10s\"\ntotal = \"3s\"\n";
    let script = Scripted::new([accepted("/ops/1"), Step::Hang]);
    let client =
        ResilienceLayer::with_seed(Policy::from_toml_str(text).unwrap(), 1).layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(write()).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(error.kind(), ErrorKind::DeadlineExceeded);
    assert_eq!(error.polls(), 1);
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_relative_status_url_resolves_against_the_url_that_answered() {
    // RFC 9110: a relative Location is relative to the response that sent it.
    // The request is /v3/devices/7/data; the status URL moves on from
    // /v3/ops/1/status to "../2/status", which from the status URL (not from
    // the request) is /v3/ops/2/status.
    let script = Scripted::new([
        accepted("/v3/ops/1/status"),
        accepted("../2/status"),
        done("{}"),
    ]);
    let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
    let response = client.oneshot(write()).await.unwrap();
    assert_eq!(response.status(), 200);
    let uris: Vec<String> = script.seen().iter().map(|s| s.uri.to_string()).collect();
    assert_eq!(
        uris,
        [
            "https://api.example/v3/devices/7/data",
            "https://api.example/v3/ops/1/status",
            "https://api.example/v3/ops/2/status",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn status_requests_leave_out_conditional_and_range_headers() {
    // A status GET carrying the write's preconditions could fail with 412 or
    // answer 206 with part of the result.
    for name in [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "range",
    ] {
        let script = Scripted::new([accepted("/v3/ops/1"), done("{}")]);
        let client = ResilienceLayer::with_seed(policy(""), 1).layer(script.clone());
        let mut request = write();
        request.headers_mut().insert(
            http::HeaderName::from_static(name),
            "\"v1\"".parse().unwrap(),
        );
        client.oneshot(request).await.unwrap();
        let seen = script.seen();
        assert_eq!(seen.len(), 2, "{name}");
        assert_eq!(seen[0].headers[name], "\"v1\"", "the write keeps {name}");
        assert!(
            !seen[1].headers.contains_key(name),
            "the status request carries {name}"
        );
        assert_eq!(seen[1].headers["x-tenant"], "acme", "{name}");
    }
}
