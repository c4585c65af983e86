//! One client shared by threads: does each thread's throughput hold when a
//! second thread calls through the same stack (the same breakers, budget and
//! settings)?
//!
//! ```text
//! cargo bench --bench threads
//! ```
//!
//! Each thread makes calls through its own clone of one `Resilience` service
//! (clones share everything a policy shares), on the ready path, for a fixed
//! time; the run prints calls per second per thread with 1 and 2 threads, and
//! their ratio. Every write to memory all threads share costs here: atomic
//! reference counts, the breaker's lock and counters, the retry budget.
//! The machine's own noise matters as much: the bare client is measured the
//! same way, for comparison.
//!
//! On a machine busy with other work the two threads often do not run at
//! once, and wall time then says more of the machine than of the stack: so
//! the run also prints calls per second of each thread's own CPU time
//! (Linux's `/proc/thread-self/schedstat`; wall time elsewhere). Waiting
//! for a cache line another core writes is CPU time; waiting for a core is
//! not.

use std::future::Future;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, Service};
use tower_rebound::breaker::BreakerSettings;
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::Answer;

fn call_once<S: Service<Request<Full<Bytes>>>>(service: &mut S) {
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    let request = Request::get(http::Uri::from_static("http://api.example/devices/1"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(result) => drop(std::hint::black_box(result)),
        Poll::Pending => unreachable!("the test client answers at once"),
    }
}

/// The time this thread has run on a CPU, where Linux says it.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Calls per second per thread, with `threads` threads sharing `service`:
/// of wall time, and of each thread's own CPU time.
fn per_thread<S>(service: &S, threads: usize, run: Duration) -> (f64, f64)
where
    S: Service<Request<Full<Bytes>>> + Clone + Send,
{
    let barrier = Barrier::new(threads);
    let counts: Vec<(u64, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut service = service.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    // Tokio's timer is not touched on the ready path, but the
                    // stack expects a runtime context.
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .unwrap();
                    let _entered = rt.enter();
                    barrier.wait();
                    let started = Instant::now();
                    let cpu = cpu_time();
                    let mut calls = 0u64;
                    while started.elapsed() < run {
                        for _ in 0..1000 {
                            call_once(&mut service);
                        }
                        calls += 1000;
                    }
                    let busy = match (cpu, cpu_time()) {
                        (Some(before), Some(after)) => after.saturating_sub(before),
                        _ => started.elapsed(),
                    };
                    (calls, busy)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let calls = counts.iter().map(|(calls, _)| calls).sum::<u64>() as f64;
    let busy: f64 = counts.iter().map(|(_, busy)| busy.as_secs_f64()).sum();
    (
        calls / threads as f64 / run.as_secs_f64(),
        calls / busy.max(f64::MIN_POSITIVE),
    )
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let run = if quick {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(3)
    };
    let rounds = if quick { 1 } else { 3 };
    let stack =
        ResilienceLayer::new(Policy::preset("connio").unwrap()).layer(Answer::new(200, "{}"));
    let no_breaker = ResilienceLayer::new(
        Policy::preset("connio")
            .unwrap()
            .with_breaker(BreakerSettings::builder().enabled(false).build().unwrap()),
    )
    .layer(Answer::new(200, "{}"));
    let bare = Answer::new(200, "{}");
    println!(
        "{:<12} {:>14} {:>14} {:>8} {:>14} {:>14} {:>8}",
        "client", "1 thread /s", "2 threads /s", "ratio", "1 /cpu-s", "2 /cpu-s", "ratio"
    );
    for round in 0..rounds {
        for (name, one, two) in [
            ("bare", per_thread(&bare, 1, run), per_thread(&bare, 2, run)),
            (
                "rebound",
                per_thread(&stack, 1, run),
                per_thread(&stack, 2, run),
            ),
            (
                "no breaker",
                per_thread(&no_breaker, 1, run),
                per_thread(&no_breaker, 2, run),
            ),
        ] {
            let ((one, one_cpu), (two, two_cpu)) = (one, two);
            println!(
                "{:<12} {one:>14.0} {two:>14.0} {:>7.2}x {one_cpu:>14.0} {two_cpu:>14.0} {:>7.2}x  (round {})",
                name,
                two / one,
                two_cpu / one_cpu,
                round + 1
            );
        }
    }
}
