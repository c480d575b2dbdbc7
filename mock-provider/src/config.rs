//! Server-wide settings ([`MockConfig`]) and the per-request `"mock"` override object.

use serde::Deserialize;

/// How the mock answers when a request carries no `"mock"` override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockConfig {
    /// Wait this long before sending the response headers.
    pub delay_ms: u64,
    /// Token usage reported in every answer.
    pub usage: MockUsage,
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
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            usage: MockUsage::default(),
            chunks: 3,
            chunk_delay_ms: 0,
            content: "pong".to_owned(),
            error_every: 0,
            rate_limit_every: 0,
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
/// test shows up as a failure instead of a silently ignored override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MockOverrides {
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub delay_ms: Option<u64>,
    pub chunk_delay_ms: Option<u64>,
    pub chunks: Option<usize>,
    pub content: Option<String>,
    pub usage: Option<UsageOverride>,
    #[serde(default)]
    pub no_usage: bool,
    pub cut_after: Option<usize>,
    pub hang_ms: Option<u64>,
}

impl MockOverrides {
    /// Whether the answer's text differs from the prebuilt default bodies.
    pub fn changes_body(&self) -> bool {
        self.chunks.is_some() || self.content.is_some() || self.usage.is_some() || self.no_usage
    }
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
