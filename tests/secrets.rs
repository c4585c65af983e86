//! A canary token in `Authorization`, `Cookie`, a configured secret header and
//! a query string never appears in any span, event, `Debug` or `Display` that
//! rebound produces, whatever the call goes through.

mod common;

use bytes::Bytes;
use common::Captured;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::{Scripted, Step};
use tracing_subscriber::fmt::format::FmtSpan;

const CANARY: &str = "c4n4ry-5ecr3t";

fn request(method: &str, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("https://api.example{path}?token={CANARY}&page=2"))
        .header("authorization", format!("Bearer {CANARY}"))
        .header("cookie", format!("session={CANARY}"))
        .header("x-api-key", CANARY)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(
            "{{\"secret\":\"{CANARY}\"}}"
        ))))
        .unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_canary_never_appears() {
    let captured = Captured::default();
    let _guard = captured.install(FmtSpan::FULL);

    let policy = Policy::from_toml_str(
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [500]\nterminal = [404]\n\
         [circuit_breaker]\nconsecutive_failures = 3\nfailure_rate = 0\n\
         [poll]\ninterval = \"10ms\"\nsecret_headers = [\"X-Api-Key\"]\n\
         allowed_origins = [\"https://ops.example\"]\n",
    )
    .unwrap();
    let layer = ResilienceLayer::with_seed(policy.clone(), 1);
    let script = Scripted::new([
        // A write answered 202 whose status URL carries the canary, on an
        // allowed other origin (credentials are dropped there).
        Step::with_header(
            202,
            "location",
            format!("https://ops.example/ops/1?token={CANARY}"),
        ),
        Step::status(500),
        Step::Respond {
            status: 200,
            headers: vec![("set-cookie", format!("session={CANARY}"))],
            body: Bytes::new(),
        },
        // A terminal error, a retried one, then an outage that opens the breaker.
        Step::Respond {
            status: 404,
            headers: vec![],
            body: Bytes::from_static(br#"[{"code":"ResourceNotFound"}]"#),
        },
        Step::status(500),
        Step::Fail(std::io::ErrorKind::ConnectionReset),
    ]);
    let client = layer.layer(script.clone());

    let mut shown = Vec::new();
    client
        .clone()
        .oneshot(request("POST", "/v3/data"))
        .await
        .unwrap();
    for path in [
        "/v3/devices/1",
        "/v3/devices/2",
        "/v3/devices/3",
        "/v3/devices/4",
    ] {
        match client.clone().oneshot(request("GET", path)).await {
            Ok(response) => shown.push(format!("{:?}", response.status())),
            Err(error) => {
                shown.push(error.to_string());
                shown.push(format!("{error:?}"));
                shown.push(format!("{error:#?}"));
            }
        }
    }
    shown.push(format!("{policy:?}"));
    shown.push(format!("{layer:?}"));
    shown.push(format!("{:?}", layer.breakers()));
    shown.push(format!("{:?}", layer.breakers().snapshots()));

    // The polls to the other origin got no credentials either.
    let to_ops: Vec<_> = script
        .seen()
        .into_iter()
        .filter(|s| s.uri.host() == Some("ops.example"))
        .collect();
    assert!(!to_ops.is_empty());
    for seen in &to_ops {
        for name in ["authorization", "cookie", "x-api-key"] {
            assert!(
                !seen.headers.contains_key(name),
                "{name} went to another origin"
            );
        }
    }

    let logs = captured.text();
    assert!(
        logs.contains("rebound.call"),
        "the subscriber saw the calls:\n{logs}"
    );
    assert!(logs.contains("rebound.poll") && logs.contains("rebound.attempt"));
    assert!(logs.contains("circuit breaker state changed"));
    assert!(!logs.contains(CANARY), "a secret reached tracing:\n{logs}");
    for text in &shown {
        assert!(
            !text.contains(CANARY),
            "a secret reached Debug or Display: {text}"
        );
    }
}

/// Every text a user may print of an error: Display, Debug, and each error
/// of its source chain.
#[cfg(all(feature = "hyper", feature = "reqwest-middleware"))]
fn every_text(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut texts = vec![
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ];
    let mut next = error.source();
    while let Some(source) = next {
        texts.push(source.to_string());
        texts.push(format!("{source:?}"));
        next = source.source();
    }
    texts
}

/// The same canary through the real clients over real HTTP on 127.0.0.1, in
/// the query string and the userinfo of the URL, for a server error, a
/// connection refused and a connection reset: the clients' own errors print
/// their URLs, and rebound keeps those errors as sources.
#[cfg(all(feature = "hyper", feature = "reqwest-middleware"))]
#[tokio::test(flavor = "current_thread")]
async fn the_canary_never_appears_through_the_real_clients() {
    use tokio::io::AsyncReadExt;
    use tower_rebound::client::ReboundMiddleware;
    use tower_rebound_testkit::{TestServer, respond};

    let captured = Captured::default();
    let _guard = captured.install(FmtSpan::FULL);

    // A server error whose headers echo the URL it was sent.
    let failing = TestServer::start(|request| async move {
        let mut response = respond(500, "[{\"code\":\"E\"}]");
        response
            .headers_mut()
            .insert("x-echo", request.uri().to_string().parse().unwrap());
        response
    })
    .await;
    let reset = TestServer::start_raw(|mut stream| async move {
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer).await;
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(std::time::Duration::ZERO));
        drop(stream);
    })
    .await;
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let urls: Vec<String> = [failing.addr(), reset.addr(), refused]
        .iter()
        .map(|addr| format!("http://user:{CANARY}@{addr}/v3/devices?token={CANARY}&page=2"))
        .collect();

    let policy = Policy::from_toml_str(
        // Nine calls in a row that all fail, each retried once: a fixed
        // bucket of 20, as a new process's scaled one holds only what its
        // first calls justify.
        "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 2\n\
         [retry.backoff]\ninitial = \"1ms\"\n[retry.budget]\nmin_reserve = 20\n\
         [circuit_breaker]\nenabled = false\n",
    )
    .unwrap();
    let hyper = tower_rebound::client::hyper(policy.clone());
    let reqwest = tower_rebound::client::reqwest(reqwest::Client::new(), policy.clone());
    let middleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReboundMiddleware::new(policy.clone()))
        .build();

    let mut shown = Vec::new();
    let mut kinds = Vec::new();
    for url in &urls {
        let request = || {
            Request::get(url.as_str())
                .header("authorization", format!("Bearer {CANARY}"))
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let error = hyper.clone().oneshot(request()).await.unwrap_err();
        kinds.push(error.kind());
        shown.extend(every_text(&error));
        let error = reqwest.clone().oneshot(request()).await.unwrap_err();
        kinds.push(error.kind());
        shown.extend(every_text(&error));
        let error = middleware
            .get(url.as_str())
            .bearer_auth(CANARY)
            .send()
            .await
            .unwrap_err();
        shown.extend(every_text(&error));
        let reqwest_middleware::Error::Middleware(error) = error else {
            panic!("rebound's error: {error:?}");
        };
        kinds.push(error.downcast_ref::<tower_rebound::Error>().unwrap().kind());
    }
    use tower_rebound::ErrorKind::{RetriesExhausted, Transport};
    assert_eq!(
        kinds,
        [
            RetriesExhausted,
            RetriesExhausted,
            RetriesExhausted,
            Transport,
            Transport,
            Transport,
            Transport,
            Transport,
            Transport
        ]
    );
    // The clients' errors still say where the call went, without the secret.
    assert!(
        shown.iter().any(|t| t.contains("/v3/devices")),
        "no error names its URL: {shown:#?}"
    );
    // rebound's own events and the fields of its spans; the clients' own
    // logs are theirs (hyper-util's pool names the authority, userinfo
    // included, at DEBUG and TRACE).
    let logs = captured.text();
    let ours: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(": tower_rebound::"))
        .collect();
    assert!(ours.len() > 20, "{logs}");
    for line in ours {
        assert!(!line.contains(CANARY), "a secret reached tracing: {line}");
    }
    for text in &shown {
        assert!(
            !text.contains(CANARY),
            "a secret reached Debug or Display: {text}"
        );
    }
}
