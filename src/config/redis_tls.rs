//! `redis_url` and the TLS settings beside it: `rediss://` is verified against the system's
//! trust store or `redis_ca_file`, with an optional client certificate for mutual TLS, and an
//! explicit opt-out of verification (`redis_tls_insecure`, or redis-rs's `#insecure`) for
//! self-signed development servers.

use std::path::{Path, PathBuf};

use super::pem::{self, CaBundle, ClientIdentity, IdentityPart};
use super::redis_url::{RedisUrl, UrlProblem};
use super::{ConfigError, Secret, Validator};

pub const ENV_REDIS_CA_FILE: &str = "TOLLGATE_REDIS_CA_FILE";
pub const ENV_REDIS_CLIENT_CERT_FILE: &str = "TOLLGATE_REDIS_CLIENT_CERT_FILE";
pub const ENV_REDIS_CLIENT_KEY_FILE: &str = "TOLLGATE_REDIS_CLIENT_KEY_FILE";

/// How a `rediss://` server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisVerify {
    /// Against the operating system's trust store (managed services with public CAs).
    SystemRoots,
    /// Against the CAs of `redis_ca_file` only.
    Bundle(CaBundle),
    /// Not at all (`redis_tls_insecure`): logged as a warning at every start.
    Off,
}

/// TLS to Redis; present exactly when `redis_url` is `rediss://` (or `rediss+cluster://`,
/// `rediss+sentinel://`).
#[derive(Debug, Clone)]
pub struct RedisTls {
    pub verify: RedisVerify,
    pub client: Option<ClientIdentity>,
}

/// The TLS fields of the file, before the environment and validation.
pub(super) struct RawRedisTls {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub insecure: Option<bool>,
}

impl Validator<'_> {
    pub(super) fn redis(
        &self,
        url: &Secret<String>,
        raw: RawRedisTls,
    ) -> Result<Option<RedisTls>, ConfigError> {
        let tls = self.redis_url(url.expose())?;
        let path = |env: &str, value: Option<PathBuf>| {
            self.env_or(env, value.map(|p| p.display().to_string()))
                .map(PathBuf::from)
        };
        let ca_file = path(ENV_REDIS_CA_FILE, raw.ca_file);
        let cert_file = path(ENV_REDIS_CLIENT_CERT_FILE, raw.client_cert_file);
        let key_file = path(ENV_REDIS_CLIENT_KEY_FILE, raw.client_key_file);
        let insecure = raw.insecure.unwrap_or(false);
        let Some(url_insecure) = tls else {
            let set = [
                ("redis_ca_file", ca_file.is_some()),
                ("redis_client_cert_file", cert_file.is_some()),
                ("redis_client_key_file", key_file.is_some()),
                ("redis_tls_insecure", insecure),
            ];
            if let Some((field, _)) = set.iter().find(|(_, set)| *set) {
                return Err(self.invalid(
                    field,
                    "is set, but redis_url is not a rediss:// (TLS) URL, nor a rediss+cluster:// or rediss+sentinel:// one",
                    format!("write redis_url as rediss://host:port (or rediss+cluster://, rediss+sentinel://), or remove {field}"),
                ));
            }
            return Ok(None);
        };
        let verify = match (insecure || url_insecure, ca_file) {
            (true, Some(_)) => {
                return Err(self.invalid(
                    "redis_tls_insecure",
                    "turns certificate verification off, so redis_ca_file would be ignored",
                    "remove redis_tls_insecure (and #insecure) to verify the server against \
                     redis_ca_file, or remove redis_ca_file",
                ));
            }
            (true, None) => RedisVerify::Off,
            (false, Some(path)) => {
                RedisVerify::Bundle(pem::read_ca_bundle(&path).map_err(|problem| {
                    self.invalid(
                        "redis_ca_file",
                        problem,
                        format!(
                            "point it (or {ENV_REDIS_CA_FILE}) at the PEM file of the CA that \
                             signed the Redis server's certificate"
                        ),
                    )
                })?)
            }
            (false, None) => RedisVerify::SystemRoots,
        };
        let client = self.redis_client(cert_file.as_deref(), key_file.as_deref())?;
        Ok(Some(RedisTls { verify, client }))
    }

    /// Checks the URL without ever echoing it (it may carry the password). Returns `None` for
    /// a plain-text URL, `Some(insecure)` for a TLS one (`#insecure` turns verification off).
    fn redis_url(&self, url: &str) -> Result<Option<bool>, ConfigError> {
        let url = RedisUrl::parse(url)
            .map_err(|UrlProblem { problem, fix }| self.invalid("redis_url", problem, fix))?;
        Ok(url.tls().then_some(url.insecure()))
    }

    fn redis_client(
        &self,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<ClientIdentity>, ConfigError> {
        let (cert, key) = match (cert, key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => {
                return Err(self.invalid(
                    "redis_client_key_file",
                    "not set, but redis_client_cert_file is",
                    format!(
                        "set it (or {ENV_REDIS_CLIENT_KEY_FILE}) to the client certificate's \
                         private key, or remove redis_client_cert_file"
                    ),
                ));
            }
            (None, Some(_)) => {
                return Err(self.invalid(
                    "redis_client_cert_file",
                    "not set, but redis_client_key_file is",
                    format!(
                        "set it (or {ENV_REDIS_CLIENT_CERT_FILE}) to the client certificate, or \
                         remove redis_client_key_file"
                    ),
                ));
            }
        };
        pem::read_client_identity(cert, key)
            .map(Some)
            .map_err(|(part, problem)| {
                let field = match part {
                    IdentityPart::Cert => "redis_client_cert_file",
                    IdentityPart::Key => "redis_client_key_file",
                };
                self.invalid(
                    field,
                    problem,
                    "redis_client_cert_file must be the PEM client certificate and \
                     redis_client_key_file its unencrypted PEM private key",
                )
            })
    }
}
