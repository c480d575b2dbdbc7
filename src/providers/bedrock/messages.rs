//! Anthropic's Messages format to Anthropic models on Bedrock (`/v1/messages` on a `bedrock`
//! deployment), through InvokeModel: `/model/{id}/invoke` takes the Messages body itself (with
//! `anthropic_version: bedrock-2023-05-31` instead of a `model`), and
//! `/invoke-with-response-stream` answers with event-stream frames whose `chunk` events carry
//! each Anthropic stream event, base64-encoded. The client gets Anthropic's own answer and
//! its own SSE events.

use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::frames::{FrameReader, header};
use crate::pricing::Usage;
use crate::providers::TranslateError;
use crate::providers::anthropic::StreamUsage;

/// The `anthropic_version` Bedrock takes in place of the `anthropic-version` header.
pub const BEDROCK_VERSION: &str = "bedrock-2023-05-31";

/// The path of an InvokeModel call for `model`.
pub fn path(model: &str, stream: bool) -> String {
    let action = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    format!("{}/{action}", super::model_path(model))
}

/// The client's Messages body as InvokeModel takes it: no `model` (it is in the path) and no
/// `stream` (the path says it), an `anthropic_version`.
pub fn invoke_body(messages_body: &[u8]) -> Result<Bytes, TranslateError> {
    let mut body: Map<String, Value> =
        serde_json::from_slice(messages_body).map_err(|e| TranslateError::Json(e.to_string()))?;
    body.remove("model");
    body.remove("stream");
    body.entry("anthropic_version")
        .or_insert_with(|| json!(BEDROCK_VERSION));
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|e| TranslateError::Json(e.to_string()))
}

/// Anthropic's error object for a Bedrock error of type `kind`.
fn anthropic_error(kind: &str, message: &str) -> Value {
    let kind = kind.split(':').next().unwrap_or(kind);
    let anthropic = match kind {
        "ValidationException" | "ResourceNotFoundException" => "invalid_request_error",
        "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException" => {
            "authentication_error"
        }
        "ThrottlingException" | "ServiceQuotaExceededException" => "rate_limit_error",
        "ModelNotReadyException" | "ServiceUnavailableException" => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": anthropic, "message": format!("{kind}: {message}")}})
}

/// A Bedrock error body (`{"message"}`, its type in `x-amzn-errortype`) in Anthropic's shape.
pub fn error_to_anthropic(body: &[u8], error_type: Option<&str>) -> Option<Bytes> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    let message = parsed
        .get("message")
        .or_else(|| parsed.get("Message"))
        .and_then(Value::as_str)?;
    serde_json::to_vec(&anthropic_error(
        error_type.unwrap_or("BedrockError"),
        message,
    ))
    .ok()
    .map(Bytes::from)
}

/// Unwraps an InvokeModel stream into Anthropic's SSE events, reading their usage on the way.
#[derive(Debug, Default)]
pub struct MessagesStream {
    frames: FrameReader,
    usage: StreamUsage,
    content_events: u64,
    stopped: bool,
    failed: bool,
}

impl MessagesStream {
    /// Takes a piece of the upstream body; returns Anthropic SSE events, possibly none.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        let (frames, unreadable) = self.frames.push(bytes);
        for message in &frames {
            self.frame(message, &mut out);
            if self.stopped {
                return out;
            }
        }
        if let Some(problem) = unreadable {
            self.fail("InvalidEventStream", &problem, &mut out);
        }
        out
    }

    fn frame(&mut self, message: &Message, out: &mut Vec<u8>) {
        let header = |name: &str| header(message, name);
        let payload: Value = serde_json::from_slice(message.payload()).unwrap_or(Value::Null);
        if header(":message-type").as_deref() == Some("exception") {
            let kind = header(":exception-type").unwrap_or_else(|| "BedrockError".into());
            let text = payload["message"]
                .as_str()
                .unwrap_or("the Bedrock stream failed");
            self.fail(&kind, text, out);
            return;
        }
        let Some(event) = payload["bytes"]
            .as_str()
            .and_then(|b| aws_smithy_types::base64::decode(b).ok())
        else {
            return;
        };
        let kind = serde_json::from_slice::<Value>(&event)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_owned))
            .unwrap_or_default();
        self.usage.push(&event);
        match kind.as_str() {
            "content_block_delta" => self.content_events = self.content_events.saturating_add(1),
            "message_stop" => self.stopped = true,
            _ => {}
        }
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&event);
        out.extend_from_slice(b"\n\n");
    }

    fn fail(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        self.failed = true;
        self.stopped = true;
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(anthropic_error(kind, message).to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.usage()
    }

    /// `message_stop` (or an exception) has arrived.
    pub fn saw_stop(&self) -> bool {
        self.stopped
    }

    pub fn content_events(&self) -> u64 {
        self.content_events
    }

    pub fn failed(&self) -> bool {
        self.failed
    }
}
