//! PostgreSQL pools with the TLS settings of `database_url` applied.
//!
//! The configuration has already read the certificate files, so they are handed to the driver
//! as PEM text: every connection of the pool uses what was checked at start-up.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

use super::{ConnectError, Redacted, Trust, describe_tls_error, find_tls_error};
use crate::config::{PostgresRoots, PostgresTls, Secret, SslMode};

/// A pool of up to `max_connections` on `url`; a query waits at most `acquire_timeout` for a
/// connection. One connection is opened before this returns, so a bad URL, a refused
/// certificate or a wrong password stops start-up.
pub async fn pool(
    url: &Secret<String>,
    tls: &PostgresTls,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, ConnectError> {
    let redacted = Redacted::new(url.expose());
    let options = connect_options(url, tls).map_err(|e| failure(&redacted, tls, &e))?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| failure(&redacted, tls, &e))
}

/// The driver's options: the URL's host, credentials and database, with the TLS settings the
/// configuration validated (which override anything the driver read from `PGSSL*`).
pub fn connect_options(
    url: &Secret<String>,
    tls: &PostgresTls,
) -> Result<PgConnectOptions, sqlx::Error> {
    let mut options = PgConnectOptions::from_str(url.expose())?
        .ssl_mode(ssl_mode(tls.mode))
        // An empty bundle adds nothing to the system's roots.
        .ssl_root_cert_from_pem(match &tls.roots {
            PostgresRoots::System => Vec::new(),
            PostgresRoots::Bundle(bundle) => bundle.pem.clone(),
        });
    if let Some(client) = &tls.client {
        options = options
            .ssl_client_cert_from_pem(&client.cert_pem)
            .ssl_client_key_from_pem(client.key_pem.expose());
    }
    Ok(options)
}

fn ssl_mode(mode: SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

fn is_name_mismatch(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. }
        )
    )
}

fn failure(redacted: &Redacted, tls: &PostgresTls, error: &sqlx::Error) -> ConnectError {
    let host = url::Url::parse(&redacted.shown)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let reason = match find_tls_error(error) {
        Some(tls_error) if tls.mode == SslMode::VerifyCa && is_name_mismatch(tls_error) => {
            format!(
                "the server's certificate does not name the host {host:?}, and with this \
                 PostgreSQL driver (sqlx 0.8) sslmode=verify-ca checks the host name too: \
                 connect with a name the certificate carries [TLS: {tls_error}]"
            )
        }
        Some(tls_error) => describe_tls_error(
            tls_error,
            &Trust {
                source: match &tls.roots {
                    PostgresRoots::System => "a CA in the system's trust store".to_string(),
                    PostgresRoots::Bundle(bundle) => {
                        format!("a CA in sslrootcert ({})", bundle.path.display())
                    }
                },
                fix: match &tls.roots {
                    PostgresRoots::System => {
                        "set sslrootcert=/path/to/ca.pem in database_url to the CA that signed it"
                    }
                    PostgresRoots::Bundle(_) => {
                        "point sslrootcert at the CA that signed the server's certificate"
                    }
                },
                host: &host,
                client_settings: "sslcert and sslkey in database_url",
            },
        ),
        None => match error {
            sqlx::Error::Tls(_) if tls.mode != SslMode::Prefer => format!(
                "TLS is required (sslmode={}) but could not be set up: {error}",
                tls.mode.as_str()
            ),
            _ => error.to_string(),
        },
    };
    ConnectError::new(format!(
        "cannot connect to PostgreSQL at {} ({}): {} (check database_url / TOLLGATE_DATABASE_URL)",
        redacted.shown,
        tls.describe(),
        redacted.scrub(&reason),
    ))
}
