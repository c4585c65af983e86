//! A certificate the client refuses is said as such, is never retried, and
//! never counts against the host's breaker: sending again would meet the
//! same certificate. Over real TLS on 127.0.0.1.
#![cfg(feature = "rustls")]

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio_rustls::rustls;
use tower::ServiceExt;
use tower_rebound::{ErrorKind, Policy};
use tower_rebound_testkit::{TestServer, TlsOptions, respond};

/// Retries transport failures up to 4 attempts, and trips the breaker on 2
/// failures in a row.
fn policy() -> Policy {
    Policy::from_toml_str(
        "[retry.backoff]\ninitial = \"1ms\"\nmax = \"2ms\"\n\
         [circuit_breaker]\nenabled = true\nconsecutive_failures = 2\nopen_for = \"60s\"\n\
         wait_for_probe = \"0s\"\n",
    )
    .unwrap()
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

fn trusting(der: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
        .unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Three calls to a server whose certificate the client refuses: each ends
/// at once as a refused certificate, after one handshake, and the breaker
/// (which two failures would trip) stays closed.
async fn refused_three_times(options: TlsOptions, trust: bool, url_host: &str, what: &str) {
    let (server, cert) = TestServer::start_tls(options, |_| async { respond(200, "ok") }).await;
    let client = if trust {
        tower_rebound::client::hyper_https_with(policy(), trusting(&cert.der))
    } else {
        tower_rebound::client::hyper_https(policy()).unwrap()
    };
    let url = format!("https://{url_host}:{}/", server.addr().port());
    for call in 1..=3 {
        let error = client.clone().oneshot(get(&url)).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::Transport,
            "{what}, call {call}: {error}"
        );
        assert!(error.is_certificate(), "{what}: {error:?}");
        assert!(!error.is_retryable(), "{what}");
        assert_eq!(error.attempts(), 1, "{what}: not retried");
        assert!(
            error.to_string().starts_with("certificate refused"),
            "{error}"
        );
        assert_eq!(server.connections(), call, "{what}: one handshake per call");
    }
    assert_eq!(server.requests(), 0, "{what}");
}

#[tokio::test]
async fn an_unknown_issuer_is_not_retried_and_trips_no_breaker() {
    refused_three_times(TlsOptions::default(), false, "localhost", "unknown issuer").await;
}

#[tokio::test]
async fn an_expired_certificate_is_not_retried_and_trips_no_breaker() {
    let options = TlsOptions {
        expired: true,
        ..TlsOptions::default()
    };
    refused_three_times(options, true, "localhost", "expired").await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_not_retried_and_trips_no_breaker() {
    let options = TlsOptions {
        names: vec!["other.example".to_owned()],
        ..TlsOptions::default()
    };
    refused_three_times(options, true, "localhost", "wrong name").await;
}

#[tokio::test]
async fn a_reset_handshake_is_still_retried() {
    // A server that accepts and closes at once: the handshake fails without
    // a certificate to blame, so the call is retried as before.
    let server = TestServer::start_raw(|stream| async move { drop(stream) }).await;
    let client = tower_rebound::client::hyper_https(policy()).unwrap();
    let url = format!("https://localhost:{}/", server.addr().port());
    let error = client.oneshot(get(&url)).await.unwrap_err();
    assert!(!error.is_certificate(), "{error:?}");
    assert!(error.attempts() > 1, "{error:?}");
}
