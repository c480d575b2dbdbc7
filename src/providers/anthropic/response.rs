//! A Messages answer translated into an OpenAI `chat.completion`, and an Anthropic error body
//! into OpenAI's error shape.
//!
//! Text blocks are concatenated into the message's `content`; `tool_use` blocks become
//! `tool_calls`; other blocks (`thinking`, `redacted_thinking`, server tool results) have no
//! OpenAI equivalent and are left out, though their tokens are in the usage.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TranslateError;
use super::usage::{AnthropicUsage, OpenAiUsage};

#[derive(Deserialize)]
struct Message {
    id: String,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OpenAiUsage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: String,
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`. `pause_turn` (a server tool paused
/// a long turn) and reasons added later read as `stop`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Translates a successful `/v1/messages` answer. `created` is now; `model` is the name the
/// client asked for.
pub fn messages_to_chat(
    anthropic_body: &[u8],
    public_model: &str,
) -> Result<Bytes, TranslateError> {
    messages_to_chat_at(anthropic_body, public_model, chrono::Utc::now().timestamp())
}

fn messages_to_chat_at(
    anthropic_body: &[u8],
    public_model: &str,
    created: i64,
) -> Result<Bytes, TranslateError> {
    let message: Message = serde_json::from_slice(anthropic_body)
        .map_err(|e| TranslateError::Json(format!("not an Anthropic message: {e}")))?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block {
            Block::Text { text: t } => text.get_or_insert_with(String::new).push_str(t),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function",
                function: Function {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Block::Other => {}
        }
    }
    // OpenAI sends `content: null` alongside tool calls, and a string otherwise.
    let content = match text {
        None if !tool_calls.is_empty() => None,
        text => Some(text.unwrap_or_default()),
    };
    let completion = ChatCompletion {
        id: &message.id,
        object: "chat.completion",
        created,
        model: public_model,
        choices: [Choice {
            index: 0,
            message: ChatMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: message.stop_reason.as_deref().map(finish_reason),
        }],
        usage: message.usage.map(|u| OpenAiUsage::from(&u.normalise())),
    };
    serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(|e| TranslateError::Json(e.to_string()))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

#[derive(Serialize)]
pub(super) struct OpenAiError<'a> {
    pub error: OpenAiErrorDetail<'a>,
}

#[derive(Serialize)]
pub(super) struct OpenAiErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub code: Option<()>,
    pub param: Option<()>,
}

/// An Anthropic error body (`{"type":"error","error":{"type":..,"message":..}}`) in OpenAI's
/// shape (`{"error":{"message":..,"type":..,"code":null,"param":null}}`), keeping Anthropic's
/// error type. `None` when the body is not an Anthropic error.
pub fn error_to_chat(anthropic_body: &[u8]) -> Option<Bytes> {
    let body: ErrorBody = serde_json::from_slice(anthropic_body).ok()?;
    openai_error(&body.error).map(Bytes::from)
}

pub(super) fn openai_error(detail: &ErrorDetail) -> Option<Vec<u8>> {
    serde_json::to_vec(&OpenAiError {
        error: OpenAiErrorDetail {
            message: &detail.message,
            kind: &detail.kind,
            code: None,
            param: None,
        },
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn translate(body: Value) -> Value {
        let out = messages_to_chat_at(body.to_string().as_bytes(), "public-model", 1_700_000_000)
            .unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn text_answer() {
        let out = translate(json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
                      "output_tokens": 7}
        }));
        assert_eq!(
            out,
            json!({
                "id": "msg_01", "object": "chat.completion", "created": 1_700_000_000,
                "model": "public-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, world", "refusal": null},
                             "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 115, "completion_tokens": 7, "total_tokens": 122,
                          "prompt_tokens_details": {"cached_tokens": 100}}
            })
        );
    }

    #[test]
    fn tool_use_answer() {
        let out = translate(json!({
            "id": "msg_02", "type": "message", "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris", "days": [1, 2]}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 3, "output_tokens": 4}
        }));
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"],
            json!([{"id": "toolu_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\",\"days\":[1,2]}"}}])
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        // The arguments string parses back to the input.
        let args: Value = serde_json::from_str(
            message["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args, json!({"city": "Paris", "days": [1, 2]}));
    }

    #[test]
    fn stop_reasons() {
        for (reason, expected) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ] {
            let out = translate(json!({"id": "m", "content": [], "stop_reason": reason}));
            assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason}");
            assert_eq!(out["choices"][0]["message"]["content"], "");
            assert!(out.get("usage").is_none());
        }
        let out = translate(json!({"id": "m", "content": [], "stop_reason": null}));
        assert_eq!(out["choices"][0]["finish_reason"], Value::Null);
    }

    #[test]
    fn not_a_message() {
        assert!(messages_to_chat(b"{\"type\":\"error\",\"error\":{}}", "m").is_err());
        assert!(messages_to_chat(b"<html>", "m").is_err());
        let out: Value =
            serde_json::from_slice(&messages_to_chat(br#"{"id":"x","content":[]}"#, "m").unwrap())
                .unwrap();
        assert!(out["created"].as_i64().unwrap() > 1_700_000_000);
    }

    #[test]
    fn errors_in_openai_shape() {
        let out = error_to_chat(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"error": {"message": "Overloaded", "type": "overloaded_error", "code": null, "param": null}})
        );
        assert!(error_to_chat(b"{\"id\":\"msg\"}").is_none());
    }
}
