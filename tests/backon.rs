//! A policy's retry schedule in a retry loop of backon's: the same waits,
//! as many as the policy's attempts allow.
#![cfg(feature = "backon")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, Retryable};
use tokio::time::Instant;
use tower_rebound::Policy;
use tower_rebound::retry::{Backoff, Jitter};

const MS: Duration = Duration::from_millis(1);

#[test]
fn the_waits_are_the_schedule_s_and_a_policy_stops_at_its_attempts() {
    let schedule = Backoff::exponential(100 * MS, 2.0, 1000 * MS, Jitter::None);
    let waits: Vec<Duration> = schedule.build().take(6).collect();
    assert_eq!(
        waits,
        [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
    );
    let policy = Policy::from_toml_str(
        "[retry]\nmax_attempts = 4\n[retry.backoff]\nkind = \"exponential\"\n\
         initial = \"50ms\"\nmultiplier = 3\nmax = \"1s\"\njitter = \"none\"\n",
    )
    .unwrap();
    let waits: Vec<Duration> = policy.retry_settings().build().collect();
    assert_eq!(
        waits,
        [50 * MS, 150 * MS, 450 * MS],
        "three retries of four attempts"
    );
}

#[test]
fn a_seed_gives_the_same_jittered_waits_and_they_stay_within_the_base() {
    let schedule = Backoff::exponential(100 * MS, 2.0, 5000 * MS, Jitter::Full);
    let a: Vec<Duration> = schedule.delays(42).take(8).collect();
    let b: Vec<Duration> = schedule.delays(42).take(8).collect();
    assert_eq!(a, b);
    for (n, wait) in a.iter().enumerate() {
        assert!(
            *wait < schedule.base(n as u32 + 1),
            "retry {}: {wait:?}",
            n + 1
        );
    }
    assert_ne!(a, schedule.delays(43).take(8).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn backon_retries_a_future_on_the_policy_s_schedule() {
    let policy = Policy::from_toml_str(
        "[retry]\nmax_attempts = 3\n[retry.backoff]\nkind = \"constant\"\n\
         delay = \"250ms\"\njitter = \"none\"\n",
    )
    .unwrap();
    let tries = AtomicU32::new(0);
    let start = Instant::now();
    let result: Result<(), &str> = (|| async {
        tries.fetch_add(1, Ordering::SeqCst);
        Err("still failing")
    })
    .retry(policy.retry_settings().as_ref())
    .await;
    assert_eq!(result, Err("still failing"));
    assert_eq!(tries.load(Ordering::SeqCst), 3, "the policy's max_attempts");
    assert_eq!(start.elapsed(), 500 * MS, "two waits of 250 ms");
}
