//! Start-up configuration: `tollgate.toml` plus `TOLLGATE_*` environment overrides, validated
//! once into [`Config`]. Every error names the file, the field and the fix.

mod admin;
mod alerts;
mod bedrock;
mod deployment;
mod keys;
mod leases;
mod pem;
mod postgres_tls;
mod raw;
mod redis_tls;
mod redis_url;
mod secret;
mod storage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use admin::{AdminConfig, JwtAlgorithm, VerifyingKey};
pub use alerts::{AlertDefaults, AlertsConfig, MAX_THRESHOLD_PERCENT};
pub use bedrock::{AwsCredentials, BedrockOptions};
pub use deployment::{ApiKey, AzureOptions, Deployment, ModelRoute, ProviderKind};
pub use keys::{ClientAuthConfig, KeyCacheConfig};
pub use leases::LeaseConfig;
pub use pem::{CaBundle, ClientIdentity};
pub use postgres_tls::{PostgresRoots, PostgresTls, SslMode};
pub use raw::RawConfig;
pub use redis_tls::{
    ENV_REDIS_CA_FILE, ENV_REDIS_CLIENT_CERT_FILE, ENV_REDIS_CLIENT_KEY_FILE, RedisTls, RedisVerify,
};
pub use redis_url::{MultiNodeKind, MultiNodeUrl, RedisNode, RedisUrl, UrlProblem};
pub use secret::Secret;
pub use storage::{DatabaseConfig, LedgerConfig, RetentionConfig};

/// Environment variables that override the file (docs/configuration.md lists them all).
pub const ENV_DATABASE_URL: &str = "TOLLGATE_DATABASE_URL";
pub const ENV_REDIS_URL: &str = "TOLLGATE_REDIS_URL";
pub const ENV_LISTEN: &str = "TOLLGATE_LISTEN";
pub const ENV_ADMIN_LISTEN: &str = "TOLLGATE_ADMIN_LISTEN";
pub const ENV_ADMIN_JWT_SECRET: &str = "TOLLGATE_ADMIN_JWT_SECRET";

const MIN_JWT_SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the file: {source}; pass the right path with --config")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: field `{field}`: {problem}; {fix}")]
    Invalid {
        file: String,
        field: String,
        problem: String,
        fix: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub database_url: Secret<String>,
    /// TLS to PostgreSQL, from `database_url`'s `sslmode`, `sslrootcert`, `sslcert`, `sslkey`.
    pub database_tls: PostgresTls,
    pub database: DatabaseConfig,
    pub redis_url: Secret<String>,
    /// TLS to Redis: `Some` exactly when `redis_url` is `rediss://`.
    pub redis_tls: Option<RedisTls>,
    pub run_migrations: bool,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub admin: AdminConfig,
    pub pricing: PricingConfig,
    pub ledger: LedgerConfig,
    pub key_cache: KeyCacheConfig,
    pub client_auth: ClientAuthConfig,
    pub governance: GovernanceConfig,
    pub metrics: MetricsConfig,
    pub alerts: AlertsConfig,
    pub routing: RoutingConfig,
    /// Which finished requests get an access-log line (`log.access`).
    pub access_log: AccessLog,
    pub deployments: Vec<Deployment>,
}

/// Which requests the access log (target `tollgate::access`) writes a line for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// None: the ledger already records every authenticated request.
    #[default]
    Off,
    /// Requests answered with a 4xx or 5xx status.
    Errors,
    /// Every request.
    All,
}

impl AccessLog {
    pub fn wants(self, status: u16) -> bool {
        match self {
            AccessLog::Off => false,
            AccessLog::Errors => status >= 400,
            AccessLog::All => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// Longest time spent trying a model's deployments (attempts, fallbacks, retries) before
    /// the first byte of an answer.
    pub deadline: Duration,
    /// `max_tokens` sent to Anthropic for an OpenAI-format request that sets none (Anthropic
    /// requires it).
    pub anthropic_default_max_tokens: u64,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Label per-request metrics with the key id too (one series per key: off by default).
    pub key_labels: bool,
}

#[derive(Debug, Clone)]
pub struct GovernanceConfig {
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// How long a reservation or concurrency slot outlives an instance that died holding it.
    pub reservation_ttl: Duration,
    /// Longest wait for Redis on the request path before the failure policy applies.
    pub redis_timeout: Duration,
    /// Output tokens a strict budget reserves for a request that sets no `max_tokens`.
    pub default_max_output_tokens: u64,
    /// Output tokens an `estimate`-mode budget reserves (at most the request's `max_tokens`).
    pub estimate_output_tokens: u64,
    /// Requests per second this instance accepts in all (checked before Redis).
    pub instance_rps: Option<u32>,
    /// Requests per second one key may send to this instance (checked before Redis).
    pub key_rps: Option<u32>,
    /// Tell clients what is left of their tightest budget on every successful response.
    pub headroom_headers: bool,
    pub leases: LeaseConfig,
}

#[derive(Debug, Clone)]
pub struct PricingConfig {
    pub dir: PathBuf,
    /// Serve models missing from the price table at zero cost (with a warning) instead of
    /// refusing them.
    pub allow_unpriced: bool,
}

impl Config {
    /// Reads `path` and applies the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_toml_str(&file, &text, &|name| std::env::var(name).ok())
    }

    /// Parses `text` (named `file` in errors) with `env` as the environment.
    pub fn from_toml_str(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        Validator { file, env }.validate(raw)
    }
}

pub(crate) struct Validator<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    pub(crate) fn invalid(
        &self,
        field: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            field: field.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn env_or(&self, name: &str, file_value: Option<String>) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty()).or(file_value)
    }

    fn socket_addr(
        &self,
        field: &str,
        env: &str,
        value: Option<String>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let text = self
            .env_or(env, value)
            .unwrap_or_else(|| default.to_string());
        text.parse().map_err(|_| {
            self.invalid(
                field,
                format!("{text:?} is not a socket address"),
                format!("write it as host:port, e.g. \"{default}\" (or set {env})"),
            )
        })
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let listen = self.socket_addr("listen", ENV_LISTEN, raw.listen, "127.0.0.1:8080")?;
        let admin_listen = self.socket_addr(
            "admin_listen",
            ENV_ADMIN_LISTEN,
            raw.admin_listen,
            "127.0.0.1:8081",
        )?;
        let database_url = self
            .env_or(ENV_DATABASE_URL, raw.database_url.map(|s| s.expose().clone()))
            .ok_or_else(|| {
                self.invalid(
                    "database_url",
                    "not set",
                    format!("set it in the file or in {ENV_DATABASE_URL}, e.g. postgres://tollgate@127.0.0.1/tollgate"),
                )
            })?;
        let database_tls = self.postgres_tls(&database_url)?;
        let redis_url = Secret::new(
            self.env_or(ENV_REDIS_URL, raw.redis_url.map(|s| s.expose().clone()))
                .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string()),
        );
        let redis_tls = self.redis(
            &redis_url,
            redis_tls::RawRedisTls {
                ca_file: raw.redis_ca_file,
                client_cert_file: raw.redis_client_cert_file,
                client_key_file: raw.redis_client_key_file,
                insecure: raw.redis_tls_insecure,
            },
        )?;
        let admin = self.admin(raw.admin)?;
        let max_body_bytes = raw.max_body_bytes.unwrap_or(10 * 1024 * 1024);
        if max_body_bytes == 0 {
            return Err(self.invalid(
                "max_body_bytes",
                "must be greater than 0",
                "remove it to use 10 MiB",
            ));
        }
        let database = self.database(raw.database)?;
        let ledger = self.ledger(raw.ledger)?;
        let deployments = raw
            .deployments
            .into_iter()
            .enumerate()
            .map(|(i, d)| self.deployment(i, d))
            .collect::<Result<Vec<_>, _>>()?;
        self.check_unique_names(&deployments)?;
        Ok(Config {
            listen,
            admin_listen,
            database_url: Secret::new(database_url),
            database_tls,
            database,
            redis_url,
            redis_tls,
            run_migrations: raw.run_migrations.unwrap_or(true),
            max_body_bytes,
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs.unwrap_or(30)),
            admin,
            pricing: PricingConfig {
                dir: raw.pricing.dir.unwrap_or_else(|| PathBuf::from("pricing")),
                allow_unpriced: raw.pricing.allow_unpriced.unwrap_or(false),
            },
            ledger,
            key_cache: self.key_cache(raw.key_cache)?,
            client_auth: self.client_auth(raw.client_auth)?,
            governance: self.governance(raw.governance)?,
            metrics: MetricsConfig {
                key_labels: raw.metrics.key_labels.unwrap_or(false),
            },
            alerts: self.alerts(raw.alerts)?,
            routing: RoutingConfig {
                deadline: Duration::from_millis(raw.routing.deadline_ms.unwrap_or(600_000)),
                anthropic_default_max_tokens: raw
                    .routing
                    .anthropic_default_max_tokens
                    .unwrap_or(4096),
            },
            access_log: raw.log.access.unwrap_or_default(),
            deployments,
        })
    }

    fn governance(&self, raw: raw::RawGovernance) -> Result<GovernanceConfig, ConfigError> {
        let prefix = raw.redis_prefix.unwrap_or_else(|| "tg".to_string());
        if prefix.is_empty() || prefix.contains(['{', '}', ' ']) {
            return Err(self.invalid(
                "governance.redis_prefix",
                format!("{prefix:?} is not a usable key prefix"),
                "use letters, digits, `:`, `-` or `_`",
            ));
        }
        let reservation_ttl = Duration::from_secs(raw.reservation_ttl_secs.unwrap_or(900));
        if reservation_ttl.is_zero() {
            return Err(self.invalid(
                "governance.reservation_ttl_secs",
                "must be greater than 0",
                "set it above the longest request you expect (default 900)",
            ));
        }
        let redis_timeout = Duration::from_millis(raw.redis_timeout_ms.unwrap_or(1000));
        if redis_timeout.is_zero() {
            return Err(self.invalid(
                "governance.redis_timeout_ms",
                "must be greater than 0",
                "set how long a request may wait for Redis (default 1000)",
            ));
        }
        let headroom_headers = raw.headroom_headers.unwrap_or(false);
        let mut leases = self.leases(raw.leases)?;
        // Headroom headers are Redis's answer to each admission: they need every admission
        // to be a script call.
        leases.enabled &= !headroom_headers;
        Ok(GovernanceConfig {
            redis_prefix: prefix,
            reservation_ttl,
            redis_timeout,
            default_max_output_tokens: raw.default_max_output_tokens.unwrap_or(16_384),
            estimate_output_tokens: raw.estimate_output_tokens.unwrap_or(1_024),
            instance_rps: raw.instance_rps,
            key_rps: raw.key_rps,
            headroom_headers,
            leases,
        })
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
