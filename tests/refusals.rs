#![cfg(feature = "metrics")]
//! A retry refused because the method is unsafe is a refusal like the
//! others: on the error, as an event, and in the `rebound.retries.refused`
//! metric. Over real HTTP.

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::hyper_client;
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Layer, ServiceExt};
use tower_rebound::events::instrument::RETRIES_REFUSED;
use tower_rebound::events::{Listener, MetricsListener, Refusal, RetryRefused};
use tower_rebound::{ErrorKind, Policy, ResilienceLayer, RetryRefusal};
use tower_rebound_testkit::{TestServer, api_error};

#[derive(Default, Clone)]
struct Refusals(Arc<Mutex<Vec<(u32, Refusal)>>>);

impl Listener for Refusals {
    fn retry_refused(&self, e: &RetryRefused<'_>) {
        self.0.lock().unwrap().push((e.attempt(), e.refusal()));
    }
}

fn policy(more: &str) -> Policy {
    Policy::from_toml_str(&format!(
        "[retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n{more}"
    ))
    .unwrap()
}

fn post(url: &str, key: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut request = http::Request::post(url);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

#[tokio::test]
async fn a_write_that_may_have_been_processed_is_refused_and_said_so() {
    let server = TestServer::start(|_| async { api_error(500, &[("Oops", "oops")]) }).await;
    let refusals = Refusals::default();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let layer = ResilienceLayer::new(
        policy("")
            .with_listener(refusals.clone())
            .with_listener(MetricsListener::new()),
    );
    let error = layer
        .layer(hyper_client())
        .oneshot(post(&server.url("/write"), None))
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1);
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.retry_refused(), Some(RetryRefusal::UnsafeMethod));
    assert_eq!(
        *refusals.0.lock().unwrap(),
        [(1, RetryRefusal::UnsafeMethod)]
    );
    let refused: Vec<(Vec<(String, String)>, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == RETRIES_REFUSED)
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let DebugValue::Counter(n) = value else {
                panic!("{RETRIES_REFUSED} is not a counter");
            };
            (labels, n)
        })
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]
            .0
            .contains(&("rebound.refusal".to_owned(), "unsafe_method".to_owned())),
        "{refused:?}"
    );
    assert_eq!(refused[0].1, 1);
}

#[tokio::test]
async fn no_refusal_when_no_retry_was_due() {
    let server = TestServer::start(|_| async { api_error(500, &[("Oops", "oops")]) }).await;
    // A write with a key runs out of attempts: nothing was refused.
    let refusals = Refusals::default();
    let layer =
        ResilienceLayer::new(policy("[retry]\nmax_attempts = 2\n").with_listener(refusals.clone()));
    let error = layer
        .layer(hyper_client())
        .oneshot(post(&server.url("/write"), Some("w-1")))
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 2);
    assert_eq!(error.retry_refused(), None);
    // One attempt allowed: the count refused the retry, not the method.
    let layer =
        ResilienceLayer::new(policy("[retry]\nmax_attempts = 1\n").with_listener(refusals.clone()));
    let error = layer
        .layer(hyper_client())
        .oneshot(post(&server.url("/write"), None))
        .await
        .unwrap_err();
    assert_eq!(error.retry_refused(), None);
    assert!(refusals.0.lock().unwrap().is_empty());
}
