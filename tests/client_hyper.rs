//! The ready-made hyper-util client against the seed API stand-in.

use http::Request;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_rebound::{ErrorKind, Policy};
use tower_rebound_testkit::seed::SeedApi;

fn get(url: &str) -> Request<Full<bytes::Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

#[tokio::test]
async fn the_ready_made_client_speaks_the_policy() {
    let api = SeedApi::start().await;
    let client = tower_rebound::client::hyper(Policy::preset("connio").unwrap());
    let response = client
        .clone()
        .oneshot(get(&api.url("/v3/devices/_dev_1")))
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"{\"id\":\"_dev_1\""));

    let error = client
        .clone()
        .oneshot(get(&api.url("/v3/devices/_dev_9")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Terminal);
    assert_eq!(
        error.error_codes().collect::<Vec<_>>(),
        ["ResourceNotFound"]
    );

    // hyper-util says when connecting failed: the request was never sent, so
    // even a POST is retried.
    let post = Request::post(api.down_url("/v3/devices"))
        .body(Full::default())
        .unwrap();
    let error = client.oneshot(post).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(error.is_connect());
    assert_eq!(error.attempts(), 4);
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn the_https_client_speaks_http_too_and_refuses_a_bad_handshake() {
    let api = SeedApi::start().await;
    let client = tower_rebound::client::hyper_https(Policy::preset("connio").unwrap()).unwrap();
    let response = client
        .clone()
        .oneshot(get(&api.url("/v3/devices/_dev_1")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // An https request to a server that only speaks http fails its handshake.
    let https = api.url("/v3/devices/_dev_1").replace("http://", "https://");
    let error = client.oneshot(get(&https)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(std::error::Error::source(&error).is_some());
}
