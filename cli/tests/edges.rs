//! The command's edges: what `rebound check` says of a policy that cannot do
//! what it says, durations on the command line, output that cannot be
//! written, and URLs that carry secrets.

mod common;

use common::{rebound, rebound_async, temp_dir};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tower_rebound_testkit::{TestServer, respond};

/// A policy file of `text` in this test's folder.
fn policy(test: &str, text: &str) -> PathBuf {
    let path = temp_dir(test).join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary with `args` and its stdout sent to `stdout`.
fn rebound_into(args: &[&str], stdout: impl Into<Stdio>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(stdout)
        .output()
        .expect("run the rebound binary")
}

/// A stdout whose reader is gone before the binary starts: every write to
/// it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let (reader, writer) = UnixStream::pair().unwrap();
    drop(reader);
    OwnedFd::from(writer)
}

/// A stdout where every write fails with ENOSPC, as on a full disk.
fn full_disk() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_section_the_file_writes_is_on_in_the_effective_policy() {
    let path = policy(
        "edges-on",
        "[rate_limit]\nper_second = 190\n\n[adaptive_throttle]\nk = 3\n",
    );
    let output = rebound(&["check", "--effective", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let effective = String::from_utf8(output.stdout).unwrap();
    let rate_limit = section(&effective, "rate_limit");
    assert!(rate_limit.contains("\nenabled = true\n"), "{effective}");
    assert!(rate_limit.contains("\nper_second = 190\n"), "{effective}");
    let throttle = section(&effective, "adaptive_throttle");
    assert!(throttle.contains("\nenabled = true\n"), "{effective}");
    // Said off in the file: off.
    let path = policy(
        "edges-off",
        "[rate_limit]\nenabled = false\nper_second = 190\n",
    );
    let output = rebound(&["check", "--effective", path.to_str().unwrap()]);
    let effective = String::from_utf8(output.stdout).unwrap();
    assert!(
        section(&effective, "rate_limit").contains("\nenabled = false\n"),
        "{effective}"
    );
}

/// The text of `[name]` in a TOML file, up to the next table.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let header = format!("\n[{name}]\n");
    let start = text
        .find(&header)
        .unwrap_or_else(|| panic!("no [{name}] in {text}"));
    let body = &text[start + header.len() - 1..];
    let end = body[1..].find("\n[").map_or(body.len(), |i| i + 2);
    &body[..end]
}

/// The warnings `rebound check` prints for `text`, as `LINE:COL: message`.
fn warnings(test: &str, text: &str) -> Vec<String> {
    let path = policy(test, text);
    let output = rebound(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let prefix = format!("{}:", path.display());
    stderr_of(&output)
        .lines()
        .map(|line| {
            let rest = line.strip_prefix(&prefix).unwrap_or(line);
            rest.replacen(": warning: ", ": ", 1)
        })
        .collect()
}

#[test]
fn check_warns_at_the_line_of_what_a_policy_cannot_do() {
    let found = warnings("edges-attempts", "[retry]\nmax_attempts = 7\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:16: retry.max_attempts is 7 but a new process's retry budget"),
        "{found:?}"
    );
    let found = warnings(
        "edges-reserve",
        "[retry]\nmax_attempts = 3\n\n[retry.budget]\nmin_reserve = 1\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("5:15: retry.max_attempts is 3"),
        "{found:?}"
    );
    let found = warnings(
        "edges-rule",
        "[[classify.rules]]\nstatus = 429\nclass = \"terminal\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:10: rule 0 of classify.rules makes every 429"),
        "{found:?}"
    );
    let found = warnings("edges-list", "[classify]\nterminal = [404, 429]\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:18: 429 Too Many Requests is terminal"),
        "{found:?}"
    );
    let found = warnings(
        "edges-breaker",
        "[circuit_breaker]\nfailure_rate = 0.0\nconsecutive_failures = 0\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("3:24: circuit_breaker is on but both its triggers are off"),
        "{found:?}"
    );
}

#[test]
fn duplicate_route_names_are_an_error_at_the_line() {
    let path = policy(
        "edges-routes",
        "[[routes]]\nname = \"reads\"\nmethods = [\"GET\"]\n\n[[routes]]\nname = \"reads\"\nmethods = [\"HEAD\"]\n",
    );
    let output = rebound(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with(&format!(
            "{}:6:8: route 1 is named \"reads\" like route 0",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn durations_read_the_same_in_files_and_flags() {
    // A fraction in a file, as on the command line.
    let path = policy("edges-durations", "[timeouts]\nattempt = \"1.5s\"\n");
    let output = rebound(&["check", "--effective", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("attempt = \"1.5s\""),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // What a file refuses, the flags refuse, in the same words.
    let path = policy("edges-bad-duration", "[timeouts]\nattempt = \"1.5d\"\n");
    let output = rebound(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("invalid duration \"1.5d\""),
        "{}",
        stderr_of(&output)
    );
    for flags in [
        &["request", "--max-time", "1.5d"][..],
        &["load", "--rate", "1", "--duration", "1.5d"][..],
    ] {
        let mut args = flags.to_vec();
        args.push("http://127.0.0.1:9/");
        let output = rebound(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = stderr_of(&output);
        assert!(stderr.contains("1.5d"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fractional_load_duration_runs() {
    let server = TestServer::start(|_| async { respond(200, "ok") }).await;
    let output = rebound_async(vec![
        "load".into(),
        "--report".into(),
        "json".into(),
        "--rate".into(),
        "20".into(),
        "--duration".into(),
        "0.25s".into(),
        server.url("/"),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // Calls start at i / 20 s for every i / 20 < 0.25.
    assert_eq!(report["calls"], 5);
}

/// Exit status 1 and one line on stderr naming stdout, no panic.
fn assert_one_line_failure(output: &Output, what: &str) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(
        stderr.starts_with("rebound: cannot write"),
        "{what}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
}

fn a_policy_file() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/standard.toml");
    assert!(path.exists());
    path
}

#[test]
fn check_on_a_closed_or_full_stdout_fails_in_one_line() {
    let file = a_policy_file();
    let file = file.to_str().unwrap();
    for args in [&["check", "--effective", file][..], &["check", file][..]] {
        let output = rebound_into(args, closed_pipe());
        assert_one_line_failure(&output, &format!("{args:?} into a closed pipe"));
        let output = rebound_into(args, full_disk());
        assert_one_line_failure(&output, &format!("{args:?} into /dev/full"));
    }
}

/// Runs `args` with stdout a closed pipe, then `/dev/full`, off the
/// runtime's threads (the test's server keeps serving), and checks each
/// fails in one line.
async fn fails_on_a_closed_or_full_stdout(args: Vec<String>) {
    for closed in [true, false] {
        let owned = args.clone();
        let output = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = owned.iter().map(String::as_str).collect();
            if closed {
                rebound_into(&args, closed_pipe())
            } else {
                rebound_into(&args, full_disk())
            }
        })
        .await
        .unwrap();
        let what = if closed { "closed pipe" } else { "/dev/full" };
        assert_one_line_failure(&output, &format!("{} into a {what}", args[0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_on_a_closed_or_full_stdout_fails_in_one_line() {
    let server = TestServer::start(|_| async { respond(200, "ok") }).await;
    let args = [
        "load",
        "--rate",
        "10",
        "--duration",
        "100ms",
        &server.url("/"),
    ];
    fails_on_a_closed_or_full_stdout(args.map(str::to_owned).to_vec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_on_a_closed_or_full_stdout_fails_in_one_line() {
    let server = TestServer::start(|_| async { respond(200, "x".repeat(100_000)) }).await;
    let args = ["request", &server.url("/")];
    fails_on_a_closed_or_full_stdout(args.map(str::to_owned).to_vec()).await;
}

#[test]
fn the_demo_on_a_closed_stdout_fails_in_one_line() {
    let output = rebound_into(&["demo"], closed_pipe());
    assert_one_line_failure(&output, "demo into a closed pipe");
}

const CANARY: &str = "c4n4ry-5ecr3t";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_never_prints_the_userinfo_or_query_of_its_url() {
    let server = TestServer::start(|_| async { respond(200, "ok") }).await;
    let plain = server.url("/devices/1");
    let secret = plain.replacen("http://", &format!("http://user-{CANARY}:pw-{CANARY}@"), 1)
        + &format!("?token={CANARY}&page=2");
    for report in [None, Some("json")] {
        let mut args: Vec<String> = vec!["load".into()];
        if let Some(format) = report {
            args.extend(["--report".into(), format.into()]);
        }
        args.extend([
            "--rate".into(),
            "20".into(),
            "--duration".into(),
            "100ms".into(),
            "--metrics".into(),
            secret.clone(),
        ]);
        let output = rebound_async(args).await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = stderr_of(&output);
        assert!(!stdout.contains(CANARY), "{stdout}");
        assert!(!stderr.contains(CANARY), "{stderr}");
        if report.is_none() {
            // The title names the URL without its secrets.
            assert!(
                stdout.starts_with(&format!("GET {plain} at 20/s for 100ms")),
                "{stdout}"
            );
        }
    }
    assert!(server.requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_prints_a_finished_operation_s_result_not_its_spent_body() {
    // Google's Operation: the POST answers 200 naming it, the status URL
    // answers it done with a `response`.
    let server = TestServer::start(|request| async move {
        match request.uri().path() {
            "/v1/operations/op-1" => respond(
                200,
                r#"{"name":"operations/op-1","done":true,"response":{"id":7}}"#,
            ),
            _ => respond(200, r#"{"name":"operations/op-1","done":false}"#),
        }
    })
    .await;
    let mut text = String::from(
        "[poll]\ninterval = \"5ms\"\ndone_pointer = \"/done\"\n\
         status_url = \"{origin}/{first_segment}/{name}\"\n",
    );
    let status_only = policy("status_only", &text);
    text.push_str("result_pointer = \"/response\"\n");
    let with_result = policy("with_result", &text);
    for (file, expected) in [
        (&with_result, r#"{"id":7}"#),
        (
            &status_only,
            r#"{"name":"operations/op-1","done":true,"response":{"id":7}}"#,
        ),
    ] {
        let output = rebound_async(vec![
            "request".into(),
            "-X".into(),
            "POST".into(),
            "-p".into(),
            file.to_str().unwrap().into(),
            server.url("/v1/things:run"),
        ])
        .await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }
}
