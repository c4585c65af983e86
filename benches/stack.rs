//! What the rebound stack costs on top of the client it wraps.
//!
//! Each benchmark builds a request, calls the service and polls the response
//! future once; the test clients answer at once, so what is measured is the
//! layers themselves, not I/O. The bare client runs in the same process as the
//! baseline, and the run ends with a table of ratios against it.
//!
//! ```text
//! cargo bench --bench stack
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::Criterion;
use http::Request;
use http_body_util::Full;
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
    let request = Request::get(http::Uri::from_static("http://api.example/devices/1"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(result) => black_box(result).is_ok(),
        Poll::Pending => unreachable!("the test clients answer at once"),
    }
}

const NOT_FOUND: &str = r#"[{"code":"ResourceNotFound","cause":"Resource not found","message":"Requested endpoint is not valid.","moreInfoUrl":"https://docs.connio.com/v3/error/resourcenotfound"}]"#;

fn benches(c: &mut Criterion) {
    let policy = Policy::preset("connio").unwrap();
    let mut group = c.benchmark_group(GROUP);

    let mut bare = Answer::new(200, "{}");
    group.bench_function("bare_200", |b| b.iter(|| call_once(&mut bare)));

    let mut stacked = ResilienceLayer::new(policy.clone()).layer(Answer::new(200, "{}"));
    group.bench_function("resilience_200", |b| b.iter(|| call_once(&mut stacked)));

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
    println!("\nratios against the bare client, same run:");
    for (name, baseline) in [
        ("resilience_200", "bare_200"),
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

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    print_ratios();
}
