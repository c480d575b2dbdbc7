//! Anthropic usage reports normalised into [`Usage`].
//!
//! Anthropic reports the prompt in parts: `input_tokens` excludes `cache_read_input_tokens` and
//! `cache_creation_input_tokens`, so the three are summed into `Usage::input_tokens`. Cache writes
//! are split by lifetime from `cache_creation.ephemeral_{5m,1h}_input_tokens`; without that
//! breakdown every write is a 5-minute write. Thinking is billed as output and not reported
//! separately, so `reasoning_tokens` is always zero.

use memchr::memmem;
use serde::{Deserialize, Serialize};

use crate::pricing::{Usage, token_count};

/// A `usage` object as Anthropic sends it. Every field may be missing or `null` (a stream's
/// `message_delta` carries only some of them). Counts are read with [`token_count`]: beyond
/// `u64` saturates, fractions round up, and a negative or non-numeric count makes the report
/// unreadable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) struct AnthropicUsage {
    #[serde(default, deserialize_with = "token_count")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
struct CacheCreation {
    #[serde(default, deserialize_with = "token_count")]
    ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    ephemeral_1h_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Keeps the larger of each field: stream reports are cumulative, so the latest is the
    /// largest, and a field a later event leaves out keeps its earlier value.
    fn merge(&mut self, other: &AnthropicUsage) {
        fn max(a: &mut Option<u64>, b: Option<u64>) {
            *a = match (*a, b) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
        }
        max(&mut self.input_tokens, other.input_tokens);
        max(&mut self.output_tokens, other.output_tokens);
        max(
            &mut self.cache_creation_input_tokens,
            other.cache_creation_input_tokens,
        );
        max(
            &mut self.cache_read_input_tokens,
            other.cache_read_input_tokens,
        );
        if let Some(theirs) = other.cache_creation {
            let ours = self.cache_creation.get_or_insert_default();
            max(
                &mut ours.ephemeral_5m_input_tokens,
                theirs.ephemeral_5m_input_tokens,
            );
            max(
                &mut ours.ephemeral_1h_input_tokens,
                theirs.ephemeral_1h_input_tokens,
            );
        }
    }

    pub(super) fn normalise(&self) -> Usage {
        let breakdown = self.cache_creation.unwrap_or_default();
        let write_1h = breakdown.ephemeral_1h_input_tokens.unwrap_or(0);
        let write_5m_reported = breakdown.ephemeral_5m_input_tokens.unwrap_or(0);
        let writes = self
            .cache_creation_input_tokens
            .unwrap_or(write_5m_reported.saturating_add(write_1h));
        // Writes not attributed to the 1-hour cache are 5-minute writes. Should the breakdown
        // exceed the total, the breakdown is charged as reported (never less).
        let write_5m = write_5m_reported.max(writes.saturating_sub(write_1h));
        let writes = writes.max(write_5m.saturating_add(write_1h));
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(cache_read)
                .saturating_add(writes),
            cached_input_tokens: cache_read,
            cache_write_tokens: write_5m,
            cache_write_1h_tokens: write_1h,
            output_tokens: self.output_tokens.unwrap_or(0),
            reasoning_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
struct WithUsage {
    usage: Option<AnthropicUsage>,
}

/// The usage of a non-streaming `/v1/messages` answer, if it reports one.
pub fn from_message_json(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(body)
        .ok()?
        .usage
        .map(|u| u.normalise())
}

/// Accumulates the usage of a `/v1/messages` event stream.
///
/// `message_start` carries the input side and an initial output count in `message.usage`;
/// `message_delta` carries the cumulative `output_tokens` (and, in newer API versions, the input
/// fields again). Each field keeps its largest value, which is the latest.
#[derive(Debug, Default, Clone)]
pub struct StreamUsage {
    reported: Option<AnthropicUsage>,
    stopped: bool,
}

#[derive(Deserialize)]
struct UsageEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<WithUsage>,
    usage: Option<AnthropicUsage>,
}

impl StreamUsage {
    /// Takes one event's `data` payload. Cheap for content deltas: the JSON is only parsed when
    /// the payload can be one of the events that matter.
    pub fn push(&mut self, data: &[u8]) {
        if memmem::find(data, b"\"usage\"").is_none()
            && memmem::find(data, b"\"message_stop\"").is_none()
        {
            return;
        }
        let Ok(event) = serde_json::from_slice::<UsageEvent>(data) else {
            return;
        };
        match event.kind.as_deref() {
            Some("message_start") => {
                if let Some(usage) = event.message.and_then(|m| m.usage) {
                    self.record(&usage);
                }
            }
            Some("message_delta") => {
                if let Some(usage) = event.usage {
                    self.record(&usage);
                }
            }
            Some("message_stop") => self.stop(),
            _ => {}
        }
    }

    pub(super) fn record(&mut self, usage: &AnthropicUsage) {
        self.reported.get_or_insert_default().merge(usage);
    }

    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }

    /// The usage reported so far; `None` until an event reported any.
    pub fn usage(&self) -> Option<Usage> {
        self.reported.as_ref().map(AnthropicUsage::normalise)
    }

    /// Whether `message_stop` arrived, i.e. the stream completed.
    pub fn saw_stop(&self) -> bool {
        self.stopped
    }
}

/// Usage in OpenAI's shape, for translated answers.
#[derive(Debug, Serialize)]
pub(super) struct OpenAiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

impl From<&Usage> for OpenAiUsage {
    fn from(u: &Usage) -> OpenAiUsage {
        OpenAiUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens.saturating_add(u.output_tokens),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_input_tokens,
            },
        }
    }
}

#[cfg(test)]
pub(super) mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, write_5m: u64, write_1h: u64, output: u64) -> Option<Usage> {
        Some(Usage {
            input_tokens: input,
            cached_input_tokens: cached,
            cache_write_tokens: write_5m,
            cache_write_1h_tokens: write_1h,
            output_tokens: output,
            reasoning_tokens: 0,
        })
    }

    #[test]
    fn message_usage_sums_the_prompt_parts() {
        let body = br#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":10,
            "cache_creation_input_tokens":300,"cache_read_input_tokens":2000,
            "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},
            "output_tokens":50,"service_tier":"standard"}}"#;
        assert_eq!(from_message_json(body), usage(2310, 2000, 100, 200, 50));
    }

    #[test]
    fn writes_without_breakdown_are_five_minute_writes() {
        let body = br#"{"usage":{"input_tokens":10,"cache_creation_input_tokens":300,
            "cache_read_input_tokens":0,"output_tokens":5}}"#;
        assert_eq!(from_message_json(body), usage(310, 0, 300, 0, 5));
        // A breakdown with only the 1-hour part leaves the rest of the writes at 5 minutes.
        let body = br#"{"usage":{"input_tokens":1,"cache_creation_input_tokens":300,
            "cache_creation":{"ephemeral_1h_input_tokens":120},"output_tokens":5}}"#;
        assert_eq!(from_message_json(body), usage(301, 0, 180, 120, 5));
        // A breakdown larger than its total is charged as reported.
        let body = br#"{"usage":{"input_tokens":1,"cache_creation_input_tokens":10,
            "cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":5},"output_tokens":0}}"#;
        assert_eq!(from_message_json(body), usage(26, 0, 20, 5, 0));
    }

    #[test]
    fn missing_and_null_fields_are_zero() {
        let body = br#"{"usage":{"input_tokens":7,"output_tokens":3,"cache_creation_input_tokens":null,"cache_creation":null}}"#;
        assert_eq!(from_message_json(body), usage(7, 0, 0, 0, 3));
        assert_eq!(
            from_message_json(br#"{"type":"message","content":[]}"#),
            None
        );
        assert_eq!(
            from_message_json(br#"{"type":"error","error":{"type":"api_error"}}"#),
            None
        );
        assert_eq!(from_message_json(b"not json"), None);
    }

    #[test]
    fn stream_takes_the_latest_counts() {
        let mut s = StreamUsage::default();
        assert_eq!(s.usage(), None);
        s.push(br#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":40,"cache_read_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":30,"ephemeral_1h_input_tokens":10},"output_tokens":1}}}"#);
        assert_eq!(s.usage(), usage(1065, 1000, 30, 10, 1));
        s.push(br#"{"type":"ping"}"#);
        s.push(br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"say \"usage\": 99"}}"#);
        s.push(br#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#);
        assert_eq!(s.usage(), usage(1065, 1000, 30, 10, 15));
        assert!(!s.saw_stop());
        s.push(br#"{"type":"message_stop"}"#);
        assert!(s.saw_stop());
    }

    #[test]
    fn stream_delta_may_restate_the_input() {
        let mut s = StreamUsage::default();
        s.push(
            br#"{"type":"message_start","message":{"usage":{"input_tokens":0,"output_tokens":1}}}"#,
        );
        s.push(br#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":120,"cache_read_input_tokens":80,"cache_creation_input_tokens":null,"output_tokens":42}}"#);
        assert_eq!(s.usage(), usage(200, 80, 0, 0, 42));
    }

    #[test]
    fn delta_without_start_still_counts() {
        let mut s = StreamUsage::default();
        s.push(br#"{"type":"message_delta","delta":{},"usage":{"output_tokens":9}}"#);
        assert_eq!(s.usage(), usage(0, 0, 0, 0, 9));
    }

    #[test]
    fn openai_shape() {
        let u = usage(2310, 2000, 100, 200, 50).unwrap();
        assert_eq!(
            serde_json::to_value(OpenAiUsage::from(&u)).unwrap(),
            serde_json::json!({"prompt_tokens":2310,"completion_tokens":50,"total_tokens":2360,
                "prompt_tokens_details":{"cached_tokens":2000}})
        );
    }
}
