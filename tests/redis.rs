//! The shared rate limit over a real `redis-server`, in real time: four
//! stacks (four replicas) against one HTTP server that allows 200 requests a
//! second; Redis stopped and started in the middle of a run; a 429 pausing
//! every replica; leases counted on the server; a Redis that accepts and
//! never answers. `scripts/test` installs Redis when it is missing; each
//! test starts its own server, or uses the one `REBOUND_REDIS_URL` names.
//! None is skipped for lack of Redis: they fail, saying how to install it.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tower::{Layer, ServiceExt};
use tower_rebound::events::{Listener, RateLimitBackend};
use tower_rebound::rate_limit::{
    Acquire, Backend, Grant, LimitScope, RateLimitSettings, RedisStore, STORE_RETRY, Store,
    StoreFuture,
};
use tower_rebound::{ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::redis::{RedisServer, SharedRedis, SilentRedis};
use tower_rebound_testkit::{TestServer, respond};

/// A key no other test (or earlier run on the same server) uses.
/// The `redis_timeout` of the tests where Redis is up: a round trip on a
/// loaded 2-core machine can take longer than the default 50 ms, and a
/// fallback the test did not cause would change its counts. A stopped
/// Redis refuses connections at once, whatever this says; only
/// `a_silent_redis_...` waits on the timeout, and sets its own.
const HEALTHY_REDIS: Duration = Duration::from_secs(2);

fn fresh_key(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "rebound-test:{name}:{}:{nanos}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An API that allows `per_second` requests a second (a bucket of
/// `burst`) and answers 429 above it; it counts both.
struct LimitedApi {
    server: TestServer,
    requests: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

async fn limited_api(per_second: f64, burst: f64) -> LimitedApi {
    let requests = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let bucket = Arc::new(Mutex::new((burst, Instant::now())));
    let server = TestServer::start({
        let (requests, refused) = (Arc::clone(&requests), Arc::clone(&refused));
        move |_| {
            requests.fetch_add(1, Ordering::Relaxed);
            let allowed = {
                let mut bucket = bucket.lock().unwrap();
                let now = Instant::now();
                let refill = now.duration_since(bucket.1).as_secs_f64() * per_second;
                bucket.0 = (bucket.0 + refill).min(burst);
                bucket.1 = now;
                if bucket.0 >= 1.0 {
                    bucket.0 -= 1.0;
                    true
                } else {
                    false
                }
            };
            if !allowed {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            async move {
                if allowed {
                    respond(200, "{}")
                } else {
                    respond(429, "[]")
                }
            }
        }
    })
    .await;
    LimitedApi {
        server,
        requests,
        refused,
    }
}

/// The replicas' policy: the `connio` preset (429 retried), waiting for
/// turns at most 3 s, with the shared limit when `limit` is given.
fn replica_policy(limit: Option<&RateLimitSettings>) -> Policy {
    let policy = Policy::preset("connio")
        .unwrap()
        .with_total_timeout(Duration::from_secs(3))
        .unwrap();
    match limit {
        Some(limit) => policy.with_rate_limit(limit.clone()),
        None => policy,
    }
}

/// `replicas` stacks, each its own policy (its own limiter, as separate
/// processes have), each calling `url` at `rate` a second for `run`.
/// Returns the calls that did not succeed, by kind.
async fn run_replicas(
    replicas: usize,
    rate: u32,
    run: Duration,
    url: &str,
    limit: Option<&RateLimitSettings>,
) -> Vec<ErrorKind> {
    let mut tasks = Vec::new();
    for _ in 0..replicas {
        let client = ResilienceLayer::new(replica_policy(limit)).layer(common::hyper_client());
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // A number of calls, not a span of time: a loaded machine makes
            // them late (in bursts), never fewer.
            for _ in 0..(u128::from(rate) * run.as_millis() / 1000) {
                tick.tick().await;
                let call = client.clone().oneshot(common::get(&url));
                calls.push(tokio::spawn(call));
            }
            let mut failed = Vec::new();
            for call in calls {
                if let Err(error) = call.await.unwrap() {
                    failed.push(error.kind());
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        failed.extend(task.await.unwrap());
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_share_one_limit_and_the_api_stops_answering_429() {
    let redis = SharedRedis::get();
    let limit = RateLimitSettings::builder()
        .redis_timeout(HEALTHY_REDIS)
        .per_second(190.0)
        .burst(10)
        .scope(LimitScope::Policy)
        .backend(Backend::Redis {
            url: redis.url().to_owned(),
        })
        .key(fresh_key("four"))
        .fallback_per_second(190.0 / 4.0)
        .build()
        .unwrap();
    let run = Duration::from_secs(10);

    // Without the shared limit: 240 calls a second at an API that allows 200.
    let api = limited_api(200.0, 20.0).await;
    let failed = run_replicas(4, 60, run, &api.server.url("/"), None).await;
    let (requests, refused) = (
        api.requests.load(Ordering::Relaxed),
        api.refused.load(Ordering::Relaxed),
    );
    let share_without = refused as f64 / requests as f64;
    println!(
        "without the shared limit: {requests} requests, {refused} answered 429 ({:.2}%), {} calls failed",
        share_without * 100.0,
        failed.len()
    );
    assert!(
        share_without > 0.05,
        "the unlimited fleet overruns the API: {share_without}"
    );

    // With it.
    let api = limited_api(200.0, 20.0).await;
    let failed = run_replicas(4, 60, run, &api.server.url("/"), Some(&limit)).await;
    let (requests, refused) = (
        api.requests.load(Ordering::Relaxed),
        api.refused.load(Ordering::Relaxed),
    );
    let share_with = refused as f64 / requests as f64;
    println!(
        "with the shared limit: {requests} requests, {refused} answered 429 ({:.2}%), {} calls failed ({} rate_limited)",
        share_with * 100.0,
        failed.len(),
        failed
            .iter()
            .filter(|k| **k == ErrorKind::RateLimited)
            .count()
    );
    assert!(
        share_with <= 0.01,
        "429s with the shared limit: {share_with}"
    );
    // The fleet still got about what the limit allows: 190 a second.
    assert!(requests >= 1500, "{requests} requests in 10 s");
    assert!(
        failed.iter().all(|k| *k == ErrorKind::RateLimited),
        "{failed:?}"
    );
}

#[derive(Default)]
struct Backends(Mutex<Vec<(bool, Instant)>>);

struct Record(Arc<Backends>);

impl Listener for Record {
    fn rate_limit_backend(&self, event: &RateLimitBackend<'_>) {
        self.0
            .0
            .lock()
            .unwrap()
            .push((event.shared(), Instant::now()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_changes_no_outcome_and_is_used_again_when_back() {
    // A server of this test's own: it is stopped and started again.
    let mut redis = RedisServer::start();
    let port = redis.port();
    let api = TestServer::start(|_| async { respond(200, "{}") }).await;
    let backends = Arc::new(Backends::default());
    let limit = RateLimitSettings::builder()
        .redis_timeout(HEALTHY_REDIS)
        .per_second(1000.0)
        .backend(Backend::Redis { url: redis.url() })
        .key(fresh_key("stop"))
        .fallback_per_second(500.0)
        .build()
        .unwrap();
    let policy = Policy::preset("connio")
        .unwrap()
        .with_rate_limit(limit)
        .with_listener(Record(Arc::clone(&backends)));
    let client = ResilienceLayer::new(policy).layer(common::hyper_client());
    let url = api.url("/");

    let calls = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let driver = {
        let (client, calls, stop) = (client.clone(), Arc::clone(&calls), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut failed = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            // Until told to stop: 100 calls a second, one after another.
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Err(error) = client.clone().oneshot(common::get(&url)).await {
                    failed.push(error.to_string());
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
            failed
        })
    };
    let calls_at = |n: u64| {
        let calls = Arc::clone(&calls);
        move || calls.load(Ordering::Relaxed) >= n
    };
    common::eventually("100 calls through Redis", calls_at(100)).await;
    let scripts_before = redis.scripts_run();
    assert!(
        scripts_before >= 100,
        "turns came from Redis: {scripts_before}"
    );

    // Read before the stop: a call in flight may see the connection drop
    // and fall back before `stop` returns.
    let stopped = Instant::now();
    redis.stop();
    let after_stop = calls.load(Ordering::Relaxed);
    common::eventually("100 calls with Redis down", calls_at(after_stop + 100)).await;
    common::eventually("the fallback reported", || {
        backends.0.lock().unwrap().first().is_some_and(|b| !b.0)
    })
    .await;

    let redis = RedisServer::start_on(port);
    let restarted = Instant::now();
    common::eventually("Redis used again", || {
        backends.0.lock().unwrap().get(1).is_some_and(|b| b.0)
    })
    .await;
    let back = backends.0.lock().unwrap()[1].1 - restarted;
    assert!(
        back < Duration::from_secs(5),
        "back on Redis {back:?} after it came back"
    );
    let at_restart = calls.load(Ordering::Relaxed);
    common::eventually("100 calls after", calls_at(at_restart + 100)).await;
    assert!(redis.scripts_run() >= 50, "turns come from Redis again");

    stop.store(true, Ordering::Relaxed);
    let failed = driver.await.unwrap();
    assert!(
        failed.is_empty(),
        "no call failed because of Redis: {failed:?}"
    );
    let changes = backends.0.lock().unwrap().clone();
    assert_eq!(changes.len(), 2, "one fallback, one return: {changes:?}");
    assert!(changes[0].1 >= stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_pauses_every_replica() {
    let redis = SharedRedis::get();
    let refused_once = Arc::new(AtomicU64::new(0));
    let api = TestServer::start({
        let refused_once = Arc::clone(&refused_once);
        move |request| {
            let first =
                request.uri().path() == "/a" && refused_once.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    let mut response = respond(429, "[]");
                    response
                        .headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("2"));
                    response
                } else {
                    respond(200, "{}")
                }
            }
        }
    })
    .await;
    let key = fresh_key("pause");
    let limit = RateLimitSettings::builder()
        .redis_timeout(HEALTHY_REDIS)
        .per_second(100.0)
        .backend(Backend::Redis {
            url: redis.url().to_owned(),
        })
        .key(key.clone())
        .build()
        .unwrap();
    let replica = || {
        ResilienceLayer::new(
            Policy::preset("connio")
                .unwrap()
                .with_rate_limit(limit.clone()),
        )
        .layer(common::hyper_client())
    };
    let (a, b) = (replica(), replica());
    let started = Instant::now();
    let first = tokio::spawn(a.oneshot(common::get(&api.url("/a"))));
    // Replica B calls the same host once A's pause is in Redis.
    let pause_key = format!("{key}:http://127.0.0.1:{}:pause", api.addr().port());
    common::eventually("A's pause in Redis", || {
        redis
            .command(&format!("PTTL {pause_key}"))
            .and_then(|line| line.trim_start_matches(':').parse::<i64>().ok())
            .is_some_and(|ms| ms > 0)
    })
    .await;
    b.oneshot(common::get(&api.url("/b"))).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "B waited out A's pause: {waited:?}"
    );
    first.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_of_five_takes_a_fifth_of_the_round_trips() {
    // A server of this test's own: its script count is this test's alone.
    let redis = RedisServer::start();
    let api = TestServer::start(|_| async { respond(200, "{}") }).await;
    let mut trips = Vec::new();
    for lease in [1, 5] {
        let limit = RateLimitSettings::builder()
            .redis_timeout(HEALTHY_REDIS)
            .per_second(10_000.0)
            .burst(100)
            .backend(Backend::Redis { url: redis.url() })
            .key(fresh_key("lease"))
            .lease(lease)
            .build()
            .unwrap();
        let before = redis.scripts_run();
        let failed =
            run_replicas(1, 1000, Duration::from_secs(1), &api.url("/"), Some(&limit)).await;
        assert!(failed.is_empty(), "{failed:?}");
        trips.push(redis.scripts_run() - before);
    }
    println!(
        "round trips for about 1,000 calls: lease 1 {}, lease 5 {}",
        trips[0], trips[1]
    );
    assert!(trips[0] >= 900, "one per turn: {}", trips[0]);
    assert!(
        trips[1] <= 260,
        "a lease of 5: at most about 200 a second: {}",
        trips[1]
    );
}

/// Round trips of a store: started, in flight now and at most.
#[derive(Default)]
struct Trips {
    started: AtomicU64,
    in_flight: AtomicU64,
    most: AtomicU64,
}

/// A store that counts the round trips of the one it wraps.
struct Counted {
    inner: RedisStore,
    trips: Arc<Trips>,
}

/// One round trip in flight, until its future is dropped.
struct InFlight(Arc<Trips>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Store for Counted {
    fn acquire(&self, key: &str, request: Acquire) -> StoreFuture<Grant> {
        let trips = Arc::clone(&self.trips);
        let trip = self.inner.acquire(key, request);
        Box::pin(async move {
            trips.started.fetch_add(1, Ordering::SeqCst);
            let now = trips.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            trips.most.fetch_max(now, Ordering::SeqCst);
            let _in_flight = InFlight(Arc::clone(&trips));
            trip.await
        })
    }

    fn pause(&self, key: &str, pause: Duration) -> StoreFuture<()> {
        self.inner.pause(key, pause)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_sends_calls_to_the_fallback_without_queueing_them() {
    // Accepts, reads, never answers.
    let silent = SilentRedis::start().await;
    let api = TestServer::start(|_| async { respond(200, "{}") }).await;
    let redis_timeout = Duration::from_millis(50);
    let limit = RateLimitSettings::builder()
        .per_second(100_000.0)
        .burst(1_000)
        .backend(Backend::Redis { url: silent.url() })
        .redis_timeout(redis_timeout)
        .build()
        .unwrap();
    let trips = Arc::new(Trips::default());
    let store = Counted {
        inner: RedisStore::new(&silent.url(), redis_timeout).unwrap(),
        trips: Arc::clone(&trips),
    };
    let policy = Policy::preset("connio")
        .unwrap()
        .with_rate_limit_store(limit, Arc::new(store));
    let client = ResilienceLayer::new(policy).layer(common::hyper_client());
    let url = api.url("/");

    // Three waves of 300 calls at once, one key: the first meets the first
    // round trip, the others the store tried again after STORE_RETRY.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut done = 0;
    for wave in 0..3 {
        if wave > 0 {
            let next = (STORE_RETRY + redis_timeout * 2) * wave;
            tokio::time::sleep_until((started + next).into()).await;
        }
        let calls: Vec<_> = (0..300)
            .map(|_| {
                let call = client.clone().oneshot(common::get(&url));
                tokio::spawn(async move {
                    let at = Instant::now();
                    (call.await.map(|r| r.status()), at.elapsed())
                })
            })
            .collect();
        for call in calls {
            let (status, took) = call.await.unwrap();
            assert_eq!(status.unwrap(), 200, "no call fails because of Redis");
            slowest = slowest.max(took);
            done += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "900 calls against a silent Redis in {elapsed:?}: {} round trips, the slowest call {slowest:?}",
        trips.started.load(Ordering::SeqCst)
    );
    assert_eq!(done, 900, "no call is lost");
    assert_eq!(
        trips.most.load(Ordering::SeqCst),
        1,
        "one round trip at a time"
    );
    // Counts, not times: the store is tried once, then once per
    // STORE_RETRY, not once per waiting call (which took 300 round trips a
    // wave, 50 ms each, one after another).
    let most_trips = 2 + elapsed.as_millis() / STORE_RETRY.as_millis();
    let started_trips = trips.started.load(Ordering::SeqCst);
    assert!(
        u128::from(started_trips) <= most_trips,
        "{started_trips} round trips in {elapsed:?}"
    );
    assert!(silent.accepted() >= 1, "the store did connect");
    // A bound any machine meets: 40 times redis_timeout.
    assert!(
        slowest < redis_timeout * 40,
        "the slowest call took {slowest:?}"
    );
}
