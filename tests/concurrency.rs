//! The concurrency limit on paused time, against a client whose answers
//! take a while, through the assembled stack and a stack of the standalone
//! layers: a bulkhead holds the requests in flight to its limit, the queue
//! waits within its bounds, a refused call is `overloaded` and not sent, and
//! the adaptive limit follows the host's latency.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_rebound::concurrency::ConcurrencySettings;
use tower_rebound::{Error, ErrorKind, Outcome, Policy, ResilienceLayer};

type Client = BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Error>;

/// A host with `workers` that each answer one request in `service_time`,
/// first come first served; the requests beyond them queue there, so the
/// more it holds, the longer each waits. Counts the requests it holds.
#[derive(Clone)]
struct Host {
    service_time: Duration,
    state: Arc<HostState>,
}

struct HostState {
    held: AtomicU32,
    peak: AtomicU32,
    received: AtomicU32,
    /// When each worker is next free.
    free_at: Mutex<BinaryHeap<Reverse<Instant>>>,
}

impl Host {
    fn new(workers: u32, service_time: Duration) -> Host {
        let now = Instant::now();
        Host {
            service_time,
            state: Arc::new(HostState {
                held: AtomicU32::new(0),
                peak: AtomicU32::new(0),
                received: AtomicU32::new(0),
                free_at: Mutex::new((0..workers).map(|_| Reverse(now)).collect()),
            }),
        }
    }

    fn peak(&self) -> u32 {
        self.state.peak.load(Ordering::SeqCst)
    }

    fn received(&self) -> u32 {
        self.state.received.load(Ordering::SeqCst)
    }
}

impl Service<Request<Full<Bytes>>> for Host {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let held = state.held.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak.fetch_max(held, Ordering::SeqCst);
        state.received.fetch_add(1, Ordering::SeqCst);
        let done = {
            let mut free_at = state.free_at.lock().unwrap();
            let Reverse(free) = free_at.pop().expect("a worker");
            let done = free.max(Instant::now()) + self.service_time;
            free_at.push(Reverse(done));
            done
        };
        Box::pin(async move {
            tokio::time::sleep_until(done).await;
            state.held.fetch_sub(1, Ordering::SeqCst);
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
    }
}

fn policy(concurrency: ConcurrencySettings) -> Policy {
    Policy::from_toml_str(
        "[retry]\nmax_attempts = 1\n[timeouts]\nattempt = \"30s\"\ntotal = \"60s\"\n",
    )
    .unwrap()
    .with_concurrency(concurrency)
}

fn stacks(policy: &Policy, host: &Host) -> Vec<(&'static str, Client)> {
    let assembled = ResilienceLayer::new(policy.clone()).layer(host.clone());
    let by_hand = ServiceBuilder::new()
        .layer(policy.trace_layer())
        .layer(policy.polling_layer())
        .layer(policy.retry_layer())
        .layer(policy.rate_limit_layer())
        .layer(policy.concurrency_layer())
        .layer(policy.breaker_layer())
        .layer(policy.classify_layer())
        .service(host.clone());
    vec![
        ("assembled", Client::new(assembled)),
        ("by hand", Client::new(by_hand)),
    ]
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://api.example/slow")
        .body(Full::default())
        .unwrap()
}

/// Starts `n` calls at once; returns how each ended and when.
async fn burst(client: &Client, n: usize) -> Vec<(Result<(), ErrorKind>, Duration)> {
    let start = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let result = client.oneshot(get()).await;
                (result.map(|_| ()).map_err(|e| e.kind()), start.elapsed())
            })
        })
        .collect();
    let mut ended = Vec::new();
    for call in calls {
        ended.push(call.await.unwrap());
    }
    ended
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_sends_no_more_than_its_limit_and_refuses_the_rest() {
    let limit = ConcurrencySettings::builder()
        .max_in_flight(4)
        .build()
        .unwrap();
    for (stack, _) in stacks(&policy(limit.clone()), &Host::new(100, Duration::ZERO)) {
        let host = Host::new(100, Duration::from_secs(1));
        let client = stacks(&policy(limit.clone()), &host)
            .into_iter()
            .find(|(s, _)| *s == stack)
            .unwrap()
            .1;
        let ended = burst(&client, 10).await;
        let ok = ended.iter().filter(|(r, _)| r.is_ok()).count();
        let refused: Vec<_> = ended.iter().filter(|(r, _)| r.is_err()).collect();
        assert_eq!(ok, 4, "{stack}");
        assert_eq!(host.peak(), 4, "{stack}");
        assert_eq!(host.received(), 4, "{stack}: the refused were not sent");
        for (result, at) in &refused {
            assert_eq!(*result, Err(ErrorKind::Overloaded), "{stack}");
            assert_eq!(*at, Duration::ZERO, "{stack}: refused at once");
        }
        assert_eq!(Outcome::from(ErrorKind::Overloaded).as_str(), "overloaded");
        // The slots came back: the next burst gets four again.
        let again = burst(&client, 4).await;
        assert!(again.iter().all(|(r, _)| r.is_ok()), "{stack}: {again:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn queued_calls_wait_their_turn_within_the_queue_s_bounds() {
    let limit = ConcurrencySettings::builder()
        .max_in_flight(4)
        .queue(5)
        .queue_timeout(Duration::from_millis(2500))
        .build()
        .unwrap();
    for stack in ["assembled", "by hand"] {
        let host = Host::new(100, Duration::from_secs(1));
        let client = stacks(&policy(limit.clone()), &host)
            .into_iter()
            .find(|(s, _)| *s == stack)
            .unwrap()
            .1;
        let mut ended = burst(&client, 12).await;
        ended.sort_by_key(|(_, at)| *at);
        let s = Duration::from_secs;
        let ok_at: Vec<Duration> = ended
            .iter()
            .filter(|(r, _)| r.is_ok())
            .map(|(_, at)| *at)
            .collect();
        // Four at once, then four more as they finish; the ninth would get
        // its slot at 2 s and answer at 3 s, within its 2.5 s queue wait.
        assert_eq!(
            ok_at,
            [s(1), s(1), s(1), s(1), s(2), s(2), s(2), s(2), s(3)],
            "{stack}"
        );
        let refused: Vec<Duration> = ended
            .iter()
            .filter(|(r, _)| *r == Err(ErrorKind::Overloaded))
            .map(|(_, at)| *at)
            .collect();
        // Three found the queue full at once.
        assert_eq!(refused, [s(0), s(0), s(0)], "{stack}");
        assert_eq!(host.peak(), 4, "{stack}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_gives_up_at_its_queue_timeout_or_its_deadline() {
    let limit = ConcurrencySettings::builder()
        .max_in_flight(1)
        .queue(10)
        .queue_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let with = |timeouts: &str| {
        Policy::from_toml_str(&format!(
            "[retry]\nmax_attempts = 1\n[timeouts]\n{timeouts}"
        ))
        .unwrap()
        .with_concurrency(limit.clone())
    };
    // One call holds the only slot for 10 s, under a policy that lets it.
    let long = with("attempt = \"30s\"\ntotal = \"60s\"\n");
    for (timeouts, expected) in [
        ("total = \"60s\"\n", Duration::from_millis(500)),
        (
            "attempt = \"200ms\"\ntotal = \"300ms\"\n",
            Duration::from_millis(300),
        ),
    ] {
        let short = with(timeouts);
        let host = Host::new(1, Duration::from_secs(10));
        // Each pair shares one limit: the runtime's, or the layer's.
        let assembled = ResilienceLayer::new(short.clone());
        let holder = ResilienceLayer::with_runtime(long.clone(), assembled.runtime());
        let shared = short.concurrency_layer();
        let by_hand = |policy: &Policy| {
            Client::new(
                ServiceBuilder::new()
                    .layer(policy.retry_layer())
                    .layer(shared.clone())
                    .layer(policy.classify_layer())
                    .service(host.clone()),
            )
        };
        let pairs = [
            (
                "assembled",
                Client::new(holder.layer(host.clone())),
                Client::new(assembled.layer(host.clone())),
            ),
            ("by hand", by_hand(&long), by_hand(&short)),
        ];
        for (stack, holder, client) in pairs {
            let held = tokio::spawn(holder.oneshot(get()));
            tokio::task::yield_now().await;
            let start = Instant::now();
            let error = client.oneshot(get()).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Overloaded, "{stack}: {error}");
            assert_eq!(error.attempts(), 0, "{stack}");
            assert_eq!(start.elapsed(), expected, "{stack}: {timeouts}");
            held.abort();
            let _ = held.await;
        }
    }
}

/// Offers a host of 20 workers at 10 ms each (2,000 requests a second at
/// most) 4,000 calls a second for 5 s; returns the calls that succeeded,
/// their p99 latency and the most requests the host held.
async fn overload(limit: ConcurrencySettings) -> (u32, Duration, u32) {
    let host = Host::new(20, Duration::from_millis(10));
    let client = Client::new(ResilienceLayer::new(policy(limit)).layer(host.clone()));
    let start = Instant::now();
    let calls: Vec<_> = (0..20_000u32)
        .map(|i| {
            let at = start + Duration::from_micros(250) * i;
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let sent = Instant::now();
                let result = client.oneshot(get()).await;
                (result.is_ok(), sent.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for call in calls {
        let (succeeded, latency) = call.await.unwrap();
        if succeeded {
            latencies.push(latency);
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "{} succeeded, p99 {p99:?}, the host held at most {}",
        latencies.len(),
        host.peak()
    );
    (latencies.len() as u32, p99, host.peak())
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_limit_keeps_latency_near_the_host_s_own_under_overload() {
    let adaptive = ConcurrencySettings::builder()
        .adaptive(true)
        .max_in_flight(1000)
        .initial(10)
        .build()
        .unwrap();
    let (ok, p99, peak) = overload(adaptive).await;
    // Within twice the host's own 10 ms, and at least 90% of its capacity
    // (the calls it could answer in the 5 s they were offered).
    assert!(p99 <= Duration::from_millis(20), "p99 {p99:?}");
    assert!(ok >= 9_000, "{ok} of the 10,000 the host can answer in 5 s");
    assert!(peak < 60, "the host held {peak}");
    // Without a limit every call is sent: the host's queue grows by 2,000
    // a second, and so does every call's wait.
    let off = ConcurrencySettings::builder()
        .enabled(false)
        .build()
        .unwrap();
    let (ok, unlimited, peak) = overload(off).await;
    assert_eq!(ok, 20_000, "no timeout cut them");
    assert!(unlimited >= 40 * p99, "p99 {unlimited:?} against {p99:?}");
    assert!(peak > 5_000, "the host held {peak}");
}

/// What a listener heard of the adaptive limit.
#[derive(Default, Clone)]
struct Moves(Arc<Mutex<Vec<(String, u32, u32)>>>);

impl tower_rebound::events::Listener for Moves {
    fn concurrency_limit(&self, event: &tower_rebound::events::ConcurrencyLimitChanged<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((event.key().to_owned(), event.from(), event.to()));
    }
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn the_adaptive_limit_s_moves_are_events_and_a_gauge() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let moves = Moves::default();
    let limit = ConcurrencySettings::builder()
        .adaptive(true)
        .initial(5)
        .build()
        .unwrap();
    let policy = policy(limit)
        .with_listener(moves.clone())
        .with_listener(tower_rebound::events::MetricsListener::new());
    let host = Host::new(20, Duration::from_millis(10));
    let layer = ResilienceLayer::new(policy);
    let runtime = layer.runtime().clone();
    let client = Client::new(layer.layer(host.clone()));
    // Busy enough to use every slot, under the host's 20 workers: the
    // limit grows.
    let start = Instant::now();
    let calls: Vec<_> = (0..600u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start + Duration::from_micros(500) * i).await;
                let _ = client.oneshot(get()).await;
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let (_, now) = runtime
        .concurrency()
        .in_flight(&"http://api.example/".parse().unwrap())
        .unwrap();
    let moves = moves.0.lock().unwrap().clone();
    assert!(!moves.is_empty(), "the limit moved");
    assert_eq!(moves[0].1, 5, "from where it started");
    assert!(
        moves.iter().all(|(key, ..)| key == "http://api.example:80"),
        "{moves:?}"
    );
    assert!(
        moves.windows(2).all(|w| w[0].2 == w[1].1),
        "each move from the last"
    );
    assert_eq!(
        moves.last().unwrap().2,
        now,
        "the last move is the limit now"
    );
    assert!(now > 5, "it grew: {now}");
    let gauge = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| key.key().name() == tower_rebound::events::instrument::CONCURRENCY_LIMIT)
        .map(|(key, _, _, value)| {
            (
                key.key()
                    .labels()
                    .map(|l| l.value().to_owned())
                    .collect::<Vec<_>>(),
                value,
            )
        });
    match gauge {
        Some((labels, metrics_util::debugging::DebugValue::Gauge(value))) => {
            assert_eq!(labels, ["http://api.example:80"]);
            assert_eq!(value.0, f64::from(now));
        }
        other => panic!("no gauge: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn one_limit_for_the_policy_holds_every_host_together() {
    use tower_rebound::concurrency::ConcurrencyScope;
    for (scope, sent) in [(ConcurrencyScope::Policy, 4), (ConcurrencyScope::Host, 8)] {
        let limit = ConcurrencySettings::builder()
            .max_in_flight(4)
            .scope(scope)
            .build()
            .unwrap();
        let host = Host::new(100, Duration::from_secs(1));
        let client = Client::new(ResilienceLayer::new(policy(limit)).layer(host.clone()));
        let calls: Vec<_> = (0..10)
            .map(|i| {
                let url = format!("http://host-{}.example/", i % 2);
                let request = Request::get(url).body(Full::default()).unwrap();
                tokio::spawn(client.clone().oneshot(request))
            })
            .collect();
        let mut ok = 0;
        for call in calls {
            if call.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!((ok, host.received()), (sent, sent as u32), "{scope:?}");
    }
}
