//! Errors of the admin API, in the same JSON shape as the data plane's:
//! `{"error": {"message", "type", "code", "param"}}`. Every refusal goes through
//! [`AdminError`], extractor rejections included (see [`super::extract`]), so a client parses
//! one shape whatever went wrong.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

const REPORT_TIMEOUT: &str = "the report took longer than the gateway allows \
     (database.report_timeout_ms) and was stopped; narrow it: a shorter time range (from/to), \
     a filter (team, experiment, key, model), fewer group_by dimensions, or a smaller page \
     (limit); or raise database.report_timeout_ms";

const BUSY: &str = "every admin database connection is busy (long reports?); retry shortly, \
     or raise database.admin_pool_size";

#[derive(Debug)]
pub enum AdminError {
    /// 401 with a message saying what is wrong with the token and how to get a valid one.
    Unauthorized(Cow<'static, str>),
    Forbidden(&'static str),
    /// 403 with a message naming what exceeded the caller's rights.
    Denied(String),
    NotFound(String),
    Conflict(String),
    /// 400: a field, a parameter or a combination of them is not valid.
    BadRequest {
        message: String,
        param: Option<Cow<'static, str>>,
    },
    /// PostgreSQL cancelled a report at `database.report_timeout_ms`.
    ReportTimeout,
    /// Every admin-pool connection stayed busy for `database.acquire_timeout_ms`.
    Busy,
    /// 400 `team_required`: an experiment named by name without its team (names are unique
    /// only within a team); `param` is `experiment`, what was named. One variant, so the
    /// mistake gets one answer wherever it happens.
    TeamRequired(String),
    /// 400 `not_a_key_id`: a key named by something other than its id.
    NotAKeyId(String),
    /// 400: the body is not JSON, or is not sent as `application/json`.
    MalformedBody(String),
    /// 422: the body is JSON, but not of the shape the route takes (a field missing, unknown
    /// or of the wrong type). `param` is the path of the offending field when serde knows it.
    InvalidBody {
        message: String,
        param: Option<String>,
    },
    /// 413: the body is larger than the admin API accepts.
    BodyTooLarge,
    /// 404: no route has this path (as opposed to a route whose object does not exist).
    NoSuchRoute(String),
    /// 405: the path exists, but not with this method.
    MethodNotAllowed(String),
    Internal,
}

/// `{"error": {...}}`: the body of every error the admin API answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// For people: what is wrong and how to fix it.
    message: String,
    /// Stable: `authentication_error`, `permission_error`, `invalid_request_error`,
    /// `api_error`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Stable: `invalid_token`, `forbidden`, `not_found`, `conflict`, `invalid_request`,
    /// `team_required`, `not_a_key_id`, `invalid_json`, `invalid_body`, `body_too_large`,
    /// `unknown_route`, `method_not_allowed`, `internal_error`.
    code: &'static str,
    /// The offending request field or parameter, when there is one.
    param: Option<String>,
}

impl AdminError {
    pub fn bad(param: &'static str, message: impl Into<String>) -> AdminError {
        AdminError::BadRequest {
            message: message.into(),
            param: Some(Cow::Borrowed(param)),
        }
    }

    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> AdminError {
        AdminError::Unauthorized(message.into())
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// Exhaustive, so a new variant must decide its status, type and code here.
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
            AdminError::TeamRequired(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "team_required",
            ),
            AdminError::NotAKeyId(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "not_a_key_id",
            ),
            AdminError::MalformedBody(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
            ),
            AdminError::InvalidBody { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "invalid_body",
            ),
            AdminError::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
            ),
            AdminError::NoSuchRoute(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "unknown_route",
            ),
            AdminError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
            ),
            AdminError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
            ),
        }
    }

    pub fn body(self) -> ErrorBody {
        let (_, kind, code) = self.parts();
        let (message, param) = match self {
            AdminError::Unauthorized(m) => (m.into_owned(), None),
            AdminError::Forbidden(m) => (m.to_owned(), None),
            AdminError::NotFound(m)
            | AdminError::Conflict(m)
            | AdminError::Denied(m)
            | AdminError::MalformedBody(m)
            | AdminError::NoSuchRoute(m)
            | AdminError::MethodNotAllowed(m) => (m, None),
            AdminError::TeamRequired(m) => (m, Some("experiment".to_owned())),
            AdminError::NotAKeyId(m) => (m, Some("key".to_owned())),
            AdminError::BadRequest { message, param } => (message, param.map(Cow::into_owned)),
            AdminError::InvalidBody { message, param } => (message, param),
            AdminError::BodyTooLarge => (
                format!(
                    "the request body is larger than {} bytes, the most the admin API accepts",
                    super::extract::MAX_BODY_BYTES
                ),
                None,
            ),
            AdminError::ReportTimeout => (REPORT_TIMEOUT.to_owned(), None),
            AdminError::Busy => (BUSY.to_owned(), None),
            AdminError::Internal => ("internal error".to_owned(), None),
        };
        ErrorBody {
            error: ErrorDetail {
                message,
                kind,
                code,
                param,
            },
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
        let status = self.status();
        (status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_same_four_members() {
        for (error, status) in [
            (AdminError::bad("count", "`count` must be 1 to 1000"), 400),
            (AdminError::MalformedBody("not JSON".into()), 400),
            (
                AdminError::InvalidBody {
                    message: "m".into(),
                    param: Some("limits.rpm".into()),
                },
                422,
            ),
            (AdminError::BodyTooLarge, 413),
            (AdminError::NoSuchRoute("x".into()), 404),
            (AdminError::Internal, 500),
        ] {
            assert_eq!(error.status().as_u16(), status);
            let body = serde_json::to_value(error.body()).unwrap();
            let detail = body["error"].as_object().unwrap();
            let mut members: Vec<&str> = detail.keys().map(String::as_str).collect();
            members.sort_unstable();
            assert_eq!(members, ["code", "message", "param", "type"], "{body}");
        }
    }
}
