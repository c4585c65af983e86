//! rebound's metrics for Prometheus: calls to the seed API stand-in,
//! misbehaviour included, recorded by `MetricsListener` and served on
//! `/metrics` for a Prometheus to scrape (and `dashboards/rebound.json` to
//! show).
//!
//! ```text
//! cargo run --example prometheus --features metrics            # 60 s
//! cargo run --example prometheus --features metrics -- 600     # 10 minutes
//! ```
//!
//! It serves on 127.0.0.1:9464 (another free port when that one is taken),
//! and stops after the seconds given or on Ctrl-C. A scrape job for it:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: rebound-example
//!     scrape_interval: 5s
//!     static_configs: [{ targets: ["127.0.0.1:9464"] }]
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use tower_rebound::events::MetricsListener;
use tower_rebound::events::instrument::{CALL_DURATION, DURATION_BUCKETS, REQUEST_DURATION};
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::seed::SeedApi;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a number of seconds: {arg:?}"))?,
        None => 60,
    };

    // The recorder first: the listener describes its instruments (units
    // included) to the recorder installed when it is made.
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for name in [REQUEST_DURATION, CALL_DURATION] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), &DURATION_BUCKETS)?;
    }
    let handle = builder.install_recorder()?;
    let policy = Policy::preset("connio")?;
    let policy = policy
        .clone()
        .with_listener(MetricsListener::for_policy(&policy));

    let listener = match TcpListener::bind("127.0.0.1:9464").await {
        Ok(listener) => listener,
        Err(_) => TcpListener::bind("127.0.0.1:0").await?,
    };
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    println!("calling the seed API stand-in for {seconds} s (Ctrl-C stops it)");
    tokio::spawn(serve_metrics(listener, handle.clone()));
    tokio::spawn(async move {
        // Keeps the exporter's histogram buffers small between scrapes.
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            handle.run_upkeep();
        }
    });

    let api = SeedApi::start().await;
    let client =
        ResilienceLayer::new(policy).layer(Client::builder(TokioExecutor::new()).build_http());
    let calls = async {
        for round in 0u64.. {
            let requests = [
                (Method::GET, api.url("/v3/devices/_dev_1")),
                (Method::GET, api.url("/v3/devices/_dev_9")),
                (Method::GET, api.url(&format!("/v3/flaky/{round}"))),
                (Method::GET, api.url(&format!("/v3/throttled/{round}"))),
                (Method::POST, api.url("/v3/exports")),
                (Method::GET, api.overloaded.url("/v3/devices")),
                (Method::GET, api.down_url("/v3/devices")),
            ];
            for (method, url) in requests {
                let request = Request::builder()
                    .method(method)
                    .uri(url)
                    .body(Full::new(Bytes::from_static(b"{}")))?;
                let client = client.clone();
                tokio::spawn(async move {
                    if let Ok(response) = client.oneshot(request).await {
                        let _ = response.into_body().collect().await;
                    }
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok::<_, http::Error>(())
    };
    tokio::select! {
        result = calls => result?,
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("done");
    Ok(())
}

/// Answers every request on `listener` with the metrics in Prometheus's
/// text format.
async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                let body = handle.render();
                async move {
                    let response = Response::builder()
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(body)))
                        .expect("a valid response");
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
