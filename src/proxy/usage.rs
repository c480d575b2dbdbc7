//! Reading token usage from OpenAI-compatible responses: a JSON body's `usage`, or the
//! usage chunk at the end of a stream.

use memchr::memmem;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::pricing::{Usage, token_count};

/// Counts are read with [`token_count`]: beyond `u64` saturates, fractions round up, and a
/// negative or non-numeric count makes the report unreadable (the caller then estimates).
#[derive(Debug, Deserialize)]
struct OpenAiUsage {
    #[serde(default, deserialize_with = "token_count")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default, deserialize_with = "token_count")]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CompletionDetails {
    #[serde(default, deserialize_with = "token_count")]
    reasoning_tokens: Option<u64>,
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Usage {
        Usage {
            input_tokens: u.prompt_tokens.unwrap_or(0),
            cached_input_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            output_tokens: u.completion_tokens.unwrap_or(0),
            reasoning_tokens: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            ..Usage::default()
        }
    }
}

#[derive(Debug, Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
}

/// The usage of a non-streaming response body, if it reports one.
pub fn from_json_body(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(body)
        .ok()?
        .usage
        .map(Usage::from)
}

/// What one SSE `data:` payload of an OpenAI-compatible stream tells us.
#[derive(Debug, PartialEq, Eq)]
pub struct ChunkUsage {
    pub usage: Usage,
    /// The chunk carries nothing but usage (`choices` empty): the one that
    /// `stream_options.include_usage` adds.
    pub usage_only: bool,
}

/// Reads usage from a stream chunk. Cheap for the common chunk without usage: the JSON is
/// only parsed when the bytes `"usage"` appear followed by something other than `null`.
pub fn from_stream_chunk(data: &[u8]) -> Option<ChunkUsage> {
    let at = memmem::find(data, b"\"usage\"")?;
    let rest = &data[at + 7..];
    let value = rest
        .iter()
        .position(|b| !matches!(b, b':' | b' ' | b'\t'))?;
    if rest[value..].starts_with(b"null") {
        return None;
    }
    let parsed: WithUsage = serde_json::from_slice(data).ok()?;
    let usage_only = parsed.choices.as_ref().is_none_or(|c| c.is_empty());
    Some(ChunkUsage {
        usage: parsed.usage?.into(),
        usage_only,
    })
}

/// True when a stream chunk carries generated content (used to estimate output tokens
/// when a stream ends without a usage report: streams send about one token per chunk).
pub fn chunk_has_content(data: &[u8]) -> bool {
    memmem::find(data, b"\"content\":\"").is_some_and(|at| data.get(at + 11) != Some(&b'"'))
}

/// Estimate of a prompt's tokens from its request body: about four bytes per token.
pub fn estimate_prompt_tokens(body_len: usize) -> u64 {
    u64::try_from(body_len).unwrap_or(u64::MAX).div_ceil(4)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_usage_with_details() {
        let body = br#"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150,
            "prompt_tokens_details":{"cached_tokens":40},"completion_tokens_details":{"reasoning_tokens":20}}}"#;
        let u = from_json_body(body).unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cached_input_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (100, 40, 50, 20)
        );
        assert_eq!(from_json_body(br#"{"choices":[]}"#), None);
        assert_eq!(from_json_body(b"not json"), None);
    }

    #[test]
    fn null_details_are_zero() {
        let body =
            br#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":null}}"#;
        assert_eq!(from_json_body(body).unwrap().cached_input_tokens, 0);
    }

    #[test]
    fn stream_chunks() {
        let content =
            br#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#;
        assert_eq!(from_stream_chunk(content), None);
        assert!(chunk_has_content(content));
        assert!(!chunk_has_content(
            br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        ));
        let last = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let u = from_stream_chunk(last).unwrap();
        assert!(u.usage_only);
        assert_eq!(u.usage.output_tokens, 4);
        let vllm =
            br#"{"choices":[{"delta":{}}], "usage": {"prompt_tokens":3,"completion_tokens":4}}"#;
        assert!(!from_stream_chunk(vllm).unwrap().usage_only);
    }
}
