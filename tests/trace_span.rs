//! The call span: OpenTelemetry field names, the outcome and the error codes,
//! and no secret from the request anywhere in what is recorded.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use common::hyper_client;
use http_body_util::Full;
use rebound::{Policy, ResilienceLayer};
use rebound_testkit::{TestServer, api_error, respond};
use tower::{Layer, ServiceExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Fields = BTreeMap<String, String>;

/// Records every span's fields, and every event's, as text.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, (String, Fields)>>>,
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

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
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
