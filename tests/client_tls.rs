//! https with rustls over real TLS on 127.0.0.1, with a certificate made for
//! the test.
#![cfg(feature = "rustls")]

use std::convert::Infallible;
use std::sync::Arc;

use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower::ServiceExt;
use tower_rebound::{ErrorKind, Policy};

/// An https server on 127.0.0.1 answering 200 "secure", with a self-signed
/// certificate for `localhost`; returns its port and the certificate.
async fn tls_server() -> (u16, rustls::pki_types::CertificateDer<'static>) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = key.cert.der().clone();
    let private =
        rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(ring)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
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
    (port, cert)
}

fn get(url: &str) -> Request<Full<bytes::Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

#[tokio::test]
async fn a_trusted_certificate_gets_through_and_an_unknown_one_does_not() {
    let (port, cert) = tls_server().await;
    let url = format!("https://localhost:{port}/v3/devices");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(tower_rebound::client::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = tower_rebound::client::hyper_https_with(Policy::preset("connio").unwrap(), tls);
    let response = client.oneshot(get(&url)).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"secure");

    // The system's roots do not know the test's certificate.
    let client = tower_rebound::client::hyper_https(Policy::preset("connio").unwrap()).unwrap();
    let error = client.oneshot(get(&url)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
}
