//! `POST /v1/chat/completions`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

use crate::Shared;
use crate::body::{self, Bodies, DEFAULT_MODEL, DONE_EVENT};
use crate::config::MockOverrides;
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
struct Model<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

pub(crate) async fn completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let n = shared.record(&body);
    let config = &shared.config;

    let request: ChatRequest<'_> = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            sleep_ms(config.delay_ms).await;
            return error(
                StatusCode::BAD_REQUEST,
                &format!("mock: invalid request body: {e}"),
                None,
            );
        }
    };
    let overrides = request.mock.as_ref();
    let get = |f: fn(&MockOverrides) -> Option<u64>, default: u64| {
        overrides.and_then(f).unwrap_or(default)
    };

    let forced = match overrides.and_then(|o| o.status) {
        Some(code) => match StatusCode::from_u16(code) {
            Ok(status) => Some(status),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "mock: mock.status is not an HTTP status",
                    None,
                );
            }
        },
        None if is_nth(n, config.error_every) => Some(StatusCode::INTERNAL_SERVER_ERROR),
        None if is_nth(n, config.rate_limit_every) => Some(StatusCode::TOO_MANY_REQUESTS),
        None => None,
    };

    sleep_ms(get(|o| o.delay_ms, config.delay_ms)).await;

    if let Some(status) = forced {
        let retry_after =
            (status == StatusCode::TOO_MANY_REQUESTS).then(|| get(|o| o.retry_after, 1));
        return error(status, "mock error", retry_after);
    }

    let owned_bodies;
    let bodies = match overrides {
        Some(o) if o.changes_body() => {
            let usage = o
                .usage
                .as_ref()
                .map_or(config.usage, |u| u.apply(config.usage));
            owned_bodies = Bodies::new(
                o.content.as_deref().unwrap_or(&config.content),
                o.chunks.unwrap_or(config.chunks),
                (!o.no_usage).then_some(usage),
            );
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
        abort: cut_after.is_some(),
    })
}

/// Whether request number `n` (from 1) is a multiple of `every`; `every == 0` means never.
fn is_nth(n: u64, every: u64) -> bool {
    every != 0 && n.is_multiple_of(every)
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let mut response = with_content_type(
        Body::from(body::error_json(status.as_u16(), message)),
        "application/json",
    );
    *response.status_mut() = status;
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

pub(crate) fn with_content_type(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
