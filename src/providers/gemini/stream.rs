//! A `streamGenerateContent?alt=sse` stream translated, chunk by chunk, into OpenAI
//! `chat.completion.chunk` events: a role chunk, text and tool-call deltas, a chunk carrying
//! `finish_reason`, the usage chunk when the client asked for it, then `[DONE]`. Every Gemini
//! chunk is a whole `GenerateContentResponse`; its `usageMetadata` is cumulative, so the last
//! one seen is the request's. Gemini ends a stream by closing it: the chunk that carries a
//! `finishReason` is the last event.

use bytes::Bytes;
use serde_json::json;

use super::response::{ErrorBody, GenerateResponse, UsageMetadata, finish_reason};
use crate::pricing::Usage;
use crate::providers::chat_answer::{ChunkWriter, DONE, event};

#[derive(Debug)]
pub struct GeminiChunks {
    writer: ChunkWriter,
    include_usage: bool,
    started: bool,
    done: bool,
    tool_calls: usize,
    usage: Option<UsageMetadata>,
    content_events: u64,
    failed: bool,
}

impl GeminiChunks {
    /// `include_usage`: the client asked for the usage chunk (`stream_options.include_usage`).
    pub fn new(public_model: &str, include_usage: bool) -> GeminiChunks {
        GeminiChunks {
            writer: ChunkWriter::new("chatcmpl-gemini".to_owned(), public_model),
            include_usage,
            started: false,
            done: false,
            tool_calls: 0,
            usage: None,
            content_events: 0,
            failed: false,
        }
    }

    /// Takes one event's `data:` payload; returns complete OpenAI SSE events, possibly none.
    pub fn push_data(&mut self, data: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        // Every field of a chunk is optional, so an error parses as an empty chunk: look for
        // an error first.
        if memchr::memmem::find(data, b"\"error\"").is_some()
            && let Ok(error) = serde_json::from_slice::<ErrorBody>(data)
        {
            self.failed = true;
            self.done = true;
            out.push(event(&error.error.to_openai()));
            return out;
        }
        let Ok(chunk) = serde_json::from_slice::<GenerateResponse>(data) else {
            return out;
        };
        if let Some(id) = &chunk.response_id
            && !self.started
        {
            self.writer.set_id(format!("chatcmpl-{id}"));
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage);
        }
        if !self.started {
            self.started = true;
            out.push(
                self.writer
                    .chunk(json!({"role": "assistant", "content": ""}), None),
            );
        }
        let candidate = chunk.candidates.first();
        for part in candidate
            .and_then(|c| c.content.as_ref())
            .map_or(&[][..], |c| &c.parts[..])
        {
            if let Some(call) = &part.function_call {
                let mut entry = call.to_openai(self.tool_calls);
                entry["index"] = json!(self.tool_calls);
                self.tool_calls += 1;
                self.content_events = self.content_events.saturating_add(1);
                out.push(self.writer.chunk(json!({ "tool_calls": [entry] }), None));
            } else if let Some(text) = part
                .text
                .as_deref()
                .filter(|t| !t.is_empty() && part.thought != Some(true))
            {
                self.content_events = self.content_events.saturating_add(1);
                out.push(self.writer.chunk(json!({ "content": text }), None));
            }
        }
        let blocked = chunk
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        let finish = match candidate.and_then(|c| c.finish_reason.as_deref()) {
            Some(reason) => Some(finish_reason(reason, self.tool_calls > 0)),
            None if blocked => Some("content_filter"),
            None => None,
        };
        if let Some(finish) = finish {
            self.done = true;
            out.push(self.writer.chunk(json!({}), Some(finish)));
            if self.include_usage
                && let Some(usage) = self.usage
            {
                out.push(self.writer.usage_chunk(usage.to_openai()));
            }
            out.push(Bytes::from_static(DONE));
        }
        out
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }

    /// The chunk with the finish reason (or an error) has arrived.
    pub fn saw_stop(&self) -> bool {
        self.done
    }

    /// Text and tool-call deltas sent: about a token each, for an estimate when a stream ends
    /// without usage.
    pub fn content_events(&self) -> u64 {
        self.content_events
    }

    /// The stream carried an error instead of an answer.
    pub fn failed(&self) -> bool {
        self.failed
    }
}
