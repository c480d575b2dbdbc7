//! A ConverseStream answer (AWS event-stream frames, decoded by `aws-smithy-eventstream`)
//! translated into OpenAI `chat.completion.chunk` events: a role chunk, text and tool-call
//! deltas, the finish chunk at `messageStop`, then, at the `metadata` event that carries the
//! usage, the usage chunk (when the client asked for it) and `[DONE]`.

use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use serde_json::{Value, json};

use super::frames::{FrameReader, header};
use super::response::{ConverseUsage, finish_reason, openai_error};
use crate::pricing::Usage;
use crate::providers::chat_answer::{ChunkWriter, DONE, event};

#[derive(Debug)]
pub struct BedrockChunks {
    writer: ChunkWriter,
    include_usage: bool,
    frames: FrameReader,
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
            writer: ChunkWriter::new(
                format!("chatcmpl-bedrock-{}", uuid::Uuid::now_v7().simple()),
                public_model,
            ),
            include_usage,
            frames: FrameReader::default(),
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
        let (frames, unreadable) = self.frames.push(bytes);
        for message in &frames {
            self.message(message, &mut out);
            if self.done {
                return out;
            }
        }
        if let Some(problem) = unreadable {
            self.fail("InvalidEventStream", &problem, &mut out);
        }
        out
    }

    fn message(&mut self, message: &Message, out: &mut Vec<Bytes>) {
        let header = |name: &str| header(message, name);
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
                    out.push(self.writer.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            "contentBlockDelta" => {
                self.start(out);
                let delta = &payload["delta"];
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    self.content_events = self.content_events.saturating_add(1);
                    out.push(self.writer.chunk(json!({ "content": text }), None));
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
                    out.push(self.writer.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            "messageStop" => {
                self.start(out);
                self.stopped = true;
                let reason = payload["stopReason"].as_str().unwrap_or("end_turn");
                out.push(self.writer.chunk(json!({}), Some(finish_reason(reason))));
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
            out.push(
                self.writer
                    .chunk(json!({"role": "assistant", "content": ""}), None),
            );
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.include_usage
            && let Some(usage) = self.usage
        {
            out.push(self.writer.usage_chunk(usage.to_openai()));
        }
        out.push(Bytes::from_static(DONE));
        self.done = true;
    }

    fn fail(&mut self, kind: &str, message: &str, out: &mut Vec<Bytes>) {
        self.failed = true;
        self.done = true;
        out.push(event(&openai_error(kind, message)));
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
