//! Upstream deployments: where a public model name can be served, with which keys, and in
//! which order of preference.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::bedrock::BedrockOptions;
use super::raw::{RawApiKey, RawDeployment, RawModelRoute};
use super::{ConfigError, Secret, Validator};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible server (vLLM, Ollama, Azure-style base URLs).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (`generateContent`), reached through the OpenAI chat format.
    Gemini,
    /// Azure OpenAI: OpenAI's formats, addressed by resource, deployment and `api-version`
    /// (or the `/openai/v1/` API), authenticated with `api-key` or an Entra ID token.
    Azure,
    /// Amazon Bedrock's Converse API, with SigV4-signed requests.
    Bedrock,
}

/// How an Azure OpenAI deployment is addressed and authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AzureOptions {
    /// Set: `/openai/deployments/{deployment}/...?api-version=...`; unset: `/openai/v1/...`.
    pub api_version: Option<String>,
    /// The keys are Entra ID bearer tokens (`Authorization: Bearer`), not `api-key`s.
    pub entra_id: bool,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Azure => "azure",
            ProviderKind::Bedrock => "bedrock",
        }
    }
}

/// One provider API key of a deployment's pool.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The environment variable it came from (safe to show).
    pub env: String,
    pub secret: Secret<String>,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Empty for a server without keys (a local vLLM).
    pub api_keys: Vec<ApiKey>,
    /// Share of traffic among deployments of the same priority serving a model.
    pub weight: u32,
    /// Lower is tried first; higher priorities are fallbacks.
    pub priority: u32,
    pub connect_timeout: Duration,
    /// Longest wait for the upstream's response headers (the first byte).
    pub first_byte_timeout: Duration,
    /// Longest silence between two pieces of a response body.
    pub read_timeout: Duration,
    /// Longest a whole attempt may take, response body included (unset: no limit, since a
    /// long generation streams for as long as it needs).
    pub total_timeout: Option<Duration>,
    /// Extra rounds over the model's deployments after every one of them failed.
    pub retries: u32,
    /// How long a key that answered 429/5xx or timed out is left alone (unless the upstream
    /// said how long with `Retry-After`).
    pub cooldown: Duration,
    /// Public model name -> route.
    pub models: HashMap<String, ModelRoute>,
    /// Azure OpenAI's addressing and authentication (default for other kinds).
    pub azure: AzureOptions,
    /// Amazon Bedrock's region and credentials (`None` for other kinds).
    pub bedrock: Option<BedrockOptions>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// The model name sent upstream.
    pub upstream: String,
    /// The pricing entry that prices it.
    pub price: String,
}

impl Validator<'_> {
    pub(super) fn deployment(
        &self,
        index: usize,
        raw: RawDeployment,
    ) -> Result<Deployment, ConfigError> {
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
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            "azure" => ProviderKind::Azure,
            "bedrock" => ProviderKind::Bedrock,
            other => {
                return Err(self.invalid(
                    &field("kind"),
                    format!("unknown provider kind {other:?}"),
                    "use \"openai\" (OpenAI or any OpenAI-compatible server), \"anthropic\", \"gemini\", \"azure\" or \"bedrock\"",
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
        let api_keys = self.api_keys(index, &raw.name, raw.api_key_env, raw.api_keys)?;
        if raw.models.is_empty() {
            return Err(self.invalid(
                &field("models"),
                "no models",
                "map at least one public model name, e.g. models = { \"gpt-4o-mini\" = \"gpt-4o-mini\" }",
            ));
        }
        if raw.weight == Some(0) {
            return Err(self.invalid(&field("weight"), "is 0", "use a weight of at least 1"));
        }
        let azure = self.azure_options(index, kind, raw.api_version, raw.auth)?;
        let bedrock = match kind {
            ProviderKind::Bedrock => {
                Some(self.bedrock_options(index, raw.region, raw.aws_profile)?)
            }
            _ if raw.region.is_some() || raw.aws_profile.is_some() => {
                return Err(self.invalid(
                    &field(if raw.region.is_some() {
                        "region"
                    } else {
                        "aws_profile"
                    }),
                    "is set on a deployment that is not kind = \"bedrock\"",
                    "remove it, or make the deployment kind = \"bedrock\"",
                ));
            }
            _ => None,
        };
        let ms = |v: Option<u64>, default: u64| Duration::from_millis(v.unwrap_or(default));
        Ok(Deployment {
            name: raw.name,
            kind,
            base_url,
            api_keys,
            weight: raw.weight.unwrap_or(1),
            priority: raw.priority.unwrap_or(0),
            connect_timeout: ms(raw.connect_timeout_ms, 5_000),
            first_byte_timeout: ms(raw.first_byte_timeout_ms, 600_000),
            read_timeout: ms(raw.read_timeout_ms, 120_000),
            total_timeout: raw.total_timeout_ms.map(Duration::from_millis),
            retries: raw.retries.unwrap_or(1),
            cooldown: ms(raw.cooldown_ms, 10_000),
            models: model_routes(raw.models),
            azure,
            bedrock,
        })
    }

    fn azure_options(
        &self,
        index: usize,
        kind: ProviderKind,
        api_version: Option<String>,
        auth: Option<String>,
    ) -> Result<AzureOptions, ConfigError> {
        let field = |name: &str| format!("deployments[{index}].{name}");
        if kind != ProviderKind::Azure {
            if api_version.is_some() || auth.is_some() {
                let name = if api_version.is_some() {
                    "api_version"
                } else {
                    "auth"
                };
                return Err(self.invalid(
                    &field(name),
                    "is set on a deployment that is not kind = \"azure\"",
                    "remove it, or make the deployment kind = \"azure\"",
                ));
            }
            return Ok(AzureOptions::default());
        }
        if let Some(version) = &api_version
            && (version.is_empty()
                || !version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(self.invalid(
                &field("api_version"),
                format!("{version:?} is not an api-version"),
                "write it like \"2024-10-21\", or leave it out for the /openai/v1/ API",
            ));
        }
        let entra_id = match auth.as_deref() {
            None | Some("api-key") => false,
            Some("entra-id") => true,
            Some(other) => {
                return Err(self.invalid(
                    &field("auth"),
                    format!("unknown Azure authentication {other:?}"),
                    "use \"api-key\" (the api-key header) or \"entra-id\" (a bearer token)",
                ));
            }
        };
        Ok(AzureOptions {
            api_version,
            entra_id,
        })
    }

    fn api_keys(
        &self,
        index: usize,
        name: &str,
        single: Option<String>,
        pool: Vec<RawApiKey>,
    ) -> Result<Vec<ApiKey>, ConfigError> {
        if single.is_some() && !pool.is_empty() {
            return Err(self.invalid(
                &format!("deployments[{index}].api_keys"),
                "both api_key_env and api_keys are set",
                "list every key under api_keys",
            ));
        }
        let entries = single
            .map(|env| RawApiKey { env, weight: None })
            .into_iter()
            .chain(pool);
        entries
            .enumerate()
            .map(|(i, entry)| {
                let field = format!("deployments[{index}].api_keys[{i}]");
                if entry.weight == Some(0) {
                    return Err(self.invalid(&field, "weight is 0", "use a weight of at least 1"));
                }
                let secret = (self.env)(&entry.env)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        self.invalid(
                            &field,
                            format!("environment variable {} is not set", entry.env),
                            format!(
                                "export {}=<provider key>, or remove it for a server without keys",
                                entry.env
                            ),
                        )
                    })?;
                if let Some(position) = first_invalid_header_byte(&secret) {
                    return Err(self.invalid(
                        &field,
                        format!(
                            "the key of deployment {:?} in environment variable {} is not a valid HTTP header value \
                             (character {} is a newline, a space or another character outside visible ASCII)",
                            name, entry.env, position
                        ),
                        format!(
                            "export {} again with the key alone: no quotes, spaces or line breaks \
                             (e.g. `export {}=\"$(tr -d '[:space:]' < keyfile)\"`)",
                            entry.env, entry.env
                        ),
                    ));
                }
                Ok(ApiKey {
                    env: entry.env,
                    secret: Secret::new(secret),
                    weight: entry.weight.unwrap_or(1),
                })
            })
            .collect()
    }

    pub(super) fn check_unique_names(&self, deployments: &[Deployment]) -> Result<(), ConfigError> {
        for (i, d) in deployments.iter().enumerate() {
            if deployments[..i].iter().any(|p| p.name == d.name) {
                return Err(self.invalid(
                    &format!("deployments[{i}].name"),
                    format!("{:?} is used twice", d.name),
                    "give every deployment its own name",
                ));
            }
        }
        Ok(())
    }
}

/// The 1-based position of the first character that cannot go into the header carrying the
/// key (`Authorization: Bearer <key>` or `x-api-key: <key>`), if any. Provider keys are
/// visible ASCII only, so anything else (a trailing newline from a file, a space, a non-ASCII
/// letter) is a mistake; sent as is it would make every request fail.
fn first_invalid_header_byte(secret: &str) -> Option<usize> {
    secret
        .chars()
        .position(|c| !c.is_ascii_graphic())
        .map(|i| i.saturating_add(1))
}

fn model_routes(raw: BTreeMap<String, RawModelRoute>) -> HashMap<String, ModelRoute> {
    raw.into_iter()
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
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use crate::config::Config;

    const FILE: &str = r#"
database_url = "postgres://u:p@localhost/db"
[admin]
jwt_secret = "0123456789abcdef0123456789abcdef"
[[deployments]]
name = "openai-main"
kind = "openai"
base_url = "https://api.openai.com/v1"
api_keys = [{ env = "GOOD_KEY" }, { env = "BAD_KEY" }]
models = { "gpt-4o-mini" = "gpt-4o-mini" }
"#;

    fn load(bad: &str) -> Result<Config, String> {
        let bad = bad.to_owned();
        let env = move |name: &str| match name {
            "GOOD_KEY" => Some("sk-good-0123".to_owned()),
            "BAD_KEY" => Some(bad.clone()),
            _ => None,
        };
        Config::from_toml_str("tollgate.toml", FILE, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn a_key_that_is_not_a_header_value_is_refused_by_name_without_showing_it() {
        for bad in [
            "sk-secret-part\n",
            "sk-secret-part\r",
            "sk secret-part",
            "sk-secret-\u{7f}",
            "sk-secret-é",
            "\tsk-secret-part",
        ] {
            let err = load(bad).unwrap_err();
            assert!(err.contains("deployments[0].api_keys[1]"), "{err}");
            assert!(err.contains("\"openai-main\""), "{err}");
            assert!(err.contains("BAD_KEY"), "{err}");
            assert!(!err.contains("secret"), "the key leaked: {err}");
        }
        assert!(load("sk-fine_0123-ABC.x").is_ok());
    }
}
