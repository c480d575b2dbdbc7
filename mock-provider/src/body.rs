//! Response text. Everything that does not depend on the request's `model` is rendered once into
//! [`Bodies`], so answering costs one copy of a few prebuilt slices plus the escaped model.

use crate::config::MockUsage;

const JSON_PREFIX: &[u8] =
    br#"{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"#;
const CHUNK_PREFIX: &[u8] =
    br#"data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"#;
pub(crate) const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

pub(crate) const MODELS_BODY: &str = r#"{"object":"list","data":[{"id":"mock-model","object":"model","created":1700000000,"owned_by":"mock"}]}"#;

/// Echoed when the request names no model.
pub(crate) const DEFAULT_MODEL: &str = "mock-model";

/// The model-independent tails of every answer for one (content, chunks, usage) combination.
#[derive(Debug)]
pub(crate) struct Bodies {
    json_suffix: Vec<u8>,
    role_suffix: Vec<u8>,
    content_suffixes: Vec<Vec<u8>>,
    finish_suffix: Vec<u8>,
    usage_suffix: Option<Vec<u8>>,
}

impl Bodies {
    /// `usage: None` leaves usage out of every answer.
    pub fn new(content: &str, chunks: usize, usage: Option<MockUsage>) -> Self {
        Self::with_usage_json(content, chunks, usage.map(usage_json))
    }

    /// Like [`Bodies::new`], with the `usage` object given as JSON text, written verbatim.
    pub fn with_usage_json(content: &str, chunks: usize, usage_json: Option<String>) -> Self {
        let mut json_suffix =
            br#","choices":[{"index":0,"message":{"role":"assistant","content":"#.to_vec();
        push_json_str(&mut json_suffix, content);
        json_suffix.extend_from_slice(br#"},"finish_reason":"stop"}]"#);
        if let Some(u) = &usage_json {
            json_suffix.extend_from_slice(br#","usage":"#);
            json_suffix.extend_from_slice(u.as_bytes());
        }
        json_suffix.push(b'}');

        let content_suffixes = split_content(content, chunks)
            .into_iter()
            .map(|piece| {
                let mut delta = br#"{"content":"#.to_vec();
                push_json_str(&mut delta, piece);
                delta.push(b'}');
                choice_suffix(&delta, "null")
            })
            .collect();

        let usage_suffix = usage_json.map(|u| {
            let mut s = br#","choices":[],"usage":"#.to_vec();
            s.extend_from_slice(u.as_bytes());
            s.extend_from_slice(b"}\n\n");
            s
        });

        Self {
            json_suffix,
            role_suffix: choice_suffix(br#"{"role":"assistant","content":""}"#, "null"),
            content_suffixes,
            finish_suffix: choice_suffix(b"{}", r#""stop""#),
            usage_suffix,
        }
    }

    pub fn json(&self, model: &str) -> Vec<u8> {
        join(JSON_PREFIX, model, &self.json_suffix)
    }

    /// The stream's events in order, minus `[DONE]`: role, the first `content_limit` content
    /// chunks and, when `complete`, the finish chunk and (if asked for and known) the usage chunk.
    pub fn events(
        &self,
        model: &str,
        content_limit: usize,
        complete: bool,
        include_usage: bool,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.content_suffixes.len() + 4);
        out.push(join(CHUNK_PREFIX, model, &self.role_suffix));
        for suffix in self.content_suffixes.iter().take(content_limit) {
            out.push(join(CHUNK_PREFIX, model, suffix));
        }
        if complete {
            out.push(join(CHUNK_PREFIX, model, &self.finish_suffix));
            if let (true, Some(suffix)) = (include_usage, &self.usage_suffix) {
                out.push(join(CHUNK_PREFIX, model, suffix));
            }
        }
        out
    }
}

/// `,"choices":[{...}]}\n\n` for a chunk event carrying one choice.
fn choice_suffix(delta: &[u8], finish_reason: &str) -> Vec<u8> {
    let mut s = br#","choices":[{"index":0,"delta":"#.to_vec();
    s.extend_from_slice(delta);
    s.extend_from_slice(br#","finish_reason":"#);
    s.extend_from_slice(finish_reason.as_bytes());
    s.extend_from_slice(b"}]}\n\n");
    s
}

fn usage_json(u: MockUsage) -> String {
    let total = u.prompt_tokens.saturating_add(u.completion_tokens);
    let mut s = format!(
        r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{total}"#,
        u.prompt_tokens, u.completion_tokens
    );
    // Mirrors providers that only send the details when there is something in them, so the
    // gateway is exercised both with and without them.
    if u.cached_tokens != 0 || u.reasoning_tokens != 0 {
        s.push_str(&format!(
            r#","prompt_tokens_details":{{"cached_tokens":{}}},"completion_tokens_details":{{"reasoning_tokens":{}}}"#,
            u.cached_tokens, u.reasoning_tokens
        ));
    }
    s.push('}');
    s
}

fn join(prefix: &[u8], model: &str, suffix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + model.len() + 2 + suffix.len());
    out.extend_from_slice(prefix);
    push_json_str(&mut out, model);
    out.extend_from_slice(suffix);
    out
}

/// Splits on char boundaries into exactly `n` pieces whose lengths differ by at most one
/// (earlier pieces take the remainder); pieces are empty when `content` is shorter than `n`.
pub(crate) fn split_content(content: &str, n: usize) -> Vec<&str> {
    if n == 0 {
        return Vec::new();
    }
    let total = content.chars().count();
    let (base, extra) = (total / n, total % n);
    let mut rest = content;
    (0..n)
        .map(|i| {
            let take = base + usize::from(i < extra);
            let at = rest
                .char_indices()
                .nth(take)
                .map_or(rest.len(), |(idx, _)| idx);
            let (head, tail) = rest.split_at(at);
            rest = tail;
            head
        })
        .collect()
}

/// Appends `s` as a JSON string literal, quotes included. Hand-rolled because it cannot fail,
/// unlike going through a `serde_json` writer.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An OpenAI-shaped error body; the `type` follows the status the way OpenAI's does.
pub(crate) fn error_json(status: u16, message: &str) -> Vec<u8> {
    let kind = match status {
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let mut out = br#"{"error":{"message":"#.to_vec();
    push_json_str(&mut out, message);
    out.extend_from_slice(br#","type":""#);
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(br#"","code":null,"param":null}}"#);
    out
}

/// An Anthropic-shaped error body: `{"type":"error","error":{"type":T,"message":..}}`.
pub(crate) fn anthropic_error_json(status: u16, message: &str) -> Vec<u8> {
    let kind = match status {
        529 => "overloaded_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    };
    let mut out = br#"{"type":"error","error":{"type":""#.to_vec();
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(br#"","message":"#);
    push_json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

/// A Gemini-shaped error body: `{"error":{"code":C,"message":..,"status":S}}`.
pub(crate) fn gemini_error_json(status: u16, message: &str) -> Vec<u8> {
    let kind = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut out = format!(r#"{{"error":{{"code":{status},"message":"#).into_bytes();
    push_json_str(&mut out, message);
    out.extend_from_slice(br#","status":""#);
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_evenly_on_char_boundaries() {
        assert_eq!(split_content("pong", 3), ["po", "n", "g"]);
        assert_eq!(split_content("pong", 1), ["pong"]);
        assert_eq!(split_content("ab", 4), ["a", "b", "", ""]);
        assert_eq!(split_content("héllo", 2), ["hél", "lo"]);
        assert!(split_content("pong", 0).is_empty());
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in ["plain", "q\"b\\s", "nl\n\r\t", "\u{1}\u{1f}", "ünï €"] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap_or_default();
            assert_eq!(back, s);
        }
    }
}
