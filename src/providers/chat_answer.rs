//! OpenAI chat answers built from another API's, shared by the translators (Gemini,
//! Bedrock): a `chat.completion`, and the `chat.completion.chunk` events of a stream.

use bytes::Bytes;
use serde_json::{Value, json};

use super::TranslateError;

/// The last event of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// A `chat.completion` with one choice: `text` as the content (`null` when there is none),
/// `tool_calls` when there are any, and `usage` when the upstream reported it.
pub fn completion(
    id: &str,
    public_model: &str,
    text: Option<String>,
    tool_calls: Vec<Value>,
    finish_reason: &str,
    usage: Option<Value>,
) -> Result<Bytes, TranslateError> {
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let mut completion = json!({
        "id": id,
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": public_model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
    });
    if let Some(usage) = usage {
        completion["usage"] = usage;
    }
    serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(|e| TranslateError::Json(e.to_string()))
}

/// Writes the chunks of one stream, all with the same id, time and model.
#[derive(Debug)]
pub struct ChunkWriter {
    id: String,
    created: i64,
    public_model: String,
}

impl ChunkWriter {
    pub fn new(id: String, public_model: &str) -> ChunkWriter {
        ChunkWriter {
            id,
            created: chrono::Utc::now().timestamp(),
            public_model: public_model.to_owned(),
        }
    }

    /// The id the upstream gave the answer, when it says so before the first chunk.
    pub fn set_id(&mut self, id: String) {
        self.id = id;
    }

    fn envelope(&self, choices: Value) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.public_model, "choices": choices,
        })
    }

    /// A chunk with one choice's `delta` (and its `finish_reason`, on the last one).
    pub fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        event(&self.envelope(json!([{
            "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason,
        }])))
    }

    /// The usage chunk (`"choices": []`) that `stream_options.include_usage` asks for.
    pub fn usage_chunk(&self, usage: Value) -> Bytes {
        let mut chunk = self.envelope(Value::Array(Vec::new()));
        chunk["usage"] = usage;
        event(&chunk)
    }
}

/// One SSE event with `value` as its data.
pub fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}
