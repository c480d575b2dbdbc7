//! `GET /v1/tollgate/usage`: a key holder's remaining budget and limits on every scope
//! above its key (key, experiment, team), read with its own key.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth;
use super::auth_failures::Peer;
use super::error::ApiError;
use super::finish::{access_log_unauthenticated, with_request_id};
use super::state::ProxyState;
use crate::ids::RequestId;

pub async fn key_usage(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let request_id = RequestId::new();
    with_request_id(usage(&state, peer, &headers, request_id).await, request_id)
}

async fn usage(
    state: &ProxyState,
    peer: Peer,
    headers: &HeaderMap,
    request_id: RequestId,
) -> Response {
    let policy = match auth::authenticate(state, headers, peer).await {
        Ok(policy) => policy,
        Err(e) => {
            access_log_unauthenticated(state, request_id, "/v1/tollgate/usage", &e);
            return e.into_response();
        }
    };
    let mut scopes = Vec::with_capacity(policy.scopes.len());
    for scope in &policy.scopes {
        match state.governor.usage(policy.team_id, scope).await {
            Ok(usage) => scopes.push(json!({"limits": scope.limits, "usage": usage})),
            Err(e) => {
                tracing::warn!(error = %e, "usage read failed");
                return ApiError::BackendUnavailable.into_response();
            }
        }
    }
    Json(json!({
        "key_id": policy.key_id,
        "key_prefix": policy.prefix,
        "team_id": policy.team_id,
        "experiment_id": policy.experiment_id,
        "scopes": scopes,
    }))
    .into_response()
}
