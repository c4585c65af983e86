//! tower-rebound: a resilient HTTP client policy layer for Tower.
//!
//! rebound wraps any Tower HTTP client (hyper-util's, reqwest's through an
//! adapter, a test double) and turns raw responses into typed outcomes. An API
//! that throttles, fails now and then, answers `202 Accepted` and explains its
//! errors in JSON bodies is then called with one line, under a policy loaded
//! from a TOML file.
//!
//! ```text
//! caller
//!   └─ trace     one span per logical call (OpenTelemetry HTTP client field names)
//!      └─ poll   202 + status URL → GET it until the operation ends (same-origin only)
//!         └─ retry    attempts, backoff + jitter, Retry-After, budget, deadline, idempotency
//!            └─ breaker   per-host circuit breaker: while open, probes and waits for their verdict
//!               └─ classify   status (and rules) → class, per-attempt timeout, error bodies
//!                  └─ client      any Service<http::Request<B>, Response = http::Response<RB>>
//! ```
//!
//! # With hyper-util's client
//!
//! ```no_run
//! use http_body_util::Full;
//! use tower::ServiceExt;
//! use tower_rebound::{ErrorKind, Policy};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // A file says what differs from its base (`standard` unless it names one).
//! let client = tower_rebound::client::hyper(Policy::from_path("policies/connio.toml")?);
//! let request = http::Request::get("http://127.0.0.1:8080/v3/devices/_dev_1").body(Full::default())?;
//! match client.oneshot(request).await {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(error) if error.kind() == ErrorKind::Terminal => {
//!         for api_error in error.api_errors() {
//!             eprintln!("{:?}: {:?}", api_error.code(), api_error.message());
//!         }
//!     }
//!     Err(error) => eprintln!("{error}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # With reqwest
//!
//! Feature `reqwest` puts `reqwest::Client` in the same stack; feature
//! `reqwest-middleware` offers the stack as a middleware instead
//! (`client::ReboundMiddleware`).
//!
#![cfg_attr(feature = "reqwest", doc = "```no_run")]
#![cfg_attr(not(feature = "reqwest"), doc = "```ignore")]
//! use http_body_util::Full;
//! use tower::ServiceExt;
//! use tower_rebound::{CallInfo, Policy};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = tower_rebound::client::reqwest(reqwest::Client::new(), Policy::preset("standard")?);
//! let body = Full::new(bytes::Bytes::from_static(b"{}"));
//! let write = http::Request::post("https://api.example/v3/exports").body(body)?;
//! let response = client.oneshot(write).await?; // a 202 is polled to its end
//! println!("{} after {} polls", response.status(), CallInfo::of(&response).polls());
//! # Ok(())
//! # }
//! ```
//!
//! # Any Tower client
//!
//! [`ResilienceLayer::new`] assembles the stack from a [`Policy`]; each layer
//! is also a Tower `Layer` of its own, in its own module ([`trace`], [`poll`],
//! [`retry`], [`breaker`], [`classify`]), for hand-made stacks. A policy is a
//! plain collection of the layers' settings types
//! ([`ClassifySettings`](classify::ClassifySettings),
//! [`RetrySettings`](retry::RetrySettings),
//! [`BreakerSettings`](breaker::BreakerSettings),
//! [`PollSettings`](poll::PollSettings), [`Timeouts`]): loaded from a TOML
//! file ([`config`]: bases, routes, rules, warnings), deserialized with serde,
//! or built in code, every value checked the same way ([`SettingsError`]
//! names the key it refuses). [`route`] chooses settings per request;
//! [`events`] tells listeners (and the `metrics` and `opentelemetry`
//! listeners) what the stack does. The stack needs a Tokio runtime with its
//! timer: every wait comes from `tokio::time`. Every call ends in exactly one
//! [`Outcome`]: `Ok(response)` for `success` and `accepted`, and an [`Error`]
//! whose [`kind`](Error::kind) names the failure otherwise.
//!
//! ```
//! # use std::convert::Infallible;
//! # use http::{Request, Response};
//! # use http_body_util::Full;
//! # use bytes::Bytes;
//! use tower_rebound::{ErrorKind, Policy, ResilienceLayer};
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let client = tower::service_fn(|_req: Request<Full<Bytes>>| async {
//! #     let body = r#"[{"code":"DeviceDisabled","cause":"device is disabled"}]"#;
//! #     Ok::<_, Infallible>(Response::builder().status(403).body(Full::new(Bytes::from(body))).unwrap())
//! # });
//! let client = ResilienceLayer::new(Policy::preset("connio")?).layer(client);
//!
//! let request = Request::post("http://api.example/devices/7/data").body(Full::default())?;
//! match client.oneshot(request).await {
//!     Ok(response) => println!("status {}", response.status()),
//!     Err(error) if error.kind() == ErrorKind::Terminal => {
//!         let codes: Vec<&str> = error.error_codes().collect();
//!         assert_eq!(codes, ["DeviceDisabled"]);
//!     }
//!     Err(error) => return Err(error.into()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `hyper` | yes | [`client::hyper`]: hyper-util's client in the stack |
//! | `rustls` | no | `client::hyper_https`: https with rustls and the system's roots, HTTP/2 by ALPN |
//! | `rustls-aws-lc-rs` | no | the same with aws-lc-rs for rustls' cryptography instead of ring (`rustls` is `rustls-ring`); aws-lc-rs when both are on |
//! | `reqwest` | no | `client::Reqwest`, `client::reqwest`: `reqwest::Client` in the stack |
//! | `reqwest-middleware` | no | `client::ReboundMiddleware` |
//! | `tower-http` | no | `classify::PolicyClassifier`: rebound's classes in tower-http's `TraceLayer` |
//! | `backon` | no | a policy's retry schedule as a `backon::BackoffBuilder` (`Backoff`, `&RetrySettings`) |
//! | `metrics` | no | `events::MetricsListener`: the `metrics` facade |
//! | `redis` | no | a `[rate_limit]` shared through Redis (`rate_limit::RedisStore`) |
//! | `watch` | no | `PolicySwap::watch_file`: a policy file put in force when it changes |
//! | `opentelemetry` | no | `events::OpenTelemetryListener`: the OpenTelemetry metrics API |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod breaker;
mod breaker_state;
pub mod classify;
pub mod client;
pub mod concurrency;
pub mod config;
mod deadline;
mod error;
pub mod events;
mod hash;
mod host_key;
mod info;
mod outcome;
pub mod poll;
pub mod rate_limit;
mod ready;
mod reload;
pub mod retry;
mod retry_after;
mod rng;
pub mod route;
mod settings;
mod span;
mod stack;
mod status;
mod stripes;
mod timer;
pub mod trace;
mod units;

pub use config::{Policy, PolicyError};
pub use deadline::{Propagate, PropagateFormat, Timeouts};
pub use error::{ApiError, AttemptTimedOut, BoxError, Error, ErrorKind, RetryRefusal};
pub use info::{CallInfo, FinalUrl};
pub use outcome::Outcome;
pub use reload::{PolicySwap, Reloadable, ReloadableLayer};
pub use settings::SettingsError;
pub use stack::{Resilience, ResilienceLayer, ResponseFuture, Runtime};

// The README's examples compile as part of the test suite.
#[cfg(all(doctest, feature = "hyper"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
