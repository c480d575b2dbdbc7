//! A Gemini `generateContent` answer (or error) translated into OpenAI's shape, and its
//! `usageMetadata` read into [`Usage`].
//!
//! Text parts are concatenated into the message's `content` (thought summaries, parts with
//! `thought: true`, are left out; their tokens are in the usage); `functionCall` parts become
//! `tool_calls`. Finish reasons: `STOP` → `stop` (`tool_calls` when the answer calls a
//! function), `MAX_TOKENS` → `length`, `SAFETY`, `RECITATION`, `BLOCKLIST`,
//! `PROHIBITED_CONTENT`, `SPII` and a blocked prompt → `content_filter`, others → `stop`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::pricing::{Usage, token_count};
use crate::providers::{TranslateError, chat_answer};

/// `usageMetadata`. `promptTokenCount` includes the cached tokens; the billed output is the
/// candidates' tokens plus the thinking tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default, deserialize_with = "token_count")]
    prompt_token_count: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    cached_content_token_count: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    candidates_token_count: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    thoughts_token_count: Option<u64>,
    /// Tokens of tool-use prompts (code execution, search results fed back): billed as input.
    #[serde(default, deserialize_with = "token_count")]
    tool_use_prompt_token_count: Option<u64>,
}

impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Usage {
        let thoughts = u.thoughts_token_count.unwrap_or(0);
        Usage {
            input_tokens: u
                .prompt_token_count
                .unwrap_or(0)
                .saturating_add(u.tool_use_prompt_token_count.unwrap_or(0)),
            cached_input_tokens: u.cached_content_token_count.unwrap_or(0),
            output_tokens: u
                .candidates_token_count
                .unwrap_or(0)
                .saturating_add(thoughts),
            reasoning_tokens: thoughts,
            ..Usage::default()
        }
    }
}

impl UsageMetadata {
    /// OpenAI's `usage` object for the same counts.
    pub fn to_openai(self) -> Value {
        let usage = Usage::from(self);
        json!({
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
            "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub response_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback {
    #[serde(default)]
    pub block_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Content {
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(default)]
    pub function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
pub(super) struct FunctionCall {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
}

impl FunctionCall {
    /// OpenAI's `tool_calls` entry; `n` numbers the calls of one answer.
    pub(super) fn to_openai(&self, n: usize) -> Value {
        let arguments = self
            .args
            .as_ref()
            .map_or_else(|| "{}".to_owned(), Value::to_string);
        let id = self.id.clone().unwrap_or_else(|| format!("call_{n}"));
        json!({"id": id, "type": "function", "function": {"name": self.name, "arguments": arguments}})
    }
}

/// OpenAI's `finish_reason` for Gemini's, given whether the answer called a function.
pub(super) fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// The usage of a `generateContent` body, if it reports one.
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<GenerateResponse>(body)
        .ok()?
        .usage_metadata
        .map(Usage::from)
}

/// A `generateContent` answer as an OpenAI `chat.completion` for `public_model`.
pub fn gemini_to_chat(body: &[u8], public_model: &str) -> Result<Bytes, TranslateError> {
    let answer: GenerateResponse =
        serde_json::from_slice(body).map_err(|e| TranslateError::Json(e.to_string()))?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let candidate = answer.candidates.first();
    for part in candidate
        .and_then(|c| c.content.as_ref())
        .map_or(&[][..], |c| &c.parts[..])
    {
        if let Some(call) = &part.function_call {
            calls.push(call.to_openai(calls.len()));
        } else if let Some(t) = part.text.as_deref().filter(|_| part.thought != Some(true)) {
            text.get_or_insert_with(String::new).push_str(t);
        }
    }
    let blocked = answer
        .prompt_feedback
        .as_ref()
        .is_some_and(|f| f.block_reason.is_some());
    let finish = match candidate.and_then(|c| c.finish_reason.as_deref()) {
        Some(reason) => finish_reason(reason, !calls.is_empty()),
        None if blocked => "content_filter",
        None => finish_reason("STOP", !calls.is_empty()),
    };
    let id = format!(
        "chatcmpl-{}",
        answer.response_id.as_deref().unwrap_or("gemini")
    );
    let usage = answer.usage_metadata.map(UsageMetadata::to_openai);
    chat_answer::completion(&id, public_model, text, calls, finish, usage)
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

impl ErrorDetail {
    /// OpenAI's error object for a Gemini error.
    pub(super) fn to_openai(&self) -> Value {
        let status = self.status.as_deref().unwrap_or("UNKNOWN");
        let kind = match status {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "NOT_FOUND" | "OUT_OF_RANGE" => {
                "invalid_request_error"
            }
            "UNAUTHENTICATED" | "PERMISSION_DENIED" => "authentication_error",
            "RESOURCE_EXHAUSTED" => "rate_limit_error",
            _ => "api_error",
        };
        json!({"error": {
            "message": self.message.as_deref().unwrap_or("the Gemini API returned an error"),
            "type": kind,
            "param": null,
            "code": status,
        }})
    }
}

/// A Gemini error body (`{"error": {"code", "message", "status"}}`) in OpenAI's shape.
pub fn error_to_chat(body: &[u8]) -> Option<Bytes> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    serde_json::to_vec(&parsed.error.to_openai())
        .ok()
        .map(Bytes::from)
}
