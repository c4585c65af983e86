//! An existing `backoff::ExponentialBackoff` as rebound's retry schedule.
//!
//! ```text
//! cargo run --example backoff --features backoff
//! ```

use http_body_util::Full;
use tower::ServiceExt;
use tower_rebound::retry::Backoff;
use tower_rebound::{CallInfo, Policy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = tower_rebound_testkit::seed::SeedApi::start().await;
    let schedule = backoff::ExponentialBackoff::default();
    let policy = Policy::preset("connio")?.with_backoff(Backoff::from(&schedule))?;
    let client = tower_rebound::client::hyper(policy);
    let request =
        http::Request::get(api.url("/v3/flaky/backoff")).body(Full::<bytes::Bytes>::default())?;
    let started = std::time::Instant::now();
    let response = client.oneshot(request).await?;
    println!(
        "{} after {} attempts in {:?}, waiting as the backoff crate would",
        response.status(),
        CallInfo::of(&response).attempts(),
        started.elapsed()
    );
    Ok(())
}
