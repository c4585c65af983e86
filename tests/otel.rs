//! `OpenTelemetryListener`: every instrument and attribute of real calls
//! over HTTP, read back from the OpenTelemetry SDK's in-memory exporter.

#[path = "support/instruments.rs"]
mod instruments;

use std::collections::BTreeSet;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tower_rebound::events::OpenTelemetryListener;
use tower_rebound::events::instrument::{
    BREAKER_OPEN, BREAKER_TRANSITIONS, CALL_DURATION, CONCURRENCY_LIMIT, DURATION_BUCKETS, POLLS,
    RATE_LIMIT_FALLBACKS, RATE_LIMIT_LOCAL, REQUEST_DURATION, RETRIES, RETRIES_REFUSED,
};

/// A meter provider of its own for each test, and what it exported.
struct Exported {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

#[derive(Debug, Clone, PartialEq)]
enum Data {
    /// A counter's or an up-down counter's total.
    Sum(i64),
    /// A gauge's last value.
    Gauge(u64),
    /// A histogram's count, sum and bucket boundaries.
    Histogram {
        count: u64,
        sum: f64,
        bounds: Vec<f64>,
    },
}

#[derive(Debug)]
struct Point {
    name: String,
    unit: String,
    attributes: Vec<KeyValue>,
    data: Data,
}

fn sorted(mut attributes: Vec<KeyValue>) -> Vec<KeyValue> {
    attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    attributes
}

impl Exported {
    fn new() -> Exported {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Exported { provider, exporter }
    }

    fn listener(&self) -> OpenTelemetryListener {
        OpenTelemetryListener::with_meter(&self.provider.meter("rebound"))
    }

    /// Every data point so far (totals: the temporality is cumulative).
    fn points(&self) -> Vec<Point> {
        self.provider.force_flush().unwrap();
        let exported = self.exporter.get_finished_metrics().unwrap();
        let last = exported.last().expect("an export");
        let mut points = Vec::new();
        for scope in last.scope_metrics() {
            for metric in scope.metrics() {
                let mut push = |attributes: Vec<KeyValue>, data| {
                    points.push(Point {
                        name: metric.name().to_owned(),
                        unit: metric.unit().to_owned(),
                        attributes: sorted(attributes),
                        data,
                    })
                };
                match metric.data() {
                    AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                        for p in h.data_points() {
                            let data = Data::Histogram {
                                count: p.count(),
                                sum: p.sum(),
                                bounds: p.bounds().collect(),
                            };
                            push(p.attributes().cloned().collect(), data);
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Sum(s)) => {
                        assert!(s.is_monotonic(), "{} is a counter", metric.name());
                        for p in s.data_points() {
                            let data = Data::Sum(p.value() as i64);
                            push(p.attributes().cloned().collect(), data);
                        }
                    }
                    AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                        for p in g.data_points() {
                            push(p.attributes().cloned().collect(), Data::Gauge(p.value()));
                        }
                    }
                    AggregatedMetrics::I64(MetricData::Sum(s)) => {
                        assert!(!s.is_monotonic(), "{} goes up and down", metric.name());
                        for p in s.data_points() {
                            push(p.attributes().cloned().collect(), Data::Sum(p.value()));
                        }
                    }
                    other => panic!("{}: {other:?}", metric.name()),
                }
            }
        }
        points
    }
}

/// The data of the one point of `name` with exactly `attributes`.
fn find(points: &[Point], name: &str, attributes: &[KeyValue]) -> Data {
    let wanted = sorted(attributes.to_vec());
    match points
        .iter()
        .find(|p| p.name == name && p.attributes == wanted)
    {
        Some(point) => point.data.clone(),
        None => panic!(
            "no {name} {wanted:?} among {:#?}",
            points.iter().filter(|p| p.name == name).collect::<Vec<_>>()
        ),
    }
}

fn count(points: &[Point], name: &str) -> usize {
    points.iter().filter(|p| p.name == name).count()
}

fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

fn histogram_count(data: Data) -> u64 {
    match data {
        Data::Histogram { count, bounds, .. } => {
            assert_eq!(bounds, DURATION_BUCKETS, "OpenTelemetry's buckets");
            count
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn attempts_retries_and_the_call_with_their_attributes() {
    let server = instruments::server().await;
    let exported = Exported::new();
    instruments::retried_twice(&server, exported.listener()).await;
    let points = exported.points();

    let port = i64::from(server.addr().port());
    let failed = find(
        &points,
        REQUEST_DURATION,
        &[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", port),
            kv("http.response.status_code", 500_i64),
            kv("error.type", "500"),
        ],
    );
    let answered = find(
        &points,
        REQUEST_DURATION,
        &[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", port),
            kv("http.response.status_code", 200_i64),
        ],
    );
    let attempts_took = match (&failed, &answered) {
        (Data::Histogram { sum: a, .. }, Data::Histogram { sum: b, .. }) => a + b,
        _ => unreachable!(),
    };
    assert_eq!((histogram_count(failed), histogram_count(answered)), (2, 1));
    assert_eq!(count(&points, REQUEST_DURATION), 2);

    let retries = [
        kv("server.address", "127.0.0.1"),
        kv("rebound.retry.reason", "status"),
    ];
    assert_eq!(find(&points, RETRIES, &retries), Data::Sum(2));
    assert_eq!(count(&points, RETRIES), 1);

    let call = find(
        &points,
        CALL_DURATION,
        &[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("rebound.outcome", "success"),
        ],
    );
    let Data::Histogram { sum: call_took, .. } = call else {
        panic!("{call:?}")
    };
    assert_eq!(histogram_count(call), 1);
    // The attempts ran one after another inside the call.
    assert!(attempts_took > 0.0 && call_took >= attempts_took && call_took < 5.0);

    for name in [RETRIES_REFUSED, BREAKER_TRANSITIONS, POLLS] {
        assert_eq!(count(&points, name), 0, "{name}");
    }
    // Units as OpenTelemetry writes them.
    for point in &points {
        let unit = match point.name.as_str() {
            REQUEST_DURATION | CALL_DURATION => "s",
            RETRIES | RETRIES_REFUSED => "{retry}",
            other => panic!("{other}"),
        };
        assert_eq!(point.unit, unit, "{point:?}");
    }
}

#[tokio::test]
async fn refusals_and_requests_without_an_answer() {
    let server = instruments::server().await;
    let exported = Exported::new();
    instruments::budget_refused(&server, exported.listener()).await;
    let port = instruments::unreachable(exported.listener()).await;
    let points = exported.points();

    let refused = [
        kv("server.address", "127.0.0.1"),
        kv("rebound.refusal", "budget"),
    ];
    assert_eq!(find(&points, RETRIES_REFUSED, &refused), Data::Sum(1));
    assert_eq!(count(&points, RETRIES_REFUSED), 1);
    let budget = [
        kv("http.request.method", "GET"),
        kv("server.address", "127.0.0.1"),
        kv("rebound.outcome", "budget_exhausted"),
    ];
    assert_eq!(histogram_count(find(&points, CALL_DURATION, &budget)), 1);

    let unanswered = [
        kv("http.request.method", "GET"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", i64::from(port)),
        kv("error.type", "transport"),
    ];
    assert_eq!(
        histogram_count(find(&points, REQUEST_DURATION, &unanswered)),
        2
    );
    let retried = [
        kv("server.address", "127.0.0.1"),
        kv("rebound.retry.reason", "transport"),
    ];
    assert_eq!(find(&points, RETRIES, &retried), Data::Sum(1));
}

#[tokio::test]
async fn a_breaker_that_opens_counts_as_open_until_closed() {
    let server = instruments::server().await;
    let exported = Exported::new();
    let breakers = instruments::breaker_opened(&server, exported.listener()).await;
    let points = exported.points();

    let opened = [
        kv("server.address", "127.0.0.1"),
        kv("rebound.breaker.state", "open"),
    ];
    assert_eq!(find(&points, BREAKER_TRANSITIONS, &opened), Data::Sum(1));
    assert_eq!(find(&points, BREAKER_OPEN, &[]), Data::Sum(1));
    let open_unit = points.iter().find(|p| p.name == BREAKER_OPEN).unwrap();
    assert_eq!(open_unit.unit, "{breaker}");
    // Two attempts were sent; the rejected third was not, and took no time.
    let sent = [
        kv("http.request.method", "GET"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", i64::from(server.addr().port())),
        kv("http.response.status_code", 500_i64),
        kv("error.type", "500"),
    ];
    assert_eq!(histogram_count(find(&points, REQUEST_DURATION, &sent)), 2);
    assert_eq!(count(&points, REQUEST_DURATION), 1);
    let rejected = [
        kv("http.request.method", "GET"),
        kv("server.address", "127.0.0.1"),
        kv("rebound.outcome", "circuit_open"),
    ];
    assert_eq!(histogram_count(find(&points, CALL_DURATION, &rejected)), 1);

    breakers.force_closed(&server.url("/"));
    let points = exported.points();
    let closed = [
        kv("server.address", "127.0.0.1"),
        kv("rebound.breaker.state", "forced_closed"),
    ];
    assert_eq!(find(&points, BREAKER_TRANSITIONS, &closed), Data::Sum(1));
    assert_eq!(find(&points, BREAKER_OPEN, &[]), Data::Sum(0));
}

#[tokio::test(start_paused = true)]
async fn a_shared_rate_limit_that_falls_back_and_returns() {
    let exported = Exported::new();
    let trips = instruments::rate_limit_store_lost_and_found(exported.listener()).await;
    assert_eq!(trips, 3);
    let points = exported.points();
    assert_eq!(
        find(
            &points,
            RATE_LIMIT_FALLBACKS,
            &[kv("rebound.rate_limit.key", "billing")]
        ),
        Data::Sum(1)
    );
    assert_eq!(find(&points, RATE_LIMIT_LOCAL, &[]), Data::Sum(0));
}

#[tokio::test]
async fn a_poll_on_a_route() {
    let server = instruments::server().await;
    let exported = Exported::new();
    instruments::polled_on_a_route(&server, exported.listener()).await;
    let points = exported.points();

    let polls = [kv("server.address", "127.0.0.1")];
    assert_eq!(find(&points, POLLS, &polls), Data::Sum(1));
    assert_eq!(
        points.iter().find(|p| p.name == POLLS).unwrap().unit,
        "{poll}"
    );
    let call = [
        kv("http.request.method", "POST"),
        kv("server.address", "127.0.0.1"),
        kv("rebound.outcome", "success"),
        kv("rebound.route", "writes"),
    ];
    assert_eq!(histogram_count(find(&points, CALL_DURATION, &call)), 1);
    let port = i64::from(server.addr().port());
    let write = [
        kv("http.request.method", "POST"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", port),
        kv("http.response.status_code", 202_i64),
    ];
    let poll = [
        kv("http.request.method", "GET"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", port),
        kv("http.response.status_code", 200_i64),
    ];
    assert_eq!(histogram_count(find(&points, REQUEST_DURATION, &write)), 1);
    assert_eq!(histogram_count(find(&points, REQUEST_DURATION, &poll)), 1);
}

#[tokio::test]
async fn hosts_past_max_hosts_are_other() {
    let server = instruments::server().await;
    let exported = Exported::new();
    let listener = exported.listener().with_max_hosts(1);
    instruments::two_hosts(&server, instruments::policy("").with_listener(listener)).await;
    let points = exported.points();
    let addresses: BTreeSet<String> = points
        .iter()
        .filter(|p| p.name == CALL_DURATION)
        .flat_map(|p| &p.attributes)
        .filter(|kv| kv.key.as_str() == "server.address")
        .map(|kv| kv.value.to_string())
        .collect();
    assert_eq!(
        addresses,
        BTreeSet::from(["127.0.0.1".to_owned(), "_other".to_owned()])
    );
}

#[tokio::test]
async fn ports_past_max_hosts_are_left_out() {
    let (one, two) = (instruments::server().await, instruments::server().await);
    let exported = Exported::new();
    let listener = exported.listener().with_max_hosts(1);
    let policy = instruments::policy("").with_listener(listener);
    // One listener for both servers: 127.0.0.1 and localhost on each port.
    instruments::two_hosts(&one, policy.clone()).await;
    instruments::two_hosts(&two, policy).await;
    let points = exported.points();
    let pairs: BTreeSet<(String, Option<String>)> = points
        .iter()
        .filter(|p| p.name == REQUEST_DURATION)
        .map(|p| {
            let get = |key: &str| {
                p.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.to_string())
            };
            (get("server.address").unwrap(), get("server.port"))
        })
        .collect();
    let first = one.addr().port().to_string();
    assert_eq!(
        pairs,
        BTreeSet::from([
            ("127.0.0.1".to_owned(), Some(first)),
            ("127.0.0.1".to_owned(), None),
            ("_other".to_owned(), None),
        ])
    );
}

#[test]
fn the_default_constructors_bound_hosts_as_the_breakers_do() {
    // The default constructors take the global meter, a no-op until a
    // program sets a provider, and the policy's bound on hosts.
    let policy = instruments::policy("[circuit_breaker]\nmax_hosts = 3\n");
    let listener = OpenTelemetryListener::for_policy(&policy);
    assert_eq!(
        format!("{listener:?}"),
        "OpenTelemetryListener { max_hosts: 3, .. }"
    );
    let listener = OpenTelemetryListener::default();
    let default = tower_rebound::breaker::BreakerSettings::default().max_hosts();
    assert_eq!(
        format!("{listener:?}"),
        format!("OpenTelemetryListener {{ max_hosts: {default}, .. }}")
    );
}

#[tokio::test]
async fn an_adaptive_concurrency_limit_s_moves_set_its_gauge() {
    let exported = Exported::new();
    instruments::concurrency_moved(exported.listener()).await;
    let points = exported.points();
    let gauge = points
        .iter()
        .find(|p| p.name == CONCURRENCY_LIMIT)
        .expect("a gauge point");
    assert_eq!(gauge.unit, "{request}");
    assert_eq!(
        gauge.attributes,
        [kv("rebound.concurrency.key", "http://api.example:80")]
    );
    match gauge.data {
        Data::Gauge(limit) => assert!(limit > 5, "grew from 5 to {limit}"),
        ref other => panic!("{other:?}"),
    }
}
