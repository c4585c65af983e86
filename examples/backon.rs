//! A policy's retry schedule in a retry loop of backon's, for work that is
//! not an HTTP call through the stack: the same waits, as many as the
//! policy's attempts allow.
//!
//! ```text
//! cargo run --example backon --features backon,hyper
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use backon::Retryable;
use tower_rebound::Policy;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = Policy::preset("standard")?;
    let tries = AtomicU32::new(0);
    let started = std::time::Instant::now();
    let answer = (|| async {
        // Fails twice, as a flaky dependency would.
        match tries.fetch_add(1, Ordering::SeqCst) {
            0 | 1 => Err("not yet"),
            _ => Ok("done"),
        }
    })
    .retry(policy.retry_settings().as_ref())
    .await?;
    println!(
        "{answer} after {} tries in {:?}, waiting as the policy's retries do",
        tries.load(Ordering::SeqCst),
        started.elapsed()
    );
    Ok(())
}
