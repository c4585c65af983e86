//! A stand-in for the seed API, misbehaviour included: every status of its
//! error-handling page with real error bodies, throttling with `Retry-After`,
//! server errors that recover, asynchronous writes, an overloaded host and a
//! host that is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderValue, Method};

use crate::{Body, TestServer, api_error, respond};

/// The seed API's hosts, all on 127.0.0.1.
pub struct SeedApi {
    /// The API itself.
    pub api: TestServer,
    /// A host that answers every request with 500.
    pub overloaded: TestServer,
    /// The port of a host that is down (nothing listens there).
    pub down_port: u16,
}

impl SeedApi {
    /// Starts the hosts on free ports.
    pub async fn start() -> SeedApi {
        SeedApi::start_on(0).await.expect("bind ports on 127.0.0.1")
    }

    /// Starts the API on `port` (0 for a free one) and the other hosts on
    /// free ports.
    pub async fn start_on(port: u16) -> std::io::Result<SeedApi> {
        let api = TestServer::start_on(port, api()).await?;
        let overloaded = TestServer::start_on(0, |_| async {
            api_error(500, &[("InternalError", "The server is overloaded")])
        })
        .await?;
        let down_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.local_addr()?.port()
        };
        Ok(SeedApi {
            api,
            overloaded,
            down_port,
        })
    }

    /// A URL of the API.
    pub fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    /// A URL of the host that is down.
    pub fn down_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.down_port)
    }
}

/// The API's routes. Paths that misbehave a fixed number of times count per
/// path, so each caller can use its own path (`/v3/flaky/NAME`).
fn api() -> impl Fn(crate::TestRequest) -> Reply + Send + Sync + 'static {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    move |request| {
        let seen = Arc::clone(&seen);
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let count = {
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                let count = seen.entry(path.clone()).or_insert(0);
                *count += 1;
                *count
            };
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let authorized = request
                .headers()
                .get("authorization")
                .is_none_or(|v| v.as_bytes() != b"Bearer revoked");
            if !authorized {
                return api_error(401, &[("Unauthorized", "Key credentials are not valid")]);
            }
            match (request.method().clone(), parts.as_slice()) {
                (Method::GET, ["v3", "devices", "_dev_1"]) => respond(
                    200,
                    r#"{"id":"_dev_1","name":"thermostat","status":"enabled"}"#,
                ),
                (Method::GET, ["v3", "devices", "_dev_off"]) => {
                    api_error(403, &[("DeviceDisabled", "Device is disabled")])
                }
                (Method::GET, ["v3", "devices", _]) => {
                    api_error(404, &[("ResourceNotFound", "Resource not found")])
                }
                (Method::POST, ["v3", "devices"]) if request.body().is_empty() => api_error(
                    400,
                    &[
                        ("MissingAttribute", "Missing required attribute 'name'"),
                        ("MissingAttribute", "Missing required attribute 'type'"),
                    ],
                ),
                (Method::POST, ["v3", "devices"]) => {
                    api_error(409, &[("NameConflict", "A device with this name exists")])
                }
                (Method::POST, ["v3", "connectors", _, "test"]) => api_error(
                    406,
                    &[("ConnectorTestFailed", "The data connector test failed")],
                ),
                (Method::POST, ["v3", "devices", _, "data"]) => respond(202, ""),
                (Method::POST, ["v3", "exports"]) => {
                    let mut response = respond(202, "");
                    let job = format!("/v3/jobs/{count}");
                    if let Ok(value) = HeaderValue::from_str(&job) {
                        response.headers_mut().insert("location", value);
                    }
                    response
                }
                (Method::GET, ["v3", "jobs", _]) if count <= 2 => {
                    let mut response = respond(202, r#"{"status":"running"}"#);
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                    response
                }
                (Method::GET, ["v3", "jobs", _]) => respond(200, r#"{"status":"done","rows":42}"#),
                (Method::GET, ["v3", "throttled", ..]) if count == 1 => {
                    let mut response =
                        api_error(429, &[("TooManyRequests", "Rate limit exceeded")]);
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                    response
                }
                (Method::GET, ["v3", "flaky", ..]) if count <= 2 => {
                    api_error(500, &[("InternalError", "Something went wrong")])
                }
                (Method::GET, ["v3", "throttled" | "flaky", ..]) => respond(200, r#"{"ok":true}"#),
                (Method::GET, ["v3", "reports", ..]) => api_error(
                    503,
                    &[("NotImplemented", "Reports are not implemented yet")],
                ),
                _ => api_error(404, &[("ResourceNotFound", "Resource not found")]),
            }
        })
    }
}

type Reply = std::pin::Pin<Box<dyn std::future::Future<Output = http::Response<Body>> + Send>>;
