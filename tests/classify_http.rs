//! The classify layer against a real HTTP server on 127.0.0.1, through
//! hyper-util's client: the seed API's status table, each error-body format,
//! huge error bodies and a server that hangs up.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Counting, get, hyper_client};
use http::StatusCode;
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};
use tower_rebound::{ErrorKind, Policy, ResilienceLayer};
use tower_rebound_testkit::{Body, TestServer, api_error, respond};

/// Answers `/status/CODE` like the seed API would.
async fn seed_server() -> TestServer {
    TestServer::start(|request| async move {
        let code: u16 = request
            .uri()
            .path()
            .trim_start_matches("/status/")
            .parse()
            .unwrap_or(400);
        match code {
            200 => respond(200, r#"{"id":"_dev_1"}"#),
            202 => respond(202, ""),
            429 => {
                let mut response = api_error(429, &[("TooManyRequests", "Rate limit exceeded")]);
                response
                    .headers_mut()
                    .insert("retry-after", "7".parse().unwrap());
                response
            }
            409 => api_error(
                409,
                &[
                    ("DuplicateName", "Name is taken"),
                    ("Conflict", "Domain constraint"),
                ],
            ),
            code => api_error(code, &[(&format!("Code{code}"), "Something failed")]),
        }
    })
    .await
}

/// Classification alone: one attempt per call, as classify sees it.
fn classify_only(policy: &Policy) -> tower_rebound::classify::Classify<common::HyperClient> {
    policy.classify_layer().layer(hyper_client())
}

#[tokio::test]
async fn each_status_of_the_seed_table() {
    let server = seed_server().await;
    let client = classify_only(&Policy::preset("connio").unwrap());

    let response = client
        .clone()
        .oneshot(get(&server.url("/status/200")))
        .await
        .expect("200 is a success");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"id":"_dev_1"}"#);

    let accepted = client
        .clone()
        .oneshot(get(&server.url("/status/202")))
        .await
        .expect("202 passes through for the poll layer");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    let expected = [
        (400, ErrorKind::Terminal),
        (401, ErrorKind::Terminal),
        (403, ErrorKind::Terminal),
        (404, ErrorKind::Terminal),
        (406, ErrorKind::Terminal),
        (429, ErrorKind::RetriesExhausted),
        (500, ErrorKind::RetriesExhausted),
        (503, ErrorKind::Unsupported),
    ];
    for (code, kind) in expected {
        let error = client
            .clone()
            .oneshot(get(&server.url(&format!("/status/{code}"))))
            .await
            .expect_err("an error status");
        assert_eq!(error.kind(), kind, "{code}: {error}");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(code));
        assert_eq!(error.attempts(), 1);
        let codes: Vec<&str> = error.error_codes().collect();
        if code == 429 {
            assert_eq!(codes, ["TooManyRequests"]);
            assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
            assert!(error.is_throttling());
        } else {
            assert_eq!(codes, [format!("Code{code}").as_str()]);
            assert_eq!(error.retry_after(), None);
        }
        let api = &error.api_errors()[0];
        assert_eq!(
            api.cause(),
            Some(if code == 429 {
                "Rate limit exceeded"
            } else {
                "Something failed"
            })
        );
        assert!(
            api.more_info_url()
                .unwrap()
                .starts_with("https://docs.connio.com/v3/error/")
        );
        assert!(!error.body_truncated());
    }

    let conflict = client
        .clone()
        .oneshot(get(&server.url("/status/409")))
        .await
        .unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Terminal);
    assert_eq!(
        conflict.error_codes().collect::<Vec<_>>(),
        ["DuplicateName", "Conflict"]
    );
    assert!(
        conflict.to_string().contains("DuplicateName, Conflict"),
        "{conflict}"
    );
}

#[tokio::test]
async fn a_huge_error_body_is_read_only_up_to_the_cap() {
    const SERVED: u64 = 256 << 20;
    let produced = Arc::new(AtomicU64::new(0));
    let server = {
        let produced = Arc::clone(&produced);
        TestServer::start(move |_| {
            let produced = Arc::clone(&produced);
            async move {
                let chunk: &'static [u8] = &[b'x'; 16 * 1024];
                respond(500, Body::counted(chunk, SERVED, produced))
            }
        })
        .await
    };

    let read = Arc::new(AtomicU64::new(0));
    let counting_client = {
        let read = Arc::clone(&read);
        hyper_client().map_response(move |response: http::Response<hyper::body::Incoming>| {
            response.map(|body| Counting::new(body, Arc::clone(&read)))
        })
    };
    let policy = Policy::from_toml_str(
        "[classify]\nretryable = [500]\n[error_body]\nmax_bytes = \"64KiB\"\n",
    )
    .unwrap();
    let client = policy.classify_layer().layer(counting_client);

    let error = client.oneshot(get(&server.url("/big"))).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RetriesExhausted);
    assert_eq!(error.body().len(), 64 * 1024);
    assert!(error.body_truncated());
    assert!(error.api_errors().is_empty());

    // classify pulls frames until the cap is reached: at most one frame past it
    // (hyper's frames are bounded by its read buffer, well under 1 MiB).
    let pulled = read.load(Ordering::Relaxed);
    assert!(pulled >= 64 * 1024, "pulled {pulled}");
    assert!(
        pulled < 64 * 1024 + (1 << 20),
        "pulled {pulled} bytes for a 64 KiB cap"
    );
    // The connection was dropped, not drained: the server could only push what
    // the socket buffers held, a small part of what it had to send. Once the
    // server has dropped its body (its copy of the counter goes with it),
    // nothing more is produced.
    common::eventually("the server dropped the body", || {
        Arc::strong_count(&produced) == 2
    })
    .await;
    let sent = produced.load(Ordering::Relaxed);
    eprintln!("pulled {pulled} bytes, server produced {sent} of {SERVED}");
    assert!(
        sent < SERVED / 4,
        "the server produced {sent} of {SERVED} bytes"
    );
}

#[tokio::test]
async fn a_huge_success_body_streams_through_uncut() {
    const SERVED: u64 = 8 << 20;
    let server = TestServer::start(|_| async {
        let chunk: &'static [u8] = &[b'y'; 64 * 1024];
        respond(
            200,
            Body::counted(chunk, SERVED, Arc::new(AtomicU64::new(0))),
        )
    })
    .await;
    let client = ResilienceLayer::new(Policy::preset("connio").unwrap()).layer(hyper_client());
    let response = client.oneshot(get(&server.url("/export"))).await.unwrap();
    let mut body = response.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        total += frame.unwrap().into_data().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(total, SERVED);
}

#[tokio::test]
async fn a_server_that_hangs_up_is_a_transport_error_and_the_client_goes_on() {
    let hangs_up = TestServer::start_raw(|stream| async move { drop(stream) }).await;
    let healthy = seed_server().await;
    let client = classify_only(&Policy::preset("connio").unwrap());

    let error = client
        .clone()
        .oneshot(get(&hangs_up.url("/devices")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(error.status(), None);
    let source = std::error::Error::source(&error).expect("the client's error is kept");
    assert!(
        source
            .downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some(),
        "source is hyper-util's error: {source:?}"
    );
    assert!(hangs_up.connections() >= 1);

    let response = client.oneshot(get(&healthy.url("/status/200"))).await;
    assert!(response.is_ok(), "the same client works afterwards");
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = classify_only(&Policy::preset("connio").unwrap());
    let error = client
        .oneshot(get(&format!("http://127.0.0.1:{port}/")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    let source = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<hyper_util::client::legacy::Error>())
        .expect("hyper-util's error");
    assert!(source.is_connect(), "{source:?}");
}

#[tokio::test]
async fn each_error_body_format_over_http_and_a_cut_array_of_errors() {
    // Twenty errors in an envelope, far more than the cap below lets in.
    let many: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"code":"E{i}","message":"error number {i}"}}"#))
        .collect();
    let enveloped: &'static str = format!(r#"{{"errors":[{}]}}"#, many.join(",")).leak();
    let server = TestServer::start(move |request| async move {
        let (content_type, body) = match request.uri().path() {
            "/problem" => (
                "application/problem+json; charset=utf-8",
                r#"{"type":"https://errors.example/gone","title":"Gone","status":410,"instance":"/x/1"}"#,
            ),
            "/problem-as-json" => (
                "application/json",
                r#"{"type":"https://errors.example/gone","title":"Gone","status":410}"#,
            ),
            "/connio" => ("application/json", r#"[{"code":"ResourceNotFound"}]"#),
            _ => ("application/json", enveloped),
        };
        let mut response = respond(410, body);
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        response
    })
    .await;
    // 150 bytes end inside the fourth error: `..."error number 2"},{"code":"E3","me`.
    let policy = Policy::from_toml_str(
        "[classify]\nterminal = [410]\n[error_body]\nmax_bytes = 150\n\
         [error_body.fields]\nerrors = \"/errors\"\ncode = \"/code\"\nmessage = \"/message\"\n",
    )
    .unwrap();
    let call = |path: &'static str| {
        let client = classify_only(&policy);
        let url = server.url(path);
        async move { client.oneshot(get(&url)).await.unwrap_err() }
    };

    let problem = call("/problem").await;
    assert_eq!(
        problem.error_codes().collect::<Vec<_>>(),
        ["https://errors.example/gone"]
    );
    let api = &problem.api_errors()[0];
    assert_eq!(api.cause(), Some("Gone"));
    assert_eq!(api.members().unwrap()["instance"], "/x/1");
    assert!(!problem.body_truncated());

    // Served as plain JSON, a problem detail is neither connio's shape nor
    // under the pointers: raw bytes only.
    let plain = call("/problem-as-json").await;
    assert!(plain.api_errors().is_empty());
    assert!(!plain.body().is_empty());

    let connio = call("/connio").await;
    assert_eq!(
        connio.error_codes().collect::<Vec<_>>(),
        ["ResourceNotFound"]
    );

    let cut = call("/errors").await;
    assert!(cut.body_truncated());
    assert_eq!(cut.body().len(), 150);
    assert_eq!(cut.error_codes().collect::<Vec<_>>(), ["E0", "E1", "E2"]);
    assert_eq!(cut.api_errors()[2].message(), Some("error number 2"));
}

/// A rule on the words of the error message: GitHub says a secondary rate
/// limit only in its `message`. Both stacks read it and retry.
#[tokio::test]
async fn a_rule_on_the_error_message_decides_the_class() {
    let policy = Policy::from_toml_str(
        "[error_body]\nformat = \"fields\"\n[[error_body.fields]]\nmessage = \"/message\"\n\
         [[classify.rules]]\nname = \"secondary-limit\"\nstatus = 403\n\
         message = \"secondary rate limit\"\nclass = \"retryable\"\n\
         [retry]\nmax_attempts = 3\n[retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n",
    )
    .unwrap();
    for stack in common::STACKS {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&seen);
        let server = TestServer::start(move |request| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let path = request.uri().path().to_owned();
            async move {
                match (path.as_str(), n) {
                    ("/secondary", 0) => respond(
                        403,
                        r#"{"message":"You have exceeded a Secondary Rate Limit. Please wait."}"#,
                    ),
                    ("/secondary", _) => respond(200, "{}"),
                    _ => respond(
                        403,
                        r#"{"message":"Resource not accessible by integration"}"#,
                    ),
                }
            }
        })
        .await;
        let response = common::send(stack, &policy, get(&server.url("/secondary")))
            .await
            .unwrap_or_else(|e| panic!("{stack:?}: {e}"));
        assert_eq!(
            tower_rebound::CallInfo::of(&response).attempts(),
            2,
            "{stack:?}"
        );
        // Other words: the status's class, terminal.
        seen.store(0, Ordering::SeqCst);
        let error = common::send(stack, &policy, get(&server.url("/denied")))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Terminal, "{stack:?}: {error}");
        assert_eq!(error.attempts(), 1, "{stack:?}");
    }
}
