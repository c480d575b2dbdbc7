//! Anthropic Messages answers: the JSON message and the named SSE events of a stream, rendered
//! per request (the model, content and usage are spliced into fixed text).

use crate::body::{push_json_str, split_content};
use crate::config::AnthropicUsage;

const MESSAGE_ID: &str = "msg_mock";
const TOOL_USE_ID: &str = "toolu_mock";

/// What the answer says.
pub(crate) enum Content<'a> {
    Text(&'a str),
    /// A tool call; `input` is compact JSON, streamed as `input_json_delta` pieces.
    ToolUse {
        name: &'a str,
        input: String,
    },
}

pub(crate) struct Answer<'a> {
    pub model: &'a str,
    pub content: Content<'a>,
    /// `None` leaves usage out of every event and of the message.
    pub usage: Option<AnthropicUsage>,
    /// Written verbatim instead of `usage` wherever usage appears (`mock.raw_usage`).
    pub raw_usage: Option<&'a str>,
}

impl Answer<'_> {
    fn stop_reason(&self) -> &'static str {
        match self.content {
            Content::Text(_) => "end_turn",
            Content::ToolUse { .. } => "tool_use",
        }
    }

    /// `{"id":"msg_mock","type":"message",...}`.
    pub fn json(&self) -> Vec<u8> {
        let mut out = self.message_head();
        out.extend_from_slice(br#","content":["#);
        match &self.content {
            Content::Text(text) => {
                out.extend_from_slice(br#"{"type":"text","text":"#);
                push_json_str(&mut out, text);
                out.push(b'}');
            }
            Content::ToolUse { name, input } => {
                push_tool_use(&mut out, name, input);
            }
        }
        out.extend_from_slice(br#"],"stop_reason":""#);
        out.extend_from_slice(self.stop_reason().as_bytes());
        out.extend_from_slice(br#"","stop_sequence":null"#);
        if let Some(raw) = self.raw_usage {
            out.extend_from_slice(br#","usage":"#);
            out.extend_from_slice(raw.as_bytes());
        } else if let Some(u) = self.usage {
            out.extend_from_slice(br#","usage":"#);
            push_usage(&mut out, u, u.output_tokens);
        }
        out.push(b'}');
        out
    }

    /// The stream's events in order: `message_start`, `content_block_start`, `ping`, the
    /// first `content_limit` of `chunks` content deltas and, when `complete`,
    /// `content_block_stop`, `message_delta` and `message_stop`. The first delta is event 3.
    pub fn events(&self, chunks: usize, content_limit: usize, complete: bool) -> Vec<Vec<u8>> {
        let mut events = Vec::with_capacity(chunks + 6);

        let mut start = br#"{"type":"message_start","message":"#.to_vec();
        start.extend_from_slice(&self.message_head());
        start.extend_from_slice(br#","content":[],"stop_reason":null,"stop_sequence":null"#);
        if let Some(raw) = self.raw_usage {
            start.extend_from_slice(br#","usage":"#);
            start.extend_from_slice(raw.as_bytes());
        } else if let Some(u) = self.usage {
            // Like Anthropic, the start reports the input and a token or so of output.
            start.extend_from_slice(br#","usage":"#);
            push_usage(&mut start, u, u.output_tokens.min(1));
        }
        start.extend_from_slice(b"}}");
        events.push(event("message_start", &start));

        let mut block = br#"{"type":"content_block_start","index":0,"content_block":"#.to_vec();
        let pieces = match &self.content {
            Content::Text(text) => {
                block.extend_from_slice(br#"{"type":"text","text":""}"#);
                split_content(text, chunks)
            }
            Content::ToolUse { name, input } => {
                push_tool_use(&mut block, name, "{}");
                split_content(input, chunks)
            }
        };
        block.push(b'}');
        events.push(event("content_block_start", &block));
        events.push(event("ping", br#"{"type":"ping"}"#));

        let (delta_type, field): (&[u8], &[u8]) = match self.content {
            Content::Text(_) => (b"text_delta", b"text"),
            Content::ToolUse { .. } => (b"input_json_delta", b"partial_json"),
        };
        for piece in pieces.into_iter().take(content_limit) {
            let mut delta =
                br#"{"type":"content_block_delta","index":0,"delta":{"type":""#.to_vec();
            delta.extend_from_slice(delta_type);
            delta.extend_from_slice(br#"",""#);
            delta.extend_from_slice(field);
            delta.extend_from_slice(br#"":"#);
            push_json_str(&mut delta, piece);
            delta.extend_from_slice(b"}}");
            events.push(event("content_block_delta", &delta));
        }
        if !complete {
            return events;
        }

        events.push(event(
            "content_block_stop",
            br#"{"type":"content_block_stop","index":0}"#,
        ));
        let mut delta = br#"{"type":"message_delta","delta":{"stop_reason":""#.to_vec();
        delta.extend_from_slice(self.stop_reason().as_bytes());
        delta.extend_from_slice(br#"","stop_sequence":null}"#);
        if let Some(raw) = self.raw_usage {
            delta.extend_from_slice(br#","usage":"#);
            delta.extend_from_slice(raw.as_bytes());
        } else if let Some(u) = self.usage {
            delta.extend_from_slice(
                format!(r#","usage":{{"output_tokens":{}}}"#, u.output_tokens).as_bytes(),
            );
        }
        delta.push(b'}');
        events.push(event("message_delta", &delta));
        events.push(event("message_stop", br#"{"type":"message_stop"}"#));
        events
    }

    /// The message's opening fields, up to (not including) `content`.
    fn message_head(&self) -> Vec<u8> {
        let mut out = br#"{"id":""#.to_vec();
        out.extend_from_slice(MESSAGE_ID.as_bytes());
        out.extend_from_slice(br#"","type":"message","role":"assistant","model":"#);
        push_json_str(&mut out, self.model);
        out
    }
}

fn push_tool_use(out: &mut Vec<u8>, name: &str, input: &str) {
    out.extend_from_slice(br#"{"type":"tool_use","id":""#);
    out.extend_from_slice(TOOL_USE_ID.as_bytes());
    out.extend_from_slice(br#"","name":"#);
    push_json_str(out, name);
    out.extend_from_slice(br#","input":"#);
    out.extend_from_slice(input.as_bytes());
    out.push(b'}');
}

fn push_usage(out: &mut Vec<u8>, u: AnthropicUsage, output_tokens: u64) {
    let writes = u.cache_creation_5m.saturating_add(u.cache_creation_1h);
    out.extend_from_slice(
        format!(
            r#"{{"input_tokens":{},"output_tokens":{output_tokens},"cache_creation_input_tokens":{writes},"cache_read_input_tokens":{},"cache_creation":{{"ephemeral_5m_input_tokens":{},"ephemeral_1h_input_tokens":{}}}}}"#,
            u.input_tokens, u.cache_read_input_tokens, u.cache_creation_5m, u.cache_creation_1h
        )
        .as_bytes(),
    );
}

fn event(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + data.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}
