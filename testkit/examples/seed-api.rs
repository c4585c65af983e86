//! The stand-in for the seed API that `rebound demo` runs, on 127.0.0.1:8080
//! (or the port given as the first argument), to try `rebound request`
//! against. Its routes are in `testkit/src/seed.rs`.
//!
//! ```text
//! cargo run -p tower-rebound-testkit --example seed-api
//! cargo run -p tower-rebound-cli -- request --report json http://127.0.0.1:8080/v3/devices/_dev_9
//! ```

use tower_rebound_testkit::seed::SeedApi;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let api = SeedApi::start_on(port).await.expect("bind the port");
    println!("seed API stand-in listening on http://{}", api.api.addr());
    println!(
        "a host that answers 500 to everything: http://{}",
        api.overloaded.addr()
    );
    println!("a host that is down: {}", api.down_url(""));
    std::future::pending::<()>().await;
}
