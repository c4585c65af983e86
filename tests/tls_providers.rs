//! https with both of rustls' crypto providers in the build (`rustls-ring` and
//! `rustls-aws-lc-rs`, as `--all-features` builds it, or as a program gets it
//! when another of its dependencies turns on aws-lc-rs): rustls then cannot
//! pick a process-wide provider by itself, and its `ClientConfig::builder()`
//! panics. The ready-made client must work all the same, and install nothing.
//!
//! A test binary of its own, with one test: nothing else in the process may
//! install a default provider, or the test would check nothing.
#![cfg(all(feature = "rustls-ring", feature = "rustls-aws-lc-rs"))]

use std::convert::Infallible;
use std::sync::Arc;

use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tower::ServiceExt;
use tower_rebound::Policy;

/// An https server on 127.0.0.1 answering 200 "secure" with `key`'s
/// certificate for `localhost`, whose TLS names its provider (ring) itself.
async fn tls_server(key: &rcgen::CertifiedKey<rcgen::KeyPair>) -> u16 {
    let cert = key.cert.der().clone();
    let private =
        rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from_static(
                        b"secure",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn kx_groups(provider: &CryptoProvider) -> Vec<String> {
    provider
        .kx_groups
        .iter()
        .map(|group| format!("{:?}", group.name()))
        .collect()
}

#[test]
fn with_both_providers_built_in_https_works_and_installs_no_default() {
    // The situation where rustls' own builder panics: no process default.
    assert!(CryptoProvider::get_default().is_none());

    // The provider is the documented one: aws-lc-rs when both are built in.
    // (Only aws-lc-rs offers the post-quantum key exchange by default.)
    let chosen = tower_rebound::client::crypto_provider();
    assert_eq!(
        kx_groups(&chosen),
        kx_groups(&rustls::crypto::aws_lc_rs::default_provider())
    );
    assert_ne!(
        kx_groups(&chosen),
        kx_groups(&rustls::crypto::ring::default_provider())
    );

    // `hyper_https` trusts the system's roots, which `SSL_CERT_FILE` replaces
    // (rustls-native-certs reads it): there, the test's certificate.
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let roots =
        std::env::temp_dir().join(format!("rebound-tls-providers-{}.pem", std::process::id()));
    std::fs::write(&roots, key.cert.pem()).unwrap();
    // SAFETY: the only test of this binary sets it before starting a runtime;
    // no other thread of the process reads the environment meanwhile.
    unsafe { std::env::set_var("SSL_CERT_FILE", &roots) };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = runtime.block_on(async {
        let port = tls_server(&key).await;
        let client = tower_rebound::client::hyper_https(Policy::preset("standard").unwrap())
            .expect("the roots load");
        let request = Request::get(format!("https://localhost:{port}/v3/devices"))
            .body(Full::default())
            .unwrap();
        let response = client.oneshot(request).await.expect("the https call works");
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap().to_bytes()
    });
    let _ = std::fs::remove_file(&roots);
    assert_eq!(&body[..], b"secure");
    assert!(
        CryptoProvider::get_default().is_none(),
        "the client installed a process-wide provider"
    );
}
