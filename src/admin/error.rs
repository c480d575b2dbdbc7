//! Errors of the admin API, in the same JSON shape as the data plane's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum AdminError {
    Unauthorized(&'static str),
    Forbidden(&'static str),
    /// 403 with a message naming what exceeded the caller's rights.
    Denied(String),
    NotFound(String),
    Conflict(String),
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    Internal,
}

impl AdminError {
    pub fn bad(param: &'static str, message: impl Into<String>) -> AdminError {
        AdminError::BadRequest {
            message: message.into(),
            param: Some(param),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            AdminError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_token",
            ),
            AdminError::Forbidden(_) | AdminError::Denied(_) => {
                (StatusCode::FORBIDDEN, "permission_error", "forbidden")
            }
            AdminError::NotFound(_) => {
                (StatusCode::NOT_FOUND, "invalid_request_error", "not_found")
            }
            AdminError::Conflict(_) => (StatusCode::CONFLICT, "invalid_request_error", "conflict"),
            AdminError::BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            AdminError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
            ),
        }
    }
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> AdminError {
        // The database's message stays in the log; the client learns only that it failed.
        tracing::error!(error = %e, "admin database error");
        AdminError::Internal
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, kind, code) = self.parts();
        let (message, param) = match self {
            AdminError::Unauthorized(m) | AdminError::Forbidden(m) => (m.to_string(), None),
            AdminError::NotFound(m) | AdminError::Conflict(m) | AdminError::Denied(m) => (m, None),
            AdminError::BadRequest { message, param } => (message, param),
            AdminError::Internal => ("internal error".to_string(), None),
        };
        let body =
            json!({"error": {"message": message, "type": kind, "code": code, "param": param}});
        (status, axum::Json(body)).into_response()
    }
}
