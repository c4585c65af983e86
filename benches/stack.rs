//! What the rebound stack costs on top of the client it wraps.
//!
//! Two paths. On the ready path the test client answers on the first poll:
//! each benchmark builds a request, calls the service and polls the response
//! future once. That is the one path on which rebound reads no clock and arms
//! no timer. On the pending path (`*_pending`) the client answers on the
//! second poll, after waking its task, as a real client does when it waits
//! for the network: the layers arm their timers and read the clock, and the
//! calls run on a current-thread Tokio runtime with time enabled. Either way
//! there is no I/O, so what is measured is the layers themselves.
//!
//! The baselines run in the same process: the bare client; tower's own
//! `Retry` with a policy that never retries (which still clones each request,
//! as any retry must); and that `Retry` over tower's `Timeout`, the nearest
//! tower stack to rebound's, which has an attempt timeout. The run ends with
//! a table of ratios.
//!
//! ```text
//! cargo bench --bench stack
//! ```
//!
//! Timings on a shared machine wander from run to run (by up to 28% on a
//! busy 2-core one). For a figure that does not, count instructions:
//! `STACK_LOOP=NAME` makes the bench binary run 200,000 calls of one service
//! and exit, for `valgrind --tool=callgrind`. Ready path: `bare`, `tower_retry`,
//! `tower_timeout`, `classify`, `breaker`, `retry`, `resilience`,
//! `resilience_routes` (50 routes, none taken), `resilience_listener` (a
//! listener that does nothing: the events' own cost), `resilience_metrics`
//! and `resilience_otel` (the shipped metrics listeners recording to
//! nothing; with `--features metrics,opentelemetry`),
//! `resilience_prometheus` (`MetricsListener` recording into
//! metrics-exporter-prometheus's recorder; `--features metrics`); pending
//! path: `bare_pending`, `tower_retry_pending`, `tower_timeout_pending`,
//! `resilience_pending` (these count the runtime's scheduling too, the same
//! for each).
//!
//! ```text
//! cargo bench --bench stack --no-run   # prints the binary's path
//! STACK_LOOP=resilience valgrind --tool=callgrind target/release/deps/stack-HASH
//! ```

use std::future::{Future, poll_fn};
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use http::Request;
use http_body_util::Full;
use std::hint::black_box;
use tokio::runtime::Runtime;
use tower::timeout::TimeoutLayer;
use tower::{Layer, Service};
use tower_rebound::config::Route;
use tower_rebound::route::RouteMatch;
use tower_rebound::{Policy, ResilienceLayer};
use tower_rebound_testkit::Answer;

const GROUP: &str = "stack";

/// The attempt timeout of the tower baseline: the `connio` preset's.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

fn request() -> Request<Full<Bytes>> {
    Request::get(http::Uri::from_static(URL))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// One call, polled to completion at once; returns whether it succeeded.
fn call_once<S>(service: &mut S) -> bool
where
    S: Service<Request<Full<Bytes>>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    let future = pin!(service.call(request()));
    match future.poll(&mut cx) {
        Poll::Ready(result) => black_box(result).is_ok(),
        Poll::Pending => unreachable!("the test clients answer at once"),
    }
}

/// One call of a [`Yielding`] client, awaited on the runtime; returns whether
/// it succeeded. Fails if the call did not wait exactly once, so the path
/// measured is the one named.
async fn call_yielding<S>(service: &mut S) -> bool
where
    S: Service<Request<Full<Bytes>>>,
{
    let _ = poll_fn(|cx| service.poll_ready(cx)).await;
    let mut future = pin!(service.call(request()));
    let mut polls = 0;
    let result = poll_fn(|cx| {
        polls += 1;
        future.as_mut().poll(cx)
    })
    .await;
    assert_eq!(polls, 2, "a yielding client answers on the second poll");
    black_box(result).is_ok()
}

/// A client that answers on the second poll: the first wakes the task and
/// returns `Pending`, as a client waiting on a socket would, so the layers
/// above it take their waiting path.
#[derive(Clone)]
struct Yielding<S>(S);

impl<S, R> Service<R> for Yielding<S>
where
    S: Service<R>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = YieldOnce<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        YieldOnce {
            inner: self.0.call(request),
            yielded: false,
        }
    }
}

struct YieldOnce<F> {
    inner: F,
    yielded: bool,
}

impl<F: Future + Unpin> Future for YieldOnce<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// tower's own retry layer with a policy that never retries but, like any
/// retry policy, clones each request in case it must: the baseline the
/// rebound stack is held to.
#[derive(Clone)]
struct NeverRetry;

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for NeverRetry {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _request: &mut Request<Full<Bytes>>,
        _result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, request: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut copy = Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

/// tower's `Retry` over tower's `Timeout`: a never-retrying retry with an
/// attempt timeout, the tower stack nearest to rebound's.
fn tower_retry_timeout<S>(inner: S) -> tower::retry::Retry<NeverRetry, tower::timeout::Timeout<S>> {
    tower::retry::RetryLayer::new(NeverRetry).layer(TimeoutLayer::new(ATTEMPT_TIMEOUT).layer(inner))
}

const URL: &str = "http://api.example/devices/1";

const NOT_FOUND: &str = r#"[{"code":"ResourceNotFound","cause":"Resource not found","message":"Requested endpoint is not valid.","moreInfoUrl":"https://docs.connio.com/v3/error/resourcenotfound"}]"#;

/// The same error as a problem detail (RFC 9457).
const NOT_FOUND_PROBLEM: &str = r#"{"type":"https://docs.connio.com/v3/error/resourcenotfound","title":"Resource not found","status":404,"detail":"Requested endpoint is not valid.","instance":"/devices/1"}"#;

/// The same error in Google's envelope.
const NOT_FOUND_GOOGLE: &str = r#"{"error":{"code":404,"message":"Requested endpoint is not valid.","status":"NOT_FOUND","details":[]}}"#;

/// The `connio` preset reading error bodies in `format`, with `fields` (a
/// `[error_body.fields]` table, or nothing) at its end.
fn connio_reading(format: &str, fields: &str) -> Policy {
    // Laid over the preset, not spliced into its text: the preset names a
    // format of its own, and a second `format` key is a duplicate.
    let text = format!("extends = \"connio\"\n[error_body]\nformat = \"{format}\"\n{fields}");
    Policy::from_toml_str(&text).expect("a valid policy")
}

/// Google's errors.
const GOOGLE_FIELDS: &str = "[error_body.fields]\nerrors = \"/error\"\ncode = \"/code\"\n\
                             cause = \"/status\"\nmessage = \"/message\"\n";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

/// Benchmarks calls of `service` on the pending path: each batch of
/// iterations runs in one `block_on`, so the runtime's entry is not counted.
fn bench_pending<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    mut service: S,
) where
    S: Service<Request<Full<Bytes>>>,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    call_yielding(&mut service).await;
                }
                start.elapsed()
            })
        })
    });
}

fn benches(c: &mut Criterion, rt: &Runtime) {
    let policy = Policy::preset("connio").unwrap();
    let mut group = c.benchmark_group(GROUP);

    let mut bare = Answer::new(200, "{}");
    group.bench_function("bare_200", |b| b.iter(|| call_once(&mut bare)));

    let mut tower_retry = tower::retry::RetryLayer::new(NeverRetry).layer(Answer::new(200, "{}"));
    group.bench_function("tower_retry_200", |b| {
        b.iter(|| call_once(&mut tower_retry))
    });

    let mut tower_timeout = tower_retry_timeout(Answer::new(200, "{}"));
    group.bench_function("tower_retry_timeout_200", |b| {
        b.iter(|| call_once(&mut tower_timeout))
    });

    let mut stacked = ResilienceLayer::new(policy.clone()).layer(Answer::new(200, "{}"));
    group.bench_function("resilience_200", |b| b.iter(|| call_once(&mut stacked)));

    // A listener that does nothing: what the events themselves cost (the
    // clock reads, the state kept for them, the calls), the baseline of the
    // shipped listeners.
    let mut listened =
        ResilienceLayer::new(policy.clone().with_listener(Silent)).layer(Answer::new(200, "{}"));
    group.bench_function("resilience_200_listener", |b| {
        b.iter(|| call_once(&mut listened))
    });

    // The shipped metrics listeners, recording to nothing: the metrics
    // facade with no recorder installed, OpenTelemetry's global meter with
    // no provider set. What a call pays for the events and their attributes.
    #[cfg(feature = "metrics")]
    {
        let mut metrics = ResilienceLayer::new(with_metrics(&policy)).layer(Answer::new(200, "{}"));
        group.bench_function("resilience_200_metrics", |b| {
            b.iter(|| call_once(&mut metrics))
        });
        // And recording into a real recorder, as a program that exports
        // its metrics does.
        let recorder = prometheus_recorder();
        let _local = metrics::set_default_local_recorder(&recorder);
        let mut recorded =
            ResilienceLayer::new(with_metrics(&policy)).layer(Answer::new(200, "{}"));
        group.bench_function("resilience_200_prometheus", |b| {
            b.iter(|| call_once(&mut recorded))
        });
    }
    #[cfg(feature = "opentelemetry")]
    {
        let mut otel = ResilienceLayer::new(with_otel(&policy)).layer(Answer::new(200, "{}"));
        group.bench_function("resilience_200_otel", |b| b.iter(|| call_once(&mut otel)));
    }

    let mut routed = ResilienceLayer::new(fifty_routes(&policy)).layer(Answer::new(200, "{}"));
    group.bench_function("resilience_50_routes_200", |b| {
        b.iter(|| call_once(&mut routed))
    });

    let mut retry = policy.trace_layer().layer(
        policy
            .retry_layer()
            .layer(policy.classify_layer().layer(Answer::new(200, "{}"))),
    );
    group.bench_function("trace_retry_classify_200", |b| {
        b.iter(|| call_once(&mut retry))
    });

    let mut classify = policy.classify_layer().layer(Answer::new(200, "{}"));
    group.bench_function("classify_200", |b| b.iter(|| call_once(&mut classify)));

    // A code rule against the table, on the same error answer: the body is
    // read and parsed either way; the rule adds the match on its codes.
    let throttled = r#"[{"code":"Throttled","cause":"Slow down"}]"#;
    let mut table_400 = policy.classify_layer().layer(Answer::new(400, throttled));
    group.bench_function("classify_400_table", |b| {
        b.iter(|| call_once(&mut table_400))
    });
    let mut rule_400 = with_rules(&policy)
        .classify_layer()
        .layer(Answer::new(400, throttled));
    group.bench_function("classify_400_rule", |b| b.iter(|| call_once(&mut rule_400)));
    // Head rules a success passes through: what rules cost a call they do
    // not take.
    let mut rules_200 = with_rules(&policy)
        .classify_layer()
        .layer(Answer::new(200, "{}"));
    group.bench_function("classify_200_rules", |b| {
        b.iter(|| call_once(&mut rules_200))
    });

    // A rule on a success body: the body of every 200 is read and parsed
    // for a code (Slack's `{"ok": false, "error": ...}`).
    let mut body_rule = with_success_body_rule(&policy)
        .classify_layer()
        .layer(Answer::new(200, r#"{"ok":true,"channel":"C1"}"#));
    group.bench_function("classify_200_body_rule", |b| {
        b.iter(|| call_once(&mut body_rule))
    });

    // When to come back: a 429 that says nothing, and one for each header
    // classify reads the wait from (the policy's order: Retry-After, the
    // RateLimit field, X-RateLimit-Reset).
    for (name, headers) in [
        ("classify_429", &[("x-request-id", "7")][..]),
        ("classify_429_retry_after", &[("retry-after", "1")][..]),
        (
            "classify_429_ratelimit_field",
            &[("ratelimit", "\"default\";r=0;t=1")][..],
        ),
        (
            "classify_429_x_ratelimit_reset",
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")][..],
        ),
    ] {
        let mut throttled = policy.classify_layer().layer(with_headers(
            Answer::new(429, r#"{"code":"Throttled"}"#),
            headers,
        ));
        group.bench_function(name, |b| b.iter(|| call_once(&mut throttled)));
    }

    let breaker = policy.breaker_layer();
    let mut closed = breaker.layer(policy.classify_layer().layer(Answer::new(200, "{}")));
    group.bench_function("breaker_closed_200", |b| b.iter(|| call_once(&mut closed)));

    let breaker = policy.breaker_layer();
    breaker.handle().force_open(URL);
    let mut open = breaker.layer(policy.classify_layer().layer(Answer::new(200, "{}")));
    group.bench_function("breaker_open_rejected", |b| b.iter(|| call_once(&mut open)));

    let stack = ResilienceLayer::new(policy.clone());
    stack.breakers().force_open(URL);
    let mut stack_open = stack.layer(Answer::new(200, "{}"));
    group.bench_function("resilience_open_rejected", |b| {
        b.iter(|| call_once(&mut stack_open))
    });

    let mut bare_404 = Answer::new(404, NOT_FOUND);
    group.bench_function("bare_404", |b| b.iter(|| call_once(&mut bare_404)));

    let mut stacked_404 = ResilienceLayer::new(policy.clone()).layer(Answer::new(404, NOT_FOUND));
    group.bench_function("resilience_404_parsed", |b| {
        b.iter(|| call_once(&mut stacked_404))
    });

    // The other formats, named in the policy (the Answer sends no
    // Content-Type), and Google's envelope under `auto`, which tries the
    // connio shape first.
    for (name, format, fields, body) in [
        (
            "resilience_404_problem_parsed",
            "problem",
            "",
            NOT_FOUND_PROBLEM,
        ),
        (
            "resilience_404_fields_parsed",
            "fields",
            GOOGLE_FIELDS,
            NOT_FOUND_GOOGLE,
        ),
        (
            "resilience_404_auto_fields_parsed",
            "auto",
            GOOGLE_FIELDS,
            NOT_FOUND_GOOGLE,
        ),
    ] {
        let policy = connio_reading(format, fields);
        let error_body = policy.classify_settings().error_body();
        let errors = tower_rebound::classify::parse_error_body(error_body, None, body.as_bytes());
        assert_eq!(errors.len(), 1, "{name} reads its error");
        let mut stacked = ResilienceLayer::new(policy).layer(Answer::new(404, body));
        group.bench_function(name, |b| b.iter(|| call_once(&mut stacked)));
    }

    let answer = || Yielding(Answer::new(200, "{}"));
    bench_pending(&mut group, rt, "bare_200_pending", answer());
    bench_pending(
        &mut group,
        rt,
        "tower_retry_200_pending",
        tower::retry::RetryLayer::new(NeverRetry).layer(answer()),
    );
    bench_pending(
        &mut group,
        rt,
        "tower_retry_timeout_200_pending",
        tower_retry_timeout(answer()),
    );
    bench_pending(
        &mut group,
        rt,
        "classify_200_pending",
        policy.classify_layer().layer(answer()),
    );
    bench_pending(
        &mut group,
        rt,
        "trace_retry_classify_200_pending",
        policy.trace_layer().layer(
            policy
                .retry_layer()
                .layer(policy.classify_layer().layer(answer())),
        ),
    );
    bench_pending(
        &mut group,
        rt,
        "resilience_200_pending",
        ResilienceLayer::new(policy).layer(answer()),
    );
    group.finish();
}

/// The mean of a benchmark of this run, from criterion's saved estimates.
fn mean_ns(name: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // target/release/deps/stack-HASH
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })?;
    let path = target
        .join("criterion")
        .join(GROUP)
        .join(name)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn print_ratios() {
    println!("\nratios, same run:");
    let mut rows = vec![
        ("tower_retry_200", "bare_200"),
        ("tower_retry_timeout_200", "bare_200"),
        ("resilience_200", "bare_200"),
        ("resilience_200", "tower_retry_200"),
        ("resilience_200", "tower_retry_timeout_200"),
        ("resilience_50_routes_200", "resilience_200"),
        ("trace_retry_classify_200", "tower_retry_200"),
        ("classify_200", "bare_200"),
        ("breaker_closed_200", "bare_200"),
        ("breaker_closed_200", "classify_200"),
        ("breaker_open_rejected", "bare_200"),
        ("breaker_open_rejected", "breaker_closed_200"),
        ("resilience_open_rejected", "resilience_200"),
        ("resilience_404_parsed", "bare_404"),
        ("classify_400_rule", "classify_400_table"),
        ("classify_200_rules", "classify_200"),
        ("classify_200_body_rule", "classify_200"),
        ("classify_429_retry_after", "classify_429"),
        ("classify_429_ratelimit_field", "classify_429"),
        ("classify_429_x_ratelimit_reset", "classify_429"),
        ("resilience_404_problem_parsed", "resilience_404_parsed"),
        ("resilience_404_fields_parsed", "resilience_404_parsed"),
        (
            "resilience_404_auto_fields_parsed",
            "resilience_404_fields_parsed",
        ),
        ("tower_retry_200_pending", "bare_200_pending"),
        ("tower_retry_timeout_200_pending", "bare_200_pending"),
        ("classify_200_pending", "bare_200_pending"),
        (
            "trace_retry_classify_200_pending",
            "tower_retry_timeout_200_pending",
        ),
        ("resilience_200_pending", "bare_200_pending"),
        ("resilience_200_pending", "tower_retry_200_pending"),
        ("resilience_200_pending", "tower_retry_timeout_200_pending"),
        ("resilience_200_listener", "resilience_200"),
    ];
    if cfg!(feature = "metrics") {
        rows.push(("resilience_200_metrics", "resilience_200"));
        rows.push(("resilience_200_metrics", "resilience_200_listener"));
        rows.push(("resilience_200_prometheus", "resilience_200"));
        rows.push(("resilience_200_prometheus", "resilience_200_listener"));
    }
    if cfg!(feature = "opentelemetry") {
        rows.push(("resilience_200_otel", "resilience_200"));
        rows.push(("resilience_200_otel", "resilience_200_listener"));
    }
    for (name, baseline) in rows {
        match (mean_ns(name), mean_ns(baseline)) {
            (Some(t), Some(b)) => {
                println!(
                    "  {name:<32} {t:>9.1} ns  {baseline:<31} {b:>7.1} ns  ratio {:.2}x",
                    t / b
                )
            }
            _ => println!("  {name}: no estimate saved (was it filtered out?)"),
        }
    }
    if let (Some(routed), Some(plain)) = (
        mean_ns("resilience_50_routes_200"),
        mean_ns("resilience_200"),
    ) {
        println!(
            "  choosing among 50 routes adds {:.1} ns to a call",
            routed - plain
        );
    }
}

/// A listener that takes every event and does nothing with it.
struct Silent;

impl tower_rebound::events::Listener for Silent {}

/// `policy` with the `metrics` facade's listener.
#[cfg(feature = "metrics")]
fn with_metrics(policy: &Policy) -> Policy {
    let listener = tower_rebound::events::MetricsListener::for_policy(policy);
    policy.clone().with_listener(listener)
}

/// metrics-exporter-prometheus's recorder, with OpenTelemetry's buckets for
/// the two duration histograms (as the CLI sets it up): a real recorder,
/// which keeps every value recorded.
#[cfg(feature = "metrics")]
fn prometheus_recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    use tower_rebound::events::instrument::{CALL_DURATION, DURATION_BUCKETS, REQUEST_DURATION};
    let mut builder = PrometheusBuilder::new();
    for name in [REQUEST_DURATION, CALL_DURATION] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), &DURATION_BUCKETS)
            .expect("valid buckets");
    }
    builder.build_recorder()
}

/// `policy` with OpenTelemetry's listener, on the global meter.
#[cfg(feature = "opentelemetry")]
fn with_otel(policy: &Policy) -> Policy {
    let listener = tower_rebound::events::OpenTelemetryListener::for_policy(policy);
    policy.clone().with_listener(listener)
}

/// `policy` with two rules before its table: a 400 whose code is
/// `Throttled` is retryable, a 200 with `X-Status: failed` terminal.
/// `policy` with a rule on the body of a 200: the codes at `/error`.
fn with_success_body_rule(policy: &Policy) -> Policy {
    Policy::from_toml_str(
        "[error_body]\nformat = \"fields\"\n[[error_body.fields]]\ncode = \"/error\"\n\
         [[classify.rules]]\nstatus = 200\ncode = \"ratelimited\"\nclass = \"retryable\"\n",
    )
    .map(|rules| {
        policy
            .clone()
            .with_classify((**rules.classify_settings()).clone())
    })
    .expect("a valid rule")
}

/// `inner` with `headers` on every answer.
fn with_headers<S, R>(
    inner: S,
    headers: &'static [(&'static str, &'static str)],
) -> impl tower::Service<Request<Full<Bytes>>, Response = http::Response<R>, Error = S::Error> + Clone
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<R>> + Clone,
{
    tower::util::MapResponse::new(inner, move |mut response: http::Response<R>| {
        for (name, value) in headers {
            response
                .headers_mut()
                .insert(*name, http::HeaderValue::from_static(value));
        }
        response
    })
}

fn with_rules(policy: &Policy) -> Policy {
    use tower_rebound::classify::{ClassifySettings, Rule, StatusClass};
    let classify = ClassifySettings::builder()
        .success([200])
        .pollable([202])
        .terminal([400, 401, 403, 404, 406, 409])
        .retryable([429, 500])
        .unsupported([503])
        .rule(
            Rule::new(StatusClass::Terminal)
                .status([200])
                .header("x-status", "failed"),
        )
        .rule(
            Rule::new(StatusClass::Retryable)
                .status([400])
                .code(["Throttled"]),
        )
        .build()
        .expect("valid rules");
    policy.clone().with_classify(classify)
}

/// The policy with 50 routes, none of which takes the bench's request (each
/// names another host): every call tries them all and takes the policy's
/// own settings.
fn fifty_routes(policy: &Policy) -> Policy {
    (0..50).fold(policy.clone(), |routed, i| {
        let matcher = RouteMatch::new()
            .host(&format!("api{i}.example.org"))
            .and_then(|m| m.path_prefix("/devices"))
            .expect("valid patterns");
        let route = Route::new(matcher.methods([http::Method::GET]), &routed);
        routed.with_route(route).expect("no route shadows another")
    })
}

/// Runs 200,000 calls of one service, for instruction counts under callgrind.
fn run_loop(name: &str, rt: &Runtime) {
    fn spin<S: Service<Request<Full<Bytes>>>>(mut service: S) {
        for _ in 0..200_000 {
            call_once(&mut service);
        }
    }
    fn spin_pending<S: Service<Request<Full<Bytes>>>>(rt: &Runtime, mut service: S) {
        rt.block_on(async {
            for _ in 0..200_000 {
                call_yielding(&mut service).await;
            }
        })
    }
    let policy = Policy::preset("connio").unwrap();
    let answer = || Answer::new(200, "{}");
    match name {
        "bare" => spin(answer()),
        "tower_retry" => spin(tower::retry::RetryLayer::new(NeverRetry).layer(answer())),
        "tower_timeout" => spin(tower_retry_timeout(answer())),
        "classify" => spin(policy.classify_layer().layer(answer())),
        "classify_body_rule" => spin(
            with_success_body_rule(&policy)
                .classify_layer()
                .layer(Answer::new(200, r#"{"ok":true,"channel":"C1"}"#)),
        ),
        "classify_429" => spin(policy.classify_layer().layer(with_headers(
            Answer::new(429, r#"{"code":"Throttled"}"#),
            &[("x-request-id", "7")],
        ))),
        "classify_429_reset" => spin(policy.classify_layer().layer(with_headers(
            Answer::new(429, r#"{"code":"Throttled"}"#),
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
        ))),
        "retry" => spin(
            policy
                .retry_layer()
                .layer(policy.classify_layer().layer(answer())),
        ),
        "breaker" => spin(
            policy
                .breaker_layer()
                .layer(policy.classify_layer().layer(answer())),
        ),
        "resilience" => spin(ResilienceLayer::new(policy).layer(answer())),
        "resilience_routes" => spin(ResilienceLayer::new(fifty_routes(&policy)).layer(answer())),
        "resilience_listener" => {
            spin(ResilienceLayer::new(policy.with_listener(Silent)).layer(answer()))
        }
        #[cfg(feature = "metrics")]
        "resilience_metrics" => spin(ResilienceLayer::new(with_metrics(&policy)).layer(answer())),
        #[cfg(feature = "metrics")]
        "resilience_prometheus" => {
            let recorder = prometheus_recorder();
            let _local = metrics::set_default_local_recorder(&recorder);
            spin(ResilienceLayer::new(with_metrics(&policy)).layer(answer()))
        }
        #[cfg(feature = "opentelemetry")]
        "resilience_otel" => spin(ResilienceLayer::new(with_otel(&policy)).layer(answer())),
        "bare_pending" => spin_pending(rt, Yielding(answer())),
        "tower_retry_pending" => spin_pending(
            rt,
            tower::retry::RetryLayer::new(NeverRetry).layer(Yielding(answer())),
        ),
        "tower_timeout_pending" => spin_pending(rt, tower_retry_timeout(Yielding(answer()))),
        "resilience_pending" => {
            spin_pending(rt, ResilienceLayer::new(policy).layer(Yielding(answer())))
        }
        other => eprintln!("unknown STACK_LOOP {other:?}"),
    }
}

fn main() {
    let rt = runtime();
    // tower's `Timeout` makes its timer in `call`, even on the ready path.
    let _runtime = rt.enter();
    if let Ok(name) = std::env::var("STACK_LOOP") {
        run_loop(&name, &rt);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion, &rt);
    criterion.final_summary();
    print_ratios();
}
