//! rebound as a reqwest-middleware middleware, against the seed API stand-in.
#![cfg(feature = "reqwest-middleware")]

use tower_rebound::client::ReboundMiddleware;
use tower_rebound::{CallInfo, ErrorKind, Policy};
use tower_rebound_testkit::seed::SeedApi;

fn client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReboundMiddleware::new(Policy::preset("connio").unwrap()))
        .build()
}

fn rebound_error(error: &reqwest_middleware::Error) -> &tower_rebound::Error {
    match error {
        reqwest_middleware::Error::Middleware(e) => e
            .downcast_ref::<tower_rebound::Error>()
            .expect("a rebound error"),
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

fn with_policy(text: &str) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReboundMiddleware::new(Policy::from_toml_str(text).unwrap()))
        .build()
}

/// A request body reqwest does not hold in memory.
fn streaming(text: &'static str) -> reqwest::Body {
    let body = reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from_static(
        text.as_bytes(),
    )));
    assert!(body.as_bytes().is_none(), "the body streams");
    body
}

#[tokio::test]
async fn an_open_breaker_stops_a_streaming_body_before_it_is_sent() {
    let server = tower_rebound_testkit::TestServer::start(|_| async {
        tower_rebound_testkit::respond(500, "[{\"code\":\"Down\"}]")
    })
    .await;
    let client = with_policy(
        "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 1\n\
         [circuit_breaker]\nconsecutive_failures = 2\nopen_for = \"60s\"\n",
    );
    for _ in 0..2 {
        let error = client.get(server.url("/v3/a")).send().await.unwrap_err();
        assert_eq!(rebound_error(&error).kind(), ErrorKind::RetriesExhausted);
    }
    assert_eq!(server.requests(), 2);
    let error = client
        .post(server.url("/v3/a"))
        .body(streaming("{\"v\":1}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(rebound_error(&error).kind(), ErrorKind::CircuitOpen);
    assert_eq!(server.requests(), 2, "the streaming body was not sent");
}

#[tokio::test]
async fn a_streaming_body_goes_through_the_stack_once() {
    let server = tower_rebound_testkit::TestServer::start(|request| async move {
        let status = if request.body().as_ref() == b"{\"v\":1}" {
            500
        } else {
            400
        };
        tower_rebound_testkit::respond(status, "[{\"code\":\"Busy\"}]")
    })
    .await;
    let client = with_policy("[classify]\nretryable = [500]\n[retry]\nmax_attempts = 3\n");
    let error = client
        .post(server.url("/v3/a"))
        .header("idempotency-key", "k-1")
        .body(streaming("{\"v\":1}"))
        .send()
        .await
        .unwrap_err();
    let error = rebound_error(&error);
    // Classified (the code was parsed), not retried, and the error says why.
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.error_codes().collect::<Vec<_>>(), ["Busy"]);
    assert_eq!(error.attempts(), 1);
    assert!(error.to_string().contains("cannot be replayed"), "{error}");
    assert_eq!(server.requests(), 1);

    // The same body held in memory is replayed whole.
    let error = client
        .post(server.url("/v3/a"))
        .header("idempotency-key", "k-2")
        .body("{\"v\":1}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(rebound_error(&error).attempts(), 3);
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn a_per_request_timeout_bounds_every_attempt() {
    // The server never answers; the policy's attempt timeout is 30 s, and
    // reqwest's timeout for this one request is 200 ms.
    let server = tower_rebound_testkit::TestServer::start(|_| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let client = with_policy(
        "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 2\n\
         [retry.backoff]\ninitial = \"1ms\"\n[timeouts]\nattempt = \"30s\"\ntotal = \"60s\"\n",
    );
    let started = std::time::Instant::now();
    let error = client
        .get(server.url("/v3/slow"))
        .timeout(std::time::Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let error = rebound_error(&error);
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(error.attempts(), 2, "both attempts ran: {error:?}");
    // reqwest's own timeout ended each attempt, not rebound's.
    let mut source = std::error::Error::source(error);
    let mut timed_out = false;
    while let Some(e) = source {
        if let Some(reqwest_middleware::Error::Reqwest(e)) =
            e.downcast_ref::<reqwest_middleware::Error>()
        {
            timed_out |= e.is_timeout();
        }
        timed_out |= e
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|e| e.is_timeout());
        source = e.source();
    }
    assert!(timed_out, "reqwest's timeout: {error:?}");
    assert!(
        elapsed >= std::time::Duration::from_millis(400),
        "{elapsed:?}"
    );
    // Far below one attempt timeout of the policy, even on a loaded machine.
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn the_response_keeps_the_url_that_answered() {
    let api = SeedApi::start().await;
    let url = api.url("/v3/flaky/url");
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.url().as_str(), url);
}
