//! The call span: OpenTelemetry field names, the outcome and the error codes,
//! and no secret from the request anywhere in what is recorded.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use common::hyper_client;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::{TestServer, api_error, respond};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Fields = BTreeMap<String, String>;

/// Records every span's fields, and every event's, as text.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, (String, Fields)>>>,
    parents: Arc<Mutex<BTreeMap<u64, u64>>>,
    events: Arc<Mutex<Vec<Fields>>>,
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = attrs.parent().cloned().or_else(|| {
            attrs
                .is_contextual()
                .then(|| ctx.current_span().id().cloned())
                .flatten()
        });
        if let Some(parent) = parent {
            self.parents
                .lock()
                .unwrap()
                .insert(id.into_u64(), parent.into_u64());
        }
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.spans
            .lock()
            .unwrap()
            .insert(id.into_u64(), (name, fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Collect(fields));
        }
    }
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        self.events.lock().unwrap().push(fields);
    }
}

impl Capture {
    /// The spans named `name`, with their ids, in order of creation.
    fn named(&self, name: &str) -> Vec<(u64, Fields)> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, (n, _))| n == name)
            .map(|(id, (_, fields))| (*id, fields.clone()))
            .collect()
    }

    fn parent_of(&self, id: u64) -> Option<u64> {
        self.parents.lock().unwrap().get(&id).copied()
    }

    fn calls(&self) -> Vec<Fields> {
        self.spans
            .lock()
            .unwrap()
            .values()
            .filter(|(name, _)| name == "rebound.call")
            .map(|(_, fields)| fields.clone())
            .collect()
    }

    fn everything(&self) -> String {
        format!(
            "{:?}{:?}",
            self.spans.lock().unwrap(),
            self.events.lock().unwrap()
        )
    }
}

const CANARY: &str = "canary-7f3a9c";

#[tokio::test(flavor = "current_thread")]
async fn the_call_span_carries_outcome_and_codes_but_no_secret() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));

    let server = TestServer::start(|request| async move {
        if request.uri().path() == "/ok" {
            respond(200, "fine")
        } else {
            api_error(
                404,
                &[
                    ("ResourceNotFound", "Resource not found"),
                    ("BadPath", "No such path"),
                ],
            )
        }
    })
    .await;
    let client = ResilienceLayer::new(Policy::preset("connio").unwrap()).layer(hyper_client());
    let request = |path: &str| {
        http::Request::post(server.url(&format!("{path}?api_key={CANARY}")))
            .header("authorization", format!("Bearer {CANARY}"))
            .header("cookie", format!("session={CANARY}"))
            .body(Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap()
    };

    client.clone().oneshot(request("/ok")).await.unwrap();
    let error = client.oneshot(request("/missing")).await.unwrap_err();
    let _ = (format!("{error}"), format!("{error:?}"));

    let calls = capture.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let ok = calls
        .iter()
        .find(|f| f["url.full"].ends_with("/ok"))
        .unwrap();
    let port = server.addr().port().to_string();
    assert_eq!(ok["http.request.method"], "POST");
    assert_eq!(ok["url.full"], format!("http://127.0.0.1:{port}/ok"));
    assert_eq!(ok["server.address"], "127.0.0.1");
    assert_eq!(ok["server.port"], port);
    assert_eq!(ok["http.response.status_code"], "200");
    assert_eq!(ok["rebound.outcome"], "success");
    assert!(!ok.contains_key("error.type"));

    let failed = calls
        .iter()
        .find(|f| f["url.full"].ends_with("/missing"))
        .unwrap();
    assert_eq!(failed["http.response.status_code"], "404");
    assert_eq!(failed["error.type"], "404");
    assert_eq!(failed["rebound.outcome"], "terminal");
    assert_eq!(failed["rebound.error_codes"], "ResourceNotFound,BadPath");
    assert_eq!(failed["rebound.attempts"], "1");

    let everything = capture.everything();
    assert!(
        !everything.contains(CANARY),
        "a secret reached tracing: {everything}"
    );
    assert!(!format!("{error}{error:?}").contains(CANARY));
}

#[tokio::test(flavor = "current_thread")]
async fn a_transport_failure_names_its_outcome_as_error_type() {
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let server = TestServer::start_raw(|stream| async move { drop(stream) }).await;
    let client = ResilienceLayer::new(Policy::preset("connio").unwrap()).layer(hyper_client());
    client
        .oneshot(common::get(&server.url("/")))
        .await
        .unwrap_err();

    let calls = capture.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["error.type"], "transport");
    assert_eq!(calls[0]["rebound.outcome"], "transport");
    assert!(!calls[0].contains_key("http.response.status_code"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn each_attempt_is_a_child_span_and_each_decision_an_event() {
    use tower_rebound_testkit::{Scripted, Step};

    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let script = Scripted::new([
        Step::Respond {
            status: 500,
            headers: vec![],
            body: bytes::Bytes::from_static(br#"[{"code":"InternalError"}]"#),
        },
        Step::with_header(429, "retry-after", "2"),
        Step::status(200),
    ]);
    let client = ResilienceLayer::with_seed(Policy::preset("connio").unwrap(), 7).layer(script);
    client
        .oneshot(common::get("http://api.example/devices"))
        .await
        .unwrap();

    let calls = capture.named("rebound.call");
    assert_eq!(calls.len(), 1);
    let (call_id, call) = &calls[0];
    assert_eq!(call["rebound.attempts"], "3");
    assert_eq!(call["rebound.outcome"], "success");

    let attempts = capture.named("rebound.attempt");
    assert_eq!(attempts.len(), 3);
    let expected = [
        ("0", "500", "retryable"),
        ("1", "429", "retryable"),
        ("2", "200", "success"),
    ];
    for ((id, fields), (resend, status, class)) in attempts.iter().zip(expected) {
        assert_eq!(
            capture.parent_of(*id),
            Some(*call_id),
            "attempts are children of the call"
        );
        assert_eq!(fields["http.request.resend_count"], resend);
        assert_eq!(fields["http.response.status_code"], status);
        assert_eq!(fields["rebound.class"], class);
    }
    assert_eq!(attempts[0].1["rebound.error_codes"], "InternalError");
    assert_eq!(attempts[0].1["error.type"], "500");

    let events = capture.events.lock().unwrap().clone();
    let retries: Vec<&Fields> = events
        .iter()
        .filter(|e| e["message"] == "retrying")
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0]["reason"], "backoff");
    assert_eq!(retries[1]["reason"], "retry_after");
    assert_eq!(retries[1]["delay_ms"], "2000");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_refused_retry_is_an_event_with_its_reason() {
    use tower_rebound_testkit::{Scripted, Step};

    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let client = ResilienceLayer::new(Policy::preset("connio").unwrap())
        .layer(Scripted::new([Step::status(500)]));
    let request = http::Request::post("http://api.example/devices")
        .body(Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    client.oneshot(request).await.unwrap_err();
    let events = capture.events.lock().unwrap().clone();
    let refusals: Vec<&Fields> = events
        .iter()
        .filter(|e| e["message"] == "not retrying")
        .collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0]["reason"], "unsafe_method");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_state_change_is_an_event_and_a_rejected_call_says_circuit_open() {
    use tower_rebound_testkit::{Scripted, Step};

    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let policy = Policy::from_toml_str(
        "[retry]\nmax_attempts = 1\n[circuit_breaker]\nconsecutive_failures = 2\nfailure_rate = 0\n",
    )
    .unwrap();
    let client = ResilienceLayer::with_seed(policy, 1).layer(Scripted::new([Step::status(500)]));
    for _ in 0..3 {
        client
            .clone()
            .oneshot(common::get("http://api.example/x"))
            .await
            .unwrap_err();
    }
    let events = capture.events.lock().unwrap().clone();
    let changes: Vec<&Fields> = events
        .iter()
        .filter(|e| e["message"] == "circuit breaker state changed")
        .collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["key"], "http://api.example:80");
    assert_eq!(changes[0]["from"], "closed");
    assert_eq!(changes[0]["to"], "open");
    assert_eq!(changes[0]["consecutive_failures"], "2");
    assert_eq!(changes[0]["failure_rate"], "1.0");

    let calls = capture.calls();
    assert_eq!(calls.len(), 3);
    let rejected = calls
        .iter()
        .filter(|c| c["rebound.outcome"] == "circuit_open")
        .count();
    assert_eq!(rejected, 1);
    let last = calls
        .iter()
        .find(|c| c["rebound.outcome"] == "circuit_open")
        .unwrap();
    assert_eq!(last["error.type"], "circuit_open");
    assert_eq!(last["rebound.attempts"], "0");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn each_poll_is_a_child_span_and_the_call_counts_them() {
    use tower_rebound_testkit::{Scripted, Step};

    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let policy = Policy::from_toml_str(
        "[classify]\nsuccess = [200]\npollable = [202]\n[poll]\ninterval = \"10ms\"\n",
    )
    .unwrap();
    let script = Scripted::new([
        Step::with_header(202, "location", "/ops/1?token=canary-7f3a9c"),
        Step::status(202),
        Step::status(200),
    ]);
    let client = ResilienceLayer::with_seed(policy, 1).layer(script);
    let request = http::Request::post("http://api.example/write")
        .body(Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    client.oneshot(request).await.unwrap();

    let (call_id, call) = capture.named("rebound.call").remove(0);
    assert_eq!(call["rebound.polls"], "2");
    assert_eq!(call["rebound.outcome"], "success");
    let polls = capture.named("rebound.poll");
    assert_eq!(polls.len(), 2);
    for (n, (id, fields)) in polls.iter().enumerate() {
        assert_eq!(capture.parent_of(*id), Some(call_id));
        assert_eq!(fields["rebound.poll"], (n + 1).to_string());
        assert_eq!(fields["url.full"], "http://api.example/ops/1");
    }
    assert_eq!(polls[0].1["http.response.status_code"], "202");
    assert_eq!(polls[1].1["http.response.status_code"], "200");
    assert!(
        !capture.everything().contains(CANARY),
        "the status URL's query is not recorded"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn rules_decide_before_the_table_and_the_spans_say_which() {
    use tower_rebound::classify::{ClassifySettings, Rule, StatusClass};
    use tower_rebound_testkit::{Scripted, Step};

    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let classify = ClassifySettings::builder()
        .success([200])
        .terminal([400, 404])
        .retryable([429, 500])
        .rule(
            Rule::new(StatusClass::Retryable)
                .status([400])
                .code(["Throttled"])
                .named("throttled"),
        )
        .rule(
            Rule::new(StatusClass::Terminal)
                .status([200])
                .header("X-Status", "failed"),
        )
        .rule(Rule::custom(|input| {
            (input.status() == 418).then_some(StatusClass::Retryable)
        }))
        .build()
        .unwrap();
    let policy = Policy::preset("connio").unwrap().with_classify(classify);
    let script = Scripted::new([
        Step::Respond {
            status: 400,
            headers: vec![],
            body: bytes::Bytes::from_static(br#"[{"code":"Throttled"}]"#),
        },
        Step::status(418),
        Step::with_header(200, "x-status", "failed"),
        // The second call: the table decides.
        Step::Respond {
            status: 400,
            headers: vec![],
            body: bytes::Bytes::from_static(br#"[{"code":"Invalid"}]"#),
        },
    ]);
    let client = ResilienceLayer::with_seed(policy, 7).layer(script.clone());
    let error = client
        .clone()
        .oneshot(common::get("http://api.example/devices"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), tower_rebound::ErrorKind::Terminal);
    assert_eq!(error.status(), Some(http::StatusCode::OK));
    assert_eq!(error.rule(), Some("#1"));
    assert_eq!(error.attempts(), 3);
    let error = client
        .oneshot(common::get("http://api.example/devices"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.rule()),
        (tower_rebound::ErrorKind::Terminal, None)
    );
    assert_eq!(script.calls(), 4);

    let attempts = capture.named("rebound.attempt");
    let seen: Vec<(&str, &str, Option<&str>)> = attempts
        .iter()
        .map(|(_, f)| {
            (
                f["rebound.class"].as_str(),
                f["rebound.decided_by"].as_str(),
                f.get("rebound.rule").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("retryable", "rule", Some("throttled")),
            ("retryable", "rule", Some("#2")),
            ("terminal", "rule", Some("#1")),
            ("terminal", "table", None),
        ]
    );
    let calls = capture.named("rebound.call");
    assert_eq!(calls[0].1["rebound.decided_by"], "rule");
    assert_eq!(calls[0].1["rebound.rule"], "#1");
    assert_eq!(calls[0].1["rebound.outcome"], "terminal");
    assert_eq!(calls[1].1["rebound.decided_by"], "table");
    assert!(!calls[1].1.contains_key("rebound.rule"));
}
