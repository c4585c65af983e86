//! A rate-limited API on 127.0.0.1:8081 (or the port given as the first
//! argument), to try `rebound load` against: it answers up to LIMIT requests
//! (the second argument, 100 by default) in each second with 200, and the
//! rest with 429, `Retry-After: 1` and the seed API's `TooManyRequests`
//! error, as the seed API does when a client goes over its rate limit.
//!
//! ```text
//! cargo run -p tower-rebound-testkit --example throttled-api
//! cargo run -p tower-rebound-cli -- load --rate 150 --duration 10s http://127.0.0.1:8081/v3/devices/_dev_1
//! ```

use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::HeaderValue;
use tower_rebound_testkit::{TestServer, api_error, respond};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8081);
    let limit: u64 = args.next().and_then(|l| l.parse().ok()).unwrap_or(100);
    let started = Instant::now();
    // The second since the start, and the requests seen in it.
    let window = Arc::new(Mutex::new((0u64, 0u64)));
    let server = TestServer::start_on(port, move |_| {
        let admitted = {
            let mut window = window.lock().unwrap_or_else(|p| p.into_inner());
            let second = started.elapsed().as_secs();
            if window.0 != second {
                *window = (second, 0);
            }
            window.1 += 1;
            window.1 <= limit
        };
        async move {
            if admitted {
                return respond(200, r#"{"id":"_dev_1","name":"thermostat"}"#);
            }
            let mut response = api_error(429, &[("TooManyRequests", "Rate limit exceeded")]);
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            response
        }
    })
    .await
    .expect("bind the port");
    println!(
        "rate-limited API listening on http://{}, {limit} requests a second",
        server.addr()
    );
    std::future::pending::<()>().await;
}
