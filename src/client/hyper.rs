//! hyper-util's client in the rebound stack.
//!
//! ```no_run
//! use http_body_util::Full;
//! use tower_rebound::Policy;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = tower_rebound::client::hyper(Policy::preset("connio")?);
//! let request = http::Request::get("http://127.0.0.1:8080/v3/devices/_dev_1").body(Full::default())?;
//! let response = client.oneshot(request).await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_layer::Layer;
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
use {rustls::crypto::CryptoProvider, std::sync::Arc};

use crate::config::Policy;
use crate::stack::{Resilience, ResilienceLayer};

/// hyper-util's client over plain http, in the rebound stack.
pub type HyperClient<B = Full<Bytes>> = Resilience<Client<HttpConnector, B>>;

/// A client for plain http, with the policy's retries, breakers, polling and
/// spans. Clone it freely: clones share connections, breakers and the retry
/// budget.
pub fn hyper(policy: Policy) -> HyperClient {
    let client = Client::builder(TokioExecutor::new()).build_http();
    ResilienceLayer::new(policy).layer(client)
}

/// hyper-util's client over http and https (rustls), in the rebound stack.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub type HttpsClient<B = Full<Bytes>> = Resilience<BareHttpsClient<B>>;

/// hyper-util's client over http and https (rustls), with no stack around
/// it: what [`https_client`] builds.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub type BareHttpsClient<B = Full<Bytes>> = Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

/// Which HTTP versions the https client speaks.
///
/// ```
/// use tower_rebound::client::{hyper_https_versions, HttpVersions};
/// use tower_rebound::Policy;
///
/// let roots = rustls::RootCertStore::empty(); // add the roots you trust
/// let tls = rustls::ClientConfig::builder_with_provider(tower_rebound::client::crypto_provider())
///     .with_safe_default_protocol_versions()?
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// let client = hyper_https_versions(Policy::preset("standard")?, tls, HttpVersions::Http1Only);
/// # let _ = client;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpVersions {
    /// HTTP/1.1, and HTTP/2 where the server offers it in the TLS handshake
    /// (ALPN); plain http is HTTP/1.1.
    #[default]
    Negotiate,
    /// HTTP/1.1 only.
    Http1Only,
    /// HTTP/2 only, without asking first: over TLS and over plain http
    /// (`h2c`), for servers known to speak it.
    Http2PriorKnowledge,
}

/// The crypto provider rebound's https client gives rustls: aws-lc-rs with
/// the `rustls-aws-lc-rs` feature (even when `rustls-ring` is on as well),
/// ring otherwise.
///
/// It is passed to rustls explicitly and never installed as the process
/// default, so a program whose dependencies turn on both of rustls' providers
/// (where rustls cannot choose one by itself, and its
/// `ClientConfig::builder()` panics) gets a working client. Use it for the
/// configuration of [`hyper_https_with`] to get the same.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "rustls-aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "rustls-aws-lc-rs"))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// A client for http and https, with TLS by rustls (with
/// [`crypto_provider`]) and the system's root certificates, speaking HTTP/2
/// where the server offers it; fails when the system's roots cannot be read.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub fn hyper_https(policy: Policy) -> std::io::Result<HttpsClient> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(crypto_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let client = Client::builder(TokioExecutor::new()).build(connector);
    Ok(ResilienceLayer::new(policy).layer(client))
}

/// Like [`hyper_https`], with a TLS configuration of your own: private
/// certificate authorities, client certificates, pinned roots. HTTP/2 is
/// negotiated by ALPN.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub fn hyper_https_with(policy: Policy, tls: rustls::ClientConfig) -> HttpsClient {
    hyper_https_versions(policy, tls, HttpVersions::Negotiate)
}

/// Like [`hyper_https_with`], speaking the HTTP `versions` asked for.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub fn hyper_https_versions(
    policy: Policy,
    tls: rustls::ClientConfig,
    versions: HttpVersions,
) -> HttpsClient {
    ResilienceLayer::new(policy).layer(https_client(tls, versions))
}

/// hyper-util's client over http and https with `tls`, speaking the HTTP
/// `versions` asked for, with no stack around it: for a stack of your own,
/// such as a [`ReloadableLayer`](crate::ReloadableLayer)'s.
#[cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls-ring", feature = "rustls-aws-lc-rs")))
)]
pub fn https_client(tls: rustls::ClientConfig, versions: HttpVersions) -> BareHttpsClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = match versions {
        HttpVersions::Negotiate => builder.enable_http1().enable_http2().build(),
        HttpVersions::Http1Only => builder.enable_http1().build(),
        HttpVersions::Http2PriorKnowledge => builder.enable_http2().build(),
    };
    let mut client = Client::builder(TokioExecutor::new());
    if versions == HttpVersions::Http2PriorKnowledge {
        client.http2_only(true);
    }
    client.build(connector)
}
