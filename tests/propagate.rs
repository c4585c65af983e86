//! The time a request has left, sent downstream (`timeouts.propagate`), on
//! paused time against a scripted client, through the assembled stack and a
//! stack of the standalone layers: each attempt and status request carries
//! what it has left, and a status request to another origin carries none.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_rebound::{Error, Policy, Propagate, PropagateFormat, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

type Client = BoxCloneSyncService<Request<Full<Bytes>>, http::Response<Full<Bytes>>, Error>;

fn policy(timeouts: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [500]\n\
         [retry]\nmax_attempts = 3\n\
         [poll]\ninterval = \"1s\"\nallowed_origins = [\"http://ops.example\"]\n\
         [timeouts]\n{timeouts}"
    ))
    .unwrap()
}

/// Both stacks, each over a client of its own that follows `steps`.
fn stacks(policy: &Policy, steps: &[Step]) -> Vec<(&'static str, Scripted, Client)> {
    let (a, b) = (Scripted::new(steps.to_vec()), Scripted::new(steps.to_vec()));
    let assembled = ResilienceLayer::new(policy.clone()).layer(a.clone());
    let by_hand = ServiceBuilder::new()
        .layer(policy.trace_layer())
        .layer(policy.polling_layer())
        .layer(policy.retry_layer())
        .layer(policy.classify_layer())
        .service(b.clone());
    vec![
        ("assembled", a, Client::new(assembled)),
        ("by hand", b, Client::new(by_hand)),
    ]
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://api.example/things/1")
        .body(Full::default())
        .unwrap()
}

/// The header each request the script saw carried.
fn sent(script: &Scripted, name: &str) -> Vec<Option<String>> {
    script
        .seen()
        .iter()
        .map(|seen| {
            seen.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_attempt_carries_the_time_it_has_left() {
    let policy = policy("attempt = \"3s\"\ntotal = \"5s\"\npropagate = \"X-Request-Timeout\"\n");
    let steps = [
        Step::with_header(500, "retry-after", "1"),
        Step::with_header(500, "retry-after", "2"),
        Step::status(200),
    ];
    for (stack, script, client) in stacks(&policy, &steps) {
        client.oneshot(get()).await.unwrap();
        // The attempt's 3 s, then the call's 4 s left cut to 3 s, then the
        // 2 s the call has left after both waits.
        assert_eq!(
            sent(&script, "x-request-timeout"),
            [
                Some("3000".into()),
                Some("3000".into()),
                Some("2000".into())
            ],
            "{stack}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn grpc_timeout_is_written_as_grpc_reads_it() {
    let policy = policy("attempt = \"2s\"\ntotal = \"10s\"\npropagate = \"grpc-timeout\"\n");
    for (stack, script, client) in stacks(&policy, &[Step::status(200)]) {
        client.oneshot(get()).await.unwrap();
        assert_eq!(
            sent(&script, "grpc-timeout"),
            [Some("2000m".into())],
            "{stack}"
        );
    }
    let header = Propagate::new("grpc-timeout", PropagateFormat::Grpc).unwrap();
    assert_eq!(header.value(Duration::from_micros(250)), "250u");
    assert_eq!(header.value(Duration::ZERO), "1u");
    let ms = Propagate::new("X-Deadline-Ms", PropagateFormat::Milliseconds).unwrap();
    assert_eq!(ms.value(Duration::from_micros(2_500_900)), "2500");
}

#[tokio::test(start_paused = true)]
async fn a_status_request_to_another_origin_carries_no_time_left() {
    let policy = policy("attempt = \"4s\"\ntotal = \"30s\"\npropagate = \"X-Request-Timeout\"\n");
    let steps = [
        Step::with_header(202, "location", "/ops/1"),
        Step::with_header(202, "location", "http://ops.example/ops/1"),
        Step::status(200),
    ];
    for (stack, script, client) in stacks(&policy, &steps) {
        client.oneshot(get()).await.unwrap();
        let hosts: Vec<String> = script
            .seen()
            .iter()
            .map(|s| s.uri.host().unwrap().to_owned())
            .collect();
        assert_eq!(
            hosts,
            ["api.example", "api.example", "ops.example"],
            "{stack}"
        );
        assert_eq!(
            sent(&script, "x-request-timeout"),
            [Some("4000".into()), Some("4000".into()), None],
            "{stack}"
        );
    }
}

#[test]
fn the_keys_are_checked() {
    for (text, expected) in [
        (
            "[timeouts]\npropagate_format = \"ms\"\n",
            "timeouts.propagate_format needs timeouts.propagate",
        ),
        (
            "[timeouts]\npropagate = \"bad header\"\n",
            "invalid header name",
        ),
        (
            "[timeouts]\npropagate = \"x-a\"\npropagate_format = \"seconds\"\n",
            "unknown variant",
        ),
    ] {
        let error = Policy::from_toml_str(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
    let policy = Policy::from_toml_str("[timeouts]\npropagate = \"grpc-timeout\"\n").unwrap();
    let propagate = policy.timeouts().propagate().copied().unwrap();
    assert_eq!(propagate.format(), PropagateFormat::Grpc);
    // A route's timeouts carry it too, and --max-time keeps it.
    let policy = policy.with_total_timeout(Duration::from_secs(3)).unwrap();
    assert!(policy.timeouts().propagate().is_some());
}
