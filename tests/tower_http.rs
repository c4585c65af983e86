//! rebound's classifier in tower-http's `TraceLayer`, over real HTTP.
#![cfg(feature = "tower-http")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_http::trace::TraceLayer;
use tower_rebound::Policy;
use tower_rebound::classify::{PolicyClassifier, PolicyFailure, StatusClass};
use tower_rebound_testkit::seed::SeedApi;

#[tokio::test]
async fn trace_layer_reports_rebound_classes() {
    let api = SeedApi::start().await;
    let failures: Arc<Mutex<Vec<PolicyFailure>>> = Arc::default();
    let seen = Arc::clone(&failures);
    let layer = TraceLayer::new(
        PolicyClassifier::new(Policy::preset("connio").unwrap().classify_settings())
            .into_make_classifier(),
    )
    .on_failure(
        move |failure: PolicyFailure, _latency: Duration, _span: &tracing::Span| {
            seen.lock().unwrap().push(failure);
        },
    );
    let client = layer.layer(common::hyper_client());
    for path in [
        "/v3/devices/_dev_1",
        "/v3/devices/_dev_9",
        "/v3/reports/x",
        "/v3/flaky/t",
        "/v3/devices/_dev_1/data",
    ] {
        let request = if path.ends_with("/data") {
            http::Request::post(api.url(path))
                .body(Default::default())
                .unwrap()
        } else {
            common::get(&api.url(path))
        };
        let _ = client.clone().oneshot(request).await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert_eq!(
        failures,
        [
            PolicyFailure::Status(StatusCode::NOT_FOUND, StatusClass::Terminal),
            PolicyFailure::Status(StatusCode::SERVICE_UNAVAILABLE, StatusClass::Unsupported),
            PolicyFailure::Status(StatusCode::INTERNAL_SERVER_ERROR, StatusClass::Retryable),
        ],
        "200 and 202 are not failures under connio"
    );
    assert_eq!(failures[1].to_string(), "unsupported (status 503)");
}
