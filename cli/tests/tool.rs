//! `rebound request` as a tool next to curl: https and HTTP/2 against local
//! servers, curl's output flags, `-v`, the live status line as a terminal
//! shows it, and a one-line usage error for every bad flag.

mod common;

use common::{rebound_async, temp_dir};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tower_rebound_testkit::{TestServer, TlsOptions, api_error, respond};

/// Runs the binary off the runtime's threads, so the server keeps serving.
async fn run(args: &[&str]) -> Output {
    rebound_async(args.iter().map(|a| (*a).to_owned()).collect()).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The report line on stderr.
fn report(output: &Output) -> Value {
    let stderr = text(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report in {stderr}"));
    serde_json::from_str(line).unwrap()
}

/// A server that answers with the HTTP version the request came in.
async fn version_server(options: TlsOptions) -> (TestServer, PathBuf) {
    let (server, cert) = TestServer::start_tls(options, |request| async move {
        respond(200, format!("{:?}", request.version()))
    })
    .await;
    let path = temp_dir("certs").join(format!("{}.pem", server.addr().port()));
    std::fs::write(&path, cert.pem).unwrap();
    (server, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_trusted_certificate_speaks_http2_or_http1() {
    let (server, cacert) = version_server(TlsOptions::default()).await;
    let cacert = cacert.to_str().unwrap();
    let url = server.https_url("/version");
    let negotiated = run(&["request", "--cacert", cacert, &url]).await;
    assert_eq!(
        negotiated.status.code(),
        Some(0),
        "{}",
        text(&negotiated.stderr)
    );
    assert_eq!(text(&negotiated.stdout), "HTTP/2.0");
    let held = run(&["request", "--http1.1", "--cacert", cacert, &url]).await;
    assert_eq!(text(&held.stdout), "HTTP/1.1");

    // A server that offers HTTP/1.1 only gets HTTP/1.1.
    let options = TlsOptions {
        alpn: vec![b"http/1.1".to_vec()],
        ..TlsOptions::default()
    };
    let (server, cacert) = version_server(options).await;
    let output = run(&[
        "request",
        "--cacert",
        cacert.to_str().unwrap(),
        &server.https_url("/"),
    ])
    .await;
    assert_eq!(text(&output.stdout), "HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_over_plain_http() {
    let server =
        TestServer::start_h2c(
            |request| async move { respond(200, format!("{:?}", request.version())) },
        )
        .await;
    let url = server.url("/version");
    let h2 = run(&["request", "--http2-prior-knowledge", &url]).await;
    assert_eq!(h2.status.code(), Some(0), "{}", text(&h2.stderr));
    assert_eq!(text(&h2.stdout), "HTTP/2.0");
    let h1 = run(&["request", &url]).await;
    assert_eq!(text(&h1.stdout), "HTTP/1.1");
    let both = run(&["request", "--http1.1", "--http2-prior-knowledge", &url]).await;
    assert_eq!(both.status.code(), Some(2));
    assert_eq!(
        text(&both.stderr).lines().count(),
        1,
        "{}",
        text(&both.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_named_in_words() {
    // A certificate nobody here trusts: --cacert names another one.
    let (untrusted, _) = version_server(TlsOptions::default()).await;
    let (_, other) = version_server(TlsOptions::default()).await;
    let (expired, expired_ca) = version_server(TlsOptions {
        expired: true,
        ..TlsOptions::default()
    })
    .await;
    let (misnamed, misnamed_ca) = version_server(TlsOptions {
        names: vec!["api.example".to_owned()],
        ..TlsOptions::default()
    })
    .await;
    for (server, cacert, words) in [
        (&untrusted, &other, "unknown issuer"),
        (&expired, &expired_ca, "has expired"),
        (&misnamed, &misnamed_ca, "not valid for the name localhost"),
    ] {
        let url = server.https_url("/");
        let output = run(&["request", "--cacert", cacert.to_str().unwrap(), &url]).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("rebound: transport: "), "{stderr}");
        assert!(first.contains(words), "{words}: {stderr}");
        let output = run(&[
            "request",
            "--report",
            "json",
            "--cacert",
            cacert.to_str().unwrap(),
            &url,
        ])
        .await;
        assert_eq!(report(&output)["outcome"], "transport");
    }

    // -k accepts it, and says so every time.
    let url = untrusted.https_url("/");
    for _ in 0..2 {
        let output = run(&["request", "-k", &url]).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(
            text(&output.stderr).contains("--insecure: the server's certificate is not checked")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_needs_no_certificates() {
    let server = TestServer::start(|_| async { respond(200, "plain") }).await;
    // No system roots at all: a plain-http call does not look for them.
    let output = tokio::task::spawn_blocking({
        let url = server.url("/");
        move || {
            Command::new(env!("CARGO_BIN_EXE_rebound"))
                .args(["request", &url])
                .env("SSL_CERT_FILE", "/nonexistent/roots.pem")
                .env("SSL_CERT_DIR", "/nonexistent")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_output_and_max_time() {
    let server = TestServer::start(|request| async move {
        match request.uri().path() {
            "/stall" => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                respond(200, "late")
            }
            "/missing" => api_error(404, &[("ResourceNotFound", "No such thing")]),
            _ => {
                let mut response = respond(200, "body");
                response
                    .headers_mut()
                    .insert("x-tag", "seen".parse().unwrap());
                response
            }
        }
    })
    .await;
    let included = run(&["request", "-i", &server.url("/ok")]).await;
    let stdout = text(&included.stdout);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{stdout}");
    assert!(stdout.contains("\r\nx-tag: seen\r\n"), "{stdout}");
    assert!(stdout.ends_with("\r\n\r\nbody"), "{stdout}");
    let missing = run(&["request", "-i", &server.url("/missing")]).await;
    assert!(text(&missing.stdout).starts_with("HTTP/1.1 404 Not Found\r\n\r\n["));

    let dir = temp_dir("output");
    let file = dir.join("body.txt");
    let written = run(&["request", "-o", file.to_str().unwrap(), &server.url("/ok")]).await;
    assert_eq!(written.status.code(), Some(0));
    assert!(written.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "body");

    let started = Instant::now();
    let output = run(&[
        "request",
        "--max-time",
        "1s",
        "--report",
        "json",
        &server.url("/stall"),
    ])
    .await;
    assert_eq!(report(&output)["outcome"], "deadline_exceeded");
    assert_eq!(output.status.code(), Some(1));
    // The preset's own total is 60 s: the flag made the call end.
    assert!(started.elapsed() < Duration::from_secs(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_flag_is_one_line_and_exit_2_with_nothing_sent() {
    let server = TestServer::start(|_| async { respond(200, "ok") }).await;
    let url = server.url("/");
    let dir = temp_dir("bad");
    let empty_pem = dir.join("empty.pem");
    std::fs::write(&empty_pem, "no certificate here\n").unwrap();
    let empty_pem = empty_pem.to_str().unwrap().to_owned();
    let missing_folder = dir.join("no/such/folder/out.txt");
    let missing_folder = missing_folder.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["request", "not a url"], "invalid URL"),
        (vec!["request", "ftp://example.com/"], "invalid URL"),
        (
            vec!["request", "--cacert", "/nonexistent/ca.pem", &url],
            "cannot read --cacert",
        ),
        (
            vec!["request", "--cacert", &empty_pem, &url],
            "no PEM certificate",
        ),
        (vec!["request", "--max-time", "-1s", &url], "--max-time"),
        (vec!["request", "--max-time", "0", &url], "--max-time"),
        (
            vec!["request", "--max-time", "soon", &url],
            "invalid duration",
        ),
        (
            vec!["request", "-o", &missing_folder, &url],
            "does not exist",
        ),
        (vec!["request", "-H", "no colon", &url], "invalid header"),
        (vec!["request", "-X", "BAD METHOD", &url], "invalid method"),
    ];
    for (args, expected) in cases {
        let output = run(&args).await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.starts_with("rebound: "), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    assert_eq!(server.requests(), 0, "a bad flag sent something");
}

/// `/flaky` fails with 500 twice, then answers; `/slow-op` is accepted with
/// a status URL answered on the second poll; `/throttled` asks to wait 3 s
/// once.
async fn eventful_server() -> TestServer {
    let seen: Arc<Mutex<std::collections::HashMap<String, u32>>> = Arc::default();
    TestServer::start(move |request| {
        let seen = Arc::clone(&seen);
        async move {
            let path = request.uri().path().to_owned();
            let count = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(path.clone()).or_insert(0);
                *n += 1;
                *n
            };
            match path.as_str() {
                "/flaky" if count <= 2 => api_error(500, &[("InternalError", "Try again")]),
                "/down" => api_error(500, &[("InternalError", "Down")]),
                "/slow-op" => {
                    let mut response = respond(202, "");
                    response
                        .headers_mut()
                        .insert("location", "/ops/9".parse().unwrap());
                    response
                }
                "/ops/9" if count == 1 => {
                    let mut response = respond(202, "");
                    response
                        .headers_mut()
                        .insert("retry-after", "1".parse().unwrap());
                    response
                }
                "/throttled" if count == 1 => {
                    let mut response = api_error(429, &[("TooManyRequests", "Slow down")]);
                    response
                        .headers_mut()
                        .insert("retry-after", "3".parse().unwrap());
                    response
                }
                _ => respond(200, "done"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_prints_each_attempt_wait_and_poll() {
    let server = eventful_server().await;
    let output = run(&["request", "-v", &server.url("/flaky")]).await;
    assert_eq!(output.status.code(), Some(0));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("* attempt 1: 500 (retryable) [InternalError] in "),
        "{stderr}"
    );
    assert!(lines[1].starts_with("* waiting "), "{stderr}");
    assert!(
        lines[1].ends_with("ms (backoff) before attempt 2 of 4"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("* attempt 2: 500 (retryable)"),
        "{stderr}"
    );
    assert!(
        lines[4].starts_with("* attempt 3: 200 (success) in "),
        "{stderr}"
    );
    assert!(lines[5].starts_with("* call: success in "), "{stderr}");
    // Not a terminal: no status line, no escape codes.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    let output = run(&["request", "-v", "-p", "standard", &server.url("/slow-op")]).await;
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("* attempt 1: 202 (pollable) in "),
        "{stderr}"
    );
    assert!(stderr.contains("ms (interval) before poll 1\n"), "{stderr}");
    assert!(stderr.contains("* poll 1: 202 in "), "{stderr}");
    assert!(
        stderr.contains("* waiting 1000 ms (retry_after) before poll 2\n"),
        "{stderr}"
    );
    assert!(stderr.contains("* poll 2: 200 in "), "{stderr}");
    assert_eq!(text(&output.stdout), "done");

    // A write that fails is not sent twice, and says why.
    let output = run(&[
        "request",
        "-v",
        "-X",
        "POST",
        "-d",
        "{}",
        &server.url("/down"),
    ])
    .await;
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "* not retrying: the request may have been processed, and is not safe to send twice\n"
        ),
        "{stderr}"
    );
}

/// Quotes `arg` for the shell `script` runs the command with.
fn quoted(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_shows_a_live_line_on_a_terminal_that_goes_when_the_call_ends() {
    let server = eventful_server().await;
    let command = [
        env!("CARGO_BIN_EXE_rebound"),
        "request",
        &server.url("/throttled"),
    ]
    .map(quoted)
    .join(" ");
    // `script` runs the command on a pseudo-terminal and copies what the
    // terminal receives to its stdout (`.ci/run` installs it if missing).
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run `script` (util-linux)");
    let mut stdout = child.stdout.take().unwrap();
    let received: Arc<Mutex<Vec<u8>>> = Arc::default();
    let reader = std::thread::spawn({
        let received = Arc::clone(&received);
        move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                received.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        }
    });
    let screen = |bytes: &[u8]| {
        let size = |n| std::num::NonZeroU16::new(n).unwrap();
        let mut parser = vt100::Parser::new(size(24), size(120), 0);
        parser.process(bytes);
        parser.screen().contents()
    };
    // During the 3 s wait the screen shows the line (bounded: 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let during = loop {
        let shown = screen(&received.lock().unwrap());
        if shown.contains("waiting") {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "no status line appeared: {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        during.contains("for Retry-After, attempt 2 of 4"),
        "{during:?}"
    );
    assert!(during.contains(" s for Retry-After"), "{during:?}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    reader.join().unwrap();
    assert!(status.success());
    let after = screen(&received.lock().unwrap());
    assert!(!after.contains("waiting"), "the line stayed: {after:?}");
    assert_eq!(after.trim(), "done", "{after:?}");
    assert_eq!(server.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_says_when_the_budget_or_the_breaker_refuses() {
    let server =
        TestServer::start(|_| async { api_error(500, &[("InternalError", "Down")]) }).await;
    let dir = temp_dir("refusals");
    let budget = dir.join("budget.toml");
    std::fs::write(
        &budget,
        "[retry.backoff]\ninitial = \"1ms\"\n[retry.budget]\ncapacity = 1\n[circuit_breaker]\nenabled = false\n",
    )
    .unwrap();
    let output = run(&[
        "request",
        "-v",
        "-p",
        budget.to_str().unwrap(),
        &server.url("/"),
    ])
    .await;
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("* not retrying: the retry budget refused another attempt\n"),
        "{stderr}"
    );
    assert!(stderr.contains("* call: budget_exhausted in "), "{stderr}");

    let breaker = dir.join("breaker.toml");
    std::fs::write(
        &breaker,
        "[retry.backoff]\ninitial = \"1ms\"\n[circuit_breaker]\nconsecutive_failures = 2\nmin_calls = 1\n",
    )
    .unwrap();
    let output = run(&[
        "request",
        "-v",
        "-p",
        breaker.to_str().unwrap(),
        &server.url("/"),
    ])
    .await;
    let stderr = text(&output.stderr);
    assert!(stderr.contains("* circuit breaker for "), "{stderr}");
    assert!(stderr.contains(": closed -> open\n"), "{stderr}");
    assert!(stderr.contains("* call: circuit_open in "), "{stderr}");
    assert!(
        stderr.contains("is open: the call was not sent"),
        "{stderr}"
    );
}
