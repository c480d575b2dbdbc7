//! A Messages event stream translated, event by event, into OpenAI `chat.completion.chunk`
//! events, in the order OpenAI sends them: a role chunk, content and tool-call deltas, a chunk
//! carrying `finish_reason`, the usage chunk when the client asked for it, then `[DONE]`.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::response::{ErrorDetail, finish_reason, openai_error};
use super::sse::parse_event;
use super::usage::{AnthropicUsage, OpenAiUsage, StreamUsage};
use crate::pricing::Usage;

const DONE: &[u8] = b"data: [DONE]\n\n";

/// One Anthropic event's payload. The fields of every event type are optional here; which ones
/// are read depends on the event's name.
#[derive(Deserialize)]
struct EventData<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    message: Option<StartMessage>,
    index: Option<u64>,
    #[serde(borrow)]
    content_block: Option<StartBlock<'a>>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    usage: Option<AnthropicUsage>,
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct StartMessage {
    id: Option<String>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct StartBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// A `content_block_delta`'s or a `message_delta`'s `delta`.
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    /// `null` on every chunk but the last when the client asked for usage, as OpenAI does.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<OpenAiUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: ChunkDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Translates one response stream. Feed it every upstream event in order; write what it
/// returns to the client as it comes.
#[derive(Debug)]
pub struct ChunkTranslator {
    public_model: String,
    include_usage: bool,
    id: String,
    created: i64,
    started: bool,
    finished: bool,
    done: bool,
    /// Content block index of each tool call, in tool-call order (OpenAI numbers tool calls
    /// from 0, Anthropic numbers all content blocks).
    tool_blocks: Vec<u64>,
    usage: StreamUsage,
    content_events: u64,
    error_type: Option<String>,
}

impl ChunkTranslator {
    /// `include_usage`: the client asked for the usage chunk (`stream_options.include_usage`).
    pub fn new(public_model: &str, include_usage: bool) -> ChunkTranslator {
        Self::new_at(public_model, include_usage, chrono::Utc::now().timestamp())
    }

    fn new_at(public_model: &str, include_usage: bool, created: i64) -> ChunkTranslator {
        ChunkTranslator {
            public_model: public_model.to_owned(),
            include_usage,
            id: String::new(),
            created,
            started: false,
            finished: false,
            done: false,
            tool_blocks: Vec::new(),
            usage: StreamUsage::default(),
            content_events: 0,
            error_type: None,
        }
    }

    /// Takes the raw bytes of one SSE event (as a splitter yields it) and translates it.
    pub fn push_sse_event(&mut self, raw: &[u8]) -> Vec<Bytes> {
        let event = parse_event(raw);
        match event.data {
            Some(data) => self.push_event(event.event.unwrap_or(""), &data),
            None => Vec::new(),
        }
    }

    /// Takes one Anthropic event: its `event:` name (when empty, the payload's `type` is used)
    /// and its `data:` payload. Returns complete OpenAI SSE events (`data: ...\n\n`), possibly
    /// none. Events that cannot be parsed and unknown event types produce nothing.
    pub fn push_event(&mut self, event_type: &str, data: &[u8]) -> Vec<Bytes> {
        let Ok(event) = serde_json::from_slice::<EventData<'_>>(data) else {
            return Vec::new();
        };
        let kind = match (event_type, event.kind.as_deref()) {
            ("", Some(kind)) => kind,
            (name, _) => name,
        };
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                if let Some(message) = event.message {
                    if let Some(id) = message.id {
                        self.id = id;
                    }
                    if let Some(usage) = &message.usage {
                        self.usage.record(usage);
                    }
                }
                self.start(&mut out);
            }
            "content_block_start" => {
                self.start(&mut out);
                let Some(block) = event.content_block else {
                    return out;
                };
                match block.kind.as_ref() {
                    "text" => {
                        if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            self.content_events = self.content_events.saturating_add(1);
                            self.content(&mut out, text);
                        }
                    }
                    "tool_use" => {
                        let index = self.tool_blocks.len();
                        self.tool_blocks.push(event.index.unwrap_or(0));
                        self.content_events = self.content_events.saturating_add(1);
                        let delta = ToolCallDelta {
                            index,
                            id: Some(block.id.as_deref().unwrap_or("")),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(block.name.as_deref().unwrap_or("")),
                                arguments: "",
                            },
                        };
                        self.tool_delta(&mut out, delta);
                    }
                    // Thinking and server-tool blocks have no OpenAI equivalent.
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.start(&mut out);
                let Some(delta) = event.delta else {
                    return out;
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            self.content_events = self.content_events.saturating_add(1);
                            self.content(&mut out, text);
                        }
                    }
                    Some("input_json_delta") => {
                        let partial = delta.partial_json.as_deref().unwrap_or("");
                        let block = event.index.unwrap_or(0);
                        let tool = self.tool_blocks.iter().position(|b| *b == block);
                        if let (Some(index), false) = (tool, partial.is_empty()) {
                            self.content_events = self.content_events.saturating_add(1);
                            let delta = ToolCallDelta {
                                index,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: partial,
                                },
                            };
                            self.tool_delta(&mut out, delta);
                        }
                    }
                    // Thinking is billed as output, so it counts towards an estimate.
                    Some("thinking_delta") => {
                        self.content_events = self.content_events.saturating_add(1)
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = &event.usage {
                    self.usage.record(usage);
                }
                if let Some(reason) = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    self.start(&mut out);
                    self.finish(&mut out, finish_reason(reason));
                }
            }
            "message_stop" => {
                self.usage.stop();
                self.start(&mut out);
                self.finish(&mut out, "stop");
                if self.include_usage
                    && let Some(usage) = self.usage.usage()
                {
                    let usage = OpenAiUsage::from(&usage);
                    out.extend(self.frame(&[], Some(Some(usage))));
                }
                if !self.done {
                    self.done = true;
                    out.push(Bytes::from_static(DONE));
                }
            }
            "error" => {
                let detail = event.error.unwrap_or(ErrorDetail {
                    kind: "api_error".to_owned(),
                    message: "upstream stream error".to_owned(),
                });
                if let Some(body) = openai_error(&detail) {
                    out.push(data_event(&body));
                }
                self.error_type = Some(detail.kind);
            }
            // `ping` and event types added later.
            _ => {}
        }
        out
    }

    /// The usage reported so far (reusing [`StreamUsage`]); `None` until an event reported any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.usage()
    }

    /// Whether `message_stop` arrived, i.e. the stream completed.
    pub fn saw_stop(&self) -> bool {
        self.usage.saw_stop()
    }

    /// Content-bearing events seen (text, tool arguments, thinking): about one output token
    /// each, for estimating a stream that ends without usage.
    pub fn content_events(&self) -> u64 {
        self.content_events
    }

    /// Whether the answer produced any content.
    pub fn produced_content(&self) -> bool {
        self.content_events > 0
    }

    /// The `error.type` of an `error` event the upstream sent mid-stream (`overloaded_error`, ..).
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }

    /// The role chunk, once, before anything else.
    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let delta = ChunkDelta {
            role: Some("assistant"),
            content: Some(""),
            tool_calls: None,
        };
        out.extend(self.choice(delta, None));
    }

    /// The chunk with `finish_reason`, once.
    fn finish(&mut self, out: &mut Vec<Bytes>, reason: &'static str) {
        if self.finished {
            return;
        }
        self.finished = true;
        out.extend(self.choice(ChunkDelta::default(), Some(reason)));
    }

    fn content(&self, out: &mut Vec<Bytes>, text: &str) {
        let delta = ChunkDelta {
            content: Some(text),
            ..ChunkDelta::default()
        };
        out.extend(self.choice(delta, None));
    }

    fn tool_delta(&self, out: &mut Vec<Bytes>, tool: ToolCallDelta<'_>) {
        let delta = ChunkDelta {
            tool_calls: Some([tool]),
            ..ChunkDelta::default()
        };
        out.extend(self.choice(delta, None));
    }

    fn choice(&self, delta: ChunkDelta<'_>, finish_reason: Option<&'static str>) -> Option<Bytes> {
        let choices = [ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }];
        self.frame(&choices, self.include_usage.then_some(None))
    }

    /// `data: {chunk}\n\n`. Serialising these types into a `Vec` cannot fail; `None` if it did.
    fn frame(
        &self,
        choices: &[ChunkChoice<'_>],
        usage: Option<Option<OpenAiUsage>>,
    ) -> Option<Bytes> {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.public_model,
            choices,
            usage,
        };
        serde_json::to_vec(&chunk)
            .ok()
            .map(|json| data_event(&json))
    }
}

fn data_event(json: &[u8]) -> Bytes {
    let mut event = Vec::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(json);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
