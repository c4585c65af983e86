//! The `rebound` binary from outside: the JSON report, the exit statuses and
//! `rebound check`, against a real server on 127.0.0.1.

mod common;

use common::{rebound, rebound_async, temp_dir};
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use tower_rebound_testkit::apis::Api;
use tower_rebound_testkit::{TestServer, api_error, respond};

/// The report: exactly one JSON object on one line of stderr, with exactly
/// the contract's keys, and `route` (when the policy has routes) and
/// `final_url` (after polls) when they apply.
fn report(output: &Output) -> Value {
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    let value: Value = serde_json::from_str(lines[0]).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "route" | "final_url" | "retry_refused"))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "attempts",
            "elapsed_ms",
            "error",
            "error_codes",
            "outcome",
            "polls",
            "requests",
            "status"
        ]
    );
    assert!(value["elapsed_ms"].is_u64());
    // Every request is counted: at least one per attempt and per poll.
    let count = |key: &str| value[key].as_u64().unwrap();
    assert!(
        count("requests") >= count("attempts") + count("polls"),
        "{value}"
    );
    // A failure names its cause on one line; a success names none.
    match value["outcome"].as_str().unwrap() {
        "success" | "accepted" => assert_eq!(value["error"], Value::Null, "{value}"),
        _ => {
            let error = value["error"].as_str().unwrap();
            assert!(!error.is_empty() && !error.contains('\n'), "{value}");
        }
    }
    if let Some(url) = value.get("final_url") {
        assert!(value["polls"].as_u64() > Some(0), "{value}");
        assert!(url.as_str().unwrap().starts_with("http"), "{value}");
    }
    value
}

async fn seed_server() -> TestServer {
    TestServer::start(|request| async move {
        match request.uri().path() {
            "/devices/1" => respond(200, r#"{"id":"1"}"#),
            "/echo" => respond(
                200,
                format!(
                    "{} {} {}",
                    request.method(),
                    request
                        .headers()
                        .get("x-tag")
                        .map_or("-", |v| v.to_str().unwrap()),
                    String::from_utf8_lossy(request.body())
                ),
            ),
            "/data" => respond(202, ""),
            "/throttled" => api_error(429, &[("TooManyRequests", "Slow down")]),
            "/broken" => api_error(500, &[("InternalError", "Oops")]),
            "/unsupported" => api_error(503, &[("NotImplemented", "Not yet")]),
            _ => api_error(
                404,
                &[
                    ("ResourceNotFound", "Resource not found"),
                    ("BadPath", "No such path"),
                ],
            ),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reports_each_outcome() {
    let server = seed_server().await;
    let run = |path: &str, extra: &[&str]| {
        let mut args = vec![
            "request".to_owned(),
            "--report".to_owned(),
            "json".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(server.url(path));
        rebound_async(args)
    };

    let ok = run("/devices/1", &[]).await;
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(ok.stdout, br#"{"id":"1"}"#);
    let r = report(&ok);
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["status"], 200);
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["polls"], 0);
    assert_eq!(r["error_codes"], serde_json::json!([]));

    let accepted = run("/data", &["-d", "{\"v\":1}"]).await;
    assert_eq!(accepted.status.code(), Some(0));
    let r = report(&accepted);
    assert_eq!(r["outcome"], "accepted");
    assert_eq!(r["status"], 202);

    let missing = run("/nope", &[]).await;
    assert_eq!(missing.status.code(), Some(1));
    let r = report(&missing);
    assert_eq!(r["outcome"], "terminal");
    assert_eq!(r["status"], 404);
    assert_eq!(
        r["error_codes"],
        serde_json::json!(["ResourceNotFound", "BadPath"])
    );
    assert!(String::from_utf8_lossy(&missing.stdout).contains("ResourceNotFound"));

    for (path, outcome, status, code) in [
        ("/throttled", "retries_exhausted", 429, "TooManyRequests"),
        ("/broken", "retries_exhausted", 500, "InternalError"),
        ("/unsupported", "unsupported", 503, "NotImplemented"),
    ] {
        let output = run(path, &["-p", "connio"]).await;
        assert_eq!(output.status.code(), Some(1), "{path}");
        let r = report(&output);
        assert_eq!(r["outcome"], outcome, "{path}");
        assert_eq!(r["status"], status, "{path}");
        assert_eq!(r["error_codes"], serde_json::json!([code]), "{path}");
        let attempts = if outcome == "retries_exhausted" { 4 } else { 1 };
        assert_eq!(r["attempts"], attempts, "{path}");
    }

    // The default policy is the standard preset, where 503 is retryable,
    // not unsupported as the seed API's connio says.
    let output = run("/unsupported", &[]).await;
    assert_eq!(report(&output)["outcome"], "retries_exhausted");
    assert_eq!(report(&output)["attempts"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sends_method_headers_and_body() {
    let server = seed_server().await;
    let dir = temp_dir("body");
    let file = dir.join("body.json");
    std::fs::write(&file, "from-file").unwrap();
    let output = rebound_async(vec![
        "request".into(),
        "-X".into(),
        "PUT".into(),
        "-H".into(),
        "X-Tag: seven".into(),
        "-d".into(),
        format!("@{}", file.display()),
        server.url("/echo"),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "PUT seven from-file"
    );
    assert!(output.stderr.is_empty(), "no report was asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_without_report_explains_itself_on_stderr() {
    let server = seed_server().await;
    let output = rebound_async(vec!["request".into(), server.url("/nope")]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("rebound: request rejected by the server (status 404"),
        "{stderr}"
    );
    // What happened, then what to do about it (`Error::advice`), on one line.
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.ends_with("; fix the request; sending it again will not help"),
        "{stderr}"
    );
}

#[test]
fn a_refused_connection_is_transport() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = rebound(&[
        "request",
        "--report",
        "json",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let r = report(&output);
    assert_eq!(r["outcome"], "transport");
    assert_eq!(r["status"], Value::Null);
    // A refused connection never sent the request: retried up to connio's
    // max_attempts.
    assert_eq!(r["attempts"], 4);
}

#[test]
fn bad_usage_and_invalid_policies_exit_2() {
    let dir = temp_dir("usage");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[classify]\nretryable = [429]\nterminal = [429]\n").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["request".into()],
        vec!["request".into(), "not a url".into()],
        vec!["request".into(), "ftp://127.0.0.1/".into()],
        vec![
            "request".into(),
            "-H".into(),
            "no-colon".into(),
            "http://127.0.0.1:9/".into(),
        ],
        vec![
            "request".into(),
            "-X".into(),
            "GE T".into(),
            "http://127.0.0.1:9/".into(),
        ],
        vec![
            "request".into(),
            "-p".into(),
            "nonesuch".into(),
            "http://127.0.0.1:9/".into(),
        ],
        vec![
            "request".into(),
            "-p".into(),
            bad.display().to_string(),
            "http://127.0.0.1:9/".into(),
        ],
        vec![
            "request".into(),
            "-d".into(),
            "@/no/such/file".into(),
            "http://127.0.0.1:9/".into(),
        ],
        vec![
            "request".into(),
            "--report".into(),
            "xml".into(),
            "http://127.0.0.1:9/".into(),
        ],
        vec!["frobnicate".into()],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = rebound(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let output = rebound(&[
        "request",
        "-p",
        bad.to_str().unwrap(),
        "http://127.0.0.1:9/",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:3:13:", bad.display())),
        "{stderr}"
    );
}

#[test]
fn check_validates_each_file_and_stops_at_the_first_invalid() {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let connio = policies.join("connio.toml");
    let standard = policies.join("standard.toml");
    let output = rebound(&[
        "check",
        connio.to_str().unwrap(),
        standard.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout,
        format!("{}: ok\n{}: ok\n", connio.display(), standard.display())
    );

    let dir = temp_dir("check");
    let bad = dir.join("typo.toml");
    std::fs::write(
        &bad,
        "[classify]\nsuccess = [200]\n\n[error_body]\nmax_byte = 10\n",
    )
    .unwrap();
    let output = rebound(&[
        "check",
        connio.to_str().unwrap(),
        bad.to_str().unwrap(),
        standard.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok\n", connio.display())
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("{}:5:1: unknown field `max_byte`", bad.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);

    assert_eq!(rebound(&["check"]).status.code(), Some(2));
}

#[test]
fn check_points_at_route_mistakes() {
    let dir = temp_dir("check-routes");
    let cases = [
        (
            "shadowed.toml",
            "[[routes]]\npath_prefix = \"/v3\"\n\n[[routes]]\npath_prefix = \"/v3/exports\"\n",
            "4:1: route 1 can never match",
        ),
        (
            "glob.toml",
            "[[routes]]\nhost = \"api.*.example\"\n",
            "2:8: invalid host pattern",
        ),
        (
            "unknown.toml",
            "[[routes]]\nhost = \"api.example\"\nretries = 2\n",
            "3:1: unknown field `retries`",
        ),
        (
            "breaker.toml",
            "[[routes]]\nhost = \"api.example\"\n[routes.circuit_breaker]\nenabled = false\n",
            "3:",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = rebound(&["check", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!("{}:{expected}", path.display())),
            "{name}: {stderr}"
        );
    }
    let good = dir.join("routes.toml");
    std::fs::write(
        &good,
        "[[routes]]\nname = \"exports\"\nhost = \"api.example\"\npath_prefix = \"/v3/exports\"\n\
         methods = [\"POST\"]\n[routes.timeouts]\ntotal = \"5m\"\n",
    )
    .unwrap();
    assert_eq!(
        rebound(&["check", good.to_str().unwrap()]).status.code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_policy_retries_throttling_and_polls() {
    let dir = temp_dir("partial");
    let standard = dir.join("partial.toml");
    std::fs::write(&standard, "[retry]\nmax_attempts = 3\n").unwrap();
    let none = dir.join("none.toml");
    std::fs::write(&none, "extends = \"none\"\n[retry]\nmax_attempts = 3\n").unwrap();
    // (path, outcome, status, attempts, polls), each on a fresh server.
    let cases = [
        (
            &standard,
            [
                ("/throttle", "success", 200, 2, 0),
                ("/unavailable/a", "success", 200, 2, 0),
                ("/write-once", "success", 200, 1, 1),
            ],
        ),
        (
            // As before bases: 429 terminal, 202 the answer.
            &none,
            [
                ("/throttle", "terminal", 429, 1, 0),
                ("/unavailable/a", "success", 200, 2, 0),
                ("/write-once", "success", 202, 1, 0),
            ],
        ),
    ];
    for (policy, calls) in cases {
        let server = flaky_server().await;
        for (path, outcome, status, attempts, polls) in calls {
            let output = rebound_async(vec![
                "request".into(),
                "--report".into(),
                "json".into(),
                "-p".into(),
                policy.display().to_string(),
                server.url(path),
            ])
            .await;
            let r = report(&output);
            assert_eq!(
                (
                    r["outcome"].as_str(),
                    r["status"].as_u64(),
                    r["attempts"].as_u64(),
                    r["polls"].as_u64()
                ),
                (Some(outcome), Some(status), Some(attempts), Some(polls)),
                "{} {path}",
                policy.display()
            );
            let final_url = (polls > 0).then(|| server.url("/ops-once"));
            assert_eq!(
                r.get("final_url").and_then(Value::as_str),
                final_url.as_deref(),
                "{path}"
            );
            assert!(r.get("route").is_none(), "no routes, no route key");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_in_the_file_retries_a_throttled_400() {
    let dir = temp_dir("rules");
    let policy = dir.join("rules.toml");
    std::fs::write(
        &policy,
        "extends = \"connio\"\n[retry.backoff]\ninitial = \"10ms\"\n\
         [[classify.rules]]\nname = \"throttled\"\nstatus = 400\ncode = \"Throttled\"\nclass = \"retryable\"\n",
    )
    .unwrap();
    let server = flaky_server().await;
    let run = |policy: String, url: String| {
        rebound_async(vec![
            "request".into(),
            "--report".into(),
            "json".into(),
            "-p".into(),
            policy,
            url,
        ])
    };
    let r = report(&run(policy.display().to_string(), server.url("/busy")).await);
    assert_eq!(
        (
            r["outcome"].as_str(),
            r["attempts"].as_u64(),
            r["status"].as_u64()
        ),
        (Some("success"), Some(2), Some(200))
    );
    // Without the rule, the same answer is terminal.
    let server = flaky_server().await;
    let r = report(&run("connio".into(), server.url("/busy")).await);
    assert_eq!(
        (
            r["outcome"].as_str(),
            r["attempts"].as_u64(),
            r["error_codes"].clone()
        ),
        (Some("terminal"), Some(1), serde_json::json!(["Throttled"]))
    );
}

#[test]
fn check_warns_and_prints_the_effective_policy() {
    let dir = temp_dir("check-warnings");
    let risky = dir.join("risky.toml");
    std::fs::write(
        &risky,
        "[classify]\nterminal = [429]\n\n[timeouts]\ntotal = \"5s\"\nattempt = \"10s\"\n",
    )
    .unwrap();
    let output = rebound(&["check", risky.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok\n", risky.display())
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "{}:2:13: warning: 429 Too Many Requests is terminal",
            risky.display()
        )),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}:6:11: warning: timeouts.attempt",
            risky.display()
        )),
        "{stderr}"
    );
    let denied = rebound(&["check", "--deny-warnings", risky.to_str().unwrap()]);
    assert_eq!(denied.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&denied.stderr), stderr);

    // --effective writes a whole policy that checks clean and resolves to itself.
    let app = dir.join("app.toml");
    std::fs::write(
        &app,
        "extends = \"connio\"\n[classify]\nretryable = [429, 500, 503]\n[retry]\nmax_attempts = 2\n",
    )
    .unwrap();
    let output = rebound(&["check", "--effective", app.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty());
    let effective = String::from_utf8(output.stdout).unwrap();
    assert!(effective.contains("extends = \"none\""), "{effective}");
    assert!(effective.contains("max_attempts = 2"), "{effective}");
    assert!(effective.contains("unsupported = []"), "{effective}");
    let whole = dir.join("whole.toml");
    std::fs::write(&whole, &effective).unwrap();
    let again = rebound(&["check", "--effective", whole.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), effective);
    let both = rebound(&[
        "check",
        "--effective",
        app.to_str().unwrap(),
        whole.to_str().unwrap(),
    ]);
    assert_eq!(both.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_applies_a_route() {
    let server = flaky_server().await;
    let dir = temp_dir("route");
    let policy = dir.join("routes.toml");
    std::fs::write(
        &policy,
        "[classify]\nretryable = [500]\n[retry]\nmax_attempts = 4\n\
         [retry.backoff]\ninitial = \"10ms\"\nmax = \"50ms\"\n\
         [[routes]]\nname = \"once\"\npath_prefix = \"/flaky/3/once\"\n[routes.retry]\nmax_attempts = 1\n",
    )
    .unwrap();
    let policy = policy.display().to_string();
    for (path, outcome, attempts) in [
        ("/flaky/3/once", "retries_exhausted", 1),
        ("/flaky/3/other", "success", 4),
    ] {
        let output = rebound_async(vec![
            "request".into(),
            "--report".into(),
            "json".into(),
            "-p".into(),
            policy.clone(),
            server.url(path),
        ])
        .await;
        let r = report(&output);
        assert_eq!(
            (r["outcome"].as_str(), r["attempts"].as_u64()),
            (Some(outcome), Some(attempts)),
            "{path}"
        );
        // The policy has routes: the key is there, null for its own settings.
        let route = if path == "/flaky/3/once" {
            Value::from("once")
        } else {
            Value::Null
        };
        assert_eq!(r.get("route"), Some(&route), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_shows_the_call_span() {
    let server = seed_server().await;
    let url = server.url("/nope");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rebound"))
            .args(["request", &url])
            .env("RUST_LOG", "tower_rebound=info")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rebound.call"), "{stderr}");
    assert!(stderr.contains("rebound.outcome=\"terminal\""), "{stderr}");
    assert!(
        stderr.contains("rebound.error_codes=\"ResourceNotFound,BadPath\""),
        "{stderr}"
    );
}

/// `/flaky/N/KEY` fails with 500 N times per KEY, then answers 200;
/// `/throttle` answers 429 with `Retry-After: 1` once; `/stall` sends the
/// head of a 500 and then nothing.
async fn flaky_server() -> TestServer {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let seen = Arc::clone(&seen);
        async move {
            let path = request.uri().path().to_owned();
            let count = {
                let mut seen = seen.lock().unwrap();
                let count = seen.entry(path.clone()).or_insert(0);
                *count += 1;
                *count
            };
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["flaky", n, _] if count <= n.parse::<u32>().unwrap() => {
                    api_error(500, &[("InternalError", "Try again")])
                }
                ["throttle"] if count == 1 => {
                    let mut response = api_error(429, &[("TooManyRequests", "Slow down")]);
                    response
                        .headers_mut()
                        .insert("retry-after", "1".parse().unwrap());
                    response
                }
                ["write"] => {
                    let mut response = respond(202, "");
                    response
                        .headers_mut()
                        .insert("location", "/ops/1".parse().unwrap());
                    response
                }
                ["busy"] if count == 1 => api_error(400, &[("Throttled", "Busy")]),
                ["unavailable", _] if count == 1 => api_error(503, &[("Unavailable", "Back soon")]),
                ["write-once"] => {
                    let mut response = respond(202, "");
                    response
                        .headers_mut()
                        .insert("location", "/ops-once".parse().unwrap());
                    response
                }
                ["ops-once"] => respond(200, "{\"status\":\"done\"}"),
                ["ops", "1"] if count <= 2 => respond(202, ""),
                ["ops", "1"] => respond(200, "{\"status\":\"done\"}"),
                ["stall"] => {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    respond(200, "")
                }
                _ => respond(200, format!("done after {count}")),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_counts_every_attempt() {
    let server = flaky_server().await;
    let dir = temp_dir("attempts");
    let policy = dir.join("fast.toml");
    std::fs::write(
        &policy,
        "[classify]\nsuccess = [200]\npollable = [202]\nretryable = [429, 500]\n[retry]\nmax_attempts = 4\n\
         [retry.backoff]\ninitial = \"10ms\"\nmax = \"50ms\"\n[timeouts]\nattempt = \"300ms\"\n\
         [poll]\ninterval = \"10ms\"\n",
    )
    .unwrap();
    let policy = policy.display().to_string();
    let run = |extra: Vec<&str>, path: &str| {
        let mut args: Vec<String> = vec![
            "request".into(),
            "--report".into(),
            "json".into(),
            "-p".into(),
            policy.clone(),
        ];
        args.extend(extra.into_iter().map(String::from));
        args.push(server.url(path));
        rebound_async(args)
    };

    let output = run(vec![], "/flaky/2/a").await;
    let r = report(&output);
    assert_eq!(
        (r["outcome"].as_str(), r["attempts"].as_u64()),
        (Some("success"), Some(3))
    );
    assert_eq!(output.stdout, b"done after 3");

    let r = report(&run(vec!["-X", "POST", "-d", "{}"], "/flaky/1/b").await);
    assert_eq!(
        (r["outcome"].as_str(), r["attempts"].as_u64()),
        (Some("retries_exhausted"), Some(1))
    );
    assert_eq!(r["error_codes"], serde_json::json!(["InternalError"]));

    let r = report(&run(vec!["-d", "{}", "-H", "Idempotency-Key: k1"], "/flaky/1/c").await);
    assert_eq!(
        (r["outcome"].as_str(), r["attempts"].as_u64()),
        (Some("success"), Some(2))
    );

    let r = report(&run(vec![], "/throttle").await);
    assert_eq!(
        (r["outcome"].as_str(), r["attempts"].as_u64()),
        (Some("success"), Some(2))
    );
    assert!(r["elapsed_ms"].as_u64().unwrap() >= 1000, "{r}");

    let output = run(vec!["-d", "{}"], "/write").await;
    let r = report(&output);
    assert_eq!(
        (r["outcome"].as_str(), r["polls"].as_u64()),
        (Some("success"), Some(3))
    );
    assert_eq!(r["status"], 200);
    assert_eq!(output.stdout, b"{\"status\":\"done\"}");

    let r = report(&run(vec![], "/stall").await);
    assert_eq!(
        (r["outcome"].as_str(), r["attempts"].as_u64()),
        (Some("timeout"), Some(4))
    );
    assert_eq!(r["status"], Value::Null);
}

/// The rows of the demo's table, by the text of their first column.
fn demo_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip(2)
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn the_demo_shows_every_behaviour_under_connio() {
    let output = rebound(&["demo"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows = demo_rows(&stdout);
    let outcome = |what: &str| -> (String, String, String) {
        let row = rows
            .iter()
            .find(|r| r[0] == what)
            .unwrap_or_else(|| panic!("no row {what:?} in\n{stdout}"));
        (row[2].clone(), row[4].clone(), row[5].clone())
    };
    let expect = |what: &str, o: &str, attempts: &str, polls: &str| {
        assert_eq!(
            outcome(what),
            (o.into(), attempts.into(), polls.into()),
            "{what}"
        );
    };
    expect("200 with the device", "success", "1", "0");
    expect("400, two errors in one body", "terminal", "1", "0");
    expect("404, no such device", "terminal", "1", "0");
    expect("429 + Retry-After: 1, then 200", "success", "2", "0");
    expect("500, 500, then 200", "success", "3", "0");
    expect("503, not implemented", "unsupported", "1", "0");
    expect("202, no status URL", "accepted", "1", "0");
    expect("202 + Location, done after 3 polls", "success", "1", "3");
    expect(
        "another host: 500 every time",
        "retries_exhausted",
        "4",
        "0",
    );
    expect("a host that is down", "transport", "4", "0");
    expect("the same host, again", "transport", "4", "0");
    // The tenth refused connection in a row opens the breaker.
    expect("and a third time", "circuit_open", "2", "0");
    assert_eq!(rows.len(), 16);
    assert!(stdout.contains("MissingAttribute,MissingAttribute"));
    assert!(stdout.contains("16 calls under the \"connio\" policy"));

    // Another policy changes what the table says.
    let output = rebound(&["demo", "--policy", "standard"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows = demo_rows(&stdout);
    let row = rows
        .iter()
        .find(|r| r[0] == "503, not implemented")
        .unwrap();
    assert_eq!(
        (row[2].as_str(), row[4].as_str()),
        ("retries_exhausted", "4")
    );

    assert_eq!(
        rebound(&["demo", "--policy", "nonesuch"]).status.code(),
        Some(2)
    );
}

#[test]
fn the_demo_runs_each_api_s_stand_in_under_its_preset() {
    let apis = ["github", "stripe", "azure", "google"];
    // Each demo waits a few seconds for what its stand-in asks: run them at once.
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let runs: Vec<_> = apis
            .iter()
            .map(|api| scope.spawn(move || rebound(&["demo", "--api", api])))
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for (api, output) in apis.iter().zip(&outputs) {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{api}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rows = demo_rows(&stdout);
        let scenarios = Api::from_name(api).unwrap().scenarios().len();
        assert_eq!(rows.len(), scenarios, "{api}:\n{stdout}");
        assert!(
            stdout.contains(&format!("calls under the \"{api}\" policy")),
            "{stdout}"
        );
    }
    let row = |api: usize, what: &str| -> (String, String, String, String) {
        let stdout = String::from_utf8_lossy(&outputs[api].stdout);
        let row = demo_rows(&stdout)
            .into_iter()
            .find(|r| r[0] == what)
            .unwrap_or_else(|| panic!("no row {what:?} in\n{stdout}"));
        (
            row[2].clone(),
            row[4].clone(),
            row[5].clone(),
            row[6].clone(),
        )
    };
    let expect = |api, what, outcome: &str, attempts: &str, polls: &str, codes: &str| {
        assert_eq!(
            row(api, what),
            (outcome.into(), attempts.into(), polls.into(), codes.into()),
            "{what}"
        );
    };
    expect(
        0,
        "403, primary limit spent, reset in 2 s",
        "success",
        "2",
        "0",
        "-",
    );
    expect(
        0,
        "422, validation failed",
        "terminal",
        "1",
        "0",
        "missing_field",
    );
    expect(
        1,
        "402, card_declined: insufficient_funds",
        "terminal",
        "1",
        "0",
        "card_declined,insufficient_funds",
    );
    expect(
        1,
        "500 + Stripe-Should-Retry: false",
        "terminal",
        "1",
        "0",
        "-",
    );
    expect(
        2,
        "202 + Azure-AsyncOperation: Succeeded; Location 204",
        "success",
        "1",
        "3",
        "-",
    );
    expect(
        2,
        "202 + Azure-AsyncOperation: Provisioning, Succeeded",
        "success",
        "1",
        "3",
        "-",
    );
    expect(
        2,
        "201 + Azure-AsyncOperation: Succeeded; the resource",
        "success",
        "1",
        "3",
        "-",
    );
    expect(
        2,
        "202 + Location only: 202, then 200 with the account",
        "success",
        "1",
        "2",
        "-",
    );
    expect(
        2,
        "202 + Azure-AsyncOperation: Failed",
        "terminal",
        "1",
        "2",
        "AllocationFailed,SkuNotAvailable",
    );
    expect(
        3,
        "429 RESOURCE_EXHAUSTED, retryDelay 2s",
        "success",
        "2",
        "0",
        "-",
    );
    expect(3, "500 INTERNAL", "terminal", "1", "0", "500");

    assert_eq!(
        rebound(&["demo", "--api", "nonesuch"]).status.code(),
        Some(2)
    );
}

#[test]
fn check_passes_on_each_api_preset_without_warnings() {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let dir = temp_dir("check-api-presets");
    let mine = dir.join("mine.toml");
    std::fs::write(&mine, "extends = \"github\"\n[retry]\nmax_attempts = 3\n").unwrap();
    let mut files: Vec<PathBuf> = ["github", "stripe", "azure", "google"]
        .iter()
        .map(|name| policies.join(format!("{name}.toml")))
        .collect();
    files.push(mine);
    let mut args = vec!["check", "--deny-warnings"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let output = rebound(&args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected: String = files
        .iter()
        .map(|f| format!("{}: ok\n", f.display()))
        .collect();
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[test]
fn the_demo_says_what_the_breaker_does_only_when_there_is_one() {
    let stdout = String::from_utf8(rebound(&["demo"]).stdout).unwrap();
    assert!(stdout.contains("the breaker counts them"), "{stdout}");

    let dir = temp_dir("demo-no-breaker");
    let path = dir.join("no-breaker.toml");
    std::fs::write(&path, "[circuit_breaker]\nenabled = false\n").unwrap();
    let output = rebound(&["demo", "--policy", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let down = demo_rows(&stdout)
        .into_iter()
        .find(|r| r[0] == "a host that is down")
        .unwrap_or_else(|| panic!("no row for the down host in\n{stdout}"));
    assert!(!stdout.contains("breaker counts"), "{stdout}");
    assert!(
        down.iter()
            .any(|cell| cell.contains("no breaker in this policy")),
        "{down:?}"
    );
    assert!(!stdout.contains("circuit_open"), "{stdout}");
}
