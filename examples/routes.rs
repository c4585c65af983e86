//! One policy, two routes: the same flaky endpoint (500, 500, then 200) under
//! the policy's own 4 attempts, and under a route that allows 2.
//!
//! ```text
//! cargo run --example routes
//! ```

use http_body_util::Full;
use tower::ServiceExt;
use tower_rebound::{CallInfo, Policy};

const POLICY: &str = r#"
[classify]
retryable = [429, 500]
[retry]
max_attempts = 4

[[routes]]
name = "impatient"
path_prefix = "/v3/flaky/impatient"
[routes.retry]
max_attempts = 2
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = tower_rebound_testkit::seed::SeedApi::start().await;
    let client = tower_rebound::client::hyper(Policy::from_toml_str(POLICY)?);
    for path in ["/v3/flaky/patient", "/v3/flaky/impatient"] {
        let request = http::Request::get(api.url(path)).body(Full::default())?;
        match client.clone().oneshot(request).await {
            Ok(response) => println!(
                "{path}: {} after {} attempts",
                response.status(),
                CallInfo::of(&response).attempts()
            ),
            Err(error) => println!(
                "{path}: {} after {} attempts",
                error.kind(),
                error.attempts()
            ),
        }
    }
    Ok(())
}
