//! The client the commands send with: http and https (rustls), HTTP/1.1 and
//! HTTP/2, and what a TLS failure means in words.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tower_rebound::Policy;
use tower_rebound::client::{BareHttpsClient, HttpVersions, HttpsClient};

/// How to connect: trust, TLS checks and HTTP versions.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectArgs {
    /// Trust the certificates in FILE (PEM) as well as the system's
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Accept any server certificate: anyone on the path can read and change the call
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Speak HTTP/1.1 only
    #[arg(long = "http1.1", conflicts_with = "http2_prior_knowledge")]
    http1_1: bool,
    /// Speak HTTP/2 without asking first (over http:// too)
    #[arg(long = "http2-prior-knowledge")]
    http2_prior_knowledge: bool,
}

/// What is needed to build the client, checked before anything is sent.
pub(crate) struct Connect {
    extra_roots: Vec<CertificateDer<'static>>,
    insecure: bool,
    versions: HttpVersions,
}

impl ConnectArgs {
    /// The connection settings, or a usage error (an unreadable `--cacert`,
    /// a file with no certificate).
    pub(crate) fn check(&self) -> Result<Connect, String> {
        let mut extra_roots = Vec::new();
        if let Some(path) = &self.cacert {
            let text = std::fs::read(path)
                .map_err(|e| format!("cannot read --cacert {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&text) {
                let cert = cert.map_err(|e| {
                    format!("--cacert {}: not a PEM certificate: {e}", path.display())
                })?;
                extra_roots.push(cert);
            }
            if extra_roots.is_empty() {
                return Err(format!(
                    "--cacert {}: no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
        }
        let versions = if self.http1_1 {
            HttpVersions::Http1Only
        } else if self.http2_prior_knowledge {
            HttpVersions::Http2PriorKnowledge
        } else {
            HttpVersions::Negotiate
        };
        Ok(Connect {
            extra_roots,
            insecure: self.insecure,
            versions,
        })
    }
}

impl Connect {
    /// The client for `policy`. Certificates are loaded only when a call
    /// goes to an https URL (`https`), so plain http needs none.
    pub(crate) fn client(&self, policy: Policy, https: bool) -> Result<HttpsClient, String> {
        Ok(tower::Layer::layer(
            &tower_rebound::ResilienceLayer::new(policy),
            self.bare(https)?,
        ))
    }

    /// The client with no stack around it, for a stack of the caller's.
    pub(crate) fn bare(&self, https: bool) -> Result<BareHttpsClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let config = if https && self.insecure {
            eprintln!(
                "rebound: warning: --insecure: the server's certificate is not checked; anyone on the path can read and change this call"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            if https {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                for cert in &self.extra_roots {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("--cacert: cannot trust the certificate: {e}"))?;
                }
                if roots.is_empty() {
                    let why = native
                        .errors
                        .first()
                        .map_or_else(|| "none found".to_owned(), ToString::to_string);
                    return Err(format!(
                        "cannot load the system's root certificates ({why}): pass --cacert FILE"
                    ));
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(tower_rebound::client::https_client(config, self.versions))
    }
}

/// Accepts any certificate (`--insecure`), still checking that the server
/// holds the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a TLS failure in `error`'s sources means, in words, when there is
/// one.
pub(crate) fn tls_failure(error: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        // An io::Error's `source` skips the error it wraps (which may be
        // another io::Error): look inside.
        let mut candidate = Some(error);
        while let Some(inner) = candidate {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls_words(tls, host));
            }
            candidate = inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn std::error::Error + 'static));
        }
        next = error.source();
    }
    None
}

fn tls_words(error: &rustls::Error, host: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the certificate of {host} is signed by an authority this machine does not trust (unknown issuer): trust it with --cacert FILE"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the certificate of {host} has expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "the certificate of {host} is not valid yet (is this machine's clock right?)"
                )
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the certificate presented is not valid for the name {host} (wrong name)")
            }
            CertificateError::Revoked => format!("the certificate of {host} has been revoked"),
            other => format!("the certificate of {host} was refused: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("{host} ended the TLS handshake with the alert {alert:?}")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("{host} did not answer in TLS (is it an https server? try http://)")
        }
        other => format!("TLS with {host} failed: {other}"),
    }
}
