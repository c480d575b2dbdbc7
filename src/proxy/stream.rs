//! Relaying a streamed (SSE) response: events go to the client as they arrive, usage is read
//! on the way, and the request is recorded and settled however the stream ends. What is
//! forwarded depends on the dialect: OpenAI streams pass through (minus the usage chunk the
//! gateway asked for on a client's behalf), Anthropic streams pass through, and Anthropic
//! streams behind the OpenAI chat endpoint are translated event by event.
//!
//! The piece that carries the stream's last event (`data: [DONE]`, Anthropic's
//! `message_stop`) is held back until the request is recorded in the ledger's journal, and
//! the body ends only after that, so a client that saw its stream complete is always in the
//! ledger, even if the gateway crashes right after.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::exchange::{Exchange, Outcome};
use super::finish::{estimate, record, record_and_settle, settle, with_request_id};
use super::headroom;
use super::operation::Dialect;
use super::responses::ResponsesScan;
use super::sse::{SseSplitter, data_of};
use super::state::ProxyState;
use super::upstream::{BodyReader, ChunkError};
use super::usage;
use crate::pricing::Usage;
use crate::providers::anthropic::{ChunkTranslator, StreamUsage};
use crate::providers::bedrock::BedrockChunks;
use crate::providers::bedrock::messages::MessagesStream;
use crate::providers::gemini::GeminiChunks;

/// Pieces buffered between the upstream and a slow client before reading pauses.
const CLIENT_BUFFER: usize = 32;

type Piece = Result<Bytes, std::io::Error>;

enum End {
    Complete,
    ClientGone,
    UpstreamTimeout,
    UpstreamFailed,
}

pub async fn relay(
    state: ProxyState,
    mut exchange: Exchange,
    mut reader: BodyReader,
    dialect: Dialect,
    reply: oneshot::Sender<Response>,
) {
    let (tx, rx) = mpsc::channel::<Piece>(CLIENT_BUFFER);
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    }));
    let mut out = Response::new(body);
    *out.status_mut() = StatusCode::OK;
    let headers = out.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headroom::add(&state, &exchange, headers);
    if reply
        .send(with_request_id(out, exchange.request_id))
        .is_err()
    {
        // The client left before the headers; the upstream is dropped with `response`.
        let usage = estimate(&exchange, 0);
        let outcome = Outcome {
            status: 499,
            error_type: Some("client_disconnected"),
            usage,
            usage_estimated: true,
            refused_by: None,
        };
        let event = exchange.event(outcome);
        record_and_settle(&state, &mut exchange, event).await;
        return;
    }

    let mut transform = Transform::new(dialect, &exchange);
    // The stream's last event and whatever follows it, released once the event is recorded.
    let mut held: Vec<u8> = Vec::new();
    let end = loop {
        let piece = tokio::select! {
            biased;
            _ = tx.closed() => break End::ClientGone,
            piece = reader.next() => piece,
        };
        match piece {
            Ok(Some(bytes)) => {
                let forward = transform.push(bytes);
                if transform.finished() {
                    held.extend_from_slice(&forward);
                } else if !forward.is_empty() && tx.send(Ok(forward)).await.is_err() {
                    break End::ClientGone;
                }
            }
            Ok(None) if transform.upstream_error() => break End::UpstreamFailed,
            Ok(None) => break End::Complete,
            Err(ChunkError::Timeout) => break End::UpstreamTimeout,
            Err(ChunkError::Failed) => break End::UpstreamFailed,
        }
    };
    let (status, error_type) = match end {
        End::Complete => (200, None),
        End::ClientGone => (499, Some("client_disconnected")),
        End::UpstreamTimeout => (504, Some("upstream_timeout")),
        End::UpstreamFailed => (502, Some("upstream_interrupted")),
    };
    let complete = matches!(end, End::Complete);
    if !complete {
        release(&tx, held).await;
        held = Vec::new();
        if matches!(end, End::UpstreamTimeout | End::UpstreamFailed) {
            // Cut the client's body too, so an interrupted stream cannot look complete.
            let _ = tx
                .send(Err(std::io::Error::other("upstream stream interrupted")))
                .await;
        }
    }
    let (mut usage, mut usage_estimated) = match transform.usage() {
        Some(usage) => (usage, false),
        None => (estimate(&exchange, transform.content_events()), true),
    };
    // A stream cut short may have reported its usage before the end (Anthropic's
    // message_start): what was produced since counts too, about a token per content event.
    if !complete && transform.content_events() > usage.output_tokens {
        usage.output_tokens = transform.content_events();
        usage_estimated = true;
    }
    let event = exchange.event(Outcome {
        status,
        error_type,
        usage,
        usage_estimated,
        refused_by: None,
    });
    let charge = record(&state, event).await;
    // Only now may the client see its stream end: the last event, then the end of the body.
    release(&tx, held).await;
    drop(tx);
    settle(&mut exchange, charge).await;
}

async fn release(tx: &mpsc::Sender<Piece>, held: Vec<u8>) {
    if !held.is_empty() {
        let _ = tx.send(Ok(Bytes::from(held))).await;
    }
}

/// What happens to the upstream's bytes on the way to the client.
enum Transform {
    OpenAi(OpenAiScan),
    Responses(ResponsesScan),
    Bedrock(BedrockChunks),
    BedrockMessages(MessagesStream),
    Gemini {
        splitter: SseSplitter,
        chunks: GeminiChunks,
    },
    Anthropic {
        splitter: SseSplitter,
        usage: StreamUsage,
        content_events: u64,
        stopped: bool,
    },
    Translate {
        splitter: SseSplitter,
        translator: ChunkTranslator,
    },
}

impl Transform {
    fn new(dialect: Dialect, exchange: &Exchange) -> Transform {
        match dialect {
            Dialect::OpenAi => Transform::OpenAi(OpenAiScan {
                hide_usage_chunk: !exchange.client_wants_usage,
                ..OpenAiScan::default()
            }),
            Dialect::Anthropic => Transform::Anthropic {
                splitter: SseSplitter::default(),
                usage: StreamUsage::default(),
                content_events: 0,
                stopped: false,
            },
            Dialect::Responses => Transform::Responses(ResponsesScan::default()),
            Dialect::AnthropicViaBedrock => Transform::BedrockMessages(MessagesStream::default()),
            Dialect::ChatViaBedrock => Transform::Bedrock(BedrockChunks::new(
                &exchange.model,
                exchange.client_wants_usage,
            )),
            Dialect::ChatViaGemini => Transform::Gemini {
                splitter: SseSplitter::default(),
                chunks: GeminiChunks::new(&exchange.model, exchange.client_wants_usage),
            },
            Dialect::ChatViaAnthropic => Transform::Translate {
                splitter: SseSplitter::default(),
                translator: ChunkTranslator::new(&exchange.model, exchange.client_wants_usage),
            },
        }
    }

    /// Takes a piece of the upstream body; returns what to forward to the client.
    fn push(&mut self, bytes: Bytes) -> Bytes {
        match self {
            Transform::OpenAi(scan) => scan.push(bytes),
            Transform::Responses(scan) => scan.push(bytes),
            Transform::Bedrock(chunks) => Bytes::from(chunks.push(&bytes).concat()),
            Transform::BedrockMessages(unwrap) => Bytes::from(unwrap.push(&bytes)),
            Transform::Gemini { splitter, chunks } => {
                let mut out = Vec::new();
                for event in splitter.push(&bytes) {
                    if let Some(data) = data_of(&event) {
                        for piece in chunks.push_data(&data) {
                            out.extend_from_slice(&piece);
                        }
                    }
                }
                Bytes::from(out)
            }
            Transform::Anthropic {
                splitter,
                usage,
                content_events,
                stopped,
            } => {
                for event in splitter.push(&bytes) {
                    if let Some(data) = data_of(&event) {
                        if memchr::memmem::find(&data, b"content_block_delta").is_some() {
                            *content_events += 1;
                        }
                        if memchr::memmem::find(&data, b"\"message_stop\"").is_some() {
                            *stopped = true;
                        }
                        usage.push(&data);
                    }
                }
                // Native streams pass through exactly as they arrived.
                bytes
            }
            Transform::Translate {
                splitter,
                translator,
            } => {
                let mut out = Vec::new();
                for event in splitter.push(&bytes) {
                    for piece in translator.push_sse_event(&event) {
                        out.extend_from_slice(&piece);
                    }
                }
                Bytes::from(out)
            }
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            Transform::OpenAi(scan) => scan.usage,
            Transform::Responses(scan) => scan.usage,
            Transform::Bedrock(chunks) => chunks.usage(),
            Transform::BedrockMessages(unwrap) => unwrap.usage(),
            Transform::Gemini { chunks, .. } => chunks.usage(),
            Transform::Anthropic { usage, .. } => usage.usage(),
            Transform::Translate { translator, .. } => translator.usage(),
        }
    }

    fn content_events(&self) -> u64 {
        match self {
            Transform::OpenAi(scan) => scan.content_chunks,
            Transform::Responses(scan) => scan.content_events,
            Transform::Bedrock(chunks) => chunks.content_events(),
            Transform::BedrockMessages(unwrap) => unwrap.content_events(),
            Transform::Gemini { chunks, .. } => chunks.content_events(),
            Transform::Anthropic { content_events, .. } => *content_events,
            Transform::Translate { translator, .. } => translator.content_events(),
        }
    }

    /// The stream's last event has arrived: `[DONE]`, or Anthropic's `message_stop`.
    fn finished(&self) -> bool {
        match self {
            Transform::OpenAi(scan) => scan.done,
            Transform::Responses(scan) => scan.done,
            Transform::Bedrock(chunks) => chunks.saw_stop(),
            Transform::BedrockMessages(unwrap) => unwrap.saw_stop(),
            Transform::Gemini { chunks, .. } => chunks.saw_stop(),
            Transform::Anthropic { stopped, .. } => *stopped,
            Transform::Translate { translator, .. } => translator.saw_stop(),
        }
    }

    /// The upstream reported an error inside the stream.
    fn upstream_error(&self) -> bool {
        match self {
            Transform::Translate { translator, .. } => translator.error_type().is_some(),
            Transform::Responses(scan) => scan.failed,
            Transform::Bedrock(chunks) => chunks.failed(),
            Transform::BedrockMessages(unwrap) => unwrap.failed(),
            Transform::Gemini { chunks, .. } => chunks.failed(),
            _ => false,
        }
    }
}

#[derive(Default)]
struct OpenAiScan {
    splitter: SseSplitter,
    hide_usage_chunk: bool,
    usage: Option<Usage>,
    content_chunks: u64,
    /// `data: [DONE]` arrived.
    done: bool,
}

impl OpenAiScan {
    fn push(&mut self, bytes: Bytes) -> Bytes {
        let events = self.splitter.push(&bytes);
        let mut keep = Vec::with_capacity(events.len());
        for event in events {
            let mut forward = true;
            if let Some(data) = data_of(&event) {
                if data.trim_ascii() == b"[DONE]" {
                    self.done = true;
                }
                if usage::chunk_has_content(&data) {
                    self.content_chunks += 1;
                }
                if let Some(found) = usage::from_stream_chunk(&data) {
                    self.usage = Some(found.usage);
                    if found.usage_only && self.hide_usage_chunk {
                        forward = false;
                    }
                }
            }
            if forward {
                keep.push(event);
            }
        }
        if !self.hide_usage_chunk {
            // Nothing is held back: forward the bytes exactly as they arrived.
            return bytes;
        }
        Bytes::from(keep.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"po\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"ng\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";

    fn run(hide: bool, cut: usize) -> (Vec<u8>, OpenAiScan) {
        let mut scan = OpenAiScan {
            hide_usage_chunk: hide,
            ..OpenAiScan::default()
        };
        let mut out = scan.push(Bytes::copy_from_slice(&STREAM[..cut])).to_vec();
        out.extend_from_slice(&scan.push(Bytes::copy_from_slice(&STREAM[cut..])));
        (out, scan)
    }

    #[test]
    fn hides_only_the_usage_chunk_when_asked() {
        for cut in [1, 30, 60, 100, STREAM.len() - 1] {
            let (out, scan) = run(true, cut);
            let text = String::from_utf8(out).unwrap();
            assert!(!text.contains("usage"), "{text}");
            assert!(
                text.contains("\"po\"")
                    && text.contains("\"ng\"")
                    && text.ends_with("data: [DONE]\n\n")
            );
            assert_eq!(scan.usage.unwrap().output_tokens, 2);
            assert_eq!(scan.content_chunks, 2);
            assert!(scan.done, "the last event is recognised");
        }
    }

    #[test]
    fn forwards_everything_when_client_asked_for_usage() {
        let (out, scan) = run(false, 17);
        assert_eq!(out, STREAM);
        assert_eq!(scan.usage.unwrap().input_tokens, 10);
    }
}
