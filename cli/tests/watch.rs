//! `rebound load --watch`: the policy file read again while the run goes on.
//! The server tells the two policies apart: the second adds an
//! `Idempotency-Key` to every write, the first does not.

mod common;

use common::temp_dir;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_rebound_testkit::{TestServer, respond};

/// Waits, at most 20 s, for `done`; fails saying `what` after that.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("waited 20 s for {what}");
}

/// Collects what `child` writes on stderr as it writes it.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let mut stderr = child.stderr.take().unwrap();
    let text: Arc<Mutex<String>> = Arc::default();
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_file_takes_the_calls_after_it_and_a_broken_one_is_said_once() {
    let keyed = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start({
        let keyed = Arc::clone(&keyed);
        move |request| {
            if request.headers().contains_key("idempotency-key") {
                keyed.fetch_add(1, Ordering::SeqCst);
            }
            async { respond(200, "{}") }
        }
    })
    .await;
    let path = temp_dir("watch").join("policy.toml");
    std::fs::write(&path, "[retry]\nadd_idempotency_key = false\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args([
            "load",
            "--watch",
            "--report",
            "json",
            "-p",
            path.to_str().unwrap(),
            "-X",
            "POST",
            "--rate",
            "50",
            "--duration",
            "60s",
            &server.url("/write"),
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the rebound binary");
    let stderr = collect_stderr(&mut child);

    until("10 requests", || server.requests() >= 10).await;
    assert_eq!(
        keyed.load(Ordering::SeqCst),
        0,
        "the first policy adds no key"
    );

    std::fs::write(&path, "[retry]\nadd_idempotency_key = true\n").unwrap();
    until("a keyed request", || keyed.load(Ordering::SeqCst) > 0).await;
    until("the change said", || {
        stderr.lock().unwrap().contains("changed")
    })
    .await;

    // A broken edit: said at its line and column, and the run goes on
    // under the policy in force (every write keyed).
    std::fs::write(&path, "[retry]\nmax_attempts = \"many\"\n").unwrap();
    until("the error said", || {
        stderr.lock().unwrap().contains("policy.toml:2:")
    })
    .await;
    // The same error again (the file edited below the mistake) is not said
    // twice.
    std::fs::write(&path, "[retry]\nmax_attempts = \"many\"\n# still editing\n").unwrap();
    let (seen, keys) = (server.requests(), keyed.load(Ordering::SeqCst));
    until("20 more requests", || server.requests() >= seen + 20).await;
    assert_eq!(
        keyed.load(Ordering::SeqCst) - keys,
        server.requests() - seen,
        "the policy in force goes on"
    );

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(130));
    let stderr = stderr.lock().unwrap().clone();
    let errors = stderr
        .lines()
        .filter(|l| l.contains("policy.toml:2:"))
        .count();
    assert_eq!(errors, 1, "said once: {stderr}");
    assert!(
        stderr.contains("the run goes on under the policy in force"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report on stdout");
    assert_eq!(report["requests"].as_u64(), Some(server.requests() as u64));
}

#[test]
fn watch_needs_a_policy_file() {
    let output = common::rebound(&[
        "load",
        "--watch",
        "-p",
        "standard",
        "--rate",
        "1",
        "--duration",
        "1s",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--watch"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
