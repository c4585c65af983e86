//! Adaptive throttling over real HTTP: a host that refuses everything gets
//! a trickle of the calls, the rest end here as `throttled` at no cost to it,
//! and once the window forgets, it gets the calls again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tower::{Layer, ServiceExt};
use tower_rebound::{ErrorKind, Outcome, Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, api_error, respond};

#[tokio::test]
async fn a_refusing_host_gets_a_trickle_and_then_the_calls_again() {
    let healthy = Arc::new(AtomicBool::new(false));
    let server = TestServer::start({
        let healthy = Arc::clone(&healthy);
        move |_| {
            let healthy = healthy.load(Ordering::SeqCst);
            async move {
                if healthy {
                    respond(200, "{}")
                } else {
                    api_error(503, &[("Overloaded", "Too busy")])
                }
            }
        }
    })
    .await;
    // One attempt, no breaker: throttling alone.
    let policy = Policy::from_toml_str(
        "[retry]\nmax_attempts = 1\n[circuit_breaker]\nenabled = false\n\
         [adaptive_throttle]\nenabled = true\nk = 2\nwindow = \"1s\"\n",
    )
    .unwrap();
    assert!(policy.breaker_settings().adaptive_throttle().enabled());
    let client = ResilienceLayer::with_seed(policy, 7).layer(common::hyper_client());
    let url = server.url("/v3/devices");

    let mut throttled = 0;
    for _ in 0..400 {
        let error = client.clone().oneshot(common::get(&url)).await.unwrap_err();
        match error.kind() {
            ErrorKind::Throttled => {
                throttled += 1;
                assert_eq!(error.attempts(), 0, "a throttled call is not sent");
                assert_eq!(Outcome::from(error.kind()).as_str(), "throttled");
            }
            kind => assert_eq!(kind, ErrorKind::RetriesExhausted),
        }
    }
    let sent = server.requests();
    assert_eq!(sent + throttled, 400);
    // With no accept, the chance of rejection is n / (n + 1): after the
    // first few calls nearly every call ends here.
    assert!(throttled > 300, "throttled {throttled}, sent {sent}");
    assert!(sent >= 2, "a trickle still reaches the host: {sent}");

    // The host recovers: the trickle's accepts and the 1 s window forgetting
    // the refusals bring every call back. Waited for as it happens: until 50
    // calls in a row go through (bounded).
    healthy.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut in_a_row = 0;
    while in_a_row < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the host never got the calls back"
        );
        match client.clone().oneshot(common::get(&url)).await {
            Ok(response) => {
                assert_eq!(response.status(), 200);
                in_a_row += 1;
            }
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::Throttled);
                in_a_row = 0;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

#[test]
fn the_section_is_checked_at_its_line() {
    let error =
        Policy::from_toml_str("[adaptive_throttle]\nenabled = true\nk = 0.5\n").unwrap_err();
    assert_eq!(
        (error.line(), error.column()),
        (Some(3), Some(5)),
        "{error}"
    );
    assert!(error.message().contains("adaptive_throttle.k"), "{error}");
    let error = Policy::from_toml_str("[adaptive_throttle]\nwindow = \"1ms\"\n").unwrap_err();
    assert_eq!(error.line(), Some(2), "{error}");
    let error = Policy::from_toml_str("[adaptive_throttle]\nenable = true\n").unwrap_err();
    assert!(
        error.message().contains("unknown field `enable`"),
        "{error}"
    );
    // Off unless asked for.
    assert!(
        !Policy::preset("standard")
            .unwrap()
            .breaker_settings()
            .adaptive_throttle()
            .enabled()
    );
}
