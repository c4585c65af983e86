//! The circuit breaker: paused-time schedules, concurrency, and real HTTP.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{get, hyper_client};
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_rebound::breaker::{BreakerState, CircuitBreakerLayer};
use tower_rebound::{ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step, TestServer, api_error, respond};

fn policy(breaker: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[classify]\nsuccess = [200]\nretryable = [429, 500]\n[retry]\nmax_attempts = 1\n\
         [circuit_breaker]\n{breaker}\n"
    ))
    .unwrap()
}

fn request(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn open_for_exactly_open_for_then_a_probe_closes_it() {
    // Fail fast: no wait for a probe, and probes by time alone.
    let p = policy(
        "consecutive_failures = 2\nfailure_rate = 0\nopen_for = \"3s\"\nmax_open_for = \"3s\"\n\
         wait_for_probe = \"0s\"\nprobe_every = 0",
    );
    let script = Scripted::new([Step::status(500), Step::status(500), Step::status(200)]);
    let layer = ResilienceLayer::with_seed(p, 1);
    let breakers = layer.breakers();
    let client = layer.layer(script.clone());
    let url = "http://api.example/devices";
    for _ in 0..2 {
        let error = client.clone().oneshot(request(url)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    }
    let opened = Instant::now();
    let state = breakers.snapshot(url).unwrap();
    assert_eq!(state.state, BreakerState::Open);
    assert_eq!(state.open_remaining, Some(Duration::from_secs(3)));

    tokio::time::advance(Duration::from_millis(2999)).await;
    let before = Instant::now();
    let error = client.clone().oneshot(request(url)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    assert_eq!(before.elapsed(), Duration::ZERO, "rejected at once");
    assert_eq!(error.attempts(), 0);
    assert_eq!(error.retry_after(), Some(Duration::from_millis(1)));
    assert!(error.to_string().contains("next probe in 1ms"), "{error}");
    assert_eq!(script.calls(), 2, "a rejected call is not sent");

    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(opened.elapsed(), Duration::from_secs(3));
    client
        .clone()
        .oneshot(request(url))
        .await
        .expect("the probe goes through");
    assert_eq!(breakers.snapshot(url).unwrap().state, BreakerState::Closed);
    assert_eq!(script.calls(), 3);
}

/// A stack whose breaker trips on 2 failures and stays open 3 s, with
/// `breaker` added, over `script`.
fn waiting_stack(
    breaker: &str,
    script: &Scripted,
) -> (
    tower_rebound::Resilience<Scripted>,
    tower_rebound::breaker::BreakerHandle,
) {
    let p = policy(&format!(
        "consecutive_failures = 2\nfailure_rate = 0\nopen_for = \"3s\"\nmax_open_for = \"3s\"\n{breaker}"
    ));
    let layer = ResilienceLayer::with_seed(p, 1);
    let breakers = layer.breakers();
    (layer.layer(script.clone()), breakers)
}

const URL: &str = "http://api.example/devices";

async fn trip(client: &tower_rebound::Resilience<Scripted>) {
    for _ in 0..2 {
        let error = client.clone().oneshot(request(URL)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_finds_it_open_waits_for_the_probe_and_goes_through_when_it_succeeds() {
    let script = Scripted::new([Step::status(500), Step::status(500), Step::status(200)]);
    let (client, breakers) = waiting_stack("probe_every = 2\nwait_for_probe = \"5s\"", &script);
    trip(&client).await;
    let waiter = tokio::spawn(client.clone().oneshot(request(URL)));
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished(), "it waits for a probe's verdict");
    assert_eq!(script.calls(), 2, "a waiting call is not sent");
    assert_eq!(breakers.snapshot(URL).unwrap().counters.waited, 1);

    // The second call since the trip is the probe; it succeeds and closes
    // the breaker, and the waiting call is sent at once.
    let probed = Instant::now();
    client
        .clone()
        .oneshot(request(URL))
        .await
        .expect("the probe succeeds");
    waiter
        .await
        .unwrap()
        .expect("the waiting call goes through");
    let seen = script.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].at, probed, "sent when the probe succeeded");
    let state = breakers.snapshot(URL).unwrap();
    assert_eq!(state.state, BreakerState::Closed);
    assert_eq!((state.counters.waited, state.counters.rejected), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_fails_with_circuit_open_when_the_probe_fails() {
    let script = Scripted::new([Step::status(500)]);
    let (client, breakers) = waiting_stack("probe_every = 2\nwait_for_probe = \"5s\"", &script);
    trip(&client).await;
    let started = Instant::now();
    let waiter = tokio::spawn(client.clone().oneshot(request(URL)));
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let error = client.clone().oneshot(request(URL)).await.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::RetriesExhausted,
        "the probe failed"
    );
    let error = waiter.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    assert_eq!(error.attempts(), 0);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "rejected at the probe's verdict, not at the end of its wait"
    );
    assert_eq!(script.calls(), 3, "the waiting call was never sent");
    let state = breakers.snapshot(URL).unwrap();
    assert_eq!(
        state.state,
        BreakerState::Open,
        "a failed probe by count is no trip"
    );
    assert_eq!(state.counters.trips, 1);
    assert_eq!((state.counters.waited, state.counters.rejected), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_call_no_verdict_can_reach_in_time_fails_at_once() {
    // Open for 3 s, no probe in flight, and a wait of 1 s: no verdict can
    // come before the wait ends, so waiting would only delay the answer.
    let script = Scripted::new([Step::status(500)]);
    let (client, breakers) = waiting_stack("probe_every = 0\nwait_for_probe = \"1s\"", &script);
    trip(&client).await;
    let started = Instant::now();
    let error = client.clone().oneshot(request(URL)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    assert_eq!(started.elapsed(), Duration::ZERO, "rejected at once");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(script.calls(), 2);
    let counters = breakers.snapshot(URL).unwrap().counters;
    assert_eq!((counters.waited, counters.rejected), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_fails_with_circuit_open_when_its_wait_runs_out() {
    // The second call after the trip is a probe that never answers; the
    // third waits for its verdict, which does not come within its 1 s.
    let script = Scripted::new([Step::status(500), Step::status(500), Step::Hang]);
    let (client, breakers) = waiting_stack("probe_every = 2\nwait_for_probe = \"1s\"", &script);
    trip(&client).await;
    let first = client.clone().oneshot(request(URL)).await.unwrap_err();
    assert_eq!(
        first.kind(),
        ErrorKind::CircuitOpen,
        "no probe yet: at once"
    );
    let probe = tokio::spawn(client.clone().oneshot(request(URL)));
    tokio::task::yield_now().await;
    assert_eq!(script.calls(), 3, "the probe is in flight");
    let started = Instant::now();
    let error = client.clone().oneshot(request(URL)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(script.calls(), 3);
    let counters = breakers.snapshot(URL).unwrap().counters;
    assert_eq!((counters.waited, counters.rejected), (1, 2));
    probe.abort();
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_is_the_probe_when_the_open_time_runs_out() {
    // No other call comes: the waiting call does not wait on a probe that
    // nobody sends.
    let script = Scripted::new([Step::status(500), Step::status(500), Step::status(200)]);
    let (client, breakers) = waiting_stack("probe_every = 0\nwait_for_probe = \"5s\"", &script);
    trip(&client).await;
    let started = Instant::now();
    client
        .clone()
        .oneshot(request(URL))
        .await
        .expect("it is the probe, and succeeds");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(breakers.snapshot(URL).unwrap().state, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_no_longer_than_its_call() {
    // The retry of a failed call finds the breaker open; its call ends 1 s
    // after it started, before the 5 s of waiting and the 3 s open time.
    let p = Policy::from_toml_str(
        "[classify]\nsuccess = [200]\nretryable = [500]\n\
         [retry]\nmax_attempts = 2\n[retry.backoff]\ninitial = \"1ms\"\nmax = \"1ms\"\n\
         [timeouts]\ntotal = \"1s\"\n\
         [circuit_breaker]\nconsecutive_failures = 1\nfailure_rate = 0\nopen_for = \"3s\"\n\
         probe_every = 0\nwait_for_probe = \"5s\"\n",
    )
    .unwrap();
    let script = Scripted::new([Step::status(500)]);
    let client = ResilienceLayer::with_seed(p, 1).layer(script.clone());
    let started = Instant::now();
    let error = client.oneshot(request(URL)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    // No verdict can come before the call's end: it ends at once, after the
    // first attempt and its 1 ms backoff.
    assert_eq!(started.elapsed(), Duration::from_millis(1));
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_waits_no_longer_than_its_call() {
    // A new call finds the breaker open; its first attempt carries no
    // deadline yet, and still waits only until its call's total of 1 s.
    let p = Policy::from_toml_str(
        "[classify]\nsuccess = [200]\nretryable = [500]\n\
         [retry]\nmax_attempts = 1\n\
         [timeouts]\ntotal = \"1s\"\n\
         [circuit_breaker]\nconsecutive_failures = 1\nfailure_rate = 0\nopen_for = \"3s\"\n\
         probe_every = 0\nwait_for_probe = \"5s\"\n",
    )
    .unwrap();
    let script = Scripted::new([Step::status(500)]);
    let client = ResilienceLayer::with_seed(p, 1).layer(script.clone());
    let tripped = client.clone().oneshot(request(URL)).await.unwrap_err();
    assert_eq!(tripped.kind(), ErrorKind::RetriesExhausted);
    let started = Instant::now();
    let error = client.oneshot(request(URL)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    // The open time (3 s) outlasts the call (1 s): no verdict can come in
    // time, and the call ends at once instead of at its deadline.
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiting_call_counts_as_rejected() {
    let script = Scripted::new([Step::status(500)]);
    let (client, breakers) = waiting_stack("probe_every = 0\nwait_for_probe = \"5s\"", &script);
    trip(&client).await;
    let waited = tokio::time::timeout(
        Duration::from_millis(10),
        client.clone().oneshot(request(URL)),
    )
    .await;
    assert!(waited.is_err(), "still waiting when dropped");
    let c = breakers.snapshot(URL).unwrap().counters;
    assert_eq!((c.waited, c.rejected, c.admitted), (1, 1, 2));
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn repeated_trips_stay_open_longer_up_to_the_cap() {
    let p = policy(
        "consecutive_failures = 1\nfailure_rate = 0\nopen_for = \"1s\"\nmax_open_for = \"4s\"",
    );
    let script = Scripted::new([Step::status(500)]);
    let layer = ResilienceLayer::with_seed(p, 7);
    let breakers = layer.breakers();
    let client = layer.layer(script.clone());
    let url = "http://api.example/x";
    client.clone().oneshot(request(url)).await.unwrap_err();
    let mut open_times = Vec::new();
    for _ in 0..5 {
        let remaining = breakers.snapshot(url).unwrap().open_remaining.unwrap();
        open_times.push(remaining);
        tokio::time::advance(remaining).await;
        // The probe fails: open again, for longer.
        let error = client.clone().oneshot(request(url)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    }
    assert_eq!(open_times[0], Duration::from_secs(1));
    // Trip n stays open between half and all of min(4 s, 2^(n-1) s), never
    // below the first 1 s.
    for (n, open) in open_times.iter().enumerate().skip(1) {
        let base = Duration::from_secs(1 << n).min(Duration::from_secs(4));
        assert!(
            *open >= (base / 2).max(Duration::from_secs(1)) && *open <= base,
            "trip {n}: {open:?}"
        );
    }
    assert!(open_times.iter().all(|d| *d <= Duration::from_secs(4)));
    assert_eq!(breakers.snapshot(url).unwrap().counters.trips, 6);
}

#[tokio::test(start_paused = true)]
async fn hosts_do_not_affect_each_other_and_global_scope_shares() {
    let script = Scripted::new([Step::status(500)]);
    let layer = ResilienceLayer::with_seed(policy("consecutive_failures = 1"), 1);
    let client = layer.layer(script.clone());
    client
        .clone()
        .oneshot(request("http://a.example/"))
        .await
        .unwrap_err();
    let a = client
        .clone()
        .oneshot(request("http://a.example/"))
        .await
        .unwrap_err();
    assert_eq!(a.kind(), ErrorKind::CircuitOpen);
    let b = client
        .clone()
        .oneshot(request("http://b.example/"))
        .await
        .unwrap_err();
    assert_eq!(
        b.kind(),
        ErrorKind::RetriesExhausted,
        "another host is unaffected"
    );
    let other_port = client
        .clone()
        .oneshot(request("http://a.example:8080/"))
        .await
        .unwrap_err();
    assert_eq!(other_port.kind(), ErrorKind::RetriesExhausted);

    let layer =
        ResilienceLayer::with_seed(policy("consecutive_failures = 1\nscope = \"global\""), 1);
    let client = layer.layer(Scripted::new([Step::status(500)]));
    client
        .clone()
        .oneshot(request("http://a.example/"))
        .await
        .unwrap_err();
    let b = client
        .oneshot(request("http://b.example/"))
        .await
        .unwrap_err();
    assert_eq!(b.kind(), ErrorKind::CircuitOpen);
}

#[tokio::test(start_paused = true)]
async fn what_counts_and_what_does_not() {
    let p = policy("consecutive_failures = 2\nfailure_rate = 0");
    let url = "http://api.example/";
    // 404 and 429 do not count; 500 and a reset connection do.
    let script = Scripted::new([
        Step::status(500),
        Step::status(404),
        Step::status(500),
        Step::status(429),
        Step::Fail(std::io::ErrorKind::ConnectionReset),
    ]);
    let layer = ResilienceLayer::with_seed(p, 1);
    let breakers = layer.breakers();
    let client = layer.layer(script);
    for _ in 0..4 {
        client.clone().oneshot(request(url)).await.unwrap_err();
        assert_eq!(breakers.snapshot(url).unwrap().state, BreakerState::Closed);
    }
    client.clone().oneshot(request(url)).await.unwrap_err();
    let state = breakers.snapshot(url).unwrap();
    assert_eq!(state.state, BreakerState::Open);
    assert_eq!(state.counters.ignored, 1);
    assert_eq!(state.counters.successes, 1);
    assert_eq!(state.counters.failures, 3);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_counts_as_a_failure_and_slow_calls_can() {
    let p = Policy::from_toml_str(
        "[retry]\nmax_attempts = 1\n[timeouts]\nattempt = \"1s\"\n\
         [circuit_breaker]\nconsecutive_failures = 1\nfailure_rate = 0\n",
    )
    .unwrap();
    let layer = ResilienceLayer::with_seed(p, 1);
    let breakers = layer.breakers();
    layer
        .layer(Scripted::new([Step::Hang]))
        .oneshot(request("http://slow.example/"))
        .await
        .unwrap_err();
    assert_eq!(
        breakers.snapshot("http://slow.example/").unwrap().state,
        BreakerState::Open
    );

    // A success slower than slow_call_duration is a failure.
    let p = policy("consecutive_failures = 1\nfailure_rate = 0\nslow_call_duration = \"100ms\"");
    let layer = CircuitBreakerLayer::with_seed(*p.breaker_settings(), 1);
    let handle = layer.handle();
    let slow = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok::<_, tower_rebound::Error>(Response::new(()))
    });
    layer
        .layer(slow)
        .oneshot(request("http://slow.example/"))
        .await
        .unwrap();
    assert_eq!(
        handle.snapshot("http://slow.example/").unwrap().state,
        BreakerState::Open
    );
}

#[tokio::test(start_paused = true)]
async fn the_handle_forces_and_resets() {
    let script = Scripted::new([Step::status(200)]);
    let layer = ResilienceLayer::with_seed(policy("consecutive_failures = 1"), 1);
    let breakers = layer.breakers();
    let client = layer.layer(script.clone());
    breakers.force_open("http://api.example/");
    let error = client
        .clone()
        .oneshot(request("http://api.example/a"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    assert_eq!(script.calls(), 0);
    assert_eq!(
        breakers.snapshot("http://api.example:80").unwrap().state,
        BreakerState::ForcedOpen
    );
    breakers.reset("http://api.example/");
    client
        .clone()
        .oneshot(request("http://api.example/a"))
        .await
        .unwrap();
    assert_eq!(script.calls(), 1);
    let all = breakers.snapshots();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, "http://api.example:80");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_gives_its_slot_back() {
    let p = policy(
        "consecutive_failures = 1\nfailure_rate = 0\nopen_for = \"1s\"\nhalf_open_probes = 1",
    );
    let script = Scripted::new([Step::status(500), Step::Hang, Step::status(200)]);
    let layer = ResilienceLayer::with_seed(p, 1);
    let breakers = layer.breakers();
    let client = layer.layer(script.clone());
    let url = "http://api.example/";
    client.clone().oneshot(request(url)).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    // The probe hangs and is dropped.
    let probe = tokio::time::timeout(
        Duration::from_millis(10),
        client.clone().oneshot(request(url)),
    )
    .await;
    assert!(probe.is_err());
    assert_eq!(
        breakers.snapshot(url).unwrap().state,
        BreakerState::HalfOpen
    );
    // The slot is free: the next call is the probe, and closes it.
    client.clone().oneshot(request(url)).await.unwrap();
    assert_eq!(breakers.snapshot(url).unwrap().state, BreakerState::Closed);
    assert_eq!(breakers.snapshot(url).unwrap().counters.cancelled, 1);
}

/// A client whose calls fail in runs: the first `run` calls it receives fail,
/// the next `run` succeed, and so on, taking a moment either way so that
/// calls overlap. Which calls fail follows from the order they arrive in,
/// not from timing, so the breaker trips on any machine.
#[derive(Clone)]
struct Flaky {
    run: u64,
    calls: Arc<AtomicU64>,
}

impl Service<Request<Full<Bytes>>> for Flaky {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, std::io::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = (n / self.run) % 2 == 0;
        Box::pin(async move {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_micros(200)).await;
            if failing {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
            } else {
                Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_on_one_key_never_exceed_the_probes() {
    let p = Policy::from_toml_str(
        "[retry]\nmax_attempts = 1\n[circuit_breaker]\nconsecutive_failures = 3\nfailure_rate = 0\n\
         open_for = \"1ms\"\nmax_open_for = \"1ms\"\nhalf_open_probes = 2\n",
    )
    .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let layer = CircuitBreakerLayer::with_seed(*p.breaker_settings(), 3);
    let handle = layer.handle();
    // Runs of 100: at most 32 calls are in flight when the first three
    // failures are recorded, and all of them are of the first, failing run.
    let client = layer.layer(p.classify_layer().layer(Flaky {
        run: 100,
        calls: Arc::clone(&calls),
    }));
    let mut tasks = Vec::new();
    let outcomes = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    for _ in 0..32 {
        let client = client.clone();
        let outcomes = Arc::clone(&outcomes);
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let slot = match client.clone().oneshot(request("http://api.example/")).await {
                    Ok(_) => 0,
                    Err(e) if e.kind() == ErrorKind::CircuitOpen => 1,
                    Err(_) => 2,
                };
                outcomes[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let state = handle.snapshot("http://api.example/").unwrap();
    let c = state.counters;
    assert!(c.trips > 0, "the breaker tripped: {c:?}");
    assert!(c.peak_probes_in_flight <= 2, "{c:?}");
    let [ok, open, failed] = [0, 1, 2].map(|i| outcomes[i].load(Ordering::Relaxed));
    assert_eq!(ok + open + failed, 32 * 200);
    assert_eq!(c.rejected, open);
    assert_eq!(c.admitted, ok + failed);
    assert_eq!(c.successes, ok);
    assert_eq!(c.failures, failed);
    assert_eq!(c.cancelled + c.ignored, 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        c.admitted,
        "every admitted call was sent"
    );
}

#[tokio::test]
async fn an_always_500_host_sees_exactly_the_trip_threshold() {
    let failing = Arc::new(AtomicBool::new(true));
    let server = {
        let failing = Arc::clone(&failing);
        TestServer::start(move |_| {
            let failing = failing.load(Ordering::SeqCst);
            async move {
                if failing {
                    api_error(500, &[("InternalError", "Down")])
                } else {
                    respond(200, "up")
                }
            }
        })
        .await
    };
    let healthy = TestServer::start(|_| async { respond(200, "fine") }).await;
    let p = Policy::from_toml_str(
        "[classify]\nsuccess = [200]\nretryable = [500]\n\
         [retry]\nmax_attempts = 10\n[retry.backoff]\ninitial = \"1ms\"\nmax = \"5ms\"\n\
         [circuit_breaker]\nconsecutive_failures = 3\nfailure_rate = 0\nopen_for = \"300ms\"\n\
         wait_for_probe = \"0s\"\n",
    )
    .unwrap();
    let layer = ResilienceLayer::new(p);
    let breakers = layer.breakers();
    let client = layer.layer(hyper_client());

    let error = client
        .clone()
        .oneshot(get(&server.url("/x")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CircuitOpen);
    assert_eq!(error.attempts(), 3);
    assert_eq!(
        server.requests(),
        3,
        "the breaker stopped the retry loop at the threshold"
    );

    // Another host is unaffected.
    client
        .clone()
        .oneshot(get(&healthy.url("/")))
        .await
        .expect("a second host works");

    // The host recovers; after open_for a probe closes the circuit again.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    client
        .clone()
        .oneshot(get(&server.url("/x")))
        .await
        .expect("the probe succeeds");
    assert_eq!(
        breakers.snapshot(&server.url("/")).unwrap().state,
        BreakerState::Closed
    );
    assert_eq!(server.requests(), 4);
}
