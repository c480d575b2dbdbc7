//! Every connection the gateway opens to PostgreSQL and Redis is made here, so TLS settings
//! apply to all of them and no error about them can print a password.
//!
//! A connection error names the server (its URL without password or query), the TLS settings
//! in force, the reason in words — for a failed certificate check, which setting to look at —
//! and the driver's own message, scrubbed of the password.

pub mod postgres;
pub mod redis;

use std::error::Error;
use std::sync::Arc;

use rustls::{AlertDescription, CertificateError};

/// A connection that could not be made, described for an operator. Its text never contains
/// a password from the URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl ConnectError {
    pub(crate) fn new(message: String) -> ConnectError {
        ConnectError(message)
    }
}

/// The secrets a URL carries and how to show it without them.
#[derive(Clone)]
pub(crate) struct Redacted {
    /// `scheme://user@host:port/path`: no password, no query (libpq URLs may carry
    /// `password=` there).
    pub shown: String,
    secrets: Vec<String>,
}

impl Redacted {
    pub fn new(text: &str) -> Redacted {
        let Ok(url) = url::Url::parse(text) else {
            // Unparsable URLs are refused by the configuration; never show one.
            return Redacted {
                shown: "(unparsable URL)".to_string(),
                secrets: vec![text.to_string()],
            };
        };
        let mut secrets = Vec::new();
        let mut add = |secret: &str| {
            if !secret.is_empty() {
                secrets.push(secret.to_string());
                if let Ok(decoded) = percent_encoding::percent_decode_str(secret).decode_utf8() {
                    secrets.push(decoded.into_owned());
                }
            }
        };
        if let Some(password) = url.password() {
            add(password);
        }
        for (name, value) in url.query_pairs() {
            if name == "password" {
                add(&value);
            }
        }
        // Longest first, so a secret that contains another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let user = match url.username() {
            "" => String::new(),
            user => format!("{user}@"),
        };
        let host = url.host_str().unwrap_or("");
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Redacted {
            shown: format!("{}://{user}{host}{port}{}", url.scheme(), url.path()),
            secrets,
        }
    }

    /// A URL no parser reads (a cluster's or a sentinel's list of nodes), shown as `shown`,
    /// whose secrets its own parser found.
    pub fn from_parts(shown: String, mut secrets: Vec<String>) -> Redacted {
        secrets.retain(|secret| !secret.is_empty());
        // Longest first, so a secret that contains another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redacted { shown, secrets }
    }

    /// `text` with every secret of the URL replaced.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), "[redacted]")
        })
    }
}

/// The TLS error somewhere inside a driver's error: drivers wrap rustls's error in an
/// `io::Error`, sometimes behind an `Arc`, whose `source()` skips it.
pub(crate) fn find_tls_error<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| find_tls_error(inner))
        {
            return Some(inner);
        }
        if let Some(inner) = error
            .downcast_ref::<Arc<dyn Error + Send + Sync>>()
            .and_then(|inner| find_tls_error(inner.as_ref()))
        {
            return Some(inner);
        }
        current = error.source();
    }
    None
}

/// Where the trust for a certificate check comes from, and the settings that decide it.
pub(crate) struct Trust<'a> {
    /// e.g. "the CA in redis_ca_file (/etc/tollgate/redis-ca.pem)".
    pub source: String,
    /// What to change when the certificate is not signed by `source`.
    pub fix: &'a str,
    /// The host name the certificate must name.
    pub host: &'a str,
    /// The settings a client-certificate problem is fixed in, e.g. "sslcert and sslkey".
    pub client_settings: &'a str,
}

/// A TLS failure in words, with the setting to look at.
pub(crate) fn describe_tls_error(error: &rustls::Error, trust: &Trust<'_>) -> String {
    let reason = match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the server's certificate is not signed by {}: {}",
                trust.source, trust.fix
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate does not name the host {:?} that was connected to",
                    trust.host
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check this machine's clock)".to_string()
            }
            _ => "the server's certificate was refused".to_string(),
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => format!(
            "the server requires a client certificate: set {}",
            trust.client_settings
        ),
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied,
        ) => format!(
            "the server refused the client certificate ({})",
            trust.client_settings
        ),
        _ => "the TLS handshake failed".to_string(),
    };
    format!("{reason} [TLS: {error}]")
}

#[cfg(test)]
mod tests;
