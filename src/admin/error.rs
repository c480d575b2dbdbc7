//! Errors of the admin API, in the same JSON shape as the data plane's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

const REPORT_TIMEOUT: &str = "the report took longer than the gateway allows \
     (database.report_timeout_ms) and was stopped; narrow it: a shorter time range (from/to), \
     a filter (team, experiment, key, model), fewer group_by dimensions, or a smaller page \
     (limit); or raise database.report_timeout_ms";

const BUSY: &str = "every admin database connection is busy (long reports?); retry shortly, \
     or raise database.admin_pool_size";

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
    /// PostgreSQL cancelled a report at `database.report_timeout_ms`.
    ReportTimeout,
    /// Every admin-pool connection stayed busy for `database.acquire_timeout_ms`.
    Busy,
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
            AdminError::ReportTimeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "report_timeout",
            ),
            AdminError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "database_busy",
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
        if crate::store::is_statement_timeout(&e) {
            tracing::warn!("admin report cancelled at database.report_timeout_ms");
            return AdminError::ReportTimeout;
        }
        if matches!(e, sqlx::Error::PoolTimedOut) {
            tracing::warn!("no admin database connection free within database.acquire_timeout_ms");
            return AdminError::Busy;
        }
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
            AdminError::ReportTimeout => (REPORT_TIMEOUT.to_string(), None),
            AdminError::Busy => (BUSY.to_string(), None),
            AdminError::Internal => ("internal error".to_string(), None),
        };
        let body =
            json!({"error": {"message": message, "type": kind, "code": code, "param": param}});
        (status, axum::Json(body)).into_response()
    }
}
