//! `POST /v1/messages`: Anthropic-native answers, steered by the same `mock` object as chat
//! completions (with Anthropic usage fields and a `tool_use` override).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

use crate::Shared;
use crate::anthropic::{Answer, Content};
use crate::body::DEFAULT_MODEL;
use crate::chat::Model;
use crate::config::{AnthropicUsage, AnthropicUsageOverride, MockOverrides};
use crate::exchange::{Flavor, delay_or_error, parse_body, receive, with_content_type};
use crate::sse::{self, Script};

type Overrides = MockOverrides<AnthropicUsageOverride>;

/// Index of the first content delta among the stream's events.
const FIRST_CONTENT: usize = 3;

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Model<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    mock: Option<Overrides>,
}

pub(crate) async fn messages(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let incoming = match receive(&shared, request, Flavor::Anthropic).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let config = &shared.config;

    let request: MessagesRequest<'_> =
        match parse_body(&incoming.body, Flavor::Anthropic, config.delay_ms).await {
            Ok(request) => request,
            Err(response) => return response,
        };
    let overrides = request.mock.as_ref();
    let get = |field, default| Overrides::number(overrides, field, default);

    if let Some(answer) = delay_or_error(overrides, &incoming, config, Flavor::Anthropic).await {
        return answer;
    }

    let base = AnthropicUsage::from(config.usage);
    let usage = match overrides {
        Some(o) if o.no_usage => None,
        Some(Overrides {
            usage: Some(usage), ..
        }) => Some(usage.apply(base)),
        _ => Some(base),
    };
    let content = match overrides.and_then(|o| o.tool_use.as_ref()) {
        Some(tool) => Content::ToolUse {
            name: &tool.name,
            input: serde_json::Value::Object(tool.input.clone()).to_string(),
        },
        None => Content::Text(MockOverrides::content(overrides, config)),
    };
    let answer = Answer {
        model: request.model.as_ref().map_or(DEFAULT_MODEL, |m| &m.0),
        content,
        raw_usage: usage.and(match overrides {
            Some(o) if o.raw_usage.is_some() => o.raw_usage.as_deref().map(|r| r.get()),
            Some(o) if o.usage.is_some() => None,
            _ => config.raw_usage.as_deref(),
        }),
        usage,
    };

    if request.stream != Some(true) {
        return with_content_type(Body::from(answer.json()), "application/json");
    }

    let chunks = overrides.and_then(|o| o.chunks).unwrap_or(config.chunks);
    let cut_after = overrides.and_then(|o| o.cut_after);
    let sent_chunks = cut_after.map_or(chunks, |cut| cut.min(chunks));
    let events = answer
        .events(chunks, sent_chunks, cut_after.is_none())
        .into_iter()
        .map(Bytes::from)
        .collect();
    let hang = if sent_chunks > 0 {
        get(|o| o.hang_ms, 0)
    } else {
        0
    };
    sse::response(Script {
        events,
        chunk_delay: Duration::from_millis(get(|o| o.chunk_delay_ms, config.chunk_delay_ms)),
        hang: Duration::from_millis(hang),
        first_content: FIRST_CONTENT,
        abort: cut_after.is_some(),
    })
}
