//! Start-up configuration: `tollgate.toml` plus `TOLLGATE_*` environment overrides, validated
//! once into [`Config`]. Every error names the file, the field and the fix.

mod raw;
mod secret;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::RawConfig;
use raw::{RawDeployment, RawModelRoute};
pub use secret::Secret;

/// Environment variables that override the file (product.md, "Operations").
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
    pub redis_url: Secret<String>,
    pub run_migrations: bool,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub admin: AdminConfig,
    pub pricing: PricingConfig,
    pub ledger: LedgerConfig,
    pub key_cache: KeyCacheConfig,
    pub governance: GovernanceConfig,
    pub deployments: Vec<Deployment>,
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
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub jwt_secret: Secret<String>,
}

#[derive(Debug, Clone)]
pub struct PricingConfig {
    pub dir: PathBuf,
    /// Serve models missing from the price table at zero cost (with a warning) instead of
    /// refusing them.
    pub allow_unpriced: bool,
}

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Events held in memory while PostgreSQL is unreachable before they are spilled to disk.
    pub max_in_memory: usize,
    pub spill_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct KeyCacheConfig {
    /// How long a cached key policy is trusted before it is re-read (a backstop for missed
    /// invalidations).
    pub ttl: Duration,
    /// How long an unknown key is remembered as unknown, so a flood of bad keys does not
    /// reach PostgreSQL.
    pub negative_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible server (vLLM, Ollama, Azure-style base URLs).
    OpenAi,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<Secret<String>>,
    pub connect_timeout: Duration,
    /// Longest wait for the upstream's response headers.
    pub request_timeout: Duration,
    /// Longest silence between two pieces of a response body.
    pub read_timeout: Duration,
    /// Public model name -> route.
    pub models: HashMap<String, ModelRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// The model name sent upstream.
    pub upstream: String,
    /// The pricing entry that prices it.
    pub price: String,
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

struct Validator<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    fn invalid(
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
        let redis_url = self
            .env_or(ENV_REDIS_URL, raw.redis_url.map(|s| s.expose().clone()))
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
        let jwt_secret = self
            .env_or(ENV_ADMIN_JWT_SECRET, raw.admin.jwt_secret.map(|s| s.expose().clone()))
            .ok_or_else(|| {
                self.invalid(
                    "admin.jwt_secret",
                    "not set",
                    format!("set {ENV_ADMIN_JWT_SECRET} to a random string of at least {MIN_JWT_SECRET_LEN} characters"),
                )
            })?;
        if jwt_secret.len() < MIN_JWT_SECRET_LEN {
            return Err(self.invalid(
                "admin.jwt_secret",
                format!("shorter than {MIN_JWT_SECRET_LEN} characters"),
                "use a longer random secret, e.g. `openssl rand -hex 32`",
            ));
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(10 * 1024 * 1024);
        if max_body_bytes == 0 {
            return Err(self.invalid(
                "max_body_bytes",
                "must be greater than 0",
                "remove it to use 10 MiB",
            ));
        }
        let ledger = raw.ledger;
        let batch_size = ledger.batch_size.unwrap_or(500);
        if !(1..=10_000).contains(&batch_size) {
            return Err(self.invalid(
                "ledger.batch_size",
                format!("{batch_size} is out of range"),
                "use 1 to 10000",
            ));
        }
        let deployments = raw
            .deployments
            .into_iter()
            .enumerate()
            .map(|(i, d)| self.deployment(i, d))
            .collect::<Result<Vec<_>, _>>()?;
        self.check_unique_models(&deployments)?;
        Ok(Config {
            listen,
            admin_listen,
            database_url: Secret::new(database_url),
            redis_url: Secret::new(redis_url),
            run_migrations: raw.run_migrations.unwrap_or(true),
            max_body_bytes,
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs.unwrap_or(30)),
            admin: AdminConfig {
                jwt_secret: Secret::new(jwt_secret),
            },
            pricing: PricingConfig {
                dir: raw.pricing.dir.unwrap_or_else(|| PathBuf::from("pricing")),
                allow_unpriced: raw.pricing.allow_unpriced.unwrap_or(false),
            },
            ledger: LedgerConfig {
                batch_size,
                flush_interval: Duration::from_millis(ledger.flush_interval_ms.unwrap_or(20)),
                max_in_memory: ledger.max_in_memory.unwrap_or(100_000).max(batch_size),
                spill_dir: ledger
                    .spill_dir
                    .unwrap_or_else(|| PathBuf::from(".tollgate/spill")),
            },
            key_cache: KeyCacheConfig {
                ttl: Duration::from_secs(raw.key_cache.ttl_secs.unwrap_or(30)),
                negative_ttl: Duration::from_secs(raw.key_cache.negative_ttl_secs.unwrap_or(5)),
            },
            governance: self.governance(raw.governance)?,
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
        Ok(GovernanceConfig {
            redis_prefix: prefix,
            reservation_ttl,
            redis_timeout: Duration::from_millis(raw.redis_timeout_ms.unwrap_or(1000)),
            default_max_output_tokens: raw.default_max_output_tokens.unwrap_or(16_384),
            estimate_output_tokens: raw.estimate_output_tokens.unwrap_or(1_024),
            instance_rps: raw.instance_rps,
            key_rps: raw.key_rps,
        })
    }

    fn deployment(&self, index: usize, raw: RawDeployment) -> Result<Deployment, ConfigError> {
        let field = |name: &str| format!("deployments[{index}].{name}");
        if raw.name.trim().is_empty() {
            return Err(self.invalid(
                &field("name"),
                "is empty",
                "give the deployment a name, e.g. \"openai\"",
            ));
        }
        let kind = match raw.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            other => {
                return Err(self.invalid(
                    &field("kind"),
                    format!("unknown provider kind {other:?}"),
                    "use \"openai\" (any OpenAI-compatible server)",
                ));
            }
        };
        let base_url = raw.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(self.invalid(
                &field("base_url"),
                format!("{:?} is not an http(s) URL", raw.base_url),
                "write it like \"https://api.openai.com/v1\"",
            ));
        }
        let api_key = match raw.api_key_env {
            None => None,
            Some(var) => match (self.env)(&var).filter(|v| !v.is_empty()) {
                Some(value) => Some(Secret::new(value)),
                None => {
                    return Err(self.invalid(
                        &field("api_key_env"),
                        format!("environment variable {var} is not set"),
                        format!("export {var}=<provider key>, or remove api_key_env for a server without keys"),
                    ));
                }
            },
        };
        if raw.models.is_empty() {
            return Err(self.invalid(
                &field("models"),
                "no models",
                "map at least one public model name, e.g. models = { \"gpt-4o-mini\" = \"gpt-4o-mini\" }",
            ));
        }
        let models = raw
            .models
            .into_iter()
            .map(|(public, route)| {
                let route = match route {
                    RawModelRoute::Upstream(upstream) => ModelRoute {
                        price: upstream.clone(),
                        upstream,
                    },
                    RawModelRoute::Detailed(d) => {
                        let upstream = d.upstream.unwrap_or_else(|| public.clone());
                        ModelRoute {
                            price: d.price.unwrap_or_else(|| upstream.clone()),
                            upstream,
                        }
                    }
                };
                (public, route)
            })
            .collect();
        let ms = |v: Option<u64>, default: u64| Duration::from_millis(v.unwrap_or(default));
        Ok(Deployment {
            name: raw.name,
            kind,
            base_url,
            api_key,
            connect_timeout: ms(raw.connect_timeout_ms, 5_000),
            request_timeout: ms(raw.request_timeout_ms, 600_000),
            read_timeout: ms(raw.read_timeout_ms, 120_000),
            models,
        })
    }

    /// One public model name routes to one deployment until routing with fallbacks exists.
    fn check_unique_models(&self, deployments: &[Deployment]) -> Result<(), ConfigError> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (i, d) in deployments.iter().enumerate() {
            if let Some(prev) = deployments[..i].iter().find(|p| p.name == d.name) {
                return Err(self.invalid(
                    &format!("deployments[{i}].name"),
                    format!("{:?} is used twice", prev.name),
                    "give every deployment its own name",
                ));
            }
            for model in d.models.keys() {
                if let Some(other) = seen.insert(model, &d.name) {
                    return Err(self.invalid(
                        &format!("deployments[{i}].models"),
                        format!("model {model:?} is also served by deployment {other:?}"),
                        "serve each public model name from one deployment",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
