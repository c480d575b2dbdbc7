//! The configuration file exactly as written: every field optional, unknown fields rejected.
//! [`super::Config`] is built from this by validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub database_url: Option<Secret<String>>,
    #[serde(default)]
    pub database: RawDatabase,
    pub redis_url: Option<Secret<String>>,
    /// PEM CA bundle a `rediss://` server's certificate is verified against.
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate for Redis servers that require mutual TLS.
    pub redis_client_cert_file: Option<PathBuf>,
    /// The unencrypted PEM private key of `redis_client_cert_file`.
    pub redis_client_key_file: Option<PathBuf>,
    /// Skips verifying the `rediss://` server's certificate (self-signed development servers).
    pub redis_tls_insecure: Option<bool>,
    pub run_migrations: Option<bool>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub pricing: RawPricing,
    #[serde(default)]
    pub ledger: RawLedger,
    #[serde(default)]
    pub key_cache: RawKeyCache,
    #[serde(default)]
    pub client_auth: RawClientAuth,
    #[serde(default)]
    pub governance: RawGovernance,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub routing: RawRouting,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub deployments: Vec<RawDeployment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub jwt_secret: Option<Secret<String>>,
    /// `HS256` (default), `RS256` or `ES256`.
    pub jwt_algorithm: Option<String>,
    /// A PEM public key (RS256 or ES256 by `jwt_algorithm`).
    pub jwt_public_key_file: Option<PathBuf>,
    /// A JWKS JSON file; the key is picked by the token's `kid`.
    pub jwks_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_leeway_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    pub dir: Option<PathBuf>,
    pub allow_unpriced: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub pool_size: Option<u32>,
    pub admin_pool_size: Option<u32>,
    pub acquire_timeout_ms: Option<u64>,
    pub report_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    pub batch_size: Option<usize>,
    pub flush_interval_ms: Option<u64>,
    pub max_in_memory: Option<usize>,
    /// `spill_dir` is its name from before the journal took the spill files over.
    #[serde(alias = "spill_dir")]
    pub journal_dir: Option<PathBuf>,
    pub journal_fsync: Option<bool>,
    pub retention_days: Option<u32>,
    pub retention_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyCache {
    pub ttl_secs: Option<u64>,
    pub negative_ttl_secs: Option<u64>,
    pub max_entries: Option<u64>,
    pub refresh_interval_secs: Option<u64>,
    pub min_refresh_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    pub max_failures_per_minute: Option<u32>,
    pub tracked_addresses: Option<u64>,
    pub trusted_proxy_hops: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub access: Option<super::AccessLog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub key_labels: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGovernance {
    pub redis_prefix: Option<String>,
    pub reservation_ttl_secs: Option<u64>,
    pub redis_timeout_ms: Option<u64>,
    pub default_max_output_tokens: Option<u64>,
    pub estimate_output_tokens: Option<u64>,
    pub instance_rps: Option<u32>,
    pub key_rps: Option<u32>,
    pub headroom_headers: Option<bool>,
    #[serde(default)]
    pub leases: super::leases::RawLeases,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub enabled: Option<bool>,
    pub evaluate_interval_ms: Option<u64>,
    pub retry_for_secs: Option<u64>,
    pub first_retry_ms: Option<u64>,
    pub max_retry_interval_secs: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub default_thresholds: Option<Vec<u16>>,
    pub default_projection_window_secs: Option<u32>,
    pub default_expiry_hours: Option<u32>,
    pub default_refusal_percent: Option<u16>,
    pub default_refusal_window_secs: Option<u32>,
    pub default_refusal_min_requests: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub api_keys: Vec<RawApiKey>,
    pub weight: Option<u32>,
    pub priority: Option<u32>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub cooldown_ms: Option<u64>,
    /// Azure OpenAI: the `api-version` of deployment URLs (unset: the `/openai/v1/` API).
    pub api_version: Option<String>,
    /// Azure OpenAI: `api-key` (default) or `entra-id` (the keys are Entra ID bearer tokens).
    pub auth: Option<String>,
    /// Amazon Bedrock: the AWS region requests are signed for.
    pub region: Option<String>,
    /// Amazon Bedrock: a profile of the shared credentials file (default: the environment).
    pub aws_profile: Option<String>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModelRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// The environment variable holding the key.
    pub env: String,
    pub weight: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub deadline_ms: Option<u64>,
    pub anthropic_default_max_tokens: Option<u64>,
}

/// `"gpt-4o" = "gpt-4o-2024-08-06"` or `"gpt-4o" = { upstream = "...", price = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawModelRoute {
    Upstream(String),
    Detailed(RawModelRouteDetailed),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelRouteDetailed {
    pub upstream: Option<String>,
    pub price: Option<String>,
}
