//! Every way the data plane refuses or fails a request, and the OpenAI-shaped answer for it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::keys::KeyRefusal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    MissingKey,
    UnknownKey,
    KeyRefused(KeyRefusal),
    ModelNotAllowed(String),
    MalformedBody {
        message: String,
        param: Option<&'static str>,
    },
    BodyTooLarge {
        limit: usize,
    },
    UnknownModel(String),
    ModelNotPriced(String),
    NotFound,
    /// PostgreSQL could not be asked about a key the cache had not seen.
    BackendUnavailable,
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
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingKey | ApiError::UnknownKey => StatusCode::UNAUTHORIZED,
            ApiError::KeyRefused(_) | ApiError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::MalformedBody { .. } | ApiError::ModelNotPriced(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnknownModel(_) | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BackendUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UpstreamUnreachable { .. } | ApiError::UpstreamFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, low-cardinality name used as the error `code`, in the ledger and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingKey => "missing_api_key",
            ApiError::UnknownKey => "invalid_api_key",
            ApiError::KeyRefused(KeyRefusal::Revoked) => "key_revoked",
            ApiError::KeyRefused(KeyRefusal::Expired) => "key_expired",
            ApiError::KeyRefused(KeyRefusal::ExperimentEnded) => "experiment_ended",
            ApiError::ModelNotAllowed(_) => "model_not_allowed",
            ApiError::MalformedBody { .. } => "invalid_request_body",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::UnknownModel(_) => "model_not_found",
            ApiError::ModelNotPriced(_) => "model_not_priced",
            ApiError::NotFound => "not_found",
            ApiError::BackendUnavailable => "governance_unavailable",
            ApiError::UpstreamUnreachable { .. } => "upstream_unreachable",
            ApiError::UpstreamTimeout { .. } => "upstream_timeout",
            ApiError::UpstreamFailed { .. } => "upstream_error",
            ApiError::Internal => "internal_error",
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            ApiError::MissingKey | ApiError::UnknownKey => "authentication_error",
            ApiError::KeyRefused(_) | ApiError::ModelNotAllowed(_) => "permission_error",
            ApiError::MalformedBody { .. }
            | ApiError::BodyTooLarge { .. }
            | ApiError::UnknownModel(_)
            | ApiError::ModelNotPriced(_)
            | ApiError::NotFound => "invalid_request_error",
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
            ApiError::UnknownKey => "the API key is not a known Tollgate virtual key".into(),
            ApiError::KeyRefused(KeyRefusal::Revoked) => "this virtual key has been revoked".into(),
            ApiError::KeyRefused(KeyRefusal::Expired) => "this virtual key has expired".into(),
            ApiError::KeyRefused(KeyRefusal::ExperimentEnded) => {
                "the experiment this key belongs to has ended".into()
            }
            ApiError::ModelNotAllowed(m) => format!("this key may not use model `{m}`"),
            ApiError::MalformedBody { message, .. } => format!("invalid request body: {message}"),
            ApiError::BodyTooLarge { limit } => format!("request body is larger than the {limit}-byte limit"),
            ApiError::UnknownModel(m) => format!("model `{m}` is not served by this gateway"),
            ApiError::ModelNotPriced(m) => format!(
                "model `{m}` has no price in the pricing table, so its spend cannot be recorded; add it under pricing/"
            ),
            ApiError::NotFound => "no such endpoint".into(),
            ApiError::BackendUnavailable => {
                "the gateway cannot reach its governance backend; try again shortly".into()
            }
            ApiError::UpstreamUnreachable { deployment } => {
                format!("could not reach the upstream for deployment `{deployment}`")
            }
            ApiError::UpstreamTimeout { deployment } => {
                format!("the upstream for deployment `{deployment}` did not answer in time")
            }
            ApiError::UpstreamFailed { deployment, status } => {
                format!("the upstream for deployment `{deployment}` failed with HTTP {status}")
            }
            ApiError::Internal => "internal error".into(),
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::MalformedBody { param, .. } => *param,
            ApiError::ModelNotAllowed(_)
            | ApiError::UnknownModel(_)
            | ApiError::ModelNotPriced(_) => Some("model"),
            _ => None,
        }
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
        response
    }
}
