//! rebound as a reqwest-middleware middleware, against the seed API stand-in.
#![cfg(feature = "reqwest-middleware")]

use rebound::client::ReboundMiddleware;
use rebound::{CallInfo, ErrorKind, Policy};
use rebound_testkit::seed::SeedApi;

fn client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReboundMiddleware::new(Policy::preset("connio").unwrap()))
        .build()
}

fn rebound_error(error: &reqwest_middleware::Error) -> &rebound::Error {
    match error {
        reqwest_middleware::Error::Middleware(e) => {
            e.downcast_ref::<rebound::Error>().expect("a rebound error")
        }
        other => panic!("not a middleware error: {other:?}"),
    }
}

#[tokio::test]
async fn the_middleware_applies_the_policy() {
    let api = SeedApi::start().await;
    let client = client();

    let response = client.get(api.url("/v3/flaky/mw")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .extensions()
            .get::<CallInfo>()
            .map(|i| i.attempts()),
        Some(3)
    );
    assert_eq!(response.text().await.unwrap(), r#"{"ok":true}"#);

    let error = client
        .get(api.url("/v3/devices/_dev_9"))
        .send()
        .await
        .unwrap_err();
    let error = rebound_error(&error);
    assert_eq!(error.kind(), ErrorKind::Terminal);
    assert_eq!(
        error.error_codes().collect::<Vec<_>>(),
        ["ResourceNotFound"]
    );

    let response = client
        .post(api.url("/v3/exports"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<CallInfo>().map(|i| i.polls()),
        Some(3)
    );

    let error = client
        .post(api.down_url("/v3/devices"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    let error = rebound_error(&error);
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(
        error.is_connect(),
        "reqwest's connect error is recognised: {error:?}"
    );
    assert_eq!(error.attempts(), 4);
}
