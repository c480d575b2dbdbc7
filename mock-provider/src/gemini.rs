//! Gemini mode: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` (also under `/v1/models/`), answered in Gemini's shape and
//! steered by the same `mock` object as chat completions (`usage` in chat's names:
//! `prompt_tokens` is `promptTokenCount`, `cached_tokens` `cachedContentTokenCount`,
//! `completion_tokens` `candidatesTokenCount`, `reasoning_tokens` `thoughtsTokenCount`;
//! `tool_use` answers with a `functionCall`). A request whose `toolConfig` says `ANY` is
//! answered with a call of its first allowed (or declared) function, with `{}` as arguments.
//! The key is read from `x-goog-api-key`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::body::split_content;
use crate::config::{MockOverrides, MockUsage};
use crate::exchange::{Flavor, delay_or_error, error, parse_body, receive, with_content_type};
use crate::sse::{self, Script};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    #[serde(default)]
    contents: Option<Vec<Value>>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    tool_config: Option<Value>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

impl GenerateRequest {
    /// The function a `toolConfig` with mode `ANY` makes the model call.
    fn forced_call(&self) -> Option<String> {
        let config = self.tool_config.as_ref()?.get("functionCallingConfig")?;
        if config.get("mode")?.as_str()? != "ANY" {
            return None;
        }
        let allowed = config.pointer("/allowedFunctionNames/0");
        let declared = self
            .tools
            .as_ref()?
            .pointer("/0/functionDeclarations/0/name");
        allowed.or(declared)?.as_str().map(str::to_owned)
    }
}

pub(crate) async fn generate(
    State(shared): State<Arc<Shared>>,
    Path(call): Path<String>,
    request: Request,
) -> Response {
    let (model, stream) = match call.rsplit_once(':') {
        Some((model, "generateContent")) => (model.to_owned(), false),
        Some((model, "streamGenerateContent")) => (model.to_owned(), true),
        _ => {
            return error(
                Flavor::Gemini,
                StatusCode::NOT_FOUND,
                &format!("mock: {call:?} is not generateContent or streamGenerateContent"),
                None,
            );
        }
    };
    let incoming = match receive(&shared, request, Flavor::Gemini).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let config = &shared.config;
    let request: GenerateRequest =
        match parse_body(&incoming.body, Flavor::Gemini, config.delay_ms).await {
            Ok(request) => request,
            Err(response) => return response,
        };
    if request.contents.as_ref().is_none_or(|c| c.is_empty()) {
        return error(
            Flavor::Gemini,
            StatusCode::BAD_REQUEST,
            "mock: contents is not specified",
            None,
        );
    }
    let overrides = request.mock.as_ref();
    let get = |field, default| MockOverrides::number(overrides, field, default);
    if let Some(answer) = delay_or_error(overrides, &incoming, config, Flavor::Gemini).await {
        return answer;
    }
    let usage = MockOverrides::reported_usage(overrides, config.usage);
    let content = MockOverrides::content(overrides, config);
    let call = match overrides.and_then(|o| o.tool_use.as_ref()) {
        Some(tool) => Some(
            json!({"functionCall": {"name": tool.name, "args": Value::Object(tool.input.clone())}}),
        ),
        None => request
            .forced_call()
            .map(|name| json!({"functionCall": {"name": name, "args": {}}})),
    };
    let response_id = format!("mock{:016x}", incoming.n);

    if !stream {
        let parts = match &call {
            Some(call) => vec![call.clone()],
            None => vec![json!({ "text": content })],
        };
        let body = answer(&model, &response_id, parts, Some("STOP"), usage);
        return with_content_type(Body::from(body.to_string()), "application/json");
    }
    let chunks = overrides.and_then(|o| o.chunks).unwrap_or(config.chunks);
    let cut_after = overrides.and_then(|o| o.cut_after);
    let pieces: Vec<Value> = match &call {
        Some(call) => vec![call.clone()],
        None => split_content(content, chunks.max(1))
            .into_iter()
            .map(|text| json!({ "text": text }))
            .collect(),
    };
    let sent = cut_after.map_or(pieces.len(), |cut| cut.min(pieces.len()));
    let last = pieces.len().saturating_sub(1);
    let events = pieces
        .into_iter()
        .take(sent)
        .enumerate()
        .map(|(i, part)| {
            // Every chunk carries the usage so far; the last one the finish reason.
            let finish = (i == last && cut_after.is_none()).then_some("STOP");
            let body = answer(&model, &response_id, vec![part], finish, usage);
            Bytes::from(format!("data: {body}\r\n\r\n"))
        })
        .collect();
    let hang = if sent > 0 { get(|o| o.hang_ms, 0) } else { 0 };
    sse::response(Script {
        events,
        chunk_delay: Duration::from_millis(get(|o| o.chunk_delay_ms, config.chunk_delay_ms)),
        hang: Duration::from_millis(hang),
        first_content: 0,
        abort: cut_after.is_some(),
    })
}

/// A `GenerateContentResponse` with one candidate.
fn answer(
    model: &str,
    response_id: &str,
    parts: Vec<Value>,
    finish: Option<&str>,
    usage: Option<MockUsage>,
) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let mut body =
        json!({"candidates": [candidate], "modelVersion": model, "responseId": response_id});
    if let Some(u) = usage {
        let mut metadata = json!({
            "promptTokenCount": u.prompt_tokens,
            "candidatesTokenCount": u.completion_tokens,
            "totalTokenCount": u.prompt_tokens
                .saturating_add(u.completion_tokens)
                .saturating_add(u.reasoning_tokens),
        });
        if u.cached_tokens > 0 {
            metadata["cachedContentTokenCount"] = json!(u.cached_tokens);
        }
        if u.reasoning_tokens > 0 {
            metadata["thoughtsTokenCount"] = json!(u.reasoning_tokens);
        }
        body["usageMetadata"] = metadata;
    }
    body
}
