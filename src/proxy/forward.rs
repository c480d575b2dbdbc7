//! Forwarding one request: try the model's deployments in plan order (other keys, then
//! fallbacks, then retry rounds with jittered backoff) within the routing deadline, and
//! answer with the first that responds. Streams fall back only before their first byte
//! reaches the client, which is guaranteed here: the client's response starts only once an
//! upstream has answered successfully.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use rand::Rng;
use tokio::sync::oneshot;

use super::body;
use super::error::ApiError;
use super::exchange::{Exchange, Outcome};
use super::finish::{COST_HEADER, estimate, fail, record_and_reply};
use super::headroom;
use super::operation::{Dialect, Operation};
use super::responses;
use super::routing::Candidate;
use super::state::ProxyState;
use super::stream;
use super::upstream::{AttemptError, ChunkError};
use super::usage;
use crate::config::ProviderKind;
use crate::pricing::Usage;
use crate::providers::{anthropic, bedrock, gemini};

/// A successful answer in the client's format: translated for the dialects that translate,
/// as it came for the others.
fn answer_to_client(
    dialect: Dialect,
    bytes: Bytes,
    public_model: &str,
) -> Result<Bytes, crate::providers::TranslateError> {
    match dialect {
        Dialect::ChatViaAnthropic => anthropic::messages_to_chat(&bytes, public_model),
        Dialect::ChatViaGemini => gemini::gemini_to_chat(&bytes, public_model),
        Dialect::ChatViaBedrock => bedrock::converse_to_chat(&bytes, public_model),
        Dialect::OpenAi
        | Dialect::Anthropic
        | Dialect::Responses
        | Dialect::AnthropicViaBedrock => Ok(bytes),
    }
}

/// An upstream's error body in the client's format (OpenAI's, or Anthropic's on
/// `/v1/messages`); as it came when it cannot be read. `error_type` is Bedrock's
/// `x-amzn-errortype`.
fn error_to_client(dialect: Dialect, bytes: Bytes, error_type: Option<&str>) -> Bytes {
    let translated = match dialect {
        Dialect::ChatViaAnthropic => anthropic::error_to_chat(&bytes),
        Dialect::ChatViaGemini => gemini::error_to_chat(&bytes),
        Dialect::ChatViaBedrock => bedrock::error_to_chat(&bytes, error_type),
        Dialect::AnthropicViaBedrock => bedrock::messages::error_to_anthropic(&bytes, error_type),
        Dialect::OpenAi | Dialect::Anthropic | Dialect::Responses => None,
    };
    translated.unwrap_or(bytes)
}

/// Upstream bodies larger than this are not passed through whole.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// What the handler learned from the request, for the attempts to derive their bodies from.
pub struct Prepared {
    pub op: Operation,
    /// The body as the client sent it; each attempt derives its upstream body from it.
    pub body: Bytes,
    pub stream: bool,
    pub client_wants_usage: bool,
    /// `anthropic-version` / `anthropic-beta`, forwarded on Anthropic attempts.
    pub headers: HeaderMap,
}

pub async fn forward(
    state: ProxyState,
    mut exchange: Exchange,
    prepared: Prepared,
    reply: oneshot::Sender<Response>,
) {
    let op = prepared.op;
    let Some(routes) = state.routes.get(&exchange.model) else {
        return fail(&state, &mut exchange, op, ApiError::Internal, reply).await;
    };
    let plan = routes.plan(op);
    let deadline = Instant::now() + state.routing.deadline;
    let rounds = 1 + routes
        .serving(op)
        .map(|c| c.upstream.retries)
        .max()
        .unwrap_or(0);
    let mut last_error = ApiError::UpstreamUnreachable {
        deployment: exchange.deployment.clone(),
    };
    for round in 0..rounds {
        if round > 0 {
            // Every deployment failed: wait a little (jittered, so instances do not retry
            // in lockstep) before the next round.
            let base = 100u64 << round.min(6);
            let pause = Duration::from_millis(rand::rng().random_range(base / 2..=base + base / 2));
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        for attempt in &plan {
            let Some(candidate) = routes.candidates.get(attempt.candidate) else {
                continue;
            };
            if round > candidate.upstream.retries || Instant::now() >= deadline {
                continue;
            }
            exchange.describe_candidate(candidate);
            exchange.attempts = exchange.attempts.saturating_add(1);
            let dialect = op.dialect(candidate.upstream.kind);
            let upstream_body = match upstream_body(&state, dialect, candidate, &prepared) {
                Ok(body) => body,
                Err(e) => return fail(&state, &mut exchange, op, e, reply).await,
            };
            let sent_at = Instant::now();
            exchange.upstream_started = Some(sent_at);
            exchange.first_upstream_started.get_or_insert(sent_at);
            let upstream = &candidate.upstream;
            let sent = match (dialect, upstream.kind) {
                (
                    Dialect::ChatViaGemini | Dialect::ChatViaBedrock | Dialect::AnthropicViaBedrock,
                    _,
                ) => {
                    let (model, stream) = (&candidate.upstream_model, prepared.stream);
                    let path = match dialect {
                        Dialect::ChatViaGemini => gemini::path(model, stream),
                        Dialect::ChatViaBedrock => bedrock::path(model, stream),
                        _ => bedrock::messages::path(model, stream),
                    };
                    upstream
                        .send_to(attempt.key, &path, upstream_body, deadline)
                        .await
                }
                (_, ProviderKind::Azure) => {
                    let rest = op.upstream_path(upstream.kind).unwrap_or("/");
                    let path = upstream.azure_path(rest, &candidate.upstream_model);
                    upstream
                        .send_to(attempt.key, &path, upstream_body, deadline)
                        .await
                }
                _ => {
                    upstream
                        .send(attempt.key, op, upstream_body, &prepared.headers, deadline)
                        .await
                }
            };
            let response = match sent {
                Ok(response) => response,
                Err(AttemptError::Timeout) => {
                    upstream.cool_down(attempt.key, None);
                    last_error = ApiError::UpstreamTimeout {
                        deployment: upstream.name.clone(),
                    };
                    continue;
                }
                Err(AttemptError::Unreachable) => {
                    upstream.cool_down(attempt.key, None);
                    last_error = ApiError::UpstreamUnreachable {
                        deployment: upstream.name.clone(),
                    };
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let retry_after = retry_after(&response);
                upstream.cool_down(attempt.key, retry_after);
                tracing::warn!(deployment = %upstream.name, status = status.as_u16(), "upstream refused; trying the next deployment");
                last_error = if status == StatusCode::TOO_MANY_REQUESTS {
                    ApiError::UpstreamRateLimited {
                        deployment: upstream.name.clone(),
                        retry_after,
                    }
                } else {
                    ApiError::UpstreamFailed {
                        deployment: upstream.name.clone(),
                        status: status.as_u16(),
                    }
                };
                continue;
            }
            return respond(
                state.clone(),
                exchange,
                candidate,
                dialect,
                response,
                &prepared,
                reply,
            )
            .await;
        }
    }
    fail(&state, &mut exchange, op, last_error, reply).await
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The body for one attempt, derived from the client's.
fn upstream_body(
    state: &ProxyState,
    dialect: Dialect,
    candidate: &Candidate,
    prepared: &Prepared,
) -> Result<Bytes, ApiError> {
    let rename = candidate
        .renames_model
        .then_some(candidate.upstream_model.as_str());
    match dialect {
        Dialect::OpenAi => {
            // Ask an OpenAI-compatible stream for its usage; the relay keeps that chunk from
            // a client that did not ask for it.
            let inject_usage = prepared.stream
                && !prepared.client_wants_usage
                && prepared.op != Operation::Embeddings;
            if rename.is_some() || inject_usage {
                body::rewrite(&prepared.body, rename, inject_usage)
            } else {
                Ok(prepared.body.clone())
            }
        }
        // The Responses API always reports usage: nothing to ask for.
        Dialect::Anthropic | Dialect::Responses => match rename {
            Some(model) => body::rewrite(&prepared.body, Some(model), false),
            None => Ok(prepared.body.clone()),
        },
        Dialect::ChatViaGemini => {
            gemini::chat_to_gemini(&prepared.body).map_err(|e| ApiError::MalformedBody {
                message: e.to_string(),
                param: None,
            })
        }
        Dialect::ChatViaBedrock => {
            bedrock::chat_to_converse(&prepared.body).map_err(|e| ApiError::MalformedBody {
                message: e.to_string(),
                param: None,
            })
        }
        Dialect::AnthropicViaBedrock => {
            bedrock::messages::invoke_body(&prepared.body).map_err(|e| ApiError::MalformedBody {
                message: e.to_string(),
                param: None,
            })
        }
        Dialect::ChatViaAnthropic => anthropic::chat_to_messages(
            &prepared.body,
            &candidate.upstream_model,
            state.routing.anthropic_default_max_tokens,
        )
        .map(|(body, _)| body)
        .map_err(|e| ApiError::MalformedBody {
            message: e.to_string(),
            param: None,
        }),
    }
}

async fn respond(
    state: ProxyState,
    mut exchange: Exchange,
    candidate: &Candidate,
    dialect: Dialect,
    response: reqwest::Response,
    prepared: &Prepared,
    reply: oneshot::Sender<Response>,
) {
    let op = prepared.op;
    let status = response.status();
    // Bedrock's streaming operations answer only in event-stream frames, whatever the
    // content type says (`application/vnd.amazon.eventstream`); others say `text/event-stream`.
    let bedrock = matches!(
        dialect,
        Dialect::ChatViaBedrock | Dialect::AnthropicViaBedrock
    );
    let is_event_stream = bedrock
        || response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
    // Bedrock names an error's type in a header, not in the body.
    let amzn_error_type = (bedrock && !status.is_success())
        .then(|| response.headers().get("x-amzn-errortype"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let sent_at = exchange.upstream_started.unwrap_or_else(Instant::now);
    let mut reader = candidate.upstream.reader(response, sent_at);
    if status.is_success() && prepared.stream && is_event_stream {
        return stream::relay(state, exchange, reader, dialect, reply).await;
    }
    let deployment = exchange.deployment.clone();
    let bytes = match reader.read_all(MAX_UPSTREAM_BODY).await {
        Ok(bytes) => bytes,
        Err(ChunkError::Timeout) => {
            return fail(
                &state,
                &mut exchange,
                op,
                ApiError::UpstreamTimeout { deployment },
                reply,
            )
            .await;
        }
        Err(ChunkError::Failed) => {
            return fail(
                &state,
                &mut exchange,
                op,
                ApiError::UpstreamUnreachable { deployment },
                reply,
            )
            .await;
        }
    };
    let reported = match dialect {
        Dialect::OpenAi => usage::from_json_body(&bytes),
        Dialect::Responses => responses::usage_from_body(&bytes),
        Dialect::ChatViaGemini => gemini::usage_from_body(&bytes),
        Dialect::ChatViaBedrock => bedrock::usage_from_body(&bytes),
        Dialect::Anthropic | Dialect::ChatViaAnthropic | Dialect::AnthropicViaBedrock => {
            anthropic::from_message_json(&bytes)
        }
    };
    let (usage, estimated) = match reported {
        Some(usage) => (usage, false),
        None if status.is_success() => (estimate(&exchange, 0), true),
        None => (Usage::default(), false),
    };
    let bytes = if status.is_success() {
        match answer_to_client(dialect, bytes, &exchange.model) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(deployment = %deployment, error = %e, "upstream answer is not one of its API's answers");
                return fail(
                    &state,
                    &mut exchange,
                    op,
                    ApiError::UpstreamFailed {
                        deployment,
                        status: status.as_u16(),
                    },
                    reply,
                )
                .await;
            }
        }
    } else {
        error_to_client(dialect, bytes, amzn_error_type.as_deref())
    };
    let error_type = (!status.is_success()).then_some("upstream_client_error");
    let event = exchange.event(Outcome {
        status: status.as_u16(),
        error_type,
        usage,
        usage_estimated: estimated,
        refused_by: None,
    });

    // Upstream 4xx bodies pass through unchanged, with the upstream's status.
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = match dialect {
        Dialect::ChatViaAnthropic | Dialect::ChatViaGemini | Dialect::ChatViaBedrock => {
            Some(HeaderValue::from_static("application/json"))
        }
        _ => content_type,
    };
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if status.is_success()
        && let Ok(value) = HeaderValue::try_from(event.cost_usd.normalize().to_string())
    {
        out.headers_mut().insert(COST_HEADER, value);
    }
    if status.is_success() {
        headroom::add(&state, &exchange, out.headers_mut());
    }
    record_and_reply(&state, &mut exchange, event, out, reply).await;
}
