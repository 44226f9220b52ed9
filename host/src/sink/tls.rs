//! TLS to PostgreSQL the libpq way, with rustls (see README: "Why rustls"). `sslmode`:
//!
//! | mode | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow`, `prefer` | if the server offers it | no (as libpq; `prefer` is the default) |
//! | `require` | always | no, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | chain up to `sslrootcert` |
//! | `verify-full` | always | chain, and the host name |
//!
//! (`allow` tries TLS first, where libpq tries plaintext first: the stronger of the two.)

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{PostgresError, RootCerts, SslMode, TlsConfig};

/// The connector for `config`; every problem with the files it names is fatal, and says which
/// file and what to do.
pub(crate) fn connector(config: &TlsConfig) -> Result<MakeRustlsConnect, PostgresError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PostgresError::fatal(format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (config.mode, &config.root_certs) {
        (SslMode::VerifyFull, roots) => webpki(roots.as_ref(), &provider)?,
        (SslMode::VerifyCa, roots) | (SslMode::Require, roots @ Some(_)) => {
            Arc::new(ChainOnly(webpki(roots.as_ref(), &provider)?))
        }
        _ => Arc::new(NoCheck(provider.clone())),
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let tls = match &config.client_cert {
        None => builder.with_no_client_auth(),
        Some(client) => {
            check_key_permissions(&client.key)?;
            let certs = CertificateDer::pem_file_iter(&client.cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error("sslcert", &client.cert, e))?;
            let key = PrivateKeyDer::from_pem_file(&client.key)
                .map_err(|e| file_error("sslkey", &client.key, e))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                PostgresError::fatal(format!(
                    "sslcert/sslkey: {e}: do the certificate and key belong together?"
                ))
            })?
        }
    };
    Ok(MakeRustlsConnect::new(tls))
}

fn file_error(what: &str, path: &Path, e: impl std::fmt::Display) -> PostgresError {
    PostgresError::fatal(format!("{what} {}: {e}: give a readable PEM file", path.display()))
}

/// The standard verifier (chain and host name) over the configured root certificates.
fn webpki(
    roots: Option<&RootCerts>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, PostgresError> {
    let mut store = RootCertStore::empty();
    match roots {
        None => return Err(PostgresError::fatal(
            "sslmode verify-ca/verify-full needs sslrootcert: the CA file (e.g. the RDS bundle) \
                 or `sslrootcert=system` for the system's trusted CAs",
        )),
        Some(RootCerts::File(path)) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error("sslrootcert", path, e))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(file_error("sslrootcert", path, "no certificate in it"));
            }
        }
        Some(RootCerts::System) => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(PostgresError::fatal(
                    "sslrootcert=system: no trusted CA certificates found on this system \
                     (install ca-certificates, or give the CA file)",
                ));
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| PostgresError::fatal(format!("sslrootcert: {e}")))
}

/// libpq's rule for private key files: no access for group or others (owner root: group read).
fn check_key_permissions(path: &Path) -> Result<(), PostgresError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| file_error("sslkey", path, e))?;
    let forbidden = if meta.uid() == 0 { 0o037 } else { 0o077 };
    if meta.mode() & forbidden != 0 {
        return Err(PostgresError::fatal(format!(
            "sslkey {}: mode {:o} lets group or others read it; chmod 600 {}",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        )));
    }
    Ok(())
}

/// `verify-ca`: the chain must lead to a trusted root, whatever name the certificate gives.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name, so a name error means the chain was good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a root certificate: encrypted, not authenticated (libpq's
/// meaning of these modes). The handshake's signatures are still checked.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
