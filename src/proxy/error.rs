//! Every way the data plane refuses or fails a request, and the OpenAI-shaped answer for it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use std::time::Duration;

use super::auth_failures::Throttled;
use super::operation::Operation;
use super::refusal::{BudgetRefusal, ScopeLabel, concurrency_message, rate_message};
use crate::governance::{RateKind, ScopeKind};
use crate::keys::{KEY_SHAPE, KeyRefusal, Malformed};
use crate::pricing::ModelMode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    MissingKey,
    /// Not the shape of a virtual key: refused without a lookup.
    MalformedKey(Malformed),
    UnknownKey,
    /// The client's address made too many failed authentications this minute.
    AuthThrottled(Throttled),
    KeyRefused(KeyRefusal),
    ModelNotAllowed(String),
    MalformedBody {
        message: String,
        param: Option<&'static str>,
    },
    /// A tag of the `x-tollgate-tags` header or the body's `metadata` is not one.
    InvalidTags(crate::tags::TagError),
    BodyTooLarge {
        limit: usize,
    },
    UnknownModel(String),
    ModelNotPriced(String),
    NotFound,
    /// PostgreSQL or Redis could not be asked, and the policy is to fail closed.
    BackendUnavailable,
    BudgetExceeded(Box<BudgetRefusal>),
    RateLimited {
        scope: Box<ScopeLabel>,
        rate: RateKind,
        limit: u64,
        remaining: u64,
        retry_after: Duration,
    },
    ConcurrencyLimited {
        scope: Box<ScopeLabel>,
        limit: u64,
    },
    /// This instance's own ceiling (per instance or per key), checked before Redis.
    InstanceLimited,
    UpstreamUnreachable {
        deployment: String,
    },
    UpstreamTimeout {
        deployment: String,
    },
    UpstreamFailed {
        deployment: String,
        status: u16,
    },
    /// Every deployment of the model answered 429.
    UpstreamRateLimited {
        deployment: String,
        retry_after: Option<Duration>,
    },
    /// The model's price entry is for another kind of model than the endpoint serves (an
    /// embedding model on chat, a chat model on embeddings).
    WrongKindOfModel {
        model: String,
        mode: ModelMode,
        endpoint: &'static str,
    },
    /// The client hung up before its request was read (nobody receives this answer; the
    /// ledger records it as 499).
    ClientDisconnected,
    /// The model's deployments cannot serve this endpoint (e.g. embeddings on Anthropic).
    OperationNotServed {
        model: String,
        endpoint: &'static str,
    },
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingKey | ApiError::MalformedKey(_) | ApiError::UnknownKey => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::KeyRefused(_) | ApiError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::MalformedBody { .. }
            | ApiError::InvalidTags(_)
            | ApiError::ModelNotPriced(_)
            | ApiError::WrongKindOfModel { .. }
            | ApiError::OperationNotServed { .. } => StatusCode::BAD_REQUEST,
            ApiError::UpstreamRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnknownModel(_) | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BackendUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BudgetExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::RateLimited { .. }
            | ApiError::ConcurrencyLimited { .. }
            | ApiError::InstanceLimited
            | ApiError::AuthThrottled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UpstreamUnreachable { .. } | ApiError::UpstreamFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ClientDisconnected => {
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, low-cardinality name used as the error `code`, in the ledger and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingKey => "missing_api_key",
            // OpenAI's code for a key it does not accept, whatever the reason.
            ApiError::MalformedKey(_) | ApiError::UnknownKey => "invalid_api_key",
            ApiError::AuthThrottled(_) => "too_many_failed_authentications",
            ApiError::KeyRefused(KeyRefusal::Revoked) => "key_revoked",
            ApiError::KeyRefused(KeyRefusal::Expired) => "key_expired",
            ApiError::KeyRefused(KeyRefusal::ExperimentEnded { .. }) => "experiment_ended",
            ApiError::ModelNotAllowed(_) => "model_not_allowed",
            ApiError::MalformedBody { .. } => "invalid_request_body",
            ApiError::InvalidTags(_) => "invalid_tags",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::UnknownModel(_) => "model_not_found",
            ApiError::ModelNotPriced(_) => "model_not_priced",
            ApiError::NotFound => "not_found",
            ApiError::BackendUnavailable => "governance_unavailable",
            ApiError::BudgetExceeded(_) => "budget_exceeded",
            ApiError::RateLimited {
                rate: RateKind::Requests,
                ..
            } => "rate_limit_requests",
            ApiError::RateLimited {
                rate: RateKind::Tokens,
                ..
            } => "rate_limit_tokens",
            ApiError::ConcurrencyLimited { .. } => "concurrency_limit",
            ApiError::InstanceLimited => "instance_rate_limit",
            ApiError::UpstreamUnreachable { .. } => "upstream_unreachable",
            ApiError::UpstreamTimeout { .. } => "upstream_timeout",
            ApiError::UpstreamFailed { .. } => "upstream_error",
            ApiError::UpstreamRateLimited { .. } => "upstream_rate_limited",
            ApiError::OperationNotServed { .. } => "operation_not_supported",
            ApiError::WrongKindOfModel { .. } => "wrong_kind_of_model",
            ApiError::ClientDisconnected => "client_disconnected",
            ApiError::Internal => "internal_error",
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            ApiError::MissingKey | ApiError::MalformedKey(_) | ApiError::UnknownKey => {
                "authentication_error"
            }
            ApiError::KeyRefused(_) | ApiError::ModelNotAllowed(_) => "permission_error",
            ApiError::MalformedBody { .. }
            | ApiError::InvalidTags(_)
            | ApiError::BodyTooLarge { .. }
            | ApiError::UnknownModel(_)
            | ApiError::ModelNotPriced(_)
            | ApiError::OperationNotServed { .. }
            | ApiError::WrongKindOfModel { .. }
            | ApiError::ClientDisconnected
            | ApiError::NotFound => "invalid_request_error",
            ApiError::UpstreamRateLimited { .. } => "rate_limit_error",
            ApiError::BudgetExceeded(_) => "budget_exceeded",
            ApiError::RateLimited { .. }
            | ApiError::ConcurrencyLimited { .. }
            | ApiError::InstanceLimited
            | ApiError::AuthThrottled(_) => "rate_limit_error",
            ApiError::BackendUnavailable
            | ApiError::UpstreamUnreachable { .. }
            | ApiError::UpstreamTimeout { .. }
            | ApiError::UpstreamFailed { .. }
            | ApiError::Internal => "api_error",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::MissingKey => {
                "no API key: send `Authorization: Bearer <virtual key>` or `x-api-key: <virtual key>`".into()
            }
            ApiError::MalformedKey(problem) => format!(
                "the API key is not a Tollgate virtual key: {problem}; virtual keys are {KEY_SHAPE} (46 characters), so check that the whole key was copied"
            ),
            ApiError::UnknownKey => "the API key is not a known Tollgate virtual key".into(),
            ApiError::AuthThrottled(Throttled { client, limit, retry_after }) => format!(
                "too many failed authentications from {client}: {limit} within a minute, so its requests are refused for the next {} s; fix the API key before retrying",
                retry_seconds(*retry_after)
            ),
            ApiError::KeyRefused(refusal) => refusal.to_string(),
            ApiError::ModelNotAllowed(m) => format!("this key may not use model `{m}`"),
            ApiError::MalformedBody { message, .. } => format!("invalid request body: {message}"),
            ApiError::InvalidTags(e) => format!("invalid tags in {e}"),
            ApiError::BodyTooLarge { limit } => format!("request body is larger than the {limit}-byte limit"),
            ApiError::UnknownModel(m) => format!("model `{m}` is not served by this gateway"),
            ApiError::ModelNotPriced(m) => format!(
                "model `{m}` has no price in the pricing table, so its spend cannot be recorded; add it under pricing/"
            ),
            // tollctl (or curl) pointed at the wrong port is the usual way to get here.
            ApiError::NotFound => "no such endpoint on the data-plane listener (/v1/...); \
                the admin API (/admin/v1/...) listens on admin_listen (default 127.0.0.1:8081)"
                .into(),
            ApiError::BackendUnavailable => {
                "the gateway cannot reach its governance backend; try again shortly".into()
            }
            ApiError::BudgetExceeded(refusal) => refusal.to_string(),
            ApiError::RateLimited {
                scope,
                rate,
                limit,
                retry_after,
                ..
            } => rate_message(scope, *rate, *limit, *retry_after),
            ApiError::ConcurrencyLimited { scope, limit } => concurrency_message(scope, *limit),
            ApiError::InstanceLimited => "this gateway instance is at its request ceiling; retry shortly".into(),
            ApiError::UpstreamUnreachable { deployment } => {
                format!("could not reach the upstream for deployment `{deployment}`")
            }
            ApiError::UpstreamTimeout { deployment } => {
                format!("the upstream for deployment `{deployment}` did not answer in time")
            }
            ApiError::UpstreamFailed { deployment, status } => {
                format!("the upstream for deployment `{deployment}` failed with HTTP {status}")
            }
            ApiError::UpstreamRateLimited { deployment, .. } => {
                format!("every upstream for this model is rate limited (last tried: deployment `{deployment}`)")
            }
            ApiError::OperationNotServed { model, endpoint: "/v1/responses" } => format!(
                "model `{model}` is not served on /v1/responses by any of its deployments: the Responses API goes to OpenAI-kind deployments only, and is not translated for Anthropic ones (send this model's requests to /v1/chat/completions or /v1/messages)"
            ),
            ApiError::OperationNotServed { model, endpoint } => {
                format!("model `{model}` is not served on {endpoint} by any of its deployments")
            }
            ApiError::WrongKindOfModel { model, mode: ModelMode::Embedding, endpoint } => format!(
                "model `{model}` is an embedding model, so it is not served on {endpoint}: send it to /v1/embeddings, or use a chat model here"
            ),
            ApiError::WrongKindOfModel { model, mode: ModelMode::Chat, endpoint } => format!(
                "model `{model}` is a chat model, so it is not served on {endpoint}: use an embedding model (one whose price entry says mode = \"embedding\"), such as text-embedding-3-small"
            ),
            ApiError::ClientDisconnected => "the client closed the connection before sending the whole body".into(),
            ApiError::Internal => "internal error".into(),
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::MalformedBody { param, .. } => *param,
            ApiError::InvalidTags(e) if e.source == "metadata" => Some("metadata"),
            ApiError::ModelNotAllowed(_)
            | ApiError::UnknownModel(_)
            | ApiError::ModelNotPriced(_)
            | ApiError::WrongKindOfModel { .. }
            | ApiError::OperationNotServed { .. } => Some("model"),
            _ => None,
        }
    }
}

impl ApiError {
    /// The scope whose limit refused the request, for governance refusals.
    pub fn scope(&self) -> Option<ScopeKind> {
        match self {
            ApiError::BudgetExceeded(refusal) => Some(refusal.scope.kind),
            ApiError::RateLimited { scope, .. } | ApiError::ConcurrencyLimited { scope, .. } => {
                Some(scope.kind)
            }
            _ => None,
        }
    }

    /// The answer in the calling endpoint's dialect: Anthropic's error shape on
    /// `/v1/messages` (what the `anthropic` SDK parses), OpenAI's everywhere else.
    pub fn render(self, op: Operation) -> Response {
        if !op.anthropic_errors() {
            return self.into_response();
        }
        let kind = match self.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            400 | 402 => "invalid_request_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        };
        let body = json!({"type": "error", "error": {"type": kind, "message": self.message()}});
        let mut response = (self.status(), axum::Json(body)).into_response();
        rate_limit_headers(&self, response.headers_mut());
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message(),
                "type": self.error_type(),
                "code": self.code(),
                "param": self.param(),
            }
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        rate_limit_headers(&self, response.headers_mut());
        response
    }
}

/// `Retry-After` and OpenAI's `x-ratelimit-*` headers on a 429.
fn rate_limit_headers(error: &ApiError, headers: &mut axum::http::HeaderMap) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    };
    match error {
        ApiError::RateLimited {
            rate,
            limit,
            remaining,
            retry_after,
            ..
        } => {
            let kind = match rate {
                RateKind::Requests => "requests",
                RateKind::Tokens => "tokens",
            };
            // Whole seconds, rounded up, so a retry after it finds the bucket refilled.
            set(
                "retry-after",
                retry_after.as_millis().div_ceil(1000).max(1).to_string(),
            );
            set(header_name("limit", kind), limit.to_string());
            set(header_name("remaining", kind), remaining.to_string());
            set(
                header_name("reset", kind),
                format!("{}ms", retry_after.as_millis()),
            );
        }
        ApiError::ConcurrencyLimited { .. } | ApiError::InstanceLimited => {
            set("retry-after", "1".into())
        }
        ApiError::AuthThrottled(Throttled { retry_after, .. }) => {
            set("retry-after", retry_seconds(*retry_after).to_string())
        }
        ApiError::UpstreamRateLimited { retry_after, .. } => {
            let seconds = retry_after.map_or(1, |d| d.as_secs().max(1));
            set("retry-after", seconds.to_string())
        }
        _ => {}
    }
}

/// Whole seconds, rounded up and at least 1, so a retry after it is not refused again.
fn retry_seconds(wait: Duration) -> u128 {
    wait.as_millis().div_ceil(1000).max(1)
}

fn header_name(what: &str, kind: &str) -> &'static str {
    match (what, kind) {
        ("limit", "requests") => "x-ratelimit-limit-requests",
        ("remaining", "requests") => "x-ratelimit-remaining-requests",
        ("reset", "requests") => "x-ratelimit-reset-requests",
        ("limit", _) => "x-ratelimit-limit-tokens",
        ("remaining", _) => "x-ratelimit-remaining-tokens",
        _ => "x-ratelimit-reset-tokens",
    }
}
