//! Finishing a request, the one way every request ends: its answer carries the request id,
//! its event goes to the ledger, its admission is settled (the reservation becomes the actual
//! cost), and the access log gets its line. The event is recorded (appended to the ledger's
//! journal) before the answer is released — a whole answer, or a stream's last event — so a
//! crash of the gateway cannot lose a request whose client saw it complete; settlement runs
//! after, off the answer's critical path.

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

/// What settlement charges for a recorded request.
#[must_use = "settle it: the ticket's reservation waits for it"]
pub struct Charge {
    tokens: u64,
    cost_nanos: i64,
}

/// Hands the request's event to the ledger; returns once it is in the journal.
pub async fn record(state: &ProxyState, event: LedgerEvent) -> Charge {
    let charge = Charge {
        tokens: event
            .usage
            .input_tokens
            .saturating_add(event.usage.output_tokens),
        cost_nanos: to_nanos_ceil(event.cost_usd),
    };
    access_log(state, &event);
    state.ledger.record(event).await;
    charge
}

/// Settles the request's admission with what it was charged, consuming the ticket.
pub async fn settle(exchange: &mut Exchange, charge: Charge) {
    if let Some(ticket) = exchange.ticket.take() {
        ticket.settle(charge.tokens, charge.cost_nanos).await;
    }
}

/// Records and settles a request whose answer is already out (or whose client left).
pub async fn record_and_settle(state: &ProxyState, exchange: &mut Exchange, event: LedgerEvent) {
    let charge = record(state, event).await;
    settle(exchange, charge).await;
}

/// Records the request, then releases its whole answer, then settles.
pub async fn record_and_reply(
    state: &ProxyState,
    exchange: &mut Exchange,
    event: LedgerEvent,
    response: Response,
    reply: oneshot::Sender<Response>,
) {
    let charge = record(state, event).await;
    let _ = reply.send(with_request_id(response, exchange.request_id));
    settle(exchange, charge).await;
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
    record_and_reply(state, exchange, event, error.render(op), reply).await;
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
