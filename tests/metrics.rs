//! `MetricsListener`: every instrument and attribute of real calls over
//! HTTP, read back from metrics-util's debugging recorder; and the Grafana
//! dashboard's queries held to what metrics-exporter-prometheus renders of
//! such a run.

#[path = "support/instruments.rs"]
mod instruments;

use std::collections::{BTreeMap, BTreeSet};

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower_rebound::events::MetricsListener;
use tower_rebound::events::instrument::{
    BREAKER_OPEN, BREAKER_TRANSITIONS, CALL_DURATION, DURATION_BUCKETS, POLLS,
    RATE_LIMIT_FALLBACKS, RATE_LIMIT_LOCAL, REQUEST_DURATION, RETRIES, RETRIES_REFUSED,
};

/// One series: an instrument and one set of label values.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

#[derive(Debug)]
struct Series {
    kind: MetricKind,
    labels: BTreeMap<String, String>,
    unit: Option<Unit>,
    described: bool,
    value: Value,
}

/// What the debugging recorder received, added up over its snapshots: a
/// snapshot hands out what changed since the last one (it resets counters
/// and gauges to zero and drains histograms), so each is added to the
/// last.
#[derive(Debug, Default)]
struct Seen(BTreeMap<(String, String), Series>);

impl Seen {
    fn update(&mut self, snapshotter: &Snapshotter) {
        for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let labels: BTreeMap<String, String> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let id = (key.name().to_owned(), format!("{labels:?}"));
            let value = match value {
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(x) => Value::Gauge(x.0),
                DebugValue::Histogram(xs) => Value::Histogram(xs.iter().map(|x| x.0).collect()),
            };
            let series = self.0.entry(id).or_insert(Series {
                kind,
                labels,
                unit,
                described: description.is_some(),
                value: match value {
                    Value::Counter(_) => Value::Counter(0),
                    Value::Gauge(_) => Value::Gauge(0.0),
                    Value::Histogram(_) => Value::Histogram(Vec::new()),
                },
            });
            match (&mut series.value, value) {
                (Value::Counter(total), Value::Counter(n)) => *total += n,
                (Value::Gauge(total), Value::Gauge(x)) => *total += x,
                (Value::Histogram(all), Value::Histogram(xs)) => all.extend(xs),
                (old, new) => panic!("{old:?} then {new:?}"),
            }
        }
    }

    /// Every series of `name`.
    fn series(&self, name: &str) -> Vec<&Series> {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, s)| s)
            .collect()
    }

    /// The value of the one series of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> &Value {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found = self.series(name).into_iter().find(|s| s.labels == wanted);
        match found {
            Some(series) => &series.value,
            None => panic!("no {name} {wanted:?} among {:#?}", self.series(name)),
        }
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Value::Counter(n) => *n,
            other => panic!("{name} is {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            Value::Histogram(xs) => xs.clone(),
            other => panic!("{name} is {other:?}"),
        }
    }

    fn gauge(&self, name: &str) -> f64 {
        match self.get(name, &[]) {
            Value::Gauge(x) => *x,
            other => panic!("{name} is {other:?}"),
        }
    }
}

#[tokio::test]
async fn attempts_retries_and_the_call_with_their_attributes() {
    let server = instruments::server().await;
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    instruments::retried_twice(&server, MetricsListener::new()).await;
    let mut seen = Seen::default();
    seen.update(&recorder.snapshotter());

    let port = server.addr().port().to_string();
    let attempt = [
        ("http.request.method", "GET"),
        ("server.address", "127.0.0.1"),
        ("server.port", &port),
    ];
    let failed = seen.histogram(
        REQUEST_DURATION,
        &[
            attempt[0],
            attempt[1],
            attempt[2],
            ("http.response.status_code", "500"),
            ("error.type", "500"),
        ],
    );
    let answered = seen.histogram(
        REQUEST_DURATION,
        &[
            attempt[0],
            attempt[1],
            attempt[2],
            ("http.response.status_code", "200"),
        ],
    );
    assert_eq!((failed.len(), answered.len()), (2, 1));
    assert_eq!(seen.series(REQUEST_DURATION).len(), 2, "{seen:#?}");

    assert_eq!(
        seen.counter(
            RETRIES,
            &[
                ("server.address", "127.0.0.1"),
                ("rebound.retry.reason", "status")
            ]
        ),
        2
    );
    assert_eq!(seen.series(RETRIES).len(), 1);

    let call = seen.histogram(
        CALL_DURATION,
        &[
            ("http.request.method", "GET"),
            ("server.address", "127.0.0.1"),
            ("rebound.outcome", "success"),
        ],
    );
    assert_eq!(call.len(), 1);
    // The attempts ran one after another inside the call, with waits between.
    let attempts: f64 = failed.iter().chain(&answered).sum();
    assert!(
        attempts > 0.0 && call[0] >= attempts && call[0] < 5.0,
        "{call:?} {attempts}"
    );

    // Nothing else happened, and the units reached the recorder.
    for name in [RETRIES_REFUSED, BREAKER_TRANSITIONS, BREAKER_OPEN, POLLS] {
        assert!(seen.series(name).is_empty(), "{name}");
    }
    for series in seen.0.values() {
        assert!(series.described, "{series:?}");
        match series.kind {
            MetricKind::Histogram => assert_eq!(series.unit, Some(Unit::Seconds)),
            _ => assert_eq!(series.unit, Some(Unit::Count)),
        }
    }
}

#[tokio::test]
async fn refusals_and_requests_without_an_answer() {
    let server = instruments::server().await;
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    instruments::budget_refused(&server, MetricsListener::new()).await;
    let port = instruments::unreachable(MetricsListener::new()).await;
    let mut seen = Seen::default();
    seen.update(&recorder.snapshotter());

    assert_eq!(
        seen.counter(
            RETRIES_REFUSED,
            &[
                ("server.address", "127.0.0.1"),
                ("rebound.refusal", "budget")
            ]
        ),
        1
    );
    assert_eq!(seen.series(RETRIES_REFUSED).len(), 1);
    let budget = seen.histogram(
        CALL_DURATION,
        &[
            ("http.request.method", "GET"),
            ("server.address", "127.0.0.1"),
            ("rebound.outcome", "budget_exhausted"),
        ],
    );
    assert_eq!(budget.len(), 1);

    // No answer: no status code, and the kind of error as error.type.
    let port = port.to_string();
    let unanswered = seen.histogram(
        REQUEST_DURATION,
        &[
            ("http.request.method", "GET"),
            ("server.address", "127.0.0.1"),
            ("server.port", &port),
            ("error.type", "transport"),
        ],
    );
    assert_eq!(unanswered.len(), 2);
    assert_eq!(
        seen.counter(
            RETRIES,
            &[
                ("server.address", "127.0.0.1"),
                ("rebound.retry.reason", "transport")
            ]
        ),
        1
    );
}

#[tokio::test]
async fn a_breaker_that_opens_counts_as_open_until_closed() {
    let server = instruments::server().await;
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let breakers = instruments::breaker_opened(&server, MetricsListener::new()).await;
    let mut seen = Seen::default();
    seen.update(&recorder.snapshotter());

    let opened = [
        ("server.address", "127.0.0.1"),
        ("rebound.breaker.state", "open"),
    ];
    assert_eq!(seen.counter(BREAKER_TRANSITIONS, &opened), 1);
    assert_eq!(seen.gauge(BREAKER_OPEN), 1.0);
    // Two attempts were sent; the rejected third was not, and took no time.
    let port = server.addr().port().to_string();
    let sent = seen.histogram(
        REQUEST_DURATION,
        &[
            ("http.request.method", "GET"),
            ("server.address", "127.0.0.1"),
            ("server.port", &port),
            ("http.response.status_code", "500"),
            ("error.type", "500"),
        ],
    );
    assert_eq!(sent.len(), 2);
    assert_eq!(seen.series(REQUEST_DURATION).len(), 1, "{seen:#?}");
    let rejected = [
        ("http.request.method", "GET"),
        ("server.address", "127.0.0.1"),
        ("rebound.outcome", "circuit_open"),
    ];
    assert_eq!(seen.histogram(CALL_DURATION, &rejected).len(), 1);

    breakers.force_closed(&server.url("/"));
    seen.update(&recorder.snapshotter());
    let closed = [
        ("server.address", "127.0.0.1"),
        ("rebound.breaker.state", "forced_closed"),
    ];
    assert_eq!(seen.counter(BREAKER_TRANSITIONS, &closed), 1);
    assert_eq!(seen.gauge(BREAKER_OPEN), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_shared_rate_limit_that_falls_back_and_returns() {
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let listener = MetricsListener::new();
    let mut seen = Seen::default();
    let trips = instruments::rate_limit_store_lost_and_found(listener).await;
    assert_eq!(
        trips, 3,
        "one round trip per call, the one that failed included"
    );
    seen.update(&recorder.snapshotter());
    assert_eq!(
        seen.counter(
            RATE_LIMIT_FALLBACKS,
            &[("rebound.rate_limit.key", "billing")]
        ),
        1
    );
    assert_eq!(seen.gauge(RATE_LIMIT_LOCAL), 0.0, "back on the store");
}

#[tokio::test]
async fn a_poll_on_a_route() {
    let server = instruments::server().await;
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    instruments::polled_on_a_route(&server, MetricsListener::new()).await;
    let mut seen = Seen::default();
    seen.update(&recorder.snapshotter());

    assert_eq!(seen.counter(POLLS, &[("server.address", "127.0.0.1")]), 1);
    let call = [
        ("http.request.method", "POST"),
        ("server.address", "127.0.0.1"),
        ("rebound.outcome", "success"),
        ("rebound.route", "writes"),
    ];
    assert_eq!(seen.histogram(CALL_DURATION, &call).len(), 1);
    // The write and its status request: one record each.
    let port = server.addr().port().to_string();
    let write = [
        ("http.request.method", "POST"),
        ("server.address", "127.0.0.1"),
        ("server.port", &port),
        ("http.response.status_code", "202"),
    ];
    let poll = [
        ("http.request.method", "GET"),
        ("server.address", "127.0.0.1"),
        ("server.port", &port),
        ("http.response.status_code", "200"),
    ];
    assert_eq!(seen.histogram(REQUEST_DURATION, &write).len(), 1);
    assert_eq!(seen.histogram(REQUEST_DURATION, &poll).len(), 1);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn hosts_past_the_policys_max_hosts_are_other() {
    let server = instruments::server().await;
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let policy = instruments::policy("[circuit_breaker]\nmax_hosts = 1\n");
    let listener = MetricsListener::for_policy(&policy);
    instruments::two_hosts(&server, policy.with_listener(listener)).await;
    let mut seen = Seen::default();
    seen.update(&recorder.snapshotter());

    let addresses: BTreeSet<&str> = seen
        .series(CALL_DURATION)
        .iter()
        .map(|s| s.labels["server.address"].as_str())
        .collect();
    assert_eq!(addresses, BTreeSet::from(["127.0.0.1", "_other"]));

    // By default, as many as a breaker registry keeps: both are named.
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let policy = instruments::policy("").with_listener(MetricsListener::new());
    instruments::two_hosts(&server, policy).await;
    let mut seen = Seen::default();
    seen.update(&recorder.snapshotter());
    let addresses: BTreeSet<&str> = seen
        .series(CALL_DURATION)
        .iter()
        .map(|s| s.labels["server.address"].as_str())
        .collect();
    assert_eq!(addresses, BTreeSet::from(["127.0.0.1", "localhost"]));
}

/// The listener keeps the handles of its duration series, and takes them
/// again from a recorder put in force after it recorded: no record is lost
/// to the recorder it used first.
#[tokio::test]
async fn one_listener_follows_the_recorder_in_force() {
    let server = instruments::server().await;
    let policy = instruments::policy("").with_listener(MetricsListener::new());
    let (first, second) = (DebuggingRecorder::new(), DebuggingRecorder::new());
    let calls = |recorder: &DebuggingRecorder| {
        let mut seen = Seen::default();
        seen.update(&recorder.snapshotter());
        seen.series(CALL_DURATION)
            .iter()
            .map(|s| match &s.value {
                Value::Histogram(xs) => xs.len(),
                other => panic!("{other:?}"),
            })
            .sum::<usize>()
    };
    let local = metrics::set_default_local_recorder(&first);
    instruments::two_hosts(&server, policy.clone()).await;
    instruments::two_hosts(&server, policy.clone()).await;
    drop(local);
    let _local = metrics::set_default_local_recorder(&second);
    instruments::two_hosts(&server, policy).await;
    assert_eq!(calls(&first), 4, "two calls to each host");
    assert_eq!(calls(&second), 2, "one call to each host, after the change");
}

#[tokio::test]
async fn ports_past_the_policys_max_hosts_are_other() {
    let (one, two) = (instruments::server().await, instruments::server().await);
    let recorder = DebuggingRecorder::new();
    let _local = metrics::set_default_local_recorder(&recorder);
    let policy = instruments::policy("[circuit_breaker]\nmax_hosts = 1\n");
    let listener = MetricsListener::for_policy(&policy);
    let policy = policy.with_listener(listener);
    // One listener for both servers: 127.0.0.1 and localhost on each port.
    instruments::two_hosts(&one, policy.clone()).await;
    instruments::two_hosts(&two, policy).await;
    let mut seen = Seen::default();
    seen.update(&recorder.snapshotter());

    let pairs: BTreeSet<(&str, &str)> = seen
        .series(REQUEST_DURATION)
        .iter()
        .map(|s| {
            (
                s.labels["server.address"].as_str(),
                s.labels["server.port"].as_str(),
            )
        })
        .collect();
    let first = one.addr().port().to_string();
    assert_eq!(
        pairs,
        BTreeSet::from([
            ("127.0.0.1", first.as_str()),
            ("127.0.0.1", "_other"),
            ("_other", "_other"),
        ])
    );
}

/// PromQL's functions, aggregations and keywords: the identifiers of an
/// expression that are not metric names.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "abs",
    "ceil",
    "floor",
    "round",
    "vector",
    "scalar",
    "time",
    "label_replace",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
];

/// The metric names a PromQL expression reads: identifiers followed by
/// `{`, `[` or `)` that are no PromQL word, once label lists (`by (...)`,
/// `on (...)`, ...), matchers (`{...}`), ranges (`[...]`) and strings are
/// taken out.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Strings, matchers and ranges first, keeping their delimiters.
    let mut plain = String::new();
    let mut closing = None;
    for c in expr.chars() {
        match closing {
            Some(end) if c == end => {
                closing = None;
                plain.push(c);
            }
            Some(_) => {}
            None => {
                plain.push(c);
                closing = match c {
                    '{' => Some('}'),
                    '[' => Some(']'),
                    '"' => Some('"'),
                    _ => None,
                };
            }
        }
    }
    // Then label lists: a grouping word and its parenthesis.
    let mut names = BTreeSet::new();
    let chars: Vec<char> = plain.chars().collect();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next] == ' ' {
                next += 1;
            }
            let follows = chars.get(next).copied();
            if matches!(
                word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                skip_list = follows == Some('(');
                continue;
            }
            if !PROMQL_WORDS.contains(&word.as_str()) && matches!(follows, Some('{' | '[' | ')')) {
                names.insert(word);
            }
            continue;
        }
        if c == '(' && skip_list {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_list = false;
        }
        // A number (0.99) is no identifier.
        if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    names
}

/// The label names a PromQL expression groups by.
fn grouped_labels(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("by (") {
        let list = &rest[at + 4..];
        let end = list.find(')').expect("a closed label list");
        labels.extend(list[..end].split(',').map(|l| l.trim().to_owned()));
        rest = &list[end..];
    }
    labels
}

#[test]
fn metric_names_of_promql() {
    let expr = r#"histogram_quantile(0.99, sum by (le, server_address) (rate(http_client_request_duration_seconds_bucket{server_address=~"$server"}[$__rate_interval])))"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from(["http_client_request_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        grouped_labels(expr),
        BTreeSet::from(["le".to_owned(), "server_address".to_owned()])
    );
    assert_eq!(
        metric_names("sum(rebound_breaker_open) / on () group_left count(up)"),
        BTreeSet::from(["rebound_breaker_open".to_owned(), "up".to_owned()])
    );
}

/// The metric families and label names of Prometheus text.
fn families(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap();
        names.insert(line[..end].to_owned());
        if let Some(set) = line[end..].strip_prefix('{') {
            let set = &set[..set.rfind('}').unwrap()];
            for pair in set.split("\",") {
                labels.insert(pair.split('=').next().unwrap().to_owned());
            }
        }
    }
    (names, labels)
}

/// Renders, as metrics-exporter-prometheus does with the CLI's settings
/// (recommended naming, OpenTelemetry's buckets), every instrument of a
/// run over HTTP.
async fn rendered_run() -> String {
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for name in [REQUEST_DURATION, CALL_DURATION] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), &DURATION_BUCKETS)
            .unwrap();
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = instruments::server().await;
    instruments::retried_twice(&server, MetricsListener::new()).await;
    instruments::budget_refused(&server, MetricsListener::new()).await;
    instruments::unreachable(MetricsListener::new()).await;
    instruments::polled_on_a_route(&server, MetricsListener::new()).await;
    instruments::breaker_opened(&server, MetricsListener::new()).await;
    instruments::rate_limit_store_lost_and_found(MetricsListener::new()).await;
    instruments::concurrency_moved(MetricsListener::new()).await;
    handle.render()
}

#[tokio::test]
async fn the_dashboard_queries_what_a_run_renders() {
    let text = rendered_run().await;
    let (rendered, rendered_labels) = families(&text);
    // The names as the exporter writes them: units and `_total` added.
    for family in [
        "http_client_request_duration_seconds_bucket",
        "http_client_request_duration_seconds_count",
        "rebound_call_duration_seconds_bucket",
        "rebound_call_duration_seconds_sum",
        "rebound_retries_total",
        "rebound_retries_refused_total",
        "rebound_breaker_transitions_total",
        "rebound_breaker_open",
        "rebound_polls_total",
    ] {
        assert!(rendered.contains(family), "{family} not in\n{text}");
    }
    // OpenTelemetry's buckets, all of them.
    for le in DURATION_BUCKETS {
        let bucket = format!("le=\"{le}\"");
        assert!(text.contains(&bucket), "{bucket} not in\n{text}");
    }
    assert!(text.contains("rebound_breaker_open 1\n"), "{text}");

    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../dashboards/rebound.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            // label_values(METRIC, LABEL)
            if let Some(args) = query.strip_prefix("label_values(") {
                let (metric, label) = args.trim_end_matches(')').split_once(',').unwrap();
                exprs.push(format!("{metric}{{}} by ({})", label.trim()));
            }
        }
    }
    assert!(exprs.len() >= 8, "{exprs:#?}");
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in &names {
            assert!(
                rendered.contains(name),
                "{name} (in {expr}) is not among the rendered families {rendered:#?}"
            );
        }
        for label in grouped_labels(expr) {
            assert!(
                label == "le" || rendered_labels.contains(&label),
                "label {label} (in {expr}) is not among the rendered {rendered_labels:?}"
            );
        }
        queried.extend(names);
    }
    // Every instrument has a panel.
    for stem in [
        "http_client_request_duration_seconds",
        "rebound_call_duration_seconds",
        "rebound_retries_total",
        "rebound_retries_refused_total",
        "rebound_breaker_transitions_total",
        "rebound_breaker_open",
        "rebound_polls_total",
        "rebound_rate_limit_fallbacks_total",
        "rebound_rate_limit_local",
        "rebound_concurrency_limit",
    ] {
        assert!(
            queried.iter().any(|q| q.starts_with(stem)),
            "no panel reads {stem}: {queried:?}"
        );
    }
}
