//! A local stand-in for the seed API on 127.0.0.1:8080 (or the port given as
//! the first argument), to try `rebound request` against:
//!
//! - `GET /status/CODE` answers CODE with the API's error body for error codes;
//! - `429` comes with `Retry-After: 2`.
//!
//! ```text
//! cargo run -p rebound-testkit --example seed-api
//! cargo run -p rebound-cli -- request --report json http://127.0.0.1:8080/status/404
//! ```

use rebound_testkit::{TestServer, api_error, respond};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let server = TestServer::start_on(port, |request| async move {
        let code: u16 = request
            .uri()
            .path()
            .strip_prefix("/status/")
            .and_then(|c| c.parse().ok())
            .unwrap_or(404);
        match code {
            200 => respond(200, "{\"id\":\"_dev_1\",\"name\":\"thermostat\"}\n"),
            202 => respond(202, ""),
            400 => api_error(
                400,
                &[("MissingAttribute", "Missing required attribute 'name'")],
            ),
            401 => api_error(401, &[("Unauthorized", "Key credentials are not valid")]),
            403 => api_error(403, &[("DeviceDisabled", "Device is disabled")]),
            406 => api_error(
                406,
                &[("ConnectorTestFailed", "Data connector test failed")],
            ),
            409 => api_error(409, &[("NameConflict", "Name is already in use")]),
            429 => {
                let mut response = api_error(429, &[("TooManyRequests", "Rate limit exceeded")]);
                response
                    .headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("2"));
                response
            }
            500 => api_error(500, &[("InternalError", "Something went wrong")]),
            503 => api_error(503, &[("NotImplemented", "Feature not implemented yet")]),
            _ => api_error(404, &[("ResourceNotFound", "Resource not found")]),
        }
    })
    .await
    .expect("bind the port");
    println!("seed API stand-in listening on http://{}", server.addr());
    std::future::pending::<()>().await;
}
