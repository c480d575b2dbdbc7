//! `POST /v1/embeddings` and `POST /v1/completions` (OpenAI's legacy text completions, not
//! streamed here): enough for the gateway's routing and pricing of those endpoints.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::chat::Model;
use crate::config::MockOverrides;
use crate::exchange::{
    Flavor, error, forced_status, parse_body, receive, retry_after, sleep_ms, with_content_type,
};

#[derive(Deserialize)]
struct LegacyRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Model<'a>>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

pub(crate) async fn embeddings(state: State<Arc<Shared>>, request: Request) -> Response {
    answer(state, request, Kind::Embeddings).await
}

pub(crate) async fn completions(state: State<Arc<Shared>>, request: Request) -> Response {
    answer(state, request, Kind::Completions).await
}

enum Kind {
    Embeddings,
    Completions,
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request, kind: Kind) -> Response {
    let incoming = match receive(&shared, request, Flavor::OpenAi).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let config = &shared.config;
    let request: LegacyRequest<'_> =
        match parse_body(&incoming.body, Flavor::OpenAi, config.delay_ms).await {
            Ok(request) => request,
            Err(response) => return response,
        };
    let overrides = request.mock.as_ref();
    if overrides.is_some_and(|o| o.raw_usage.is_some()) {
        return error(
            Flavor::OpenAi,
            StatusCode::BAD_REQUEST,
            "mock: mock.raw_usage is only supported on /v1/chat/completions and /v1/messages",
            None,
        );
    }
    let forced = match forced_status(
        overrides.and_then(|o| o.status),
        incoming.scripted,
        incoming.n,
        config,
    ) {
        Ok(forced) => forced,
        Err(message) => return error(Flavor::OpenAi, StatusCode::BAD_REQUEST, message, None),
    };
    sleep_ms(
        overrides
            .and_then(|o| o.delay_ms)
            .unwrap_or(config.delay_ms),
    )
    .await;
    if let Some(status) = forced {
        let retry_after = retry_after(status, overrides.and_then(|o| o.retry_after));
        return error(Flavor::OpenAi, status, "mock error", retry_after);
    }
    let usage = overrides
        .and_then(|o| o.usage.as_ref())
        .map_or(config.usage, |u| u.apply(config.usage));
    let model = request.model.as_ref().map_or("mock-model", |m| &m.0);
    let body = match kind {
        Kind::Embeddings => json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
            "model": model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }),
        Kind::Completions => json!({
            "id": "cmpl-mock",
            "object": "text_completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"text": config.content, "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens.saturating_add(usage.completion_tokens),
            },
        }),
    };
    with_content_type(Body::from(body.to_string()), "application/json")
}
