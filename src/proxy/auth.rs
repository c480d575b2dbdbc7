//! Authenticating a virtual key against the in-process policy cache.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use chrono::Utc;

use super::error::ApiError;
use super::state::ProxyState;
use crate::keys::{KeyHash, KeyPolicy};

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

pub async fn authenticate(
    state: &ProxyState,
    headers: &HeaderMap,
) -> Result<Arc<KeyPolicy>, ApiError> {
    let presented = presented_key(headers).ok_or(ApiError::MissingKey)?;
    let policy = state
        .keys
        .get(KeyHash::of(presented))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            ApiError::BackendUnavailable
        })?
        .ok_or(ApiError::UnknownKey)?;
    policy
        .check_usable(Utc::now())
        .map_err(ApiError::KeyRefused)?;
    Ok(policy)
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
