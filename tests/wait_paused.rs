//! When to come back, on paused time against a scripted client: the gap
//! between the failed attempt and the retry is exactly what each source
//! asked for, and the order of `error_body.wait_headers` decides between
//! sources that disagree.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_rebound::{CallInfo, Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

fn policy(extra: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[retry]\nmax_attempts = 3\n[retry.backoff]\ninitial = \"100ms\"\njitter = \"none\"\n{extra}"
    ))
    .unwrap()
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://api.example/things/1")
        .body(Full::default())
        .unwrap()
}

fn throttled(headers: &[(&'static str, &str)], body: &str) -> Step {
    Step::Respond {
        status: 429,
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        body: Bytes::from(body.to_owned()),
    }
}

/// The gap between the two attempts of a call whose first answer is
/// `first` and second a 200.
async fn gap(policy: Policy, first: Step) -> Duration {
    let script = Scripted::new([first, Step::status(200)]);
    let client = ResilienceLayer::with_seed(policy, 7).layer(script.clone());
    let response = client.oneshot(get()).await.unwrap();
    assert_eq!(CallInfo::of(&response).attempts(), 2);
    let seen = script.seen();
    seen[1].at - seen[0].at
}

/// Tokio's timer counts whole milliseconds: a wait lasts what was asked,
/// rounded up to the next millisecond.
fn assert_waited(actual: Duration, asked: Duration, what: &str) {
    assert!(
        actual >= asked && actual < asked + Duration::from_millis(1),
        "{what}: waited {actual:?}, asked {asked:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn each_source_is_waited_exactly() {
    const DATE: (&str, &str) = ("date", "Tue, 14 Nov 2023 22:13:20 GMT"); // 1700000000
    let google = r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.250s"}]}}"#;
    // what, headers, body, expected wait
    type Row = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
        Duration,
    );
    let rows: &[Row] = &[
        (
            "RateLimit",
            &[("ratelimit", r#""default";r=0;t=3"#)],
            "",
            Duration::from_secs(3),
        ),
        (
            "RateLimit-Reset",
            &[("ratelimit-reset", "4")],
            "",
            Duration::from_secs(4),
        ),
        (
            "X-RateLimit-Reset, an epoch against the Date",
            &[
                DATE,
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000005"),
            ],
            "",
            Duration::from_secs(5),
        ),
        (
            "X-RateLimit-Reset in seconds",
            &[("x-ratelimit-reset", "2.5")],
            "",
            Duration::from_millis(2500),
        ),
        (
            "Google's retryDelay",
            &[],
            google,
            Duration::from_millis(1250),
        ),
        (
            "garbage everywhere: the backoff",
            &[
                ("ratelimit", "t=-1"),
                ("x-ratelimit-reset", "NaN"),
                ("retry-after", "soon"),
            ],
            r#"{"error": {"details": [{"retryDelay": "-2s"}]}}"#,
            Duration::from_millis(100),
        ),
    ];
    for (what, headers, body, wait) in rows {
        let got = gap(policy(""), throttled(headers, body)).await;
        assert_waited(got, *wait, what);
    }
}

#[tokio::test(start_paused = true)]
async fn the_policy_orders_and_chooses_the_sources() {
    let all = throttled(
        &[
            ("retry-after", "1"),
            ("ratelimit", r#""default";r=0;t=2"#),
            ("x-ratelimit-reset", "3"),
        ],
        r#"{"retryIn": "4s"}"#,
    );
    // policy, expected wait
    let rows = [
        ("", 1),
        (
            "[error_body]\nwait_headers = [\"x-ratelimit-reset\", \"retry-after\"]\n",
            3,
        ),
        ("[error_body]\nwait_headers = [\"ratelimit\"]\n", 2),
        (
            "[error_body]\nwait_headers = []\nretry_delay = \"/retryIn\"\n",
            4,
        ),
    ];
    for (extra, secs) in rows {
        let got = gap(policy(extra), all.clone()).await;
        assert_waited(got, Duration::from_secs(secs), extra);
    }
    // Nothing read: the backoff.
    let off = policy("[error_body]\nwait_headers = []\nretry_delay = []\n");
    assert_waited(gap(off, all).await, Duration::from_millis(100), "off");
}
