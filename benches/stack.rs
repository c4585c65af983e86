//! What the rebound stack costs on top of the client it wraps.
//!
//! Each benchmark builds a request, calls the service and polls the response
//! future once; the test clients answer at once, so what is measured is the
//! layers themselves, not I/O. The baselines run in the same process: the bare
//! client, and tower's own `Retry` with a policy that never retries (which
//! still clones each request, as any retry must). The run ends with a table of
//! ratios.
//!
//! ```text
//! cargo bench --bench stack
//! ```
//!
//! Timings on a shared machine wander by a tenth from run to run. For a
//! figure that does not, count instructions: `STACK_LOOP=NAME` makes the bench
//! binary run 200,000 calls of one service (`bare`, `tower_retry`,
//! `classify`, `breaker`, `retry`, `resilience`) and exit, for
//! `valgrind --tool=callgrind`:
//!
//! ```text
//! cargo bench --bench stack --no-run   # prints the binary's path
//! STACK_LOOP=resilience valgrind --tool=callgrind target/release/deps/stack-HASH
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::Criterion;
use http::Request;
use http_body_util::Full;
use rebound::breaker::CircuitBreakerLayer;
use rebound::classify::ClassifyLayer;
use rebound::retry::RetryLayer;
use rebound::trace::TraceLayer;
use rebound::{Policy, ResilienceLayer};
use rebound_testkit::Answer;
use std::hint::black_box;
use tower::{Layer, Service};

const GROUP: &str = "stack";

/// One call, polled to completion at once; returns whether it succeeded.
fn call_once<S>(service: &mut S) -> bool
where
    S: Service<Request<Full<Bytes>>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    let request = Request::get(http::Uri::from_static(URL))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(result) => black_box(result).is_ok(),
        Poll::Pending => unreachable!("the test clients answer at once"),
    }
}

/// tower's own retry layer with a policy that never retries but, like any
/// retry policy, clones each request in case it must: the baseline the
/// rebound stack is held to.
#[derive(Clone)]
struct NeverRetry;

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for NeverRetry {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _request: &mut Request<Full<Bytes>>,
        _result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, request: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut copy = Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

const URL: &str = "http://api.example/devices/1";

const NOT_FOUND: &str = r#"[{"code":"ResourceNotFound","cause":"Resource not found","message":"Requested endpoint is not valid.","moreInfoUrl":"https://docs.connio.com/v3/error/resourcenotfound"}]"#;

fn benches(c: &mut Criterion) {
    let policy = Policy::preset("connio").unwrap();
    let mut group = c.benchmark_group(GROUP);

    let mut bare = Answer::new(200, "{}");
    group.bench_function("bare_200", |b| b.iter(|| call_once(&mut bare)));

    let mut tower_retry = tower::retry::RetryLayer::new(NeverRetry).layer(Answer::new(200, "{}"));
    group.bench_function("tower_retry_200", |b| {
        b.iter(|| call_once(&mut tower_retry))
    });

    let mut stacked = ResilienceLayer::new(policy.clone()).layer(Answer::new(200, "{}"));
    group.bench_function("resilience_200", |b| b.iter(|| call_once(&mut stacked)));

    let mut retry = TraceLayer::new(&policy).layer(
        RetryLayer::new(&policy).layer(ClassifyLayer::new(&policy).layer(Answer::new(200, "{}"))),
    );
    group.bench_function("trace_retry_classify_200", |b| {
        b.iter(|| call_once(&mut retry))
    });

    let mut classify = ClassifyLayer::new(&policy).layer(Answer::new(200, "{}"));
    group.bench_function("classify_200", |b| b.iter(|| call_once(&mut classify)));

    let breaker = CircuitBreakerLayer::new(&policy);
    let mut closed = breaker.layer(ClassifyLayer::new(&policy).layer(Answer::new(200, "{}")));
    group.bench_function("breaker_closed_200", |b| b.iter(|| call_once(&mut closed)));

    let breaker = CircuitBreakerLayer::new(&policy);
    breaker.handle().force_open(URL);
    let mut open = breaker.layer(ClassifyLayer::new(&policy).layer(Answer::new(200, "{}")));
    group.bench_function("breaker_open_rejected", |b| b.iter(|| call_once(&mut open)));

    let stack = ResilienceLayer::new(policy.clone());
    stack.breakers().force_open(URL);
    let mut stack_open = stack.layer(Answer::new(200, "{}"));
    group.bench_function("resilience_open_rejected", |b| {
        b.iter(|| call_once(&mut stack_open))
    });

    let mut bare_404 = Answer::new(404, NOT_FOUND);
    group.bench_function("bare_404", |b| b.iter(|| call_once(&mut bare_404)));

    let mut stacked_404 = ResilienceLayer::new(policy).layer(Answer::new(404, NOT_FOUND));
    group.bench_function("resilience_404_parsed", |b| {
        b.iter(|| call_once(&mut stacked_404))
    });
    group.finish();
}

/// The mean of a benchmark of this run, from criterion's saved estimates.
fn mean_ns(name: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // target/release/deps/stack-HASH
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })?;
    let path = target
        .join("criterion")
        .join(GROUP)
        .join(name)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn print_ratios() {
    println!("\nratios, same run:");
    for (name, baseline) in [
        ("tower_retry_200", "bare_200"),
        ("resilience_200", "bare_200"),
        ("resilience_200", "tower_retry_200"),
        ("trace_retry_classify_200", "tower_retry_200"),
        ("classify_200", "bare_200"),
        ("breaker_closed_200", "bare_200"),
        ("breaker_closed_200", "classify_200"),
        ("breaker_open_rejected", "bare_200"),
        ("breaker_open_rejected", "breaker_closed_200"),
        ("resilience_open_rejected", "resilience_200"),
        ("resilience_404_parsed", "bare_404"),
    ] {
        match (mean_ns(name), mean_ns(baseline)) {
            (Some(t), Some(b)) => {
                println!(
                    "  {name:<24} {t:>9.1} ns  {baseline:<9} {b:>7.1} ns  ratio {:.2}x",
                    t / b
                )
            }
            _ => println!("  {name}: no estimate saved (was it filtered out?)"),
        }
    }
}

/// Runs 200,000 calls of one service, for instruction counts under callgrind.
fn run_loop(name: &str) {
    fn spin<S: Service<Request<Full<Bytes>>>>(mut service: S) {
        for _ in 0..200_000 {
            call_once(&mut service);
        }
    }
    let policy = Policy::preset("connio").unwrap();
    let answer = || Answer::new(200, "{}");
    match name {
        "bare" => spin(answer()),
        "tower_retry" => spin(tower::retry::RetryLayer::new(NeverRetry).layer(answer())),
        "classify" => spin(ClassifyLayer::new(&policy).layer(answer())),
        "retry" => {
            spin(RetryLayer::new(&policy).layer(ClassifyLayer::new(&policy).layer(answer())))
        }
        "breaker" => spin(
            CircuitBreakerLayer::new(&policy).layer(ClassifyLayer::new(&policy).layer(answer())),
        ),
        "resilience" => spin(ResilienceLayer::new(policy).layer(answer())),
        other => eprintln!("unknown STACK_LOOP {other:?}"),
    }
}

fn main() {
    if let Ok(name) = std::env::var("STACK_LOOP") {
        run_loop(&name);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    print_ratios();
}
