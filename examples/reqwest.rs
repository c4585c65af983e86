//! rebound in front of reqwest's client, against the seed API stand-in.
//!
//! ```text
//! cargo run --example reqwest --features reqwest
//! ```

use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_rebound::{CallInfo, Policy};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = tower_rebound_testkit::seed::SeedApi::start().await;
    let client = tower_rebound::client::reqwest(reqwest::Client::new(), Policy::preset("connio")?);

    let write = http::Request::post(api.url("/v3/exports"))
        .body(Full::new(bytes::Bytes::from_static(b"{}")))?;
    let response = client.clone().oneshot(write).await?;
    let polls = CallInfo::of(&response).polls();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "export finished after {polls} polls: {}",
        String::from_utf8_lossy(&body)
    );

    let read =
        http::Request::get(api.url("/v3/devices/_dev_9")).body(Full::<bytes::Bytes>::default())?;
    if let Err(e) = client.oneshot(read).await {
        println!("{e}");
    }
    Ok(())
}
