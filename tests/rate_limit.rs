//! The rate limit layer on paused time, against scripted clients: turns,
//! waits within the deadline, `rate_limited`, shared pauses, leases and the
//! fallback when the shared store is unreachable. The same store interface
//! runs over a real Redis in `tests/redis.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_rebound::events::{Listener, RateLimitBackend};
use tower_rebound::rate_limit::{
    Acquire, Grant, LimitScope, MemoryStore, RateLimitSettings, STORE_RETRY, Store, StoreFuture,
};
use tower_rebound::{ErrorKind, Outcome, Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

fn policy() -> Policy {
    Policy::preset("connio").unwrap()
}

fn limit() -> tower_rebound::rate_limit::RateLimitBuilder {
    RateLimitSettings::builder().per_second(10.0).burst(5)
}

#[tokio::test(start_paused = true)]
async fn without_waiting_the_turns_over_the_limit_end_as_rate_limited() {
    let script = Scripted::new([Step::status(200)]);
    let policy = policy().with_rate_limit(limit().wait(false).build().unwrap());
    let client = ResilienceLayer::new(policy).layer(script.clone());
    let mut limited = 0;
    for _ in 0..30 {
        match client.clone().oneshot(get("http://api.example/a")).await {
            Ok(response) => assert_eq!(response.status(), 200),
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::RateLimited);
                assert_eq!(Outcome::from(error.kind()).as_str(), "rate_limited");
                assert_eq!(error.attempts(), 0, "not sent");
                let next = error.retry_after().expect("the time to the next turn");
                assert!(next <= Duration::from_millis(100), "{next:?}");
                assert!(error.to_string().contains("next turn in"), "{error}");
                limited += 1;
            }
        }
    }
    assert_eq!(script.calls(), 5, "the burst, and no more at one instant");
    assert_eq!(limited, 25);
    // Another host has a limit of its own (scope host).
    client
        .clone()
        .oneshot(get("http://other.example/a"))
        .await
        .unwrap();
    // 100 ms later, one more turn.
    tokio::time::advance(Duration::from_millis(100)).await;
    client
        .clone()
        .oneshot(get("http://api.example/a"))
        .await
        .unwrap();
    assert_eq!(script.calls(), 7);
}

#[tokio::test(start_paused = true)]
async fn waiting_attempts_go_in_turn_and_never_past_the_deadline() {
    let script = Scripted::new([Step::status(200)]);
    let policy = policy()
        .with_rate_limit(limit().scope(LimitScope::Policy).build().unwrap())
        .with_total_timeout(Duration::from_secs(2))
        .unwrap();
    let client = ResilienceLayer::new(policy).layer(script.clone());
    let start = Instant::now();
    let calls: Vec<_> = (0..30)
        .map(|i| {
            let client = client.clone();
            // Scope policy: every host shares the one limit.
            let url = format!("http://host{}.example/", i % 3);
            tokio::spawn(async move { client.oneshot(get(&url)).await })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
                limited += 1;
            }
        }
    }
    // 5 at once, then one every 100 ms: those whose turn comes within the
    // 2 s deadline (20 more) are sent, the rest end at once, not at the
    // deadline.
    assert_eq!((ok, limited), (25, 5));
    let seen = script.seen();
    assert_eq!(seen.len(), 25);
    for (i, request) in seen.iter().enumerate() {
        let expected = Duration::from_millis(100 * (i.saturating_sub(4)) as u64);
        assert_eq!(request.at - start, expected, "request {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_take_turns_too() {
    let script = Scripted::new([Step::status(500), Step::status(500), Step::status(200)]);
    let policy = policy().with_rate_limit(
        RateLimitSettings::builder()
            .per_second(1.0)
            .burst(1)
            .build()
            .unwrap(),
    );
    let client = ResilienceLayer::with_seed(policy, 3).layer(script.clone());
    let start = Instant::now();
    client.oneshot(get("http://api.example/")).await.unwrap();
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    // The backoff is shorter than a second: each retry waits for its turn.
    assert_eq!(seen[1].at - start, Duration::from_secs(1));
    assert_eq!(seen[2].at - start, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_every_process_that_shares_the_store() {
    let store = Arc::new(MemoryStore::new());
    let limit = RateLimitSettings::builder()
        .per_second(100.0)
        .build()
        .unwrap();
    // Two processes: each its own policy, stack and client, one store.
    let throttled = Scripted::new([
        Step::with_header(429, "Retry-After", "3"),
        Step::status(200),
    ]);
    let a = ResilienceLayer::new(policy().with_rate_limit_store(limit.clone(), store.clone()))
        .layer(throttled.clone());
    let other = Scripted::new([Step::status(200)]);
    let b = ResilienceLayer::new(policy().with_rate_limit_store(limit, store.clone()))
        .layer(other.clone());

    let start = Instant::now();
    let first = tokio::spawn(a.oneshot(get("http://api.example/x")));
    // B calls the same host just after A's 429.
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.oneshot(get("http://api.example/y")).await.unwrap();
    assert_eq!(
        other.seen()[0].at - start,
        Duration::from_secs(3),
        "B waited out the pause A was told"
    );
    first.await.unwrap().unwrap();
    let retried = throttled.seen()[1].at - start;
    assert!(retried >= Duration::from_secs(3), "{retried:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lease_of_five_makes_a_fifth_of_the_round_trips() {
    for (lease, most) in [(1, 2_000), (5, 400)] {
        let store = Arc::new(MemoryStore::new());
        let limit = RateLimitSettings::builder()
            .per_second(5000.0)
            .burst(50)
            .lease(lease)
            .build()
            .unwrap();
        let script = Scripted::new([Step::status(200)]);
        let client = ResilienceLayer::new(policy().with_rate_limit_store(limit, store.clone()))
            .layer(script.clone());
        // 1,000 calls a second for 2 s.
        let mut calls = Vec::new();
        for _ in 0..2000 {
            calls.push(tokio::spawn(
                client.clone().oneshot(get("http://api.example/")),
            ));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(script.calls(), 2000);
        let trips = store.round_trips();
        assert!(
            trips <= most,
            "lease {lease}: {trips} round trips for 2,000 turns"
        );
        assert!(trips >= most / 2, "lease {lease}: {trips} round trips");
    }
}

#[derive(Default)]
struct Backends(Mutex<Vec<(bool, Instant)>>);

impl Listener for Backends {
    fn rate_limit_backend(&self, event: &RateLimitBackend<'_>) {
        assert_eq!(event.key(), "rebound");
        assert_eq!(event.error().is_some(), !event.shared());
        self.0
            .lock()
            .unwrap()
            .push((event.shared(), Instant::now()));
    }
}

struct Shared(Arc<Backends>);

impl Listener for Shared {
    fn rate_limit_backend(&self, event: &RateLimitBackend<'_>) {
        self.0.rate_limit_backend(event);
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_changes_nothing_but_where_turns_come_from() {
    let store = Arc::new(MemoryStore::new());
    let backends = Arc::new(Backends::default());
    let limit = RateLimitSettings::builder()
        .per_second(100.0)
        .fallback_per_second(50.0)
        .build()
        .unwrap();
    let script = Scripted::new([Step::status(200)]);
    let policy = policy()
        .with_rate_limit_store(limit, store.clone())
        .with_listener(Shared(Arc::clone(&backends)));
    let layer = ResilienceLayer::new(policy);
    let client = layer.clone().layer(script.clone());

    let start = Instant::now();
    let mut trips_while_down = 0;
    // 20 calls a second for 9 s; the store is down from 3 s to 6 s.
    for i in 0..180 {
        let at = start + Duration::from_millis(50 * i);
        tokio::time::sleep_until(at).await;
        if i == 60 {
            store.set_unreachable(true);
        }
        if i == 120 {
            trips_while_down = store.round_trips();
            store.set_unreachable(false);
        }
        let response = client.clone().oneshot(get("http://api.example/")).await;
        assert_eq!(response.unwrap().status(), 200, "call {i}");
    }
    assert_eq!(script.calls(), 180, "every call went, whatever the store");
    let changes = backends.0.lock().unwrap().clone();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(!changes[0].0 && changes[0].1 - start == Duration::from_secs(3));
    assert!(changes[1].0, "back to the store");
    let back_after = changes[1].1 - (start + Duration::from_secs(6));
    assert!(back_after <= STORE_RETRY, "{back_after:?}");
    // While down, the store is tried once a second, not once a call.
    assert!(trips_while_down <= 60 + 4, "{trips_while_down}");
}

#[test]
fn the_file_says_it_and_routes_cannot() {
    let policy = Policy::from_toml_str(
        "[rate_limit]\nenabled = true\nper_second = 200\nburst = 20\nscope = \"policy\"\nwait = false\nlease = 5\n",
    )
    .unwrap();
    let limit = policy.rate_limit();
    assert!(limit.enabled());
    assert_eq!(
        (
            limit.per_second(),
            limit.burst(),
            limit.scope(),
            limit.wait(),
            limit.lease()
        ),
        (200.0, 20, LimitScope::Policy, false, 5)
    );
    assert_eq!(limit.fallback_per_second(), 200.0);

    let error =
        Policy::from_toml_str("[rate_limit]\nenabled = true\nper_second = 0\n").unwrap_err();
    assert!(error.to_string().contains("<string>:3:14"), "{error}");
    let error = Policy::from_toml_str("[rate_limit]\nbackend = \"redis\"\n").unwrap_err();
    assert!(error.to_string().contains("redis_url"), "{error}");
    let error =
        Policy::from_toml_str("[rate_limit]\nbackend = \"redis\"\nredis_url = \"http://x\"\n")
            .unwrap_err();
    assert!(error.to_string().contains("<string>:3:13"), "{error}");
    let error = Policy::from_toml_str(
        "[[routes]]\npath_prefix = \"/a\"\n[routes.rate_limit]\nenabled = true\n",
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("cannot set rate_limit"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_layer_alone_limits_a_hand_made_stack() {
    use tower_rebound::rate_limit::RateLimitLayer;

    let script = Scripted::new([
        Step::with_header(429, "Retry-After", "2"),
        Step::status(200),
    ]);
    let policy = policy();
    let limit = RateLimitSettings::builder()
        .per_second(10.0)
        .burst(2)
        .wait(false)
        .build()
        .unwrap();
    let layer = RateLimitLayer::new(limit);
    let client = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .layer(policy.classify_layer())
        .service(script.clone());
    // The first answer is a 429 that pauses the host for 2 s.
    let error = client
        .clone()
        .oneshot(get("http://api.example/"))
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(429));
    let paused = client
        .clone()
        .oneshot(get("http://api.example/"))
        .await
        .unwrap_err();
    assert_eq!(paused.kind(), ErrorKind::RateLimited);
    assert_eq!(paused.retry_after(), Some(Duration::from_secs(2)));
    tokio::time::advance(Duration::from_secs(2)).await;
    // The burst came back meanwhile: two at once, then none.
    client
        .clone()
        .oneshot(get("http://api.example/"))
        .await
        .unwrap();
    client
        .clone()
        .oneshot(get("http://api.example/"))
        .await
        .unwrap();
    let limited = client
        .clone()
        .oneshot(get("http://api.example/"))
        .await
        .unwrap_err();
    assert_eq!(limited.kind(), ErrorKind::RateLimited);
    assert_eq!(script.calls(), 3);
    assert_eq!(
        layer.fallbacks(),
        (0, 0),
        "a local limit has no store to lose"
    );
}

/// Round trips to a [`SilentStore`]: started, and in flight now and at most.
#[derive(Default)]
struct Trips {
    started: AtomicUsize,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

/// A store that never answers, as Redis behind a socket that accepts and
/// says nothing: every round trip hangs until the limiter gives up on it.
#[derive(Default)]
struct SilentStore(Arc<Trips>);

/// One round trip in flight, until its future is dropped.
struct InFlight(Arc<Trips>);

impl InFlight {
    fn start(trips: &Arc<Trips>) -> InFlight {
        trips.started.fetch_add(1, Ordering::SeqCst);
        let now = trips.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        trips.most.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(trips))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Store for SilentStore {
    fn acquire(&self, _: &str, _: Acquire) -> StoreFuture<Grant> {
        let trips = Arc::clone(&self.0);
        Box::pin(async move {
            let _trip = InFlight::start(&trips);
            std::future::pending().await
        })
    }

    fn pause(&self, _: &str, _: Duration) -> StoreFuture<()> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_store_never_queues_calls() {
    let redis_timeout = Duration::from_millis(50);
    let trips = Arc::new(Trips::default());
    let limit = RateLimitSettings::builder()
        .per_second(100_000.0)
        .burst(1_000)
        .redis_timeout(redis_timeout)
        .build()
        .unwrap();
    let script = Scripted::new([Step::status(200)]);
    let store = Arc::new(SilentStore(Arc::clone(&trips)));
    let client =
        ResilienceLayer::new(policy().with_rate_limit_store(limit, store)).layer(script.clone());
    let start = Instant::now();
    let call = |client: tower_rebound::Resilience<Scripted>| async move {
        let started = Instant::now();
        let result = client.oneshot(get("http://api.example/")).await;
        (result.map(|r| r.status()), started, started.elapsed())
    };

    let mut calls = Vec::new();
    // 300 calls at once, then 2,000 a second for 2.5 s: the store is tried
    // again every STORE_RETRY, while calls keep coming.
    for _ in 0..300 {
        calls.push(tokio::spawn(call(client.clone())));
    }
    for ms in 0..2_500u64 {
        tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
        for _ in 0..2 {
            calls.push(tokio::spawn(call(client.clone())));
        }
    }
    let mut slowest = Duration::ZERO;
    // Once the store is known down, only the attempt that tries it again
    // waits; the others take local turns at once.
    let mut waited_later = 0;
    for call in calls {
        let (status, started, took) = call.await.unwrap();
        assert_eq!(status.unwrap(), 200, "no call fails because of the store");
        slowest = slowest.max(took);
        if started >= start + redis_timeout && took > Duration::ZERO {
            waited_later += 1;
        }
    }
    assert_eq!(script.calls(), 5_300, "no call is lost");
    assert_eq!(
        trips.most.load(Ordering::SeqCst),
        1,
        "one round trip at a time"
    );
    assert!(
        slowest <= redis_timeout + Duration::from_millis(1),
        "the slowest call waited {slowest:?}, more than redis_timeout"
    );
    let started = trips.started.load(Ordering::SeqCst);
    let elapsed = start.elapsed();
    assert!(
        waited_later < started,
        "{waited_later} calls after the first round trip waited, with {started} round trips"
    );
    assert!(
        started as u128 <= 1 + elapsed.as_millis() / STORE_RETRY.as_millis(),
        "{started} round trips in {elapsed:?}: one, then one per STORE_RETRY"
    );
}

/// An answer with `headers`.
fn answer(status: u16, headers: &[(&'static str, &str)]) -> Step {
    Step::Respond {
        status,
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        body: Bytes::new(),
    }
}

type Client = tower::util::BoxCloneSyncService<
    Request<Full<Bytes>>,
    http::Response<Full<Bytes>>,
    tower_rebound::Error,
>;

/// The two ways to stack the limit, assembled and by hand, each over a
/// client of its own that follows `steps`.
fn limited_stacks(
    steps: &[Step],
    limit: RateLimitSettings,
) -> Vec<(&'static str, Scripted, Client)> {
    use tower_rebound::rate_limit::RateLimitLayer;
    let policy = Policy::from_toml_str("[retry]\nmax_attempts = 1\n").unwrap();
    let (a, b) = (Scripted::new(steps.to_vec()), Scripted::new(steps.to_vec()));
    let assembled =
        ResilienceLayer::new(policy.clone().with_rate_limit(limit.clone())).layer(a.clone());
    let by_hand = tower::ServiceBuilder::new()
        .layer(RateLimitLayer::new(limit))
        .layer(policy.classify_layer())
        .service(b.clone());
    vec![
        ("assembled", a, Client::new(assembled)),
        ("by hand", b, Client::new(by_hand)),
    ]
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_says_its_quota_is_spent_pauses_the_key_before_any_429() {
    let s = Duration::from_secs;
    // (name, the first answer, the pause the next call sees)
    let cases: [(&str, Step, Option<Duration>); 6] = [
        (
            "github: a 200 with the last unit spent",
            answer(
                200,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "3")],
            ),
            Some(s(3)),
        ),
        (
            "github: the primary limit's 403",
            answer(
                403,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "4")],
            ),
            Some(s(4)),
        ),
        (
            "the IETF draft's field",
            answer(200, &[("ratelimit", "\"default\";r=0;t=2")]),
            Some(s(2)),
        ),
        (
            "RateLimit-Remaining: 0 and its reset",
            answer(
                200,
                &[("ratelimit-remaining", "0"), ("ratelimit-reset", "5")],
            ),
            Some(s(5)),
        ),
        (
            "units left: no pause",
            answer(
                200,
                &[("x-ratelimit-remaining", "12"), ("x-ratelimit-reset", "3")],
            ),
            None,
        ),
        (
            "a field item that leaves r out says nothing on a success",
            answer(200, &[("ratelimit", "\"default\";t=30")]),
            None,
        ),
    ];
    let limit = || limit().wait(false).build().unwrap();
    for (name, first, pause) in cases {
        for (stack, _, client) in limited_stacks(&[first, Step::status(200)], limit()) {
            let host = format!("http://{}.example/", stack.replace(' ', "-"));
            let _ = client.clone().oneshot(get(&host)).await;
            let next = client.clone().oneshot(get(&host)).await;
            match (pause, next) {
                (None, Ok(_)) => {}
                (Some(pause), Err(error)) => {
                    assert_eq!(
                        error.kind(),
                        ErrorKind::RateLimited,
                        "{name}, {stack}: {error}"
                    );
                    assert_eq!(error.retry_after(), Some(pause), "{name}, {stack}");
                }
                (pause, next) => {
                    panic!("{name}, {stack}: expected a pause of {pause:?}, got {next:?}")
                }
            }
            // Past the pause, the key takes turns again.
            tokio::time::advance(s(6)).await;
            client.clone().oneshot(get(&host)).await.unwrap();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_call_is_sent_at_the_quota_s_reset_and_pace_off_sends_it_at_once() {
    for pace in [true, false] {
        let steps = [
            answer(
                200,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "3")],
            ),
            Step::status(200),
        ];
        let limit = limit().pace(pace).build().unwrap();
        for (stack, script, client) in limited_stacks(&steps, limit) {
            let host = format!("http://{stack}-{pace}.example/").replace(' ', "-");
            client.clone().oneshot(get(&host)).await.unwrap();
            let start = Instant::now();
            client.clone().oneshot(get(&host)).await.unwrap();
            let waited = script.seen().last().unwrap().at - start;
            let expected = if pace {
                Duration::from_secs(3)
            } else {
                Duration::ZERO
            };
            assert_eq!(waited, expected, "pace = {pace}, {stack}");
        }
    }
    // The key is written in a file too.
    let policy = Policy::from_toml_str("[rate_limit]\npace = false\n").unwrap();
    assert!(!policy.rate_limit().pace());
}
