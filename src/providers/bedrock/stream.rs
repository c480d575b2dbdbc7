//! A ConverseStream answer (AWS event-stream frames, decoded by `aws-smithy-eventstream`)
//! translated into OpenAI `chat.completion.chunk` events: a role chunk, text and tool-call
//! deltas, the finish chunk at `messageStop`, then, at the `metadata` event that carries the
//! usage, the usage chunk (when the client asked for it) and `[DONE]`.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Buf, Bytes, BytesMut};
use serde_json::{Value, json};

use super::response::{ConverseUsage, finish_reason, openai_error};
use crate::pricing::Usage;

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Most bytes of frames not yet complete kept between pieces: a frame is at most 16 MiB.
const MAX_PENDING: usize = 16 * 1024 * 1024 + 1024;

#[derive(Debug)]
pub struct BedrockChunks {
    public_model: String,
    include_usage: bool,
    id: String,
    created: i64,
    pending: BytesMut,
    decoder: MessageFrameDecoder,
    started: bool,
    stopped: bool,
    done: bool,
    failed: bool,
    /// Content block index → tool-call index, for the tool calls' deltas.
    tool_blocks: Vec<u64>,
    usage: Option<ConverseUsage>,
    content_events: u64,
}

impl BedrockChunks {
    pub fn new(public_model: &str, include_usage: bool) -> BedrockChunks {
        BedrockChunks {
            public_model: public_model.to_owned(),
            include_usage,
            id: format!("chatcmpl-bedrock-{}", uuid::Uuid::now_v7().simple()),
            created: chrono::Utc::now().timestamp(),
            pending: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            started: false,
            stopped: false,
            done: false,
            failed: false,
            tool_blocks: Vec::new(),
            usage: None,
            content_events: 0,
        }
    }

    /// Takes a piece of the upstream body; returns complete OpenAI SSE events, possibly none.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.pending.extend_from_slice(bytes);
        loop {
            match self.decoder.decode_frame(&mut self.pending) {
                Ok(DecodedFrame::Complete(message)) => self.message(&message, &mut out),
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => {
                    self.fail(
                        "InvalidEventStream",
                        &format!("the upstream's event stream is not valid: {e}"),
                        &mut out,
                    );
                    break;
                }
            }
            if self.done {
                break;
            }
        }
        if self.pending.len() > MAX_PENDING {
            self.fail(
                "InvalidEventStream",
                "an event-stream frame is larger than 16 MiB",
                &mut out,
            );
            self.pending.advance(self.pending.len());
        }
        out
    }

    fn message(&mut self, message: &Message, out: &mut Vec<Bytes>) {
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_owned())
        };
        let payload: Value = serde_json::from_slice(message.payload()).unwrap_or(Value::Null);
        if header(":message-type").as_deref() == Some("exception") {
            let kind = header(":exception-type").unwrap_or_else(|| "BedrockError".into());
            let text = payload
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the Bedrock stream failed")
                .to_owned();
            self.fail(&kind, &text, out);
            return;
        }
        let event = header(":event-type").unwrap_or_default();
        match event.as_str() {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                self.start(out);
                if let Some(tool_use) = payload.pointer("/start/toolUse") {
                    let index = self.tool_blocks.len();
                    self.tool_blocks
                        .push(payload["contentBlockIndex"].as_u64().unwrap_or(0));
                    self.content_events = self.content_events.saturating_add(1);
                    let call = json!({"index": index, "id": tool_use["toolUseId"], "type": "function",
                                      "function": {"name": tool_use["name"], "arguments": ""}});
                    out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            "contentBlockDelta" => {
                self.start(out);
                let delta = &payload["delta"];
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    self.content_events = self.content_events.saturating_add(1);
                    out.push(self.chunk(json!({ "content": text }), None));
                } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str)
                {
                    let block = payload["contentBlockIndex"].as_u64().unwrap_or(0);
                    let index = self
                        .tool_blocks
                        .iter()
                        .position(|b| *b == block)
                        .unwrap_or(0);
                    self.content_events = self.content_events.saturating_add(1);
                    let call = json!({"index": index, "function": {"arguments": input}});
                    out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            "messageStop" => {
                self.start(out);
                self.stopped = true;
                let reason = payload["stopReason"].as_str().unwrap_or("end_turn");
                out.push(self.chunk(json!({}), Some(finish_reason(reason))));
            }
            "metadata" => {
                if let Ok(usage) = serde_json::from_value::<ConverseUsage>(payload["usage"].clone())
                {
                    self.usage = Some(usage);
                }
                if self.stopped {
                    self.finish(out);
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.include_usage
            && let Some(usage) = self.usage
        {
            let mut chunk = self.envelope(Value::Array(Vec::new()));
            chunk["usage"] = usage.to_openai();
            out.push(event(&chunk));
        }
        out.push(Bytes::from_static(DONE));
        self.done = true;
    }

    fn fail(&mut self, kind: &str, message: &str, out: &mut Vec<Bytes>) {
        self.failed = true;
        self.done = true;
        out.push(event(&openai_error(kind, message)));
    }

    fn envelope(&self, choices: Value) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.public_model, "choices": choices,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        event(&self.envelope(json!([{
            "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish,
        }])))
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }

    /// The answer is over: its `metadata` (after `messageStop`), or an exception.
    pub fn saw_stop(&self) -> bool {
        self.done
    }

    pub fn content_events(&self) -> u64 {
        self.content_events
    }

    pub fn failed(&self) -> bool {
        self.failed
    }
}

fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}
