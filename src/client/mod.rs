//! Ready-made clients: the clients users already have, in the rebound stack.
//!
//! - [`hyper`] (feature `hyper`, on by default): hyper-util's client over
//!   plain http; [`hyper_https`] (feature `rustls`, or `rustls-aws-lc-rs`) adds https
//!   with rustls.
//! - [`Reqwest`] (feature `reqwest`): `reqwest::Client` as a Tower service
//!   from `http::Request` to `http::Response`, with a streaming body, so the
//!   same [`ResilienceLayer`](crate::ResilienceLayer) wraps it; [`reqwest`]
//!   builds the whole thing.
//! - [`ReboundMiddleware`] (feature `reqwest-middleware`): the stack as a
//!   reqwest-middleware middleware.
//!
//! Each keeps the client's own error as the source of a
//! [`Transport`](crate::ErrorKind::Transport) error, and tells rebound when a
//! connection failed before anything was sent, or an HTTP/2 server did not
//! process the request, so that writes may be retried after it.

#[cfg(feature = "hyper")]
mod hyper;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
#[cfg(feature = "reqwest")]
mod reqwest;

#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub use self::hyper::{
    BareHttpsClient, HttpVersions, HttpsClient, crypto_provider, https_client, hyper_https,
    hyper_https_versions, hyper_https_with,
};
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub use self::hyper::{HyperClient, hyper};
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use self::middleware::ReboundMiddleware;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use self::reqwest::{Reqwest, ReqwestClient, reqwest};
