//! Extractors whose rejections are [`AdminError`]s, so a bad body, query string or path gets
//! the API's JSON error like every other mistake, never axum's plain-text one. Every admin
//! handler takes its inputs through these.
//!
//! - a body that is not JSON, or not sent as `application/json`: 400 `invalid_json`;
//! - JSON of the wrong shape (a field missing, unknown or of the wrong type): 422
//!   `invalid_body`, naming the field (`param` is its path, e.g. `limits.budgets[0].period`)
//!   and what was expected, in serde's words;
//! - a body over [`MAX_BODY_BYTES`]: 413 `body_too_large`;
//! - a query string or path that does not parse: 400 `invalid_request`.

use std::borrow::Cow;

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::AdminError;

/// The largest body the admin API reads. The biggest legitimate one (a campaign with many
/// allowed models and limits) is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, AdminError> {
        if !is_json(req.headers()) {
            return Err(wrong_content_type(req.headers()));
        }
        let bytes = read_body(req).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// A body that may be omitted: `None` when it is empty, whatever its content type.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, _state: &S) -> Result<Option<Self>, AdminError> {
        let json = is_json(req.headers());
        let problem = (!json).then(|| wrong_content_type(req.headers()));
        let bytes = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        match problem {
            Some(e) => Err(e),
            None => parse(&bytes).map(|v| Some(ApiJson(v))),
        }
    }
}

/// Query-string parameters.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(AdminError::BadRequest {
                message: format!(
                    "the query string is not valid for this route: {}",
                    inner_message(&rejection.body_text())
                ),
                param: None,
            }),
        }
    }
}

/// Path segments (`{team}`, `{id}`, ...).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) if rejection.status().is_server_error() => {
                tracing::error!(rejection = %rejection.body_text(), "admin route without its path parameters");
                Err(AdminError::Internal)
            }
            Err(rejection) => Err(AdminError::BadRequest {
                message: format!(
                    "the path is not valid: {}",
                    inner_message(&rejection.body_text())
                ),
                param: None,
            }),
        }
    }
}

/// `application/json`, or a `+json` type, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

fn wrong_content_type(headers: &HeaderMap) -> AdminError {
    let sent = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(100).collect::<String>());
    AdminError::MalformedBody(match sent {
        Some(sent) => {
            format!("the body is sent as `{sent}`; send JSON with `Content-Type: application/json`")
        }
        None => "the body has no `Content-Type`; send JSON with `Content-Type: application/json`"
            .to_owned(),
    })
}

async fn read_body(req: Request) -> Result<bytes::Bytes, AdminError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(cause) = source {
                if cause.is::<http_body_util::LengthLimitError>() {
                    return AdminError::BodyTooLarge;
                }
                source = cause.source();
            }
            AdminError::MalformedBody(format!("the body could not be read: {e}"))
        })
}

/// Deserializes a body, telling malformed JSON (400) from JSON of the wrong shape (422).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        shape_error(&path, e.into_inner())
    })?;
    // Like `serde_json::from_slice`: nothing but whitespace may follow the value.
    deserializer
        .end()
        .map_err(|e| AdminError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn shape_error(path: &str, error: serde_json::Error) -> AdminError {
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            AdminError::MalformedBody(format!("the body is not valid JSON: {error}"))
        }
        Category::Data => {
            let at = (path != ".").then_some(path);
            // `missing field `x``, `unknown field `x`, expected ...`: the field is in the
            // message, not in the path (the error is raised by the object that lacks it).
            let named = error
                .to_string()
                .split_once('`')
                .and_then(|(before, rest)| {
                    let field = rest.split('`').next()?;
                    (before.ends_with("missing field ") || before.ends_with("unknown field "))
                        .then(|| field.to_owned())
                });
            let param = match (at, named) {
                // An unknown field is already the last segment of the path.
                (Some(at), Some(field)) if at == field || at.ends_with(&format!(".{field}")) => {
                    Some(at.to_owned())
                }
                (Some(at), Some(field)) => Some(format!("{at}.{field}")),
                (None, Some(field)) => Some(field),
                (Some(at), None) => Some(at.to_owned()),
                (None, None) => None,
            };
            let message = match at {
                Some(at) if !error.to_string().contains(&format!("`{at}`")) => {
                    format!("`{at}`: {error}")
                }
                _ => format!("the body does not fit this route: {error}"),
            };
            AdminError::InvalidBody { message, param }
        }
    }
}

/// axum's rejection text without its own preamble ("Failed to deserialize query string: ").
fn inner_message(text: &str) -> Cow<'_, str> {
    match text.split_once(": ") {
        Some((preamble, rest)) if preamble.starts_with("Failed to") => Cow::Borrowed(rest),
        _ => Cow::Borrowed(text),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        limits: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        rpm: u32,
    }

    fn error(body: &str) -> (u16, String, Option<String>) {
        let e = parse::<Body>(body.as_bytes()).unwrap_err();
        let status = e.status().as_u16();
        let body = serde_json::to_value(e.body()).unwrap();
        (
            status,
            body["error"]["message"].as_str().unwrap().to_owned(),
            body["error"]["param"].as_str().map(str::to_owned),
        )
    }

    #[test]
    fn malformed_json_is_400_and_the_wrong_shape_422_with_the_field() {
        for bad in ["{", "{\"name\": }", "nope", "{\"name\": \"a\"} x", ""] {
            assert_eq!(error(bad).0, 400, "{bad}");
        }
        let (status, message, param) = error(r#"{"name": "a", "limits": {"rpm": "fast"}}"#);
        assert_eq!((status, param.as_deref()), (422, Some("limits.rpm")));
        assert!(
            message.contains("`limits.rpm`") && message.contains("expected u32"),
            "{message}"
        );
        let (status, message, param) = error(r#"{}"#);
        assert_eq!((status, param.as_deref()), (422, Some("name")));
        assert!(message.contains("missing field `name`"), "{message}");
        let (status, message, param) = error(r#"{"name": "a", "budget": 1}"#);
        assert_eq!((status, param.as_deref()), (422, Some("budget")));
        assert!(message.contains("unknown field `budget`"), "{message}");
        let (status, _, param) = error(r#"{"name": "a", "limits": {}}"#);
        assert_eq!((status, param.as_deref()), (422, Some("limits.rpm")));
        assert!(parse::<Body>(br#"{"name": "a"}"#).is_ok());
    }

    #[test]
    fn json_content_types() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, value.parse().unwrap());
            h
        };
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&headers(ok)), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "json"] {
            assert!(!is_json(&headers(bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
