//! reqwest's client in the rebound stack, against the seed API stand-in.
#![cfg(feature = "reqwest")]

use http::Request;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_rebound::{CallInfo, ErrorKind, Policy};
use tower_rebound_testkit::seed::SeedApi;

fn get(url: &str) -> Request<Full<bytes::Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

#[tokio::test]
async fn reqwest_speaks_the_policy() {
    let api = SeedApi::start().await;
    let client =
        tower_rebound::client::reqwest(reqwest::Client::new(), Policy::preset("connio").unwrap());

    let response = client
        .clone()
        .oneshot(get(&api.url("/v3/flaky/r")))
        .await
        .unwrap();
    assert_eq!(CallInfo::of(&response).attempts(), 3);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"ok":true}"#);

    let error = client
        .clone()
        .oneshot(get(&api.url("/v3/devices/_dev_off")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Terminal);
    assert_eq!(error.error_codes().collect::<Vec<_>>(), ["DeviceDisabled"]);

    let write = Request::post(api.url("/v3/exports"))
        .body(Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let response = client.clone().oneshot(write).await.unwrap();
    assert_eq!(CallInfo::of(&response).polls(), 3);

    // reqwest's error is the source, and its word that connecting failed
    // makes even a POST retryable.
    let post = Request::post(api.down_url("/v3/devices"))
        .body(Full::<bytes::Bytes>::default())
        .unwrap();
    let error = client.oneshot(post).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(error.is_connect());
    assert_eq!(error.attempts(), 4);
    let source = std::error::Error::source(&error).unwrap();
    assert!(
        source.downcast_ref::<reqwest::Error>().is_some(),
        "{source:?}"
    );
}
