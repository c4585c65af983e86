//! What the circuit breaker costs per new host: a client that calls many
//! hosts once each (a crawler, a webhook sender) admits a breaker per host,
//! and once `max_hosts` are kept, evicts one for each newcomer.
//!
//! ```text
//! cargo bench --bench hosts
//! ```
//!
//! For each `max_hosts`, the registry is first filled with that many hosts
//! (not timed); then 100,000 hosts never seen before are called once each,
//! every one an eviction. The last column is a call to a host seen before,
//! measured in the same run, for scale.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;
use tower::{Layer, Service};
use tower_rebound::Policy;
use tower_rebound_testkit::Answer;

const NEW_HOSTS: usize = 100_000;

fn call<S>(service: &mut S, uri: Uri)
where
    S: Service<Request<Full<Bytes>>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    let request = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(result) => drop(std::hint::black_box(result)),
        Poll::Pending => unreachable!("the test client answers at once"),
    }
}

fn uris(prefix: &str, n: usize) -> Vec<Uri> {
    (0..n)
        .map(|i| format!("http://{prefix}{i}.example/").parse().unwrap())
        .collect()
}

fn per_call(started: Instant, calls: usize) -> f64 {
    started.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once,
    // small, to check that it works.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if quick {
        &[100]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let new_hosts = if quick { 1_000 } else { NEW_HOSTS };
    println!(
        "{:>10} {:>10} {:>16} {:>16}",
        "max_hosts", "new hosts", "ns per new host", "ns per known"
    );
    for &max_hosts in sizes {
        let policy =
            Policy::from_toml_str(&format!("[circuit_breaker]\nmax_hosts = {max_hosts}\n"))
                .unwrap();
        let layer = policy.breaker_layer();
        let mut service = layer.layer(policy.classify_layer().layer(Answer::new(200, "{}")));
        for uri in uris("old", max_hosts) {
            call(&mut service, uri);
        }
        let fresh = uris("new", new_hosts);
        let started = Instant::now();
        for uri in fresh {
            call(&mut service, uri);
        }
        let new_ns = per_call(started, new_hosts);
        assert_eq!(layer.handle().snapshots().len(), max_hosts);

        let known: Vec<Uri> = uris("new", new_hosts)
            .into_iter()
            .rev()
            .take(max_hosts.min(1000))
            .collect();
        let rounds = new_hosts / known.len();
        let started = Instant::now();
        for _ in 0..rounds {
            for uri in &known {
                call(&mut service, uri.clone());
            }
        }
        let known_ns = per_call(started, rounds * known.len());
        println!("{max_hosts:>10} {new_hosts:>10} {new_ns:>16.0} {known_ns:>16.0}");
    }
}
