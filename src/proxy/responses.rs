//! OpenAI's Responses API (`POST /v1/responses`): bodies pass through both ways; what the
//! gateway reads is the usage, in the Responses shape (`input_tokens` with
//! `input_tokens_details.cached_tokens`, `output_tokens` with
//! `output_tokens_details.reasoning_tokens`), from the body or from the stream's final
//! `response.completed` event (`response.incomplete` and `response.failed` carry it too).

use bytes::Bytes;
use memchr::memmem;
use serde::Deserialize;

use super::sse::{SseSplitter, data_of};
use crate::pricing::{Usage, token_count};

/// Counts are read with [`token_count`], as for chat completions.
#[derive(Debug, Deserialize)]
struct ResponsesUsage {
    #[serde(default, deserialize_with = "token_count")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "token_count")]
    output_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Deserialize)]
struct InputDetails {
    #[serde(default, deserialize_with = "token_count")]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct OutputDetails {
    #[serde(default, deserialize_with = "token_count")]
    reasoning_tokens: Option<u64>,
}

impl From<ResponsesUsage> for Usage {
    /// `input_tokens` includes the cached ones and `output_tokens` the reasoning ones, as
    /// `prompt_tokens` and `completion_tokens` do in chat completions.
    fn from(u: ResponsesUsage) -> Usage {
        Usage {
            input_tokens: u.input_tokens.unwrap_or(0),
            cached_input_tokens: u
                .input_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            output_tokens: u.output_tokens.unwrap_or(0),
            reasoning_tokens: u
                .output_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            ..Usage::default()
        }
    }
}

/// A response object: only what the gateway reads.
#[derive(Debug, Deserialize)]
struct ResponseObject {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
}

/// The usage of a non-streaming response body, if it reports one.
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<ResponseObject>(body)
        .ok()?
        .usage
        .map(Usage::from)
}

/// A stream event that ends the response: `response.completed`, `.incomplete` or `.failed`.
#[derive(Debug, Deserialize)]
struct FinalEvent {
    #[serde(rename = "type")]
    kind: String,
    response: ResponseObject,
}

/// The types of the events that end a response.
const FINAL_TYPES: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Reads a Responses stream on its way to the client, which gets every byte as it came.
#[derive(Default)]
pub struct ResponsesScan {
    splitter: SseSplitter,
    pub usage: Option<Usage>,
    /// Delta events (text, reasoning, tool-call arguments): about a token each, for an
    /// estimate when a stream ends without its final event.
    pub content_events: u64,
    /// The final event arrived.
    pub done: bool,
    /// The upstream ended the response with `response.failed` or an `error` event.
    pub failed: bool,
}

impl ResponsesScan {
    pub fn push(&mut self, bytes: Bytes) -> Bytes {
        for event in self.splitter.push(&bytes) {
            if let Some(data) = data_of(&event) {
                self.scan(&data);
            }
        }
        bytes
    }

    fn scan(&mut self, data: &[u8]) {
        // Cheap for the common event: only a final or error event is parsed.
        if memmem::find(data, b".delta\"").is_some() {
            self.content_events += 1;
            return;
        }
        let is_final = FINAL_TYPES
            .iter()
            .any(|t| memmem::find(data, t.as_bytes()).is_some());
        if is_final && let Ok(event) = serde_json::from_slice::<FinalEvent>(data) {
            if !FINAL_TYPES.contains(&event.kind.as_str()) {
                return;
            }
            self.done = true;
            self.failed = event.kind == "response.failed";
            if let Some(usage) = event.response.usage {
                self.usage = Some(usage.into());
            }
            return;
        }
        if memmem::find(data, b"\"error\"").is_some()
            && let Ok(event) = serde_json::from_slice::<TypeOnly>(data)
            && event.kind == "error"
        {
            self.done = true;
            self.failed = true;
        }
    }
}

#[derive(Debug, Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const COMPLETED: &str = r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"completed","usage":{"input_tokens":120,"input_tokens_details":{"cached_tokens":100},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":150}}}"#;

    fn stream() -> String {
        format!(
            "event: response.created\ndata: {{\"type\":\"response.created\",\"response\":{{\"id\":\"resp_1\",\"usage\":null}}}}\n\n\
             event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"po\"}}\n\n\
             event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"ng\"}}\n\n\
             event: response.completed\ndata: {COMPLETED}\n\n"
        )
    }

    #[test]
    fn a_body_reports_cached_and_reasoning_tokens() {
        let body = format!(
            r#"{{"id":"resp_1","object":"response","output":[],"usage":{}}}"#,
            &COMPLETED[COMPLETED.find(r#"{"input_tokens""#).unwrap()..COMPLETED.len() - 2]
        );
        let usage = usage_from_body(body.as_bytes()).unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.cached_input_tokens,
                usage.output_tokens,
                usage.reasoning_tokens
            ),
            (120, 100, 30, 12)
        );
        assert_eq!(usage_from_body(br#"{"id":"resp_1","usage":null}"#), None);
        assert_eq!(usage_from_body(b"not json"), None);
    }

    #[test]
    fn a_stream_passes_through_and_its_final_event_carries_the_usage() {
        let stream = stream();
        for cut in [1, 40, 100, 200, stream.len() - 3] {
            let mut scan = ResponsesScan::default();
            let mut out = scan
                .push(Bytes::copy_from_slice(&stream.as_bytes()[..cut]))
                .to_vec();
            assert!(!scan.done);
            out.extend_from_slice(&scan.push(Bytes::copy_from_slice(&stream.as_bytes()[cut..])));
            assert_eq!(out, stream.as_bytes(), "cut at {cut}");
            assert!(scan.done && !scan.failed);
            assert_eq!(scan.content_events, 2);
            let usage = scan.usage.unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (120, 30));
        }
    }

    #[test]
    fn a_failed_response_or_an_error_event_is_an_upstream_failure() {
        let mut scan = ResponsesScan::default();
        scan.push(Bytes::from_static(
            b"data: {\"type\":\"response.failed\",\"response\":{\"id\":\"r\",\"error\":{\"code\":\"server_error\"},\"usage\":null}}\n\n",
        ));
        assert!(scan.done && scan.failed && scan.usage.is_none());
        let mut scan = ResponsesScan::default();
        scan.push(Bytes::from_static(
            b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\"}\n\n",
        ));
        assert!(scan.done && scan.failed);
        // A text that mentions a final type is still a delta.
        let mut scan = ResponsesScan::default();
        scan.push(Bytes::from_static(
            b"data: {\"type\":\"response.output_text.delta\",\"delta\":\"response.completed\"}\n\n",
        ));
        assert!(!scan.done);
        assert_eq!(scan.content_events, 1);
    }
}
