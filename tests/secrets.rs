//! A canary token in `Authorization`, `Cookie`, a configured secret header and
//! a query string never appears in any span, event, `Debug` or `Display` that
//! rebound produces, whatever the call goes through.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rebound::{Policy, ResilienceLayer};
use rebound_testkit::{Scripted, Step};
use tower::{Layer, ServiceExt};
use tracing_subscriber::fmt::MakeWriter;

const CANARY: &str = "c4n4ry-5ecr3t";

/// Everything the fmt subscriber writes, kept.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

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
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
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
