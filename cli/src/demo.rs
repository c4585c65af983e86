//! `rebound demo`: the seed API's behaviour, misbehaviour included, met by a
//! policy, in one table; with `--api`, a stand-in for GitHub, Stripe, Azure
//! Resource Manager or Google Cloud, met by that API's preset.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_rebound::{CallInfo, Outcome, Policy, ResilienceLayer};
use tower_rebound_testkit::apis::Api;
use tower_rebound_testkit::seed::SeedApi;

use crate::metrics::{METRICS_HEADING, Metrics};
use crate::{EXIT_FAILED, EXIT_SUCCESS, EXIT_USAGE};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    policy: DemoPolicyArg,
    /// Run a stand-in for this API instead of the seed API, under its preset
    /// unless --policy names another
    #[arg(long, value_name = "NAME", value_parser = ["github", "stripe", "azure", "google"])]
    api: Option<String>,
    /// Print the spans and events of every call to stderr
    #[arg(long)]
    trace: bool,
    /// After the table, print the metrics the calls produced, in
    /// Prometheus's text format
    #[arg(long)]
    metrics: bool,
}

/// The demo's `-p`: the preset of the API the stand-in plays is the
/// default here (`connio` for the seed API).
#[derive(Debug, Args)]
struct DemoPolicyArg {
    /// A policy file, or the name of a preset (connio, standard, github,
    /// stripe, azure, google, none) [default: connio, or the --api's preset]
    #[arg(short = 'p', long = "policy", value_name = "POLICY")]
    policy: Option<String>,
}

/// One request of the demo.
struct Scenario {
    /// What the server does.
    what: &'static str,
    method: Method,
    url: String,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
}

/// How one request ended.
struct Row {
    what: &'static str,
    request: String,
    outcome: Outcome,
    status: Option<u16>,
    attempts: u32,
    polls: u32,
    codes: Vec<String>,
    elapsed: Duration,
    explanation: String,
}

pub(crate) fn run(args: &DemoArgs) -> u8 {
    let api = args.api.as_deref().and_then(Api::from_name);
    let policy_name = match (&args.policy.policy, api) {
        (Some(policy), _) => policy.clone(),
        (None, Some(api)) => api.name().to_owned(),
        (None, None) => "connio".to_owned(),
    };
    let policy = match crate::request::load_policy(&policy_name) {
        Ok(policy) => policy,
        Err(message) => {
            eprintln!("rebound: {message}");
            return EXIT_USAGE;
        }
    };
    if args.trace {
        crate::install_tracing_for_demo();
    }
    let metrics = if args.metrics {
        match Metrics::install() {
            Ok(metrics) => Some(metrics),
            Err(message) => {
                eprintln!("rebound: {message}");
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    let policy = match &metrics {
        Some(metrics) => metrics.watch(policy),
        None => policy,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    match crate::runtime(builder) {
        Ok(runtime) => runtime.block_on(async {
            let ran = Ran {
                policy_name: &policy_name,
                metrics: metrics.as_ref(),
                api,
            };
            match api {
                Some(api) => demo_api(api, policy, ran).await,
                None => demo(policy, ran).await,
            }
        }),
        Err(code) => code,
    }
}

/// What a demo runs under: the policy's name, the metrics it prints, and
/// the API its stand-in plays (none for the seed API).
#[derive(Clone, Copy)]
struct Ran<'a> {
    policy_name: &'a str,
    metrics: Option<&'a Metrics>,
    api: Option<Api>,
}

async fn demo(policy: Policy, ran: Ran<'_>) -> u8 {
    let api = match SeedApi::start_on(0).await {
        Ok(api) => api,
        Err(e) => {
            eprintln!("rebound: cannot start the demo server on 127.0.0.1: {e}");
            return EXIT_FAILED;
        }
    };
    let get = |what, path: &str| Scenario {
        what,
        method: Method::GET,
        url: api.url(path),
        headers: Vec::new(),
        body: "",
    };
    let post = |what, path: &str, body| Scenario {
        what,
        method: Method::POST,
        url: api.url(path),
        headers: Vec::new(),
        body,
    };
    let scenarios: Vec<Vec<Scenario>> = vec![
        vec![get("200 with the device", "/v3/devices/_dev_1")],
        vec![post("400, two errors in one body", "/v3/devices", "")],
        vec![Scenario {
            headers: vec![("authorization", "Bearer revoked")],
            ..get("401, revoked key", "/v3/devices/_dev_1")
        }],
        vec![get("403, device disabled", "/v3/devices/_dev_off")],
        vec![get("404, no such device", "/v3/devices/_dev_9")],
        vec![post(
            "406, connector test failed",
            "/v3/connectors/mqtt/test",
            "{}",
        )],
        vec![post(
            "409, name taken",
            "/v3/devices",
            r#"{"name":"thermostat"}"#,
        )],
        vec![get("429 + Retry-After: 1, then 200", "/v3/throttled/a")],
        vec![get("500, 500, then 200", "/v3/flaky/a")],
        vec![get("503, not implemented", "/v3/reports/usage")],
        vec![post(
            "202, no status URL",
            "/v3/devices/_dev_1/data",
            r#"{"t":21.5}"#,
        )],
        vec![post(
            "202 + Location, done after 3 polls",
            "/v3/exports",
            "{}",
        )],
        vec![Scenario {
            url: api.overloaded.url("/v3/devices"),
            ..get("another host: 500 every time", "")
        }],
        vec![
            Scenario {
                url: api.down_url("/v3/devices"),
                ..get("a host that is down", "")
            },
            Scenario {
                url: api.down_url("/v3/devices"),
                ..get("the same host, again", "")
            },
            Scenario {
                url: api.down_url("/v3/devices"),
                ..get("and a third time", "")
            },
        ],
    ];
    run_groups(scenarios, policy, "the seed API", ran).await
}

/// The stand-in for `api`, each of its scenarios a call of its own.
async fn demo_api(api: Api, policy: Policy, ran: Ran<'_>) -> u8 {
    let server = match api.start_on(0).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("rebound: cannot start the demo server on 127.0.0.1: {e}");
            return EXIT_FAILED;
        }
    };
    let scenarios = api
        .scenarios()
        .into_iter()
        .map(|scenario| {
            vec![Scenario {
                what: scenario.what,
                method: scenario.method,
                url: server.url(&scenario.path),
                headers: scenario.headers,
                body: scenario.body,
            }]
        })
        .collect();
    run_groups(scenarios, policy, api.title(), ran).await
}

/// Runs each group of calls in order, the groups at the same time, and
/// prints the table.
async fn run_groups(
    scenarios: Vec<Vec<Scenario>>,
    policy: Policy,
    against: &str,
    ran: Ran<'_>,
) -> u8 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = ResilienceLayer::new(policy);
    let breaker_on = layer.breakers().is_enabled();
    let client = layer.layer(client);
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Every group's first call is made before any is awaited: the retry
    // budget, whose reserve follows the calls the process has made, then
    // sees all of them before the first retry, on every run and machine.
    let gate = Arc::new(tokio::sync::Barrier::new(scenarios.len()));
    for group in scenarios {
        let client = client.clone();
        let gate = Arc::clone(&gate);
        // Each group runs in order (the second call to a host sees what the
        // first did to its breaker); groups run at the same time.
        let about = Shown {
            breaker_on,
            api: ran.api,
        };
        tasks.push(tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut gate = Some(gate);
            for scenario in group {
                rows.push(run_one(client.clone(), scenario, about, gate.take()).await);
            }
            rows
        }));
    }
    let mut rows = Vec::new();
    for task in tasks {
        match task.await {
            Ok(group) => rows.extend(group),
            Err(e) => {
                eprintln!("rebound: a demo call failed to run: {e}");
                return EXIT_FAILED;
            }
        }
    }
    let mut out = table(&rows);
    out.push_str(&format!(
        "\n{} calls under the {:?} policy in {:.1}s, against a stand-in for {against} on 127.0.0.1.\n",
        rows.len(),
        ran.policy_name,
        started.elapsed().as_secs_f64()
    ));
    out.push_str(
        "Run it under another policy with --policy FILE, and see the spans with --trace.\n",
    );
    if ran.api == Some(Api::Google) {
        out.push_str(
            "The google preset returns an Operation as it comes: a route with poll.status_url\n\
             follows it to its end (policies/README.md shows the one for this stand-in).\n",
        );
    }
    if let Some(metrics) = ran.metrics {
        out.push_str(&format!("\n{METRICS_HEADING}\n\n{}", metrics.render()));
    }
    if let Err(code) = crate::write_stdout(&out) {
        return code;
    }
    EXIT_SUCCESS
}

/// What a row's explanation depends on besides the call.
#[derive(Clone, Copy)]
struct Shown {
    breaker_on: bool,
    api: Option<Api>,
}

async fn run_one<S>(
    mut client: S,
    scenario: Scenario,
    about: Shown,
    gate: Option<Arc<tokio::sync::Barrier>>,
) -> Row
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = tower_rebound::Error,
        >,
{
    let mut request = Request::builder()
        .method(scenario.method.clone())
        .uri(&scenario.url);
    for (name, value) in &scenario.headers {
        request = request.header(*name, *value);
    }
    if !scenario.body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from_static(scenario.body.as_bytes())))
        .expect("the demo's requests are valid");
    let path = scenario
        .url
        .split_once("127.0.0.1:")
        .map_or("", |(_, rest)| rest)
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let shown = match about.api {
        Some(_) => format!("{} {}", scenario.method, short_path(path)),
        None => format!("{} {path}", scenario.method),
    };
    let started = Instant::now();
    let sent = match client.ready().await {
        Ok(client) => {
            let call = client.call(request);
            if let Some(gate) = gate {
                gate.wait().await;
            }
            call.await
        }
        Err(error) => {
            if let Some(gate) = gate {
                gate.wait().await;
            }
            Err(error)
        }
    };
    match sent {
        Ok(response) => {
            let info = CallInfo::of(&response);
            let status = response.status().as_u16();
            let outcome = if status == 202 {
                Outcome::Accepted
            } else {
                Outcome::Success
            };
            let _ = response.into_body().collect().await;
            let explanation = match (outcome, info.attempts(), info.polls()) {
                (Outcome::Accepted, ..) => "accepted: the write finishes at the server".to_owned(),
                (_, _, polls) if polls > 0 && about.api.is_some() => {
                    format!("the operation was followed to its end in {polls} polls")
                }
                (_, _, polls) if polls > 0 => {
                    format!("the 202 was followed to its end in {polls} polls")
                }
                (_, 1, _) => "answered at once".to_owned(),
                (_, attempts, _) => format!("{} failed, the retry succeeded", attempts - 1),
            };
            Row {
                what: scenario.what,
                request: shown,
                outcome,
                status: Some(status),
                attempts: info.attempts(),
                polls: info.polls(),
                codes: Vec::new(),
                elapsed: started.elapsed(),
                explanation,
            }
        }
        Err(error) => {
            let outcome = Outcome::from(error.kind());
            let status = error.status().map(|s| s.as_u16());
            let explanation = explain(outcome, status, error.attempts(), &error, about);
            Row {
                what: scenario.what,
                request: shown,
                outcome,
                status,
                attempts: error.attempts(),
                polls: error.polls(),
                codes: error.error_codes().map(str::to_owned).collect(),
                elapsed: started.elapsed(),
                explanation,
            }
        }
    }
}

fn explain(
    outcome: Outcome,
    status: Option<u16>,
    attempts: u32,
    error: &tower_rebound::Error,
    about: Shown,
) -> String {
    let breaker_on = about.breaker_on;
    let status = status.map_or_else(String::new, |s| format!("{s} "));
    if about.api.is_some() {
        if let Some(why) = explain_api(outcome, &status, error) {
            return why;
        }
    }
    match outcome {
        Outcome::Terminal => format!("{status}the request is wrong: not retried"),
        Outcome::Unsupported => format!("{status}not implemented: not retried"),
        Outcome::RetriesExhausted => format!("{status}on all {attempts} attempts"),
        Outcome::BudgetExhausted => "the retry budget refused another retry".to_owned(),
        Outcome::CircuitOpen if attempts > 0 => {
            format!("{attempts} more failed and the breaker opened: the retry was not sent")
        }
        Outcome::CircuitOpen => "breaker open: rejected without sending".to_owned(),
        Outcome::DeadlineExceeded => "out of time (timeouts.total)".to_owned(),
        Outcome::Transport if error.is_connect() && breaker_on => {
            format!("connection refused, {attempts} attempts; the breaker counts them")
        }
        Outcome::Transport if error.is_connect() => {
            format!("connection refused, {attempts} attempts (no breaker in this policy)")
        }
        Outcome::Transport => format!("transport failure after {attempts} attempts"),
        _ => error.to_string(),
    }
}

/// The demo's table: a header, then one line per call.
fn table(rows: &[Row]) -> String {
    let header = [
        "what the server does",
        "request",
        "outcome",
        "status",
        "attempts",
        "polls",
        "error codes",
        "time",
        "what happened",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.what.to_owned(),
                r.request.clone(),
                r.outcome.as_str().to_owned(),
                r.status.map_or("-".to_owned(), |s| s.to_string()),
                r.attempts.to_string(),
                r.polls.to_string(),
                if r.codes.is_empty() {
                    "-".to_owned()
                } else {
                    r.codes.join(",")
                },
                format!("{:.2}s", r.elapsed.as_secs_f64()),
                r.explanation.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: [&str; 9]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(header);
    line(widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str));
    for row in &cells {
        line(row.each_ref().map(String::as_str));
    }
    text
}

/// A path short enough for the table: no query, and no more than its last
/// four segments (Resource Manager's run to a dozen).
fn short_path(path: &str) -> String {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() <= 6 {
        return path.to_owned();
    }
    format!(".../{}", segments[segments.len() - 4..].join("/"))
}

/// What only the API stand-ins show: an operation that ended badly, a rule
/// that decided, a retry refused.
fn explain_api(outcome: Outcome, status: &str, error: &tower_rebound::Error) -> Option<String> {
    if outcome == Outcome::Terminal && error.polls() > 0 {
        let text = error.to_string();
        let why = ["the operation failed", "the operation was canceled"]
            .into_iter()
            .find(|why| text.contains(why))
            .map_or_else(
                || {
                    format!(
                        "after {} polls: the status body said nothing the policy reads",
                        error.polls()
                    )
                },
                |why| format!("{why}, after {} polls", error.polls()),
            );
        return Some(why);
    }
    if let (Outcome::Terminal, Some(rule)) = (outcome, error.rule()) {
        return Some(format!("{status}rule {rule}: not retried"));
    }
    if outcome == Outcome::Terminal && error.status().is_some_and(|s| s.is_server_error()) {
        return Some(format!("{status}a server error the policy does not retry"));
    }
    if let Some(refusal) = error.retry_refused() {
        return Some(format!("{status}retry refused: {}", refusal.as_str()));
    }
    None
}
