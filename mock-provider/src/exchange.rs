//! What both endpoints share: receiving a request (the body read whole, the request counted,
//! per API key too, and the key's script consulted), choosing a forced error, and answering it
//! in the endpoint's error shape.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::body::{anthropic_error_json, error_json, gemini_error_json};
use crate::config::MockOverrides;
use crate::{MockConfig, Shared};

/// Which API's error shape an endpoint answers with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Flavor {
    OpenAi,
    Anthropic,
    Gemini,
}

pub(crate) struct Incoming {
    /// The request's number among all chat and messages requests, counting from 1.
    pub n: u64,
    /// The status the request's API key script holds for it.
    pub scripted: Option<u16>,
    pub body: Bytes,
}

/// Reads the body and records the request. Taking the whole request (rather than a `HeaderMap`
/// extractor, which clones the headers) keeps the key lookup free of copies.
pub(crate) async fn receive(
    shared: &Shared,
    request: Request,
    flavor: Flavor,
) -> Result<Incoming, Response> {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            return Err(error(
                flavor,
                StatusCode::BAD_REQUEST,
                &format!("mock: could not read the body: {e}"),
                None,
            ));
        }
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned());
    let (n, scripted) = shared.record(&body, api_key(&parts.headers), path);
    Ok(Incoming { n, scripted, body })
}

/// `x-api-key: K` (Anthropic's header), `x-goog-api-key: K` (Gemini's), `api-key: K`
/// (Azure's), else `Authorization: Bearer K`.
fn api_key(headers: &HeaderMap) -> Option<&str> {
    for name in ["x-api-key", "x-goog-api-key", "api-key"] {
        if let Some(key) = headers.get(name) {
            return key.to_str().ok();
        }
    }
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The error status a request must get, in order of precedence: its `mock.status`, its key's
/// scripted status (a 2xx one answers normally), `error_every`, `rate_limit_every`.
pub(crate) fn forced_status(
    override_status: Option<u16>,
    scripted: Option<u16>,
    n: u64,
    config: &MockConfig,
) -> Result<Option<StatusCode>, &'static str> {
    if let Some(code) = override_status {
        return StatusCode::from_u16(code)
            .map(Some)
            .map_err(|_| "mock: mock.status is not an HTTP status");
    }
    if let Some(code) = scripted {
        let status = StatusCode::from_u16(code)
            .map_err(|_| "mock: key_failures holds something that is not an HTTP status")?;
        return Ok((!status.is_success()).then_some(status));
    }
    if is_nth(n, config.error_every) {
        return Ok(Some(StatusCode::INTERNAL_SERVER_ERROR));
    }
    if is_nth(n, config.rate_limit_every) {
        return Ok(Some(StatusCode::TOO_MANY_REQUESTS));
    }
    Ok(None)
}

/// The start every answer makes: its `mock.delay_ms` (or the configured delay), then the error
/// its `mock.status`, its key's script or the configuration forces, in `flavor`'s shape.
/// `None`: answer normally.
pub(crate) async fn delay_or_error<U>(
    overrides: Option<&MockOverrides<U>>,
    incoming: &Incoming,
    config: &MockConfig,
    flavor: Flavor,
) -> Option<Response> {
    let forced = forced_status(
        overrides.and_then(|o| o.status),
        incoming.scripted,
        incoming.n,
        config,
    );
    let forced = match forced {
        Ok(forced) => forced,
        Err(message) => return Some(error(flavor, StatusCode::BAD_REQUEST, message, None)),
    };
    sleep_ms(
        overrides
            .and_then(|o| o.delay_ms)
            .unwrap_or(config.delay_ms),
    )
    .await;
    let status = forced?;
    let retry_after = retry_after(status, overrides.and_then(|o| o.retry_after));
    Some(error(flavor, status, "mock error", retry_after))
}

/// `Retry-After` for the statuses that carry one (429, and Anthropic's 529 "overloaded").
pub(crate) fn retry_after(status: StatusCode, override_secs: Option<u64>) -> Option<u64> {
    matches!(status.as_u16(), 429 | 529).then(|| override_secs.unwrap_or(1))
}

/// Whether request number `n` (from 1) is a multiple of `every`; `every == 0` means never.
fn is_nth(n: u64, every: u64) -> bool {
    every != 0 && n.is_multiple_of(every)
}

pub(crate) async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Parses a request body, or answers 400 in the endpoint's flavor (after the configured
/// delay, like every other answer).
pub(crate) async fn parse_body<'a, T: serde::Deserialize<'a>>(
    body: &'a [u8],
    flavor: Flavor,
    delay_ms: u64,
) -> Result<T, Response> {
    match serde_json::from_slice(body) {
        Ok(request) => Ok(request),
        Err(e) => {
            sleep_ms(delay_ms).await;
            let message = format!("mock: invalid request body: {e}");
            Err(error(flavor, StatusCode::BAD_REQUEST, &message, None))
        }
    }
}

pub(crate) fn error(
    flavor: Flavor,
    status: StatusCode,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    let body = match flavor {
        Flavor::OpenAi => error_json(status.as_u16(), message),
        Flavor::Anthropic => anthropic_error_json(status.as_u16(), message),
        Flavor::Gemini => gemini_error_json(status.as_u16(), message),
    };
    let mut response = with_content_type(Body::from(body), "application/json");
    *response.status_mut() = status;
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

pub(crate) fn with_content_type(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
