//! `POST /v1/chat/completions`: authenticate, read what governance needs, admit, forward,
//! record and settle. The exchange with the upstream runs on a tracked task, so a client
//! that hangs up does not stop its request from being recorded and settled.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::admission::{self, OutputCap};
use super::body::{self, ChatPeek};
use super::error::ApiError;
use super::exchange::{Exchange, Outcome};
use super::state::ProxyState;
use super::upstream::{BodyReader, ChunkError};
use super::{auth, stream, usage};
use crate::governance::to_nanos_ceil;
use crate::ledger::LedgerEvent;
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
    let upstream_body = match prepare_and_admit(&state, &mut exchange, body).await {
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

async fn prepare_and_admit(
    state: &ProxyState,
    exchange: &mut Exchange,
    body: Body,
) -> Result<Bytes, ApiError> {
    let (upstream_body, cap) = prepare(state, exchange, body).await?;
    exchange.ticket = admission::admit(state, exchange, &cap).await?;
    Ok(upstream_body)
}

/// Checks the request against the key and the routing table; returns the body to send
/// upstream and the output cap the client set.
async fn prepare(
    state: &ProxyState,
    exchange: &mut Exchange,
    body: Body,
) -> Result<(Bytes, OutputCap), ApiError> {
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
    let cap = OutputCap {
        max_tokens: peek.max_completion_tokens.or(peek.max_tokens),
    };
    let inject_usage = peek.is_stream() && !peek.client_wants_usage();
    if route.renames_model || inject_usage {
        let model = route.renames_model.then_some(route.upstream_model.as_str());
        return Ok((body::rewrite(&bytes, model, inject_usage)?, cap));
    }
    Ok((bytes, cap))
}

async fn forward(
    state: ProxyState,
    mut exchange: Exchange,
    body: Bytes,
    reply: oneshot::Sender<Response>,
) {
    let Some(route) = state.routes.get(&exchange.model) else {
        return fail(&state, &exchange, ApiError::Internal, reply).await;
    };
    let upstream = Arc::clone(&route.upstream);
    exchange.upstream_started = Some(Instant::now());
    let response = match upstream.send_chat(body).await {
        Ok(response) => response,
        Err(e) => return fail(&state, &exchange, e, reply).await,
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
    let deployment = exchange.deployment.clone();
    let bytes = match reader.read_all(MAX_UPSTREAM_BODY).await {
        Ok(bytes) => bytes,
        Err(ChunkError::Timeout) => {
            return fail(
                &state,
                &exchange,
                ApiError::UpstreamTimeout { deployment },
                reply,
            )
            .await;
        }
        Err(ChunkError::Failed) => {
            return fail(
                &state,
                &exchange,
                ApiError::UpstreamUnreachable { deployment },
                reply,
            )
            .await;
        }
    };
    if status.is_server_error() {
        tracing::warn!(deployment = %deployment, status = status.as_u16(), "upstream server error");
        let e = ApiError::UpstreamFailed {
            deployment,
            status: status.as_u16(),
        };
        return fail(&state, &exchange, e, reply).await;
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

    // Upstream 4xx bodies pass through unchanged, with the upstream's status.
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if status.is_success()
        && let Ok(value) = HeaderValue::try_from(event.cost_usd.normalize().to_string())
    {
        out.headers_mut().insert(COST_HEADER, value);
    }
    let _ = reply.send(with_request_id(out, &exchange));
    record_and_settle(&state, &exchange, event).await;
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

async fn fail(
    state: &ProxyState,
    exchange: &Exchange,
    e: ApiError,
    reply: oneshot::Sender<Response>,
) {
    let event = exchange.event(Outcome::failed(e.status().as_u16(), e.code()));
    let _ = reply.send(with_request_id(e.into_response(), exchange));
    record_and_settle(state, exchange, event).await;
}

/// Hands the request's event to the ledger and settles its admission (the reservation
/// becomes the actual cost). Runs after the response is handed over, off its critical path.
pub async fn record_and_settle(state: &ProxyState, exchange: &Exchange, event: LedgerEvent) {
    let tokens = event
        .usage
        .input_tokens
        .saturating_add(event.usage.output_tokens);
    let cost = to_nanos_ceil(event.cost_usd);
    state.ledger.record(event);
    if let Some(ticket) = &exchange.ticket {
        state.governor.settle(ticket, tokens, cost).await;
    }
}

pub fn with_request_id(mut response: Response, exchange: &Exchange) -> Response {
    if let Ok(value) = HeaderValue::try_from(exchange.request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
