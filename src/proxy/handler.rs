//! The data-plane endpoints. A request's whole life — authenticate, read what governance
//! needs, admit, forward, relay, finish — is one future ([`lifecycle`]) that the client's
//! connection cannot cancel: it runs on the connection's task until the answer is ready
//! (no task hand-off on the common path), and whatever is left when the client hangs up, at
//! any point, moves to a tracked task that shutdown waits for. So a hang-up never stops an
//! admission half way or a request from being recorded and settled.
//!
//! The life reads one way: handler (here) → forward → relay (`stream`) → finish.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::admission::{self, OutputCap};
use super::auth;
use super::auth_failures::Peer;
use super::body::{self, ChatPeek};
use super::error::ApiError;
use super::exchange::Exchange;
use super::finish::{self, with_request_id};
use super::forward::{self, Prepared};
use super::operation::Operation;
use super::state::ProxyState;
use crate::ids::RequestId;
use crate::pricing::ModelPrice;
use crate::tags::{self, Tags};

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

pub async fn responses(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Operation::Responses, peer, headers, body).await
}

async fn handle(
    state: ProxyState,
    op: Operation,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = RequestId::new();
    let span = tracing::info_span!("request", request_id = %request_id, endpoint = op.endpoint());
    let (reply, answer) = oneshot::channel();
    let request = Request {
        op,
        request_id,
        peer,
        headers,
        body,
    };
    let work = lifecycle(state.clone(), request, reply).instrument(span);
    Detachable::new(Box::pin(work), state.tasks.clone())
        .until_reply(answer)
        .await
        .unwrap_or_else(|| with_request_id(ApiError::Internal.render(op), request_id))
}

/// A request as it arrived.
struct Request {
    op: Operation,
    request_id: RequestId,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
}

/// One request from its headers to its settlement. The answer goes out through `reply` as
/// soon as it is known; the rest (recording, settling, relaying a stream) continues after.
async fn lifecycle(state: ProxyState, request: Request, reply: oneshot::Sender<Response>) {
    let Request {
        op,
        request_id,
        peer,
        headers,
        body,
    } = request;
    let started = Instant::now();
    let policy = match auth::authenticate(&state, &headers, peer).await {
        Ok(policy) => policy,
        Err(e) => {
            finish::access_log_unauthenticated(&state, request_id, op.endpoint(), &e);
            let _ = reply.send(with_request_id(e.render(op), request_id));
            return;
        }
    };
    crate::metrics::note_budget_scopes(policy.team_id, &policy.scopes);
    let mut exchange = Exchange::new(request_id, policy, state.prices.load_full(), started);
    match prepare_and_admit(&state, &mut exchange, op, &headers, body).await {
        Ok(prepared) => forward::forward(state, exchange, prepared, reply).await,
        Err(e) => finish::fail(&state, &mut exchange, op, e, reply).await,
    }
}

/// A request's work, run on the client's connection task until the answer is ready.
/// Whatever is left after that — or everything, if the client hangs up first and the handler
/// is dropped — moves to a tracked task, so it always completes and shutdown waits for it.
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
    exchange.tags = request_tags(headers, peek.metadata.as_ref())?;
    if !exchange.policy.default_tags.is_empty() {
        // The key's and experiment's defaults go under the request's own tags.
        exchange.tags = exchange.policy.default_tags.merged(&exchange.tags);
    }
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
            Some(price) if price.mode != op.serves() => {
                return Err(ApiError::WrongKindOfModel {
                    model: exchange.model.clone(),
                    mode: price.mode,
                    endpoint: op.endpoint(),
                });
            }
            Some(price) => prices.push(price),
            None if state.allow_unpriced => {
                crate::metrics::observe_unpriced(&exchange.model);
                tracing::warn!(model = %exchange.model, price = %candidate.price_name, "serving an unpriced model at zero cost");
            }
            None => return Err(ApiError::ModelNotPriced(exchange.model.clone())),
        }
    }
    let cap = OutputCap::of(&peek)?;
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

/// The tags of the `x-tollgate-tags` header over those of the body's `metadata`.
fn request_tags(
    headers: &HeaderMap,
    metadata: Option<&serde_json::Value>,
) -> Result<Tags, ApiError> {
    let header = match headers.get(tags::HEADER) {
        None => Tags::default(),
        Some(value) => Tags::from_header_bytes(value.as_bytes()).map_err(ApiError::InvalidTags)?,
    };
    let metadata = match metadata {
        None => Tags::default(),
        Some(m) => Tags::from_metadata(m).map_err(ApiError::InvalidTags)?,
    };
    Tags::for_request(&metadata, &header).map_err(ApiError::InvalidTags)
}
