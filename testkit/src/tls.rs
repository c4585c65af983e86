//! https and HTTP/2 test servers (feature `tls`).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::{Handler, TestServer, counted_service};

/// The certificate a [`TestServer::start_tls`] server presents.
#[derive(Debug, Clone)]
pub struct TestCertificate {
    /// The certificate, PEM-encoded: what `--cacert` reads.
    pub pem: String,
    /// The certificate, DER-encoded: what a `RootCertStore` takes.
    pub der: Vec<u8>,
}

/// What certificate a TLS test server presents.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The names it is valid for.
    pub names: Vec<String>,
    /// Whether it expired yesterday.
    pub expired: bool,
    /// The protocols offered by ALPN, most preferred first.
    pub alpn: Vec<Vec<u8>>,
}

impl Default for TlsOptions {
    /// Valid for `localhost` and `127.0.0.1`, offering HTTP/2 and HTTP/1.1.
    fn default() -> Self {
        TlsOptions {
            names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            expired: false,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

impl TestServer {
    /// Serves each request with `handler` over https, HTTP/2 or HTTP/1.1 as
    /// ALPN settles, with a self-signed certificate made now; returns the
    /// certificate to trust.
    pub async fn start_tls<F, Fut>(options: TlsOptions, handler: F) -> (TestServer, TestCertificate)
    where
        F: Fn(super::TestRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = http::Response<super::Body>> + Send + 'static,
    {
        let (certificate, config) = server_config(&options);
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let handler: Arc<Handler> = Arc::new(move |request| Box::pin(handler(request)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port on 127.0.0.1");
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let server = TestServer::serve_raw(listener, move |stream| {
            let service = counted_service(Arc::clone(&handler), Arc::clone(&counter));
            let acceptor = acceptor.clone();
            async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            }
        });
        (server.with_request_counter(requests), certificate)
    }

    /// Serves each request with `handler` over plain TCP, in HTTP/1.1 or in
    /// HTTP/2 with prior knowledge (`h2c`), whichever the client speaks.
    pub async fn start_h2c<F, Fut>(handler: F) -> TestServer
    where
        F: Fn(super::TestRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = http::Response<super::Body>> + Send + 'static,
    {
        let handler: Arc<Handler> = Arc::new(move |request| Box::pin(handler(request)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port on 127.0.0.1");
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let server = TestServer::serve_raw(listener, move |stream| {
            let service = counted_service(Arc::clone(&handler), Arc::clone(&counter));
            async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
        server.with_request_counter(requests)
    }

    /// `https://localhost:PORT` followed by `path`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

fn server_config(options: &TlsOptions) -> (TestCertificate, rustls::ServerConfig) {
    // Each certificate names itself apart, so that one never passes for
    // another's issuer.
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut params =
        rcgen::CertificateParams::new(options.names.clone()).expect("valid certificate names");
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("rebound test {} {n}", std::process::id()),
    );
    if options.expired {
        let now = std::time::SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        params.not_before = (now - 30 * day).into();
        params.not_after = (now - day).into();
    }
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    let der = cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .expect("a private key in DER");
    // An explicit provider, never the process default: a test that installed
    // one would hide a client that relies on it.
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![der.clone()], private)
    .expect("a server configuration");
    config.alpn_protocols = options.alpn.clone();
    (
        TestCertificate {
            pem: cert.pem(),
            der: der.to_vec(),
        },
        config,
    )
}
