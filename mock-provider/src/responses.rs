//! `POST /v1/responses` (OpenAI's Responses API), steered by the same `mock` object as chat
//! completions (`usage` in chat's names: `prompt_tokens` is `input_tokens`, `completion_tokens`
//! is `output_tokens`), and `GET`/`DELETE /v1/responses/{id}` of what it stored.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::body::{DEFAULT_MODEL, split_content};
use crate::chat::Model;
use crate::config::{MockOverrides, MockUsage};
use crate::exchange::{Flavor, delay_or_error, error, parse_body, receive, with_content_type};
use crate::sse::{self, Script};

/// Index of the first text delta among the stream's events.
const FIRST_CONTENT: usize = 4;

#[derive(Deserialize)]
struct ResponsesRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Model<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

pub(crate) async fn create(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let incoming = match receive(&shared, request, Flavor::OpenAi).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let config = &shared.config;
    let request: ResponsesRequest<'_> =
        match parse_body(&incoming.body, Flavor::OpenAi, config.delay_ms).await {
            Ok(request) => request,
            Err(response) => return response,
        };
    let overrides = request.mock.as_ref();
    let get = |field, default| MockOverrides::number(overrides, field, default);
    if let Some(answer) = delay_or_error(overrides, &incoming, config, Flavor::OpenAi).await {
        return answer;
    }

    let usage = MockOverrides::reported_usage(overrides, config.usage);
    let content = MockOverrides::content(overrides, config);
    let model = request.model.as_ref().map_or(DEFAULT_MODEL, |m| &m.0);
    let id = format!("resp_mock{:016x}", incoming.n);
    let message_id = format!("msg_mock{:016x}", incoming.n);
    let done = response_object(&id, &message_id, model, content, usage, "completed");
    if request.store != Some(false) {
        shared.store_response(&id, done.to_string());
    }

    if request.stream != Some(true) {
        return with_content_type(Body::from(done.to_string()), "application/json");
    }
    let chunks = overrides.and_then(|o| o.chunks).unwrap_or(config.chunks);
    let cut_after = overrides.and_then(|o| o.cut_after);
    let pieces = split_content(content, chunks.max(1));
    let sent = cut_after.map_or(pieces.len(), |cut| cut.min(pieces.len()));
    let started = response_object(&id, &message_id, model, "", None, "in_progress");
    let mut events = vec![
        event("response.created", json!({"response": started})),
        event("response.in_progress", json!({"response": started})),
        event(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "message", "id": message_id, "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        event(
            "response.content_part.added",
            json!({"item_id": message_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for piece in &pieces[..sent] {
        events.push(event(
            "response.output_text.delta",
            json!({"item_id": message_id, "output_index": 0, "content_index": 0, "delta": piece}),
        ));
    }
    if cut_after.is_none() {
        let part = json!({"type": "output_text", "text": content, "annotations": []});
        events.push(event(
            "response.output_text.done",
            json!({"item_id": message_id, "output_index": 0, "content_index": 0, "text": content}),
        ));
        events.push(event(
            "response.content_part.done",
            json!({"item_id": message_id, "output_index": 0, "content_index": 0, "part": part}),
        ));
        events.push(event(
            "response.output_item.done",
            json!({"output_index": 0, "item": done["output"][0]}),
        ));
        events.push(event("response.completed", json!({"response": done})));
    }
    let events = events
        .into_iter()
        .enumerate()
        .map(|(n, (kind, mut data))| {
            data["type"] = json!(kind);
            data["sequence_number"] = json!(n);
            Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
        })
        .collect();
    let hang = if sent > 0 { get(|o| o.hang_ms, 0) } else { 0 };
    sse::response(Script {
        events,
        chunk_delay: Duration::from_millis(get(|o| o.chunk_delay_ms, config.chunk_delay_ms)),
        hang: Duration::from_millis(hang),
        first_content: FIRST_CONTENT,
        abort: cut_after.is_some(),
    })
}

fn event(kind: &'static str, data: Value) -> (&'static str, Value) {
    (kind, data)
}

/// A response object as OpenAI writes one, with its usage (`null` while in progress).
fn response_object(
    id: &str,
    message_id: &str,
    model: &str,
    text: &str,
    usage: Option<MockUsage>,
    status: &str,
) -> Value {
    let output = if status == "completed" {
        json!([{"type": "message", "id": message_id, "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}])
    } else {
        json!([])
    };
    let usage = usage.map(|u| {
        json!({
            "input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.prompt_tokens.saturating_add(u.completion_tokens),
        })
    });
    json!({
        "id": id, "object": "response", "created_at": 1_700_000_000, "status": status,
        "error": null, "incomplete_details": null, "instructions": null, "model": model,
        "output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        "store": true, "usage": usage,
    })
}

pub(crate) async fn retrieve(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    shared.note_path(&uri);
    match shared.stored_response(&id, false) {
        Some(body) => with_content_type(Body::from(body), "application/json"),
        None => not_found(&id),
    }
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    shared.note_path(&uri);
    match shared.stored_response(&id, true) {
        Some(_) => with_content_type(
            Body::from(
                json!({"id": id, "object": "response.deleted", "deleted": true}).to_string(),
            ),
            "application/json",
        ),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    error(
        Flavor::OpenAi,
        StatusCode::NOT_FOUND,
        &format!("mock: no response {id:?}"),
        None,
    )
}
