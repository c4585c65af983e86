//! `rebound load` from outside, against real servers on 127.0.0.1: the report
//! against what the server saw, the in-flight limit, usage errors and Ctrl-C.

mod common;

use common::{rebound_async, temp_dir};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tower_rebound_testkit::{TestServer, api_error, respond};

/// `load --report json ... URL` as arguments.
fn load_args(url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["load".to_owned(), "--report".to_owned(), "json".to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(url.to_owned());
    args
}

/// The report: stdout is exactly one JSON object with exactly the
/// contract's keys, whose numbers agree with each other.
fn report(output: &Output) -> Value {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let value: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout:?}"));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amplification",
            "calls",
            "dropped",
            "latency_ms",
            "outcomes",
            "requests"
        ]
    );
    let calls = value["calls"].as_u64().unwrap();
    let dropped = value["dropped"].as_u64().unwrap();
    let requests = value["requests"].as_u64().unwrap();
    let outcomes = value["outcomes"].as_object().unwrap();
    let ended: u64 = outcomes.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(ended, calls - dropped, "outcomes sum to calls - dropped");
    assert!(outcomes.values().all(|n| n.as_u64() > Some(0)), "{value}");
    assert_eq!(
        value["amplification"].as_f64(),
        Some(if calls == 0 {
            0.0
        } else {
            requests as f64 / calls as f64
        })
    );
    let latency = value["latency_ms"].as_object().unwrap();
    let mut seen: Vec<&String> = outcomes.keys().collect();
    let mut timed: Vec<&String> = latency.keys().collect();
    seen.sort_unstable();
    timed.sort_unstable();
    assert_eq!(seen, timed, "a latency entry for each outcome seen");
    for (outcome, numbers) in latency {
        let get = |key: &str| {
            numbers[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{outcome}.{key}: {numbers}"))
        };
        assert_eq!(numbers.as_object().unwrap().len(), 4, "{numbers}");
        let (p50, p90, p99, max) = (get("p50"), get("p90"), get("p99"), get("max"));
        assert!(
            0.0 <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
            "{outcome}: {numbers}"
        );
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_counts_exactly_what_the_server_saw() {
    let server = TestServer::start(|_| async { respond(200, r#"{"ok":true}"#) }).await;
    let output = rebound_async(load_args(
        &server.url("/devices/1"),
        &["--rate", "200", "--duration", "1s"],
    ))
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = report(&output);
    // The schedule starts call i at i / 200 s for every i / 200 < 1.
    assert_eq!(r["calls"], 200);
    assert_eq!(r["dropped"], 0);
    assert_eq!(r["outcomes"], serde_json::json!({"success": 200}));
    assert_eq!(r["requests"], 200);
    assert_eq!(server.requests(), 200);
    assert_eq!(r["amplification"], 1.0);
    assert!(output.stderr.is_empty(), "no terminal, no live line");

    // The table says the same.
    let output = rebound_async(vec![
        "load".into(),
        "--rate".into(),
        "50".into(),
        "--duration".into(),
        "200ms".into(),
        server.url("/devices/1"),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0));
    let table = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "GET {} at 50/s for 200ms (policy standard, at most 1000 in flight): done in",
            server.url("/devices/1")
        )),
        "{table}"
    );
    let cell = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {table}"))
    };
    assert_eq!(cell("calls "), "10");
    assert_eq!(cell("dropped "), "0");
    assert_eq!(cell("requests "), "10");
    assert_eq!(cell("amplification "), "1.00");
    assert!(
        lines.contains(&"outcome  calls  p50 ms  p90 ms  p99 ms  max ms"),
        "{table}"
    );
    let success: Vec<&str> = cell("success ").split_whitespace().collect();
    assert_eq!(success.len(), 5, "{table}");
    assert_eq!(success[0], "10");
    assert_eq!(server.requests(), 210);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_show_as_requests_and_amplification() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let server = TestServer::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n % 3 == 0 {
                api_error(500, &[("InternalError", "Try again")])
            } else {
                respond(200, "{}")
            }
        }
    })
    .await;
    let output = rebound_async(load_args(
        &server.url("/devices/1"),
        &["--rate", "200", "--duration", "1s", "-p", "connio"],
    ))
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = report(&output);
    assert_eq!(r["calls"], 200);
    assert_eq!(r["dropped"], 0);
    let requests = r["requests"].as_u64().unwrap();
    assert_eq!(requests, server.requests() as u64);
    // A third of the requests fail and connio retries 500s: more requests
    // than calls, and most calls end well.
    assert!(requests > 200, "{r}");
    assert!(r["amplification"].as_f64().unwrap() > 1.0, "{r}");
    assert!(r["outcomes"]["success"].as_u64().unwrap() >= 134, "{r}");
}

/// A server that holds each request for `hold` before answering 200, and
/// the most requests it held at once.
async fn holding_server(hold: Duration) -> (TestServer, Arc<AtomicUsize>) {
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (a, m) = (Arc::clone(&active), Arc::clone(&most));
    let server = TestServer::start(move |_| {
        let (active, most) = (Arc::clone(&a), Arc::clone(&m));
        async move {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(hold).await;
            active.fetch_sub(1, Ordering::SeqCst);
            respond(200, "")
        }
    })
    .await;
    (server, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_max_in_flight_are_dropped_not_queued() {
    // Each request is held past the end of the run's schedule (500 ms).
    let (server, most) = holding_server(Duration::from_millis(1500)).await;
    let output = rebound_async(load_args(
        &server.url("/slow"),
        &[
            "--rate",
            "100",
            "--duration",
            "500ms",
            "--max-in-flight",
            "5",
        ],
    ))
    .await;
    assert_eq!(output.status.code(), Some(0));
    let r = report(&output);
    // The first five calls hold every slot until after the last call was
    // due: the other 45 are dropped.
    assert_eq!(r["calls"], 50);
    assert_eq!(r["dropped"], 45);
    assert_eq!(r["outcomes"], serde_json::json!({"success": 5}));
    assert_eq!(r["requests"], 5);
    assert_eq!(server.requests(), 5);
    assert_eq!(most.load(Ordering::SeqCst), 5, "never more than M at once");
    assert!(r["latency_ms"]["success"]["p50"].as_f64().unwrap() >= 1500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_s_concurrency_limit_holds_the_server_to_it_and_the_rest_are_overloaded() {
    let (server, most) = holding_server(Duration::from_millis(200)).await;
    let policy = temp_dir("concurrency").join("policy.toml");
    std::fs::write(
        &policy,
        "[concurrency]\nmax_in_flight = 4\nqueue = 2\nqueue_timeout = \"50ms\"\n",
    )
    .unwrap();
    let output = rebound_async(load_args(
        &server.url("/slow"),
        &[
            "--rate",
            "100",
            "--duration",
            "1s",
            "-p",
            policy.to_str().unwrap(),
        ],
    ))
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = report(&output);
    assert_eq!(r["calls"], 100);
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 4, "the server held {most} at once");
    assert_eq!(most, 4, "the limit was reached");
    let ok = r["outcomes"]["success"].as_u64().unwrap();
    let overloaded = r["outcomes"]["overloaded"].as_u64().unwrap();
    assert_eq!(ok + overloaded, 100, "{r}");
    assert!(overloaded > 0, "{r}");
    assert_eq!(
        r["requests"].as_u64().unwrap(),
        ok,
        "an overloaded call sends nothing"
    );
    assert_eq!(server.requests() as u64, ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_2_with_one_line_and_sends_nothing() {
    let server = TestServer::start(|_| async { respond(200, "") }).await;
    let url = server.url("/");
    let dir = temp_dir("usage");
    let bad_policy = dir.join("bad.toml");
    std::fs::write(
        &bad_policy,
        "[classify]\nretryable = [429]\nterminal = [429]\n",
    )
    .unwrap();
    let bad_policy = bad_policy.display().to_string();
    let good = ["--rate", "10", "--duration", "1s"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--rate", "0", "--duration", "1s"], "--rate"),
        (vec!["--rate", "100001", "--duration", "1s"], "--rate"),
        (vec!["--rate", "-5", "--duration", "1s"], "--rate"),
        (vec!["--rate", "fast", "--duration", "1s"], "--rate"),
        (vec!["--rate", "10", "--duration", "0s"], "--duration"),
        (vec!["--rate", "10", "--duration", "25h"], "--duration"),
        (vec!["--rate", "10", "--duration", "soon"], "--duration"),
        (vec!["--rate", "10", "--duration", "-1s"], "--duration"),
        (
            [&good[..], &["--max-in-flight", "0"]].concat(),
            "--max-in-flight",
        ),
        (
            [&good[..], &["--max-in-flight", "many"]].concat(),
            "--max-in-flight",
        ),
        (
            [&good[..], &["--max-in-flight", "-3"]].concat(),
            "--max-in-flight",
        ),
        ([&good[..], &["-H", "no-colon"]].concat(), "invalid header"),
        (
            [&good[..], &["-d", "@/no/such/file"]].concat(),
            "cannot read the body",
        ),
        ([&good[..], &["-p", "nonesuch"]].concat(), "nonesuch"),
        ([&good[..], &["-p", &bad_policy]].concat(), "bad.toml:3:"),
        ([&good[..], &["-X", "GE T"]].concat(), "invalid method"),
    ];
    for (extra, says) in cases {
        let output = rebound_async(load_args(&url, &extra)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{extra:?}: {stderr}");
        assert!(stderr.starts_with("rebound: "), "{extra:?}: {stderr}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{extra:?}");
    }
    for url in ["not a url", "ftp://127.0.0.1/"] {
        let output = rebound_async(load_args(url, &good)).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{url}: {stderr}");
        assert!(stderr.starts_with("rebound: invalid URL"), "{stderr}");
    }
    // Without --rate or --duration clap says what is missing.
    let output = rebound_async(load_args(&url, &["--rate", "10"])).await;
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(server.requests(), 0, "nothing was sent");
}

/// Starts `rebound load` with piped output.
fn spawn_load(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the rebound binary")
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Waits, at most 10 s, for the server to have seen `n` requests.
async fn until_requests(server: &TestServer, n: usize) {
    for _ in 0..1000 {
        if server.requests() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server saw {} requests, not {n}", server.requests());
}

/// Waits, at most 15 s, for `child` to exit; kills it and fails after that.
async fn finish(child: Child) -> Output {
    let pid = child.id().to_string();
    let waited = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    match waited {
        Ok(output) => output.unwrap().unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("rebound load did not exit");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_run_and_reports_what_ran() {
    let server = TestServer::start(|_| async { respond(200, "{}") }).await;
    let child = spawn_load(&load_args(
        &server.url("/"),
        &["--rate", "100", "--duration", "20s"],
    ));
    until_requests(&server, 10).await;
    interrupt(&child);
    let output = finish(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("rebound: stopped by Ctrl-C after"),
        "{stderr}"
    );
    let r = report(&output);
    let calls = r["calls"].as_u64().unwrap();
    assert!((10..2000).contains(&calls), "{r}");
    // The calls in flight ended well within the grace period.
    assert_eq!(r["outcomes"], serde_json::json!({"success": calls}));
    assert_eq!(r["requests"].as_u64(), Some(server.requests() as u64));

    // The table, too.
    let child = spawn_load(&[
        "load".into(),
        "--rate".into(),
        "100".into(),
        "--duration".into(),
        "20s".into(),
        server.url("/"),
    ]);
    let before = server.requests();
    until_requests(&server, before + 10).await;
    interrupt(&child);
    let output = finish(child).await;
    assert_eq!(output.status.code(), Some(130));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .contains(": stopped by Ctrl-C after"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("success ")), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_still_in_flight_after_ctrl_c_are_abandoned() {
    let server = TestServer::start(|_| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        respond(200, "")
    })
    .await;
    let mut child = spawn_load(&load_args(
        &server.url("/stall"),
        &["--rate", "50", "--duration", "20s"],
    ));
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    until_requests(&server, 5).await;
    interrupt(&child);
    // The first Ctrl-C waits for the calls in flight; a second gives up.
    let said = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stderr.read_line(&mut line).unwrap();
            (line, stderr)
        }),
    )
    .await
    .expect("rebound says it waits")
    .unwrap();
    let (line, mut stderr) = said;
    assert!(
        line.starts_with("rebound: Ctrl-C: waiting up to 5s for the ") && line.contains("again"),
        "{line}"
    );
    interrupt(&child);
    let output = finish(child).await;
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(output.status.code(), Some(130), "{rest}");
    let r = report(&output);
    let calls = r["calls"].as_u64().unwrap();
    assert!((5..1000).contains(&calls), "{r}");
    assert_eq!(r["outcomes"], serde_json::json!({"abandoned": calls}));
    // What an abandoned call sent is not known, so none of it is counted.
    assert_eq!(r["requests"], 0);
    assert!(server.requests() as u64 <= calls);
    assert!(
        rest.contains("stopped by Ctrl-C after")
            && rest.contains(&format!("{calls} calls abandoned")),
        "{rest}"
    );
}

/// The value of the sample `name` (with no labels, or summed over them) in
/// Prometheus's text format.
fn sample_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_table_and_agree_with_the_server() {
    let seen = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start({
        let seen = Arc::clone(&seen);
        move |_| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n % 4 == 0 {
                    api_error(500, &[("InternalError", "Again")])
                } else {
                    respond(200, "{}")
                }
            }
        }
    })
    .await;
    let output = rebound_async(vec![
        "load".into(),
        "--rate".into(),
        "50".into(),
        "--duration".into(),
        "400ms".into(),
        "--metrics".into(),
        server.url("/m"),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (table, metrics) = stdout
        .split_once("The metrics of these calls, in Prometheus's text format:")
        .unwrap_or_else(|| panic!("no metrics: {stdout}"));
    assert!(table.contains("calls            20"), "{table}");
    assert_eq!(
        sample_sum(metrics, "rebound_call_duration_seconds_count"),
        20.0
    );
    // One request record per request the server answered.
    assert_eq!(
        sample_sum(metrics, "http_client_request_duration_seconds_count"),
        server.requests() as f64
    );
    assert_eq!(
        sample_sum(metrics, "rebound_retries_total"),
        (server.requests() - 20) as f64
    );
}
