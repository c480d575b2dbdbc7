//! `POST /v1/chat/completions`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

use crate::Shared;
use crate::body::{Bodies, DEFAULT_MODEL, DONE_EVENT};
use crate::config::MockOverrides;
use crate::exchange::{Flavor, delay_or_error, error, parse_body, receive, with_content_type};
use crate::sse::{self, Script};

/// Only the fields the mock acts on; serde skips the rest (messages etc.) without allocating.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Model<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

/// A newtype so `Option` still borrows from the body (it only allocates if the name has escapes).
#[derive(Deserialize)]
pub(crate) struct Model<'a>(#[serde(borrow)] pub Cow<'a, str>);

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

pub(crate) async fn completions(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let incoming = match receive(&shared, request, Flavor::OpenAi).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let config = &shared.config;

    let request: ChatRequest<'_> =
        match parse_body(&incoming.body, Flavor::OpenAi, config.delay_ms).await {
            Ok(request) => request,
            Err(response) => return response,
        };
    let overrides = request.mock.as_ref();
    let get = |field, default| MockOverrides::number(overrides, field, default);
    if overrides.is_some_and(|o| o.tool_use.is_some()) {
        return error(
            Flavor::OpenAi,
            StatusCode::BAD_REQUEST,
            "mock: mock.tool_use is only supported on /v1/messages",
            None,
        );
    }

    if let Some(answer) = delay_or_error(overrides, &incoming, config, Flavor::OpenAi).await {
        return answer;
    }

    let owned_bodies;
    let bodies = match overrides {
        Some(o) if o.changes_body() => {
            let usage = o
                .usage
                .as_ref()
                .map_or(config.usage, |u| u.apply(config.usage));
            let content = o.content.as_deref().unwrap_or(&config.content);
            let chunks = o.chunks.unwrap_or(config.chunks);
            let raw = match (&o.raw_usage, o.usage.is_some()) {
                (Some(raw), _) => Some(raw.get()),
                (None, false) => config.raw_usage.as_deref(),
                (None, true) => None,
            };
            owned_bodies = match raw {
                Some(raw) if !o.no_usage => {
                    Bodies::with_usage_json(content, chunks, Some(raw.to_owned()))
                }
                _ => Bodies::new(content, chunks, (!o.no_usage).then_some(usage)),
            };
            &owned_bodies
        }
        _ => &shared.bodies,
    };
    let model = request.model.as_ref().map_or(DEFAULT_MODEL, |m| &m.0);

    if request.stream != Some(true) {
        return with_content_type(Body::from(bodies.json(model)), "application/json");
    }

    let include_usage = request.stream_options.and_then(|o| o.include_usage) == Some(true);
    let chunks = overrides.and_then(|o| o.chunks).unwrap_or(config.chunks);
    let cut_after = overrides.and_then(|o| o.cut_after);
    let sent_chunks = cut_after.map_or(chunks, |cut| cut.min(chunks));
    let mut events: Vec<Bytes> = bodies
        .events(model, sent_chunks, cut_after.is_none(), include_usage)
        .into_iter()
        .map(Bytes::from)
        .collect();
    if cut_after.is_none() {
        events.push(Bytes::from_static(DONE_EVENT));
    }
    let hang = if sent_chunks > 0 {
        get(|o| o.hang_ms, 0)
    } else {
        0
    };
    sse::response(Script {
        events,
        chunk_delay: Duration::from_millis(get(|o| o.chunk_delay_ms, config.chunk_delay_ms)),
        hang: Duration::from_millis(hang),
        first_content: 1,
        abort: cut_after.is_some(),
    })
}
