//! The listener API: every event of a real call over HTTP, once each, with
//! no secret in any of them, and a panicking listener that breaks nothing.

mod common;
#[path = "support/instruments.rs"]
mod instruments;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use common::hyper_client;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_rebound::events::{
    AttemptEnded, AttemptStarted, BreakerRejected, BreakerTransition, CallEnded, Listener,
    PollScheduled, PollSent, Refusal, RetryReason, RetryRefused, RetryScheduled, WaitReason,
};
use tower_rebound::{ErrorKind, Policy, ResilienceLayer};

/// Every event, written down as a line.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

impl Listener for Recorder {
    fn attempt_started(&self, e: &AttemptStarted<'_>) {
        self.push(format!("started {} {}", e.attempt(), e.target().method()));
    }
    fn attempt_ended(&self, e: &AttemptEnded<'_>) {
        let codes: Vec<&str> = e.api_errors().iter().filter_map(|a| a.code()).collect();
        let codes = if codes.is_empty() {
            String::new()
        } else {
            format!(" {codes:?}")
        };
        self.push(format!(
            "ended {} {:?} {:?} {:?} {:?}{codes}",
            e.attempt(),
            e.status().map(|s| s.as_u16()),
            e.class(),
            e.error(),
            e.target()
        ));
    }
    fn retry_scheduled(&self, e: &RetryScheduled<'_>) {
        assert!(e.delay() < std::time::Duration::from_secs(1));
        assert_eq!(e.max_attempts(), 4, "connio's");
        self.push(format!(
            "retry {} {:?} {:?}",
            e.attempt(),
            e.wait(),
            e.reason()
        ));
    }
    fn retry_refused(&self, e: &RetryRefused<'_>) {
        self.push(format!("refused {} {:?}", e.attempt(), e.refusal()));
    }
    fn breaker_transition(&self, e: &BreakerTransition<'_>) {
        self.push(format!("breaker {} {:?} {:?}", e.host(), e.from(), e.to()));
    }
    fn breaker_rejected(&self, e: &BreakerRejected<'_>) {
        self.push(format!("rejected {}", e.host()));
    }
    fn poll_scheduled(&self, e: &PollScheduled<'_>) {
        self.push(format!(
            "scheduled poll {} {:?} {} {}",
            e.poll(),
            e.wait(),
            e.delay().as_millis(),
            e.target().host()
        ));
    }
    fn poll_sent(&self, e: &PollSent<'_>) {
        self.push(format!("poll {} {}", e.poll(), e.target().host()));
    }
    fn call_ended(&self, e: &CallEnded<'_>) {
        self.push(format!(
            "call {} {:?} {} {} {:?}",
            e.outcome().as_str(),
            e.status().map(|s| s.as_u16()),
            e.attempts(),
            e.polls(),
            e.route()
        ));
    }
}

const CANARY: &str = "canary-e7e7";

fn policy() -> Policy {
    instruments::policy("")
}

fn request(url: &str) -> http::Request<Full<bytes::Bytes>> {
    http::Request::get(format!("{url}?key={CANARY}"))
        .header("authorization", format!("Bearer {CANARY}"))
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn a_call_tells_every_step_once_and_no_secret() {
    let server = instruments::server().await;
    let recorder = Recorder::default();
    let client =
        ResilienceLayer::new(policy().with_listener(recorder.clone())).layer(hyper_client());
    client
        .clone()
        .oneshot(request(&server.url("/flaky/2/a")))
        .await
        .unwrap();
    let port = server.addr().port();
    let target = format!("Target {{ method: GET, host: \"127.0.0.1\", port: Some({port}) }}");
    assert_eq!(
        recorder.lines(),
        [
            "started 1 GET".to_owned(),
            format!(
                "ended 1 Some(500) Some(Retryable) Some(RetriesExhausted) {target} [\"InternalError\"]"
            ),
            "retry 1 Backoff Status".to_owned(),
            "started 2 GET".to_owned(),
            format!(
                "ended 2 Some(500) Some(Retryable) Some(RetriesExhausted) {target} [\"InternalError\"]"
            ),
            "retry 2 Backoff Status".to_owned(),
            "started 3 GET".to_owned(),
            format!("ended 3 Some(200) Some(Success) None {target}"),
            "call success Some(200) 3 0 None".to_owned(),
        ]
    );

    // Retry-After longer than the policy allows: refused, and said so.
    let recorder = Recorder::default();
    let client =
        ResilienceLayer::new(policy().with_listener(recorder.clone())).layer(hyper_client());
    let error = client
        .clone()
        .oneshot(request(&server.url("/throttle")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    let lines = recorder.lines();
    assert_eq!(lines[2], "refused 1 RetryAfter", "{lines:?}");
    assert_eq!(
        lines[3], "call retries_exhausted Some(429) 1 0 None",
        "{lines:?}"
    );

    // A poll: sent once, and the call counts it.
    let recorder = Recorder::default();
    let client = ResilienceLayer::new(policy().with_listener(recorder.clone()).with_listener(
        // A second listener, after the first.
        Recorder::default(),
    ))
    .layer(hyper_client());
    let response = client
        .oneshot(request(&server.url("/write")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let lines = recorder.lines();
    let scheduled = lines
        .iter()
        .position(|l| l == "scheduled poll 1 Interval 1 127.0.0.1")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let sent = lines
        .iter()
        .position(|l| l == "poll 1 127.0.0.1")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        scheduled < sent,
        "the wait is told before the poll: {lines:?}"
    );
    assert_eq!(lines.last().unwrap(), "call success Some(200) 1 1 None");
    assert!(!format!("{lines:?}").contains(CANARY));
}

#[tokio::test]
async fn refusals_are_told_with_their_reason() {
    let server = instruments::server().await;
    let recorder = Recorder::default();
    let budget = Policy::from_toml_str(
        "extends = \"connio\"\n[retry.backoff]\ninitial = \"1ms\"\n[retry.budget]\ncapacity = 1\n[circuit_breaker]\nenabled = false\n",
    )
    .unwrap()
    .with_listener(recorder.clone());
    let client = ResilienceLayer::new(budget).layer(hyper_client());
    let error = client
        .oneshot(request(&server.url("/down")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BudgetExhausted);
    let lines = recorder.lines();
    assert!(
        lines.contains(&"retry 1 Backoff Status".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&"refused 2 Budget".to_owned()), "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "call budget_exhausted Some(500) 2 0 None"
    );
    // The event types name what metrics use.
    assert_eq!(Refusal::Budget.as_str(), "budget");
    assert_eq!(RetryReason::Timeout.as_str(), "timeout");
    assert_eq!(WaitReason::RetryAfter.as_str(), "retry_after");
}

/// Counts only the breaker's opening.
#[derive(Default, Clone)]
struct Openings(Arc<AtomicU32>, Arc<AtomicU32>);

impl Listener for Openings {
    fn breaker_transition(&self, e: &BreakerTransition<'_>) {
        if e.to() == tower_rebound::breaker::BreakerState::Open {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn breaker_rejected(&self, _: &BreakerRejected<'_>) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_breaker_transition_is_told_once_under_32_tasks() {
    let server = instruments::server().await;
    let openings = Openings::default();
    let policy = Policy::from_toml_str(
        "extends = \"connio\"\n[retry]\nmax_attempts = 1\n[circuit_breaker]\nconsecutive_failures = 5\nopen_for = \"1h\"\nmax_open_for = \"1h\"\n",
    )
    .unwrap()
    .with_listener(openings.clone());
    let client = ResilienceLayer::new(policy).layer(hyper_client());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let client = client.clone();
            let url = server.url("/down");
            tokio::spawn(async move {
                for _ in 0..10 {
                    let _ = client.clone().oneshot(common::get(&url)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Open for an hour: it opened once, and every call after was refused.
    assert_eq!(openings.0.load(Ordering::SeqCst), 1);
    let sent = server.requests() as u32;
    assert_eq!(openings.1.load(Ordering::SeqCst) + sent, 320);
}

struct Panics;

impl Listener for Panics {
    fn attempt_started(&self, _: &AttemptStarted<'_>) {
        panic!("a listener's bug");
    }
    fn call_ended(&self, _: &CallEnded<'_>) {
        panic!("a listener's bug");
    }
}

#[tokio::test]
async fn a_panicking_listener_breaks_nothing() {
    let server = instruments::server().await;
    let after = Recorder::default();
    let client = ResilienceLayer::new(policy().with_listener(Panics).with_listener(after.clone()))
        .layer(hyper_client());
    for _ in 0..3 {
        let response = client
            .clone()
            .oneshot(request(&server.url("/flaky/1/p")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The listener after the one that panics still hears every event.
    let calls = after
        .lines()
        .iter()
        .filter(|l| l.starts_with("call "))
        .count();
    assert_eq!(calls, 3);
}
