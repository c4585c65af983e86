//! rebound: a resilient HTTP client policy layer for Tower.
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
//!            └─ breaker   per-host circuit breaker: fail fast while open
//!               └─ classify   status → class, per-attempt timeout, bounded error-body parse
//!                  └─ client      any Service<http::Request<B>, Response = http::Response<RB>>
//! ```
//!
//! [`ResilienceLayer::new`] assembles the stack from a [`Policy`]; each layer
//! is also a Tower `Layer` of its own, in its own module ([`trace`], [`poll`],
//! [`retry`], [`breaker`], [`classify`]), for hand-made stacks. A policy is a
//! plain collection of the layers' settings types
//! ([`ClassifySettings`](classify::ClassifySettings),
//! [`RetrySettings`](retry::RetrySettings),
//! [`BreakerSettings`](breaker::BreakerSettings),
//! [`PollSettings`](poll::PollSettings), [`Timeouts`]): loaded from a TOML
//! file, deserialized with serde, or built in code, every value checked the
//! same way ([`SettingsError`] names the key it refuses). The [`client`]
//! module puts the clients people already use in the stack: hyper-util's
//! (`client::hyper`), reqwest's (feature `reqwest`), and a reqwest-middleware
//! middleware (feature `reqwest-middleware`). The stack needs a Tokio runtime
//! with its timer: every wait comes from `tokio::time`.
//! Every call ends in exactly one [`Outcome`]: `Ok(response)` for `success`
//! and `accepted`, and an [`Error`] whose [`kind`](Error::kind) names the
//! failure otherwise.
//!
//! ```
//! # use std::convert::Infallible;
//! # use http::{Request, Response};
//! # use http_body_util::Full;
//! # use bytes::Bytes;
//! use rebound::{ErrorKind, Policy, ResilienceLayer};
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
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod breaker;
mod call;
pub mod classify;
pub mod client;
pub mod config;
mod deadline;
mod error;
pub mod events;
mod hash;
mod info;
mod outcome;
pub mod poll;
mod ready;
pub mod retry;
mod retry_after;
mod rng;
pub mod route;
mod settings;
mod span;
mod stack;
mod status;
mod timer;
pub mod trace;
mod units;

pub use call::CallRequest;
#[doc(hidden)]
pub use call::{Call, CallContext};
pub use config::{Policy, PolicyError};
pub use deadline::Timeouts;
pub use error::{ApiError, AttemptTimedOut, BoxError, Error, ErrorKind};
pub use info::{CallInfo, FinalUrl};
pub use outcome::Outcome;
pub use settings::SettingsError;
pub use stack::{Resilience, ResilienceLayer, ResponseFuture};

// The README's examples compile as part of the test suite.
#[cfg(all(doctest, feature = "hyper"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
