//! Server-wide settings ([`MockConfig`]) and the per-request `"mock"` override object.

use std::collections::HashMap;

use serde::Deserialize;

/// How the mock answers when a request carries no `"mock"` override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockConfig {
    /// Wait this long before sending the response headers.
    pub delay_ms: u64,
    /// Token usage reported in every answer.
    pub usage: MockUsage,
    /// JSON written verbatim as every chat and messages answer's `usage` instead of `usage`
    /// (a request's `mock.raw_usage` or `mock.no_usage` still wins): absurd usage for requests
    /// the gateway rewrites, such as translated ones, which lose their `mock` object.
    pub raw_usage: Option<String>,
    /// Number of content chunks a stream splits `content` into (0 sends none).
    pub chunks: usize,
    /// Pause between two stream events.
    pub chunk_delay_ms: u64,
    /// The assistant message.
    pub content: String,
    /// 0 = never; otherwise every N-th chat request (counting from 1) answers 500.
    pub error_every: u64,
    /// 0 = never; otherwise every N-th chat request answers 429 with `Retry-After: 1`.
    pub rate_limit_every: u64,
    /// Scripted answers per API key (`Authorization: Bearer K` or `x-api-key: K`), on both
    /// endpoints: each request with the key takes the next status off its list; an error status
    /// is answered as an error, a 2xx (or an exhausted list) answers normally.
    pub key_failures: HashMap<String, Vec<u16>>,
    /// Bedrock mode: the AWS access key id and secret whose SigV4 signatures it accepts;
    /// `None` accepts any request unsigned.
    pub aws_credentials: Option<(String, String)>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            usage: MockUsage::default(),
            raw_usage: None,
            chunks: 3,
            chunk_delay_ms: 0,
            content: "pong".to_owned(),
            error_every: 0,
            rate_limit_every: 0,
            key_failures: HashMap::new(),
            aws_credentials: None,
        }
    }
}

/// Token counts reported in `usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MockUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Reported as `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
    /// Reported as `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
}

impl Default for MockUsage {
    fn default() -> Self {
        Self {
            prompt_tokens: 10,
            completion_tokens: 20,
            cached_tokens: 0,
            reasoning_tokens: 0,
        }
    }
}

/// The request's top-level `"mock"` object. Unknown fields are rejected (400) so that a typo in a
/// test shows up as a failure instead of a silently ignored override. `U` is the endpoint's
/// usage override: [`UsageOverride`] for chat completions, [`AnthropicUsageOverride`] for
/// messages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MockOverrides<U = UsageOverride> {
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub delay_ms: Option<u64>,
    pub chunk_delay_ms: Option<u64>,
    pub chunks: Option<usize>,
    pub content: Option<String>,
    pub usage: Option<U>,
    /// Written verbatim as the answer's `usage` (JSON body, stream usage chunk, Anthropic
    /// `message_start` and `message_delta`), for usage no honest upstream sends: counts beyond
    /// `u64`, negative, fractional, strings.
    pub raw_usage: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    pub no_usage: bool,
    pub cut_after: Option<usize>,
    pub hang_ms: Option<u64>,
    /// Messages only: answer with this tool call instead of text.
    pub tool_use: Option<ToolUseOverride>,
}

impl MockOverrides {
    /// The usage an answer reports: `None` with `no_usage`, else `base` with the request's
    /// `usage` fields over it.
    pub fn reported_usage(overrides: Option<&Self>, base: MockUsage) -> Option<MockUsage> {
        match overrides {
            Some(o) if o.no_usage => None,
            Some(o) => Some(o.usage.as_ref().map_or(base, |u| u.apply(base))),
            None => Some(base),
        }
    }
}

impl<U> MockOverrides<U> {
    /// A number the request's `mock` sets (a delay, a hang), or `default`.
    pub fn number(overrides: Option<&Self>, field: fn(&Self) -> Option<u64>, default: u64) -> u64 {
        overrides.and_then(field).unwrap_or(default)
    }

    /// The answer's text: the request's `mock.content`, or the configured one.
    pub fn content<'a>(overrides: Option<&'a Self>, config: &'a MockConfig) -> &'a str {
        overrides
            .and_then(|o| o.content.as_deref())
            .unwrap_or(&config.content)
    }

    /// Whether the answer's text differs from the prebuilt default bodies.
    pub fn changes_body(&self) -> bool {
        self.chunks.is_some()
            || self.content.is_some()
            || self.usage.is_some()
            || self.raw_usage.is_some()
            || self.no_usage
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolUseOverride {
    pub name: String,
    #[serde(default)]
    pub input: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageOverride {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

impl UsageOverride {
    pub fn apply(&self, base: MockUsage) -> MockUsage {
        MockUsage {
            prompt_tokens: self.prompt_tokens.unwrap_or(base.prompt_tokens),
            completion_tokens: self.completion_tokens.unwrap_or(base.completion_tokens),
            cached_tokens: self.cached_tokens.unwrap_or(base.cached_tokens),
            reasoning_tokens: self.reasoning_tokens.unwrap_or(base.reasoning_tokens),
        }
    }
}

/// Token counts of an Anthropic answer, in Anthropic's parts: `input` excludes cache reads and
/// writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AnthropicUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_5m: u64,
    pub cache_creation_1h: u64,
}

impl From<MockUsage> for AnthropicUsage {
    /// The same prompt as the OpenAI answer's: `prompt_tokens` less the cached part as
    /// `input_tokens`, `cached_tokens` as cache reads, no cache writes.
    fn from(u: MockUsage) -> Self {
        Self {
            input_tokens: u.prompt_tokens.saturating_sub(u.cached_tokens),
            output_tokens: u.completion_tokens,
            cache_read_input_tokens: u.cached_tokens,
            cache_creation_5m: 0,
            cache_creation_1h: 0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnthropicUsageOverride {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_5m: Option<u64>,
    pub cache_creation_1h: Option<u64>,
}

impl AnthropicUsageOverride {
    pub fn apply(&self, base: AnthropicUsage) -> AnthropicUsage {
        AnthropicUsage {
            input_tokens: self.input_tokens.unwrap_or(base.input_tokens),
            output_tokens: self.output_tokens.unwrap_or(base.output_tokens),
            cache_read_input_tokens: self
                .cache_read_input_tokens
                .unwrap_or(base.cache_read_input_tokens),
            cache_creation_5m: self.cache_creation_5m.unwrap_or(base.cache_creation_5m),
            cache_creation_1h: self.cache_creation_1h.unwrap_or(base.cache_creation_1h),
        }
    }
}
