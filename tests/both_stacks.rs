//! The assembled stack and a stack of the standalone layers made by hand run
//! the same steps: on the same script and the same seed, they end every call
//! the same way, after the same requests at the same instants, and tell the
//! listeners the same things in the same order.
//!
//! `ResilienceLayer` is one driver over the client's future; the layers alone
//! are each a driver over their inner service. This suite is the guard that
//! keeps the two in step.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_rebound::events::{
    AttemptEnded, AttemptStarted, BreakerRejected, BreakerTransition, CallEnded, Listener,
    PollScheduled, PollSent, RetryRefused, RetryScheduled,
};
use tower_rebound::{Error, Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

const SEED: u64 = 7;

/// Every event, as a line without durations (which the two stacks measure
/// from slightly different instants).
#[derive(Default, Clone)]
struct Record(Arc<Mutex<Vec<String>>>);

impl Record {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Listener for Record {
    fn attempt_started(&self, e: &AttemptStarted<'_>) {
        self.push(format!("attempt_started {:?} #{}", e.target(), e.attempt()));
    }
    fn attempt_ended(&self, e: &AttemptEnded<'_>) {
        let codes: Vec<&str> = e.api_errors().iter().filter_map(|a| a.code()).collect();
        self.push(format!(
            "attempt_ended #{} {:?} {:?} {:?} {codes:?}",
            e.attempt(),
            e.status(),
            e.class(),
            e.error()
        ));
    }
    fn retry_scheduled(&self, e: &RetryScheduled<'_>) {
        self.push(format!(
            "retry_scheduled #{} {:?} {:?} {:?} of {}",
            e.attempt(),
            e.delay(),
            e.wait(),
            e.reason(),
            e.max_attempts()
        ));
    }
    fn retry_refused(&self, e: &RetryRefused<'_>) {
        self.push(format!("retry_refused #{} {:?}", e.attempt(), e.refusal()));
    }
    fn breaker_transition(&self, e: &BreakerTransition<'_>) {
        self.push(format!(
            "breaker {} {:?} -> {:?}",
            e.key(),
            e.from(),
            e.to()
        ));
    }
    fn breaker_rejected(&self, e: &BreakerRejected<'_>) {
        self.push(format!("breaker_rejected {}", e.key()));
    }
    fn poll_scheduled(&self, e: &PollScheduled<'_>) {
        self.push(format!(
            "poll_scheduled {:?} #{} {:?} {:?}",
            e.target(),
            e.poll(),
            e.delay(),
            e.wait()
        ));
    }
    fn poll_sent(&self, e: &PollSent<'_>) {
        self.push(format!("poll_sent {:?} #{}", e.target(), e.poll()));
    }
    fn call_ended(&self, e: &CallEnded<'_>) {
        self.push(format!(
            "call_ended {:?} {:?} {}/{}/{} {:?}",
            e.outcome(),
            e.status(),
            e.attempts(),
            e.polls(),
            e.requests(),
            e.route()
        ));
    }
}

/// How one call ended, and when, after the call's start.
#[derive(Debug, PartialEq)]
struct Ended {
    status: Option<u16>,
    kind: Option<&'static str>,
    counts: (u32, u32, u32),
    codes: Vec<String>,
    after: Duration,
}

/// What one run of a script shows: every call's end, every request's method,
/// URL and instant (after the first call's start), and every event.
#[derive(Debug, PartialEq)]
struct Run {
    calls: Vec<Ended>,
    requests: Vec<(String, String, Duration)>,
    events: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
enum Stack {
    Assembled,
    ByHand,
}

type Response = http::Response<Full<Bytes>>;

async fn run_calls<S>(mut service: S, requests: Vec<Request<Full<Bytes>>>) -> Vec<Ended>
where
    S: Service<Request<Full<Bytes>>, Response = Response, Error = Error>,
{
    let start = Instant::now();
    let mut calls = Vec::new();
    for request in requests {
        let result = service.ready().await.unwrap().call(request).await;
        let after = start.elapsed();
        calls.push(match result {
            Ok(response) => {
                let info = tower_rebound::CallInfo::of(&response);
                Ended {
                    status: Some(response.status().as_u16()),
                    kind: None,
                    counts: (info.attempts(), info.polls(), info.requests()),
                    codes: Vec::new(),
                    after,
                }
            }
            Err(error) => Ended {
                status: error.status().map(|s| s.as_u16()),
                kind: Some(error.kind().as_str()),
                counts: (error.attempts(), error.polls(), error.requests()),
                codes: error
                    .api_errors()
                    .iter()
                    .filter_map(|e| e.code().map(str::to_owned))
                    .collect(),
                after,
            },
        });
    }
    calls
}

async fn run(
    stack: Stack,
    toml: &str,
    steps: &[Step],
    requests: impl Fn() -> Vec<Request<Full<Bytes>>>,
) -> Run {
    let record = Record::default();
    let policy = Policy::from_toml_str(toml)
        .unwrap()
        .with_listener(record.clone());
    let script = Scripted::new(steps.to_vec());
    let start = Instant::now();
    let calls = match stack {
        Stack::Assembled => {
            let client = ResilienceLayer::with_seed(policy, SEED).layer(script.clone());
            run_calls(client, requests()).await
        }
        Stack::ByHand => {
            let client = ServiceBuilder::new()
                .layer(policy.trace_layer())
                .layer(policy.polling_layer())
                .layer(policy.retry_layer().seed(SEED))
                .layer(policy.rate_limit_layer())
                .layer(policy.breaker_layer())
                .layer(policy.classify_layer())
                .service(script.clone());
            run_calls(client, requests()).await
        }
    };
    let requests = script
        .seen()
        .into_iter()
        .map(|seen| {
            (
                seen.method.to_string(),
                seen.uri.to_string(),
                seen.at - start,
            )
        })
        .collect();
    Run {
        calls,
        requests,
        events: record.lines(),
    }
}

/// Runs the script through both stacks and checks that they agree; returns
/// the assembled stack's run, for the scenario's own checks.
async fn agree(
    toml: &str,
    steps: &[Step],
    requests: impl Fn() -> Vec<Request<Full<Bytes>>>,
) -> Run {
    let assembled = run(Stack::Assembled, toml, steps, &requests).await;
    let by_hand = run(Stack::ByHand, toml, steps, &requests).await;
    assert_eq!(assembled, by_hand, "the two stacks disagree");
    assembled
}

const POLICY: &str = r#"
[classify]
success = [200]
pollable = [202]
retryable = [429, 500]
terminal = [400, 404]
unsupported = [503]

[retry]
max_attempts = 3

[retry.backoff]
initial = "100ms"
max = "1s"

[timeouts]
attempt = "2s"
total = "30s"

[poll]
interval = "1s"
max_polls = 5
"#;

fn get() -> Vec<Request<Full<Bytes>>> {
    vec![
        Request::get("http://api.example/devices")
            .body(Full::default())
            .unwrap(),
    ]
}

fn post(key: Option<&str>) -> Vec<Request<Full<Bytes>>> {
    let mut request = Request::post("http://api.example/devices");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    vec![request.body(Full::new(Bytes::from_static(b"{}"))).unwrap()]
}

fn error_body(status: u16, code: &str) -> Step {
    Step::Respond {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: Bytes::from(format!(
            r#"[{{"code":"{code}","cause":"c","message":"m","moreInfoUrl":"u"}}]"#
        )),
    }
}

#[tokio::test(start_paused = true)]
async fn retried_failures_then_a_success() {
    let run = agree(
        POLICY,
        &[
            error_body(500, "Internal"),
            error_body(500, "Internal"),
            Step::status(200),
        ],
        get,
    )
    .await;
    assert_eq!(run.calls[0].status, Some(200));
    assert_eq!(run.calls[0].counts, (3, 0, 3));
    assert_eq!(run.requests.len(), 3);
    let kinds: Vec<&str> = run
        .events
        .iter()
        .map(|e| e.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "attempt_started",
            "attempt_ended",
            "retry_scheduled",
            "attempt_started",
            "attempt_ended",
            "retry_scheduled",
            "attempt_started",
            "attempt_ended",
            "call_ended"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_for_exactly() {
    let run = agree(
        POLICY,
        &[
            Step::with_header(429, "retry-after", "2"),
            Step::status(200),
        ],
        get,
    )
    .await;
    assert_eq!(
        run.requests[1].2 - run.requests[0].2,
        Duration::from_secs(2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_terminal_answer_ends_at_once_with_its_codes() {
    let run = agree(POLICY, &[error_body(404, "NotFound")], get).await;
    assert_eq!(run.calls[0].kind, Some("terminal"));
    assert_eq!(run.calls[0].codes, ["NotFound"]);
}

#[tokio::test(start_paused = true)]
async fn an_unsafe_write_is_not_retried_and_a_keyed_one_is() {
    let run = agree(POLICY, &[Step::status(500), Step::status(200)], || {
        post(None)
    })
    .await;
    assert_eq!(run.calls[0].counts.0, 1);
    let run = agree(POLICY, &[Step::status(500), Step::status(200)], || {
        post(Some("k-1"))
    })
    .await;
    assert_eq!(run.calls[0].status, Some(200));
}

#[tokio::test(start_paused = true)]
async fn an_operation_is_polled_with_its_status_requests_retried() {
    let run = agree(
        POLICY,
        &[
            Step::with_header(202, "location", "/ops/1"),
            Step::status(500),
            Step::with_header(202, "retry-after", "3"),
            Step::status(200),
        ],
        || post(Some("k-1")),
    )
    .await;
    assert_eq!(run.calls[0].status, Some(200));
    assert_eq!(run.calls[0].counts, (1, 2, 4));
    assert_eq!(run.requests[3].1, "http://api.example/ops/1");
    let polls = run
        .events
        .iter()
        .filter(|e| e.starts_with("poll_sent"))
        .count();
    assert_eq!(polls, 2);
}

#[tokio::test(start_paused = true)]
async fn a_status_url_on_another_origin_is_refused() {
    let run = agree(
        POLICY,
        &[Step::with_header(
            202,
            "location",
            "http://elsewhere.example/ops/1",
        )],
        || post(Some("k-1")),
    )
    .await;
    assert_eq!(run.calls[0].kind, Some("poll_refused"));
}

#[tokio::test(start_paused = true)]
async fn an_operation_that_never_ends_times_out() {
    let run = agree(
        POLICY,
        &[Step::with_header(202, "location", "/ops/1")],
        || post(Some("k-1")),
    )
    .await;
    assert_eq!(run.calls[0].kind, Some("poll_timeout"));
}

#[tokio::test(start_paused = true)]
async fn hanging_attempts_time_out_and_broken_connections_are_retried() {
    let run = agree(POLICY, &[Step::Hang], get).await;
    assert_eq!(run.calls[0].kind, Some("timeout"));
    assert_eq!(run.calls[0].counts.0, 3);
    let run = agree(
        POLICY,
        &[
            Step::Fail(std::io::ErrorKind::ConnectionReset),
            Step::status(200),
        ],
        get,
    )
    .await;
    assert_eq!(run.calls[0].status, Some(200));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_call_that_would_wait_past_it() {
    let toml = format!("{POLICY}\n[retry.budget]\nenabled = false\n")
        .replace("total = \"30s\"", "total = \"3s\"");
    let run = agree(
        &toml,
        &[Step::with_header(500, "retry-after", "2"), Step::Hang],
        get,
    )
    .await;
    assert_eq!(run.calls[0].kind, Some("deadline_exceeded"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_host_trips_the_breaker_and_later_calls_fail_fast() {
    let toml =
        format!("{POLICY}\n[circuit_breaker]\nconsecutive_failures = 3\nwait_for_probe = \"0s\"\n");
    let run = agree(&toml, &[Step::status(500)], || {
        (0..4).flat_map(|_| get()).collect()
    })
    .await;
    assert!(
        run.calls.iter().any(|c| c.kind == Some("circuit_open")),
        "{:?}",
        run.calls
    );
    assert!(run.events.iter().any(|e| e.starts_with("breaker_rejected")));
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_spaces_calls_alike() {
    let toml = format!("{POLICY}\n[rate_limit]\nper_second = 2\nburst = 1\nbackend = \"local\"\n");
    let run = agree(&toml, &[Step::status(200)], || {
        (0..4).flat_map(|_| get()).collect()
    })
    .await;
    assert_eq!(run.requests.len(), 4);
    assert!(run.requests[3].2 >= Duration::from_millis(1500));
}
