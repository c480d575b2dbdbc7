//! `POST /v1/chat/completions`: authenticate, read what governance needs, forward, and
//! record. The exchange with the upstream runs on a tracked task, so a client that hangs up
//! does not stop its request from being recorded.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::body::{self, ChatPeek};
use super::error::ApiError;
use super::exchange::{Exchange, Outcome};
use super::state::ProxyState;
use super::upstream::{BodyReader, ChunkError};
use super::{auth, stream, usage};
use crate::pricing::Usage;

/// Upstream error bodies larger than this are not passed through whole.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";
pub const COST_HEADER: &str = "x-tollgate-cost-usd";

pub async fn chat_completions(
    State(state): State<ProxyState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let policy = match auth::authenticate(&state, &headers).await {
        Ok(policy) => policy,
        Err(e) => return e.into_response(),
    };
    let mut exchange = Exchange::new(policy, state.prices.load_full(), started);
    let upstream_body = match prepare(&state, &mut exchange, body).await {
        Ok(upstream_body) => upstream_body,
        Err(e) => {
            state
                .ledger
                .record(exchange.event(Outcome::failed(e.status().as_u16(), e.code())));
            return with_request_id(e.into_response(), &exchange);
        }
    };
    let (reply, response) = oneshot::channel();
    state
        .tasks
        .spawn(forward(state.clone(), exchange, upstream_body, reply));
    response
        .await
        .unwrap_or_else(|_| ApiError::Internal.into_response())
}

/// Checks the request against the key and the routing table; returns the body to send
/// upstream.
async fn prepare(
    state: &ProxyState,
    exchange: &mut Exchange,
    body: Body,
) -> Result<Bytes, ApiError> {
    let bytes = body::read_limited(body, state.max_body_bytes).await?;
    exchange.body_len = bytes.len();
    let peek = ChatPeek::parse(&bytes)?;
    exchange.model = peek.model().to_string();
    exchange.streamed = peek.is_stream();
    exchange.client_wants_usage = peek.client_wants_usage();
    if !exchange.policy.allows_model(peek.model()) {
        return Err(ApiError::ModelNotAllowed(exchange.model.clone()));
    }
    let route = state
        .routes
        .get(peek.model())
        .ok_or_else(|| ApiError::UnknownModel(exchange.model.clone()))?;
    exchange.upstream_model = route.upstream_model.clone();
    exchange.deployment = route.upstream.name.clone();
    exchange.provider = route.upstream.kind.as_str();
    exchange.price_name = route.price_name.clone();
    if exchange
        .prices
        .price_at(&route.price_name, exchange.created_at)
        .is_none()
    {
        if !state.allow_unpriced {
            return Err(ApiError::ModelNotPriced(exchange.model.clone()));
        }
        tracing::warn!(model = %exchange.model, "serving an unpriced model at zero cost");
    }
    let inject_usage = peek.is_stream() && !peek.client_wants_usage();
    if route.renames_model || inject_usage {
        let model = route.renames_model.then_some(route.upstream_model.as_str());
        return body::rewrite(&bytes, model, inject_usage);
    }
    Ok(bytes)
}

async fn forward(
    state: ProxyState,
    mut exchange: Exchange,
    body: Bytes,
    reply: oneshot::Sender<Response>,
) {
    let Some(route) = state.routes.get(&exchange.model) else {
        let _ = reply.send(ApiError::Internal.into_response());
        return;
    };
    let upstream = Arc::clone(&route.upstream);
    exchange.upstream_started = Some(Instant::now());
    let response = match upstream.send_chat(body).await {
        Ok(response) => response,
        Err(e) => return fail(&state, &exchange, e, reply),
    };
    let status = response.status();
    let is_event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if status.is_success() && exchange.streamed && is_event_stream {
        return stream::relay(state, exchange, response, upstream.read_timeout, reply).await;
    }
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let mut reader = BodyReader::new(response, upstream.read_timeout);
    let bytes = match reader.read_all(MAX_UPSTREAM_BODY).await {
        Ok(bytes) => bytes,
        Err(ChunkError::Timeout) => {
            return fail(
                &state,
                &exchange,
                ApiError::UpstreamTimeout {
                    deployment: exchange.deployment.clone(),
                },
                reply,
            );
        }
        Err(ChunkError::Failed) => {
            return fail(
                &state,
                &exchange,
                ApiError::UpstreamUnreachable {
                    deployment: exchange.deployment.clone(),
                },
                reply,
            );
        }
    };
    if status.is_server_error() {
        tracing::warn!(deployment = %exchange.deployment, status = status.as_u16(), "upstream server error");
        let e = ApiError::UpstreamFailed {
            deployment: exchange.deployment.clone(),
            status: status.as_u16(),
        };
        return fail(&state, &exchange, e, reply);
    }
    let (usage, estimated) = match usage::from_json_body(&bytes) {
        Some(usage) => (usage, false),
        None if status.is_success() => (estimate(&exchange, 0), true),
        None => (Usage::default(), false),
    };
    let error_type = (!status.is_success()).then_some("upstream_client_error");
    let event = exchange.event(Outcome {
        status: status.as_u16(),
        error_type,
        usage,
        usage_estimated: estimated,
    });
    let cost = event.cost_usd;
    state.ledger.record(event);

    // Upstream 4xx bodies pass through unchanged, with the upstream's status.
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if status.is_success()
        && let Ok(value) = HeaderValue::try_from(cost.normalize().to_string())
    {
        out.headers_mut().insert(COST_HEADER, value);
    }
    let _ = reply.send(with_request_id(out, &exchange));
}

/// A usage estimate for a response that reported none: the prompt from the request's size
/// and the output from what was streamed.
pub fn estimate(exchange: &Exchange, output_tokens: u64) -> Usage {
    Usage {
        input_tokens: usage::estimate_prompt_tokens(exchange.body_len),
        output_tokens,
        ..Usage::default()
    }
}

fn fail(state: &ProxyState, exchange: &Exchange, e: ApiError, reply: oneshot::Sender<Response>) {
    state
        .ledger
        .record(exchange.event(Outcome::failed(e.status().as_u16(), e.code())));
    let _ = reply.send(with_request_id(e.into_response(), exchange));
}

pub fn with_request_id(mut response: Response, exchange: &Exchange) -> Response {
    if let Ok(value) = HeaderValue::try_from(exchange.request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
