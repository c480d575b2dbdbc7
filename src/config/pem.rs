//! The PEM files TLS settings name (CA bundles, client certificates and their keys). They are
//! read and checked here, once, at start-up: a wrong path, a file of the wrong kind or a key
//! that does not belong to its certificate stops the gateway with the setting named, instead
//! of failing later inside a handshake with a bare I/O error.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::Secret;

/// Certificates trusted to sign a server's certificate, as read from `path`.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub path: PathBuf,
    /// The file's PEM text: every block is a certificate usable as a trust anchor.
    pub pem: Vec<u8>,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .finish()
    }
}

/// A client certificate chain and its private key, for servers that authenticate clients by
/// certificate (mutual TLS). `Debug` shows the paths only.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret<Vec<u8>>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

/// Which of a client identity's two files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityPart {
    Cert,
    Key,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Reads a CA bundle: at least one certificate, each usable as a trust anchor.
pub fn read_ca_bundle(path: &Path) -> Result<CaBundle, String> {
    let pem = read(path)?;
    let certs = certificates(path, &pem)?;
    let mut store = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        store.add(cert).map_err(|e| {
            format!(
                "certificate {} in {} is not usable as a CA certificate: {e}",
                i + 1,
                path.display()
            )
        })?;
    }
    Ok(CaBundle {
        path: path.to_path_buf(),
        pem,
    })
}

/// Reads a client certificate chain and its key, and checks that the key is the
/// certificate's.
pub fn read_client_identity(
    cert_path: &Path,
    key_path: &Path,
) -> Result<ClientIdentity, (IdentityPart, String)> {
    let cert_pem = read(cert_path).map_err(|e| (IdentityPart::Cert, e))?;
    let chain = certificates(cert_path, &cert_pem).map_err(|e| (IdentityPart::Cert, e))?;
    let key_pem = read(key_path).map_err(|e| (IdentityPart::Key, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let problem = match e {
            pem::Error::NoItemsFound => format!(
                "{} holds no PEM private key (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or \
                 `BEGIN EC PRIVATE KEY`; an encrypted key must be decrypted first)",
                key_path.display()
            ),
            other => format!("{} is not a readable PEM key: {other}", key_path.display()),
        };
        (IdentityPart::Key, problem)
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        (
            IdentityPart::Key,
            format!(
                "{} is not the private key of the certificate in {}: {e}",
                key_path.display(),
                cert_path.display()
            ),
        )
    })?;
    Ok(ClientIdentity {
        cert_path: cert_path.to_path_buf(),
        key_path: key_path.to_path_buf(),
        cert_pem,
        key_pem: Secret::new(key_pem),
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not readable PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(certs)
}
