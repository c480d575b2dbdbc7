//! Authenticating a virtual key: cheap refusals first (a client over its failed
//! authentications, a key of the wrong shape), then the set of existing keys, then the
//! in-process policy cache.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::auth_failures::Peer;
use super::error::ApiError;
use super::finish::{access_log_unauthenticated, with_request_id};
use super::state::ProxyState;
use crate::ids::RequestId;
use crate::keys::{KeyHash, KeyPolicy, check_shape};

/// The key presented as `Authorization: Bearer <key>` or `x-api-key: <key>` (the
/// Anthropic SDK's header).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(token.trim()).filter(|t| !t.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The policy of the presented key, if it may be used now. Every 401 counts against the
/// client's address ([`super::auth_failures`]); a client over its limit is refused before
/// anything else is done.
/// Answers a read-only endpoint for the presented key: `answer` runs once the key is
/// authenticated; either way the response carries a request id, and a refusal gets its
/// access-log line.
pub async fn answer_for_key<Answer>(
    state: &ProxyState,
    peer: Peer,
    headers: &HeaderMap,
    endpoint: &'static str,
    answer: impl FnOnce(Arc<KeyPolicy>) -> Answer,
) -> Response
where
    Answer: Future<Output = Response>,
{
    let request_id = RequestId::new();
    let response = match authenticate(state, headers, peer).await {
        Ok(policy) => answer(policy).await,
        Err(e) => {
            access_log_unauthenticated(state, request_id, endpoint, &e);
            e.into_response()
        }
    };
    with_request_id(response, request_id)
}

pub async fn authenticate(
    state: &ProxyState,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<Arc<KeyPolicy>, ApiError> {
    let client = state.auth_failures.client(peer, headers);
    if let Some(throttled) = state.auth_failures.refusal(client).await {
        crate::metrics::observe_auth_refusal("throttled");
        return Err(ApiError::AuthThrottled(throttled));
    }
    let identified = identify(state, headers).await;
    if let Err(refusal) = &identified
        && let Some(reason) = failure_reason(refusal)
    {
        crate::metrics::observe_auth_refusal(reason);
        state.auth_failures.record(client).await;
    }
    let policy = identified?;
    policy
        .check_usable(Utc::now())
        .map_err(ApiError::KeyRefused)?;
    Ok(policy)
}

/// The label of a failed authentication (a 401), for the metric; `None` for other errors.
fn failure_reason(error: &ApiError) -> Option<&'static str> {
    match error {
        ApiError::MissingKey => Some("missing"),
        ApiError::MalformedKey(_) => Some("malformed"),
        ApiError::UnknownKey => Some("unknown"),
        _ => None,
    }
}

async fn identify(state: &ProxyState, headers: &HeaderMap) -> Result<Arc<KeyPolicy>, ApiError> {
    let presented = presented_key(headers).ok_or(ApiError::MissingKey)?;
    check_shape(presented).map_err(ApiError::MalformedKey)?;
    state
        .keys
        .get(KeyHash::of(presented))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            ApiError::BackendUnavailable
        })?
        .ok_or(ApiError::UnknownKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn reads_both_header_forms() {
        assert_eq!(
            presented_key(&headers("authorization", "Bearer tg-abc")),
            Some("tg-abc")
        );
        assert_eq!(
            presented_key(&headers("x-api-key", "tg-abc")),
            Some("tg-abc")
        );
        assert_eq!(presented_key(&headers("authorization", "Basic xyz")), None);
        assert_eq!(presented_key(&headers("authorization", "Bearer ")), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
