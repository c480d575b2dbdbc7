//! The data-plane endpoints: authenticate, read what governance needs, admit, then hand the
//! request to a tracked task that forwards, records and settles it, so a client that hangs up
//! does not stop its request from being recorded and settled.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::admission::{self, OutputCap};
use super::auth;
use super::auth_failures::Peer;
use super::body::{self, ChatPeek};
use super::error::ApiError;
use super::exchange::{Exchange, Outcome};
use super::forward;
use super::operation::Operation;
use super::state::ProxyState;
use crate::governance::to_nanos_ceil;
use crate::ledger::LedgerEvent;
use crate::pricing::ModelPrice;

pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";
pub const COST_HEADER: &str = "x-tollgate-cost-usd";

pub async fn chat_completions(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Operation::Chat, peer, headers, body).await
}

pub async fn completions(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Operation::Completions, peer, headers, body).await
}

pub async fn embeddings(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Operation::Embeddings, peer, headers, body).await
}

pub async fn messages(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Operation::Messages, peer, headers, body).await
}

/// What `prepare` learned from the request.
pub struct Prepared {
    pub op: Operation,
    /// The body as the client sent it; each attempt derives its upstream body from it.
    pub body: Bytes,
    pub stream: bool,
    pub client_wants_usage: bool,
    /// `anthropic-version` / `anthropic-beta`, forwarded on Anthropic attempts.
    pub headers: HeaderMap,
}

async fn handle(
    state: ProxyState,
    op: Operation,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let policy = match auth::authenticate(&state, &headers, peer).await {
        Ok(policy) => policy,
        Err(e) => return e.render(op),
    };
    crate::metrics::note_budget_scopes(policy.team_id, &policy.scopes);
    let mut exchange = Exchange::new(policy, state.prices.load_full(), started);
    let prepared = match prepare_and_admit(&state, &mut exchange, op, &headers, body).await {
        Ok(prepared) => prepared,
        Err(e) => {
            state.ledger.record(exchange.event(Outcome::failed(&e)));
            return with_request_id(e.render(op), &exchange);
        }
    };
    let (reply, response) = oneshot::channel();
    let work = forward::forward(state.clone(), exchange, prepared, reply);
    Detachable::new(Box::pin(work), state.tasks.clone())
        .until_reply(response)
        .await
        .unwrap_or_else(|| ApiError::Internal.render(op))
}

/// The forwarding work of one request, run on the client's connection task until the answer
/// is ready (no task hand-off on the common path). Whatever is left after that (recording,
/// settlement, relaying a stream) — or everything, if the client hangs up first and the
/// handler is dropped — moves to a tracked task, so it always completes and shutdown waits
/// for it.
struct Detachable {
    work: Option<BoxFuture<'static, ()>>,
    tasks: TaskTracker,
}

impl Detachable {
    fn new(work: BoxFuture<'static, ()>, tasks: TaskTracker) -> Detachable {
        Detachable {
            work: Some(work),
            tasks,
        }
    }

    async fn until_reply(mut self, mut reply: oneshot::Receiver<Response>) -> Option<Response> {
        if let Some(work) = self.work.as_mut() {
            tokio::select! {
                biased;
                response = &mut reply => return self.finish(response.ok()),
                () = work => self.work = None,
            }
        }
        reply.await.ok()
    }

    /// Completes the rest of the work now if it needs no waiting; otherwise (on drop)
    /// detaches it.
    fn finish(&mut self, response: Option<Response>) -> Option<Response> {
        if let Some(work) = self.work.as_mut()
            && work.now_or_never().is_some()
        {
            self.work = None;
        }
        response
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            self.tasks.spawn(work);
        }
    }
}

async fn prepare_and_admit(
    state: &ProxyState,
    exchange: &mut Exchange,
    op: Operation,
    headers: &HeaderMap,
    body: Body,
) -> Result<Prepared, ApiError> {
    let bytes = body::read_limited(body, state.max_body_bytes).await?;
    exchange.body_len = bytes.len();
    let peek = ChatPeek::parse(&bytes)?;
    exchange.model = peek.model().to_string();
    exchange.streamed = peek.is_stream() && op != Operation::Embeddings;
    exchange.client_wants_usage = peek.client_wants_usage();
    if !exchange.policy.allows_model(peek.model()) {
        return Err(ApiError::ModelNotAllowed(exchange.model.clone()));
    }
    let routes = state
        .routes
        .get(peek.model())
        .ok_or_else(|| ApiError::UnknownModel(exchange.model.clone()))?;
    let serving: Vec<_> = routes.serving(op).collect();
    let Some(first) = serving.first() else {
        return Err(ApiError::OperationNotServed {
            model: exchange.model.clone(),
            endpoint: op.endpoint(),
        });
    };
    exchange.describe_candidate(first);
    // Every deployment the request may end up on must be priced, so a fallback can never
    // record spend as $0; the reservation covers the dearest of them.
    let mut prices: Vec<&ModelPrice> = Vec::with_capacity(serving.len());
    for candidate in &serving {
        match exchange
            .prices
            .price_at(&candidate.price_name, exchange.created_at)
        {
            Some(price) => prices.push(price),
            None if state.allow_unpriced => {
                crate::metrics::observe_unpriced(&exchange.model);
                tracing::warn!(model = %exchange.model, price = %candidate.price_name, "serving an unpriced model at zero cost");
            }
            None => return Err(ApiError::ModelNotPriced(exchange.model.clone())),
        }
    }
    let cap = OutputCap {
        max_tokens: peek.max_completion_tokens.or(peek.max_tokens),
    };
    exchange.ticket = admission::admit(state, exchange, &cap, &prices).await?;
    let mut forwarded = HeaderMap::new();
    for name in ["anthropic-version", "anthropic-beta"] {
        if let Some(value) = headers.get(name) {
            forwarded.insert(name, value.clone());
        }
    }
    Ok(Prepared {
        op,
        stream: exchange.streamed,
        client_wants_usage: peek.client_wants_usage(),
        body: bytes,
        headers: forwarded,
    })
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
