//! Soak tests: many calls through one `ResilienceLayer`, shared by many tasks
//! on a multi-thread runtime, against a local server that fails 10% of the
//! time and throttles some. Every call must end in one outcome, every count
//! must agree with the server's, and memory must not grow.
//!
//! 10,000 calls run in the ordinary test suite; the 100,000-call soak, with a
//! throughput comparison against the bare client, is ignored by default:
//!
//! ```text
//! cargo test --release --test soak -- --ignored --nocapture
//! ```

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::{get, hyper_client};
use tower::{Layer, ServiceExt};
use tower_rebound::{CallInfo, Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, api_error, respond};

const CALLS: u64 = 100_000;
const TASKS: u64 = 64;

/// Resident memory, from /proc.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// A server that fails 10% of requests with 500 and throttles 2% with 429.
async fn flaky_server() -> (TestServer, Arc<AtomicU64>) {
    let counter = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&counter);
    let server = TestServer::start(move |_| {
        let n = seen.fetch_add(1, Ordering::Relaxed);
        async move {
            // A fixed pattern in place of randomness, spread out (37 is prime
            // to 100): 10 in every 100 fail, 2 are throttled.
            match n * 37 % 100 {
                0..=9 => api_error(500, &[("InternalError", "Try again")]),
                10..=11 => {
                    let mut response = api_error(429, &[("TooManyRequests", "Slow down")]);
                    response
                        .headers_mut()
                        .insert("retry-after", "0".parse().unwrap());
                    response
                }
                _ => respond(200, "{}"),
            }
        }
    })
    .await;
    (server, counter)
}

async fn run_calls<S>(client: S, url: String, calls: u64) -> (BTreeMap<&'static str, u64>, u64)
where
    S: tower::Service<
            http::Request<http_body_util::Full<bytes::Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = tower_rebound::Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut attempts = 0u64;
            for _ in 0..calls / TASKS + u64::from(t < calls % TASKS) {
                match client.clone().oneshot(get(&url)).await {
                    Ok(response) => {
                        attempts += u64::from(CallInfo::of(&response).attempts());
                        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                        *outcomes.entry("success").or_default() += 1;
                    }
                    Err(e) => {
                        attempts += u64::from(e.attempts());
                        *outcomes.entry(e.kind().as_str()).or_default() += 1;
                    }
                }
            }
            (outcomes, attempts)
        }));
    }
    let mut outcomes = BTreeMap::new();
    let mut attempts = 0;
    for task in tasks {
        let (o, a) = task.await.unwrap();
        for (k, v) in o {
            *outcomes.entry(k).or_default() += v;
        }
        attempts += a;
    }
    (outcomes, attempts)
}

/// How far resident memory may grow over a soak, after its warm-up: the
/// figure the README states.
const MEMORY_BOUND_KIB: u64 = 4 * 1024;

/// What a soak measured, once its assertions held.
struct Soak {
    server: TestServer,
    url: String,
    elapsed: std::time::Duration,
    attempts: u64,
    outcomes: BTreeMap<&'static str, u64>,
    rss_before: u64,
    rss_after: u64,
}

/// `calls` calls after `warm_up` more, with every count checked against the
/// server's and resident memory bounded by [`MEMORY_BOUND_KIB`].
async fn soak(calls: u64, warm_up: u64) -> Soak {
    let (server, _) = flaky_server().await;
    let url = server.url("/v3/devices");
    let policy = Policy::from_toml_str(
        "[classify]\nsuccess = [200]\nretryable = [429, 500]\n\
         [retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n",
    )
    .unwrap();
    let layer = ResilienceLayer::new(policy.clone());
    let breakers = layer.breakers();
    let client = layer.layer(hyper_client());

    // Warm up: connections, pools, allocator.
    run_calls(client.clone(), url.clone(), warm_up).await;
    let requests_before = server.requests() as u64;
    let budget = std::sync::Arc::clone(layer.runtime().budget());
    let (granted_before, refused_before) = (budget.granted(), budget.refused());
    let admitted_before = breakers
        .snapshots()
        .iter()
        .map(|s| s.counters.admitted)
        .sum::<u64>();
    let rss_before = rss_kib();

    let started = Instant::now();
    let (outcomes, attempts) = run_calls(client.clone(), url.clone(), calls).await;
    let elapsed = started.elapsed();
    let rss_after = rss_kib();

    let total: u64 = outcomes.values().sum();
    assert_eq!(
        total, calls,
        "every call ended in exactly one outcome: {outcomes:?}"
    );
    let requests = server.requests() as u64 - requests_before;
    assert_eq!(
        attempts, requests,
        "attempts reported = requests the server saw"
    );
    let admitted = breakers
        .snapshots()
        .iter()
        .map(|s| s.counters.admitted)
        .sum::<u64>()
        - admitted_before;
    assert_eq!(admitted, requests, "the breaker counted every attempt");
    // Every attempt after a call's first was a retry the budget granted, and
    // every budget_exhausted outcome one it refused.
    assert_eq!(budget.granted() - granted_before, requests - calls);
    assert_eq!(
        budget.refused() - refused_before,
        outcomes.get("budget_exhausted").copied().unwrap_or(0)
    );
    assert!(
        outcomes.get("success").copied().unwrap_or(0) as f64 >= calls as f64 * 0.99,
        "{outcomes:?}"
    );
    assert!(rss_before > 0, "resident memory is readable in /proc");
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < MEMORY_BOUND_KIB,
        "memory grew by {growth} KiB: {rss_before} -> {rss_after}"
    );
    Soak {
        server,
        url,
        elapsed,
        attempts,
        outcomes,
        rss_before,
        rss_after,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_add_up_and_leak_nothing() {
    let run = soak(10_000, 2_000).await;
    println!(
        "soak: 10000 calls in {:.2?}, {} attempts, {:?}; memory {} -> {} KiB",
        run.elapsed, run.attempts, run.outcomes, run.rss_before, run.rss_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak test: minutes of traffic; run with --ignored"]
async fn a_hundred_thousand_calls_add_up_and_leak_nothing() {
    let Soak {
        server,
        url,
        elapsed,
        attempts,
        outcomes,
        rss_before,
        rss_after,
    } = soak(CALLS, 10_000).await;
    let _server = server;

    // The bare client, same calls, same server.
    let bare = hyper_client();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let bare = bare.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..CALLS / TASKS {
                let response = bare.clone().oneshot(get(&url)).await.unwrap();
                let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let bare_elapsed = started.elapsed();

    let rate = CALLS as f64 / elapsed.as_secs_f64();
    let bare_rate = (CALLS / TASKS * TASKS) as f64 / bare_elapsed.as_secs_f64();
    println!(
        "soak: {CALLS} calls in {elapsed:.2?} ({rate:.0} calls/s, {attempts} attempts, {outcomes:?}); \
         bare client {bare_rate:.0} calls/s (one attempt each); rebound/bare {:.2}x of the time per call; \
         memory {rss_before} -> {rss_after} KiB",
        bare_rate / rate
    );
}
