//! rebound as a reqwest-middleware middleware.
//!
//! ```text
//! cargo run --example reqwest_middleware --features reqwest-middleware
//! ```

use tower_rebound::client::ReboundMiddleware;
use tower_rebound::{CallInfo, Policy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = tower_rebound_testkit::seed::SeedApi::start().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReboundMiddleware::new(Policy::preset("connio")?))
        .build();

    let response = client.get(api.url("/v3/flaky/example")).send().await?;
    let attempts = response
        .extensions()
        .get::<CallInfo>()
        .map_or(1, |i| i.attempts());
    println!("{} after {attempts} attempts", response.status());

    match client.get(api.url("/v3/devices/_dev_off")).send().await {
        Err(reqwest_middleware::Error::Middleware(e)) => {
            match e.downcast_ref::<tower_rebound::Error>() {
                Some(e) => println!("{:?}: {:?}", e.kind(), e.error_codes().collect::<Vec<_>>()),
                None => println!("{e}"),
            }
        }
        other => println!("{other:?}"),
    }
    Ok(())
}
