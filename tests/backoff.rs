//! A `backoff::ExponentialBackoff` as rebound's retry schedule.
#![cfg(feature = "backoff")]

use std::time::Duration;

use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_rebound::retry::{Backoff, Jitter};
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

#[test]
fn the_schedule_carries_over() {
    let theirs = backoff::ExponentialBackoff::default();
    let ours = Backoff::from(&theirs);
    assert_eq!(
        ours,
        Backoff::exponential(
            theirs.initial_interval,
            theirs.multiplier,
            theirs.max_interval,
            Jitter::Proportional(theirs.randomization_factor),
        )
    );
    // Their randomisation: within ±factor of the base.
    for random in [0, u64::MAX / 2, u64::MAX] {
        let d = ours.delay(2, Duration::ZERO, random);
        let base = theirs.initial_interval.mul_f64(theirs.multiplier);
        assert!(
            d >= base.mul_f64(1.0 - theirs.randomization_factor)
                && d <= base.mul_f64(1.0 + theirs.randomization_factor)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_policy_retries_on_their_schedule() {
    let theirs = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(300),
        randomization_factor: 0.0,
        multiplier: 3.0,
        max_interval: Duration::from_secs(2),
        ..backoff::ExponentialBackoff::default()
    };
    let policy = Policy::preset("connio")
        .unwrap()
        .with_backoff(Backoff::from(&theirs))
        .unwrap();
    let script = Scripted::new([
        Step::status(500),
        Step::status(500),
        Step::status(500),
        Step::status(200),
    ]);
    let client = ResilienceLayer::new(policy).layer(script.clone());
    client
        .oneshot(
            Request::get("http://api.example/")
                .body(Full::<bytes::Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let seen = script.seen();
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert_eq!(
        gaps,
        [
            Duration::from_millis(300),
            Duration::from_millis(900),
            Duration::from_secs(2)
        ]
    );
}

#[tokio::test]
async fn over_real_http_the_schedule_is_followed() {
    let api = tower_rebound_testkit::seed::SeedApi::start().await;
    let theirs = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(40),
        randomization_factor: 0.0,
        multiplier: 2.0,
        max_interval: Duration::from_secs(1),
        ..backoff::ExponentialBackoff::default()
    };
    let policy = Policy::preset("connio")
        .unwrap()
        .with_backoff(Backoff::from(&theirs))
        .unwrap();
    let client = tower_rebound::client::hyper(policy);
    let started = std::time::Instant::now();
    let response = client
        .oneshot(
            Request::get(api.url("/v3/flaky/backoff"))
                .body(Full::<bytes::Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(tower_rebound::CallInfo::of(&response).attempts(), 3);
    // Waits of 40 ms and 80 ms, at least.
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
}
