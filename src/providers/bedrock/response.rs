//! A Converse answer (or error) translated into OpenAI's shape, and its usage read into
//! [`Usage`].
//!
//! Text blocks are concatenated into `content`; `toolUse` blocks become `tool_calls`;
//! reasoning blocks are left out (their tokens are in the usage). Stop reasons: `end_turn`
//! and `stop_sequence` → `stop`, `tool_use` → `tool_calls`, `max_tokens` → `length`,
//! `content_filtered` and `guardrail_intervened` → `content_filter`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::pricing::{Usage, token_count};
use crate::providers::{TranslateError, chat_answer};

/// Converse's `usage`: `inputTokens` excludes the cache reads and writes, which are counted
/// apart (as Anthropic's are).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseUsage {
    #[serde(default, deserialize_with = "token_count")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    cache_write_input_tokens: Option<u64>,
}

impl From<ConverseUsage> for Usage {
    fn from(u: ConverseUsage) -> Usage {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let write = u.cache_write_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: u
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(write),
            cached_input_tokens: read,
            cache_write_tokens: write,
            output_tokens: u.output_tokens.unwrap_or(0),
            ..Usage::default()
        }
    }
}

impl ConverseUsage {
    pub(super) fn to_openai(self) -> Value {
        let usage = Usage::from(self);
        json!({
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
            "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseAnswer {
    output: Option<Output>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<ConverseUsage>,
}

#[derive(Debug, Deserialize)]
struct Output {
    message: Option<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<Value>,
}

/// OpenAI's `finish_reason` for a Converse `stopReason`.
pub(super) fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        "content_filtered" | "guardrail_intervened" => "content_filter",
        _ => "stop",
    }
}

/// A `toolUse` block's `tool_calls` entry.
pub(super) fn tool_call(tool_use: &Value) -> Value {
    let arguments = tool_use
        .get("input")
        .map_or_else(|| "{}".to_owned(), Value::to_string);
    json!({
        "id": tool_use.get("toolUseId").cloned().unwrap_or(Value::Null),
        "type": "function",
        "function": {"name": tool_use.get("name").cloned().unwrap_or(Value::Null), "arguments": arguments},
    })
}

/// The usage of a Converse body, if it reports one.
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<ConverseAnswer>(body)
        .ok()?
        .usage
        .map(Usage::from)
}

/// A Converse answer as an OpenAI `chat.completion` for `public_model`.
pub fn converse_to_chat(body: &[u8], public_model: &str) -> Result<Bytes, TranslateError> {
    let answer: ConverseAnswer =
        serde_json::from_slice(body).map_err(|e| TranslateError::Json(e.to_string()))?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let blocks = answer
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default();
    for block in &blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(t);
        } else if let Some(tool_use) = block.get("toolUse") {
            calls.push(tool_call(tool_use));
        }
    }
    let finish = finish_reason(answer.stop_reason.as_deref().unwrap_or("end_turn"));
    let id = format!("chatcmpl-bedrock-{}", uuid::Uuid::now_v7().simple());
    let usage = answer.usage.map(ConverseUsage::to_openai);
    chat_answer::completion(&id, public_model, text, calls, finish, usage)
}

/// OpenAI's error object for a Bedrock error of type `kind` (an exception name, or the
/// `x-amzn-errortype` header) with `message`.
pub fn openai_error(kind: &str, message: &str) -> Value {
    let kind = kind.split(':').next().unwrap_or(kind);
    let openai = match kind {
        "ValidationException" | "ResourceNotFoundException" | "ModelErrorException" => {
            "invalid_request_error"
        }
        "AccessDeniedException" | "UnrecognizedClientException" => "authentication_error",
        "ThrottlingException" | "ServiceQuotaExceededException" => "rate_limit_error",
        _ => "api_error",
    };
    json!({"error": {"message": message, "type": openai, "param": null, "code": kind}})
}

/// A Bedrock error body (`{"message": ...}`, its type in `x-amzn-errortype`) in OpenAI's
/// shape.
pub fn error_to_chat(body: &[u8], error_type: Option<&str>) -> Option<Bytes> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    let message = parsed
        .get("message")
        .or_else(|| parsed.get("Message"))
        .and_then(Value::as_str)?;
    serde_json::to_vec(&openai_error(error_type.unwrap_or("BedrockError"), message))
        .ok()
        .map(Bytes::from)
}
