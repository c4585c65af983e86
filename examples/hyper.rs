//! rebound in front of hyper-util's client, against the seed API stand-in.
//!
//! ```text
//! cargo run --example hyper
//! ```

use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_rebound::{ErrorKind, Policy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = tower_rebound_testkit::seed::SeedApi::start().await;
    let client = tower_rebound::client::hyper(Policy::preset("connio")?);

    for path in [
        "/v3/devices/_dev_1",
        "/v3/flaky/example",
        "/v3/devices/_dev_9",
    ] {
        let request = http::Request::get(api.url(path)).body(Full::default())?;
        match client.clone().oneshot(request).await {
            Ok(response) => {
                let attempts = tower_rebound::CallInfo::of(&response).attempts();
                let body = response.into_body().collect().await?.to_bytes();
                println!(
                    "{path}: {} after {attempts} attempt(s)",
                    String::from_utf8_lossy(&body)
                );
            }
            Err(e) if e.kind() == ErrorKind::Terminal => {
                let codes: Vec<&str> = e.error_codes().collect();
                println!("{path}: rejected, codes {codes:?}");
            }
            Err(e) => println!("{path}: {e}"),
        }
    }
    Ok(())
}
