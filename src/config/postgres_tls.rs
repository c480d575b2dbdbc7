//! TLS to PostgreSQL, from the libpq parameters of `database_url` (`sslmode`, `sslrootcert`,
//! `sslcert`, `sslkey`) and, like libpq, the `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and
//! `PGSSLKEY` environment variables when the URL does not set them. Combinations that would
//! quietly connect with less checking than they read as are refused here, by name.

use std::path::Path;

use super::pem::{self, CaBundle, ClientIdentity, IdentityPart};
use super::{ConfigError, Validator};

const FIELD: &str = "database_url";

/// libpq's `sslmode`, less `allow` (plain text first, TLS only if the server insists), which
/// the driver cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, plain text otherwise; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, with a certificate signed by a trusted CA (any host name).
    VerifyCa,
    /// TLS, with a certificate signed by a trusted CA and naming the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Option<SslMode> {
        match text {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// Whether the server's certificate chain is checked against the trusted CAs.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// The CAs a server certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresRoots {
    /// The operating system's trust store (`sslrootcert` unset, or `sslrootcert=system`).
    System,
    /// The certificates of `sslrootcert`, in addition to the system's (see docs/configuration.md).
    Bundle(CaBundle),
}

#[derive(Debug, Clone)]
pub struct PostgresTls {
    pub mode: SslMode,
    pub roots: PostgresRoots,
    pub client: Option<ClientIdentity>,
}

impl Default for PostgresTls {
    fn default() -> Self {
        PostgresTls {
            mode: SslMode::Prefer,
            roots: PostgresRoots::System,
            client: None,
        }
    }
}

impl PostgresTls {
    /// What an operator needs to read a connection error: the mode and where trust comes
    /// from, never a secret.
    pub fn describe(&self) -> String {
        let mut text = format!("sslmode={}", self.mode.as_str());
        if self.mode.verifies() {
            text.push_str(match &self.roots {
                PostgresRoots::System => ", CAs from the system's trust store",
                PostgresRoots::Bundle(_) => ", CA from sslrootcert",
            });
        }
        if self.client.is_some() {
            text.push_str(", client certificate from sslcert");
        }
        text
    }
}

/// A TLS parameter's value and where it came from, for error messages.
struct Param {
    value: String,
    from: String,
}

/// The URL parameters read here, with the spellings the driver also accepts.
fn canonical(name: &str) -> Option<&'static str> {
    match name {
        "sslmode" | "ssl-mode" => Some("sslmode"),
        "sslrootcert" | "ssl-root-cert" | "ssl-ca" => Some("sslrootcert"),
        "sslcert" | "ssl-cert" => Some("sslcert"),
        "sslkey" | "ssl-key" => Some("sslkey"),
        _ => None,
    }
}

impl Validator<'_> {
    pub(super) fn postgres_tls(&self, url: &str) -> Result<PostgresTls, ConfigError> {
        // The URL is never echoed: it may carry the password.
        let parsed = url::Url::parse(url).map_err(|e| {
            self.invalid(
                FIELD,
                format!("not a URL ({e})"),
                "write it as postgres://user:password@host:5432/database?sslmode=verify-full",
            )
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(self.invalid(
                FIELD,
                format!("the scheme {}:// is not PostgreSQL's", parsed.scheme()),
                "write it as postgres://user:password@host:5432/database",
            ));
        }
        let mut params: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in parsed.query_pairs() {
            match canonical(&name) {
                // A repeated parameter: the last one wins, as in the driver.
                Some(name) => params.push((name, value.into_owned())),
                None if name.starts_with("ssl") => {
                    return Err(self.invalid(
                        FIELD,
                        format!("the parameter {name} is not supported"),
                        "use sslmode, sslrootcert, sslcert and sslkey (an encrypted key must be \
                         decrypted first: openssl pkey -in client.key -out client.key)",
                    ));
                }
                None => {}
            }
        }
        let get = |name: &'static str, env: &str| -> Option<Param> {
            if let Some((_, value)) = params.iter().rev().find(|(n, _)| *n == name) {
                return Some(Param {
                    value: value.clone(),
                    from: name.to_string(),
                });
            }
            (self.env)(env)
                .filter(|v| !v.is_empty())
                .map(|value| Param {
                    value,
                    from: format!("{env} (environment)"),
                })
        };
        let mode = match get("sslmode", "PGSSLMODE") {
            None => None,
            Some(param) => Some(self.ssl_mode(&param)?),
        };
        let (mode, roots) = self.postgres_roots(mode, get("sslrootcert", "PGSSLROOTCERT"))?;
        let client =
            self.postgres_client(mode, get("sslcert", "PGSSLCERT"), get("sslkey", "PGSSLKEY"))?;
        Ok(PostgresTls {
            mode,
            roots,
            client,
        })
    }

    fn ssl_mode(&self, param: &Param) -> Result<SslMode, ConfigError> {
        if param.value == "allow" {
            return Err(self.invalid(
                FIELD,
                format!("{}=allow is not supported", param.from),
                "use sslmode=prefer (TLS when the server offers it) or sslmode=disable",
            ));
        }
        SslMode::parse(&param.value).ok_or_else(|| {
            self.invalid(
                FIELD,
                format!("{}={:?} is not an sslmode", param.from, param.value),
                "use disable, prefer, require, verify-ca or verify-full",
            )
        })
    }

    /// Decides the CAs and, where `sslrootcert` implies it, the mode.
    fn postgres_roots(
        &self,
        mode: Option<SslMode>,
        root: Option<Param>,
    ) -> Result<(SslMode, PostgresRoots), ConfigError> {
        let Some(root) = root else {
            let mode = mode.unwrap_or(SslMode::Prefer);
            if mode == SslMode::VerifyCa {
                // Against the public roots, "signed by a trusted CA, any name" admits a
                // certificate anyone can get for their own domain.
                return Err(self.invalid(
                    FIELD,
                    "sslmode=verify-ca without sslrootcert would accept any publicly trusted \
                     certificate",
                    "add sslrootcert=/path/to/ca.pem (the CA that signed the server's \
                     certificate), or use sslmode=verify-full",
                ));
            }
            return Ok((mode, PostgresRoots::System));
        };
        if root.value == "system" {
            // As libpq (16+): the system's roots only make sense with the host name checked.
            return match mode {
                None | Some(SslMode::VerifyFull) => {
                    Ok((SslMode::VerifyFull, PostgresRoots::System))
                }
                Some(other) => Err(self.invalid(
                    FIELD,
                    format!(
                        "{}=system needs sslmode=verify-full, not {}",
                        root.from,
                        other.as_str()
                    ),
                    "set sslmode=verify-full, or name a CA file in sslrootcert",
                )),
            };
        }
        let bundle = pem::read_ca_bundle(Path::new(&root.value)).map_err(|problem| {
            self.invalid(
                FIELD,
                format!("{}: {problem}", root.from),
                "point it at the PEM file of the CA that signed the server's certificate \
                 (e.g. Amazon RDS's global-bundle.pem)",
            )
        })?;
        let mode = match mode {
            Some(mode @ (SslMode::VerifyCa | SslMode::VerifyFull)) => mode,
            // libpq checks the chain whenever it has a root certificate: require with one
            // behaves as verify-ca.
            Some(SslMode::Require) => SslMode::VerifyCa,
            Some(SslMode::Disable | SslMode::Prefer) | None => {
                let mode = mode.unwrap_or(SslMode::Prefer);
                return Err(self.invalid(
                    FIELD,
                    format!(
                        "{} is set, but sslmode={}{} does not check the server's certificate",
                        root.from,
                        mode.as_str(),
                        if mode == SslMode::Prefer {
                            " (the default)"
                        } else {
                            ""
                        }
                    ),
                    "add sslmode=verify-full (or verify-ca), or remove sslrootcert",
                ));
            }
        };
        Ok((mode, PostgresRoots::Bundle(bundle)))
    }

    fn postgres_client(
        &self,
        mode: SslMode,
        cert: Option<Param>,
        key: Option<Param>,
    ) -> Result<Option<ClientIdentity>, ConfigError> {
        let (cert, key) = match (cert, key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(given), None) | (None, Some(given)) => {
                return Err(self.invalid(
                    FIELD,
                    format!("{} is set without its pair", given.from),
                    "set both sslcert (the client certificate) and sslkey (its private key)",
                ));
            }
        };
        if mode == SslMode::Disable {
            return Err(self.invalid(
                FIELD,
                format!("{} is set, but sslmode=disable never uses TLS", cert.from),
                "remove sslcert and sslkey, or set sslmode=verify-full",
            ));
        }
        pem::read_client_identity(Path::new(&cert.value), Path::new(&key.value))
            .map(Some)
            .map_err(|(part, problem)| {
                let from = match part {
                    IdentityPart::Cert => &cert.from,
                    IdentityPart::Key => &key.from,
                };
                self.invalid(
                    FIELD,
                    format!("{from}: {problem}"),
                    "sslcert must be the PEM client certificate and sslkey its unencrypted \
                     PEM private key",
                )
            })
    }
}
