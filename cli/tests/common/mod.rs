//! What every test of the `rebound` binary needs: running it, off the
//! runtime's threads when a server in the test must keep serving, and a
//! folder for the files it reads.
#![allow(dead_code)] // each test binary uses what it needs

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the binary with `args`, without `RUST_LOG` from the environment.
pub fn rebound(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rebound"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the rebound binary")
}

/// [`rebound`] off the runtime's threads, so the server keeps serving.
pub async fn rebound_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rebound(&args)
    })
    .await
    .unwrap()
}

/// A folder of this test process named `name`, made if missing.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rebound-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
