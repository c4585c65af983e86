//! tower-http's `TraceLayer` reporting rebound's classes for a plain client.
//!
//! ```text
//! cargo run --example tower_http --features tower-http
//! ```

use std::time::Duration;

use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Layer, ServiceExt};
use tower_http::trace::TraceLayer;
use tower_rebound::Policy;
use tower_rebound::classify::{PolicyClassifier, PolicyFailure};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = tower_rebound_testkit::seed::SeedApi::start().await;
    let classifier =
        PolicyClassifier::new(Policy::preset("connio")?.classify_settings()).into_make_classifier();
    let trace = TraceLayer::new(classifier).on_failure(
        |failure: PolicyFailure, latency: Duration, _span: &tracing::Span| {
            println!("failed after {latency:?}: {failure}");
        },
    );
    let client =
        trace.layer(Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>());
    for path in [
        "/v3/devices/_dev_1",
        "/v3/devices/_dev_9",
        "/v3/reports/usage",
    ] {
        let response = client
            .clone()
            .oneshot(http::Request::get(api.url(path)).body(Full::default())?)
            .await?;
        println!("{path}: {}", response.status());
    }
    Ok(())
}
