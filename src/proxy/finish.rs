//! Finishing a request, the one way every request ends: its answer carries the request id,
//! its event goes to the ledger, its admission is settled (the reservation becomes the actual
//! cost), and the access log gets its line. Runs after the response is handed over, off its
//! critical path.

use axum::http::HeaderValue;
use axum::response::Response;
use tokio::sync::oneshot;

use super::error::ApiError;
use super::exchange::{Exchange, Outcome};
use super::operation::Operation;
use super::state::ProxyState;
use super::usage;
use crate::governance::to_nanos_ceil;
use crate::ids::RequestId;
use crate::ledger::LedgerEvent;
use crate::pricing::Usage;

pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";
pub const COST_HEADER: &str = "x-tollgate-cost-usd";

/// Hands the request's event to the ledger and settles its admission, consuming the ticket.
pub async fn record_and_settle(state: &ProxyState, exchange: &mut Exchange, event: LedgerEvent) {
    let tokens = event
        .usage
        .input_tokens
        .saturating_add(event.usage.output_tokens);
    let cost = to_nanos_ceil(event.cost_usd);
    access_log(state, &event);
    state.ledger.record(event).await;
    if let Some(ticket) = exchange.ticket.take() {
        ticket.settle(tokens, cost).await;
    }
}

/// Answers with `error` and records the request as failed (nothing to charge).
pub async fn fail(
    state: &ProxyState,
    exchange: &mut Exchange,
    op: Operation,
    error: ApiError,
    reply: oneshot::Sender<Response>,
) {
    let event = exchange.event(Outcome::failed(&error));
    let _ = reply.send(with_request_id(error.render(op), exchange.request_id));
    record_and_settle(state, exchange, event).await;
}

pub fn with_request_id(mut response: Response, request_id: RequestId) -> Response {
    if let Ok(value) = HeaderValue::try_from(request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
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

/// One structured line per finished request (`log.access`), under the `tollgate::access`
/// target so it can be routed or filtered on its own. The request id comes from the span.
fn access_log(state: &ProxyState, event: &LedgerEvent) {
    if !state.access_log.wants(event.status) {
        return;
    }
    tracing::info!(
        target: "tollgate::access",
        request_id = %event.request_id,
        status = event.status,
        error = event.error_type.as_deref().unwrap_or(""),
        model = %event.model,
        deployment = %event.deployment,
        team_id = %event.team_id,
        experiment_id = ?event.experiment_id.map(|e| e.0),
        key_id = %event.key_id,
        streamed = event.streamed,
        input_tokens = event.usage.input_tokens,
        output_tokens = event.usage.output_tokens,
        cost_usd = %event.cost_usd.normalize(),
        latency_ms = event.latency_ms,
        upstream_latency_ms = ?event.upstream_latency_ms,
        attempts = event.attempts,
        "request"
    );
}

/// The access-log line of a request refused before it had a key (no ledger event).
pub fn access_log_unauthenticated(
    state: &ProxyState,
    request_id: RequestId,
    endpoint: &str,
    error: &ApiError,
) {
    let status = error.status().as_u16();
    if state.access_log.wants(status) {
        tracing::info!(
            target: "tollgate::access",
            request_id = %request_id,
            status,
            error = error.code(),
            endpoint,
            "request"
        );
    }
}
