//! `GET /v1/tollgate/usage`: a key holder's remaining budget and limits on every scope
//! above its key (key, experiment, team), read with its own key, each budget with its
//! forecast.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth;
use super::auth_failures::Peer;
use super::error::ApiError;
use super::state::ProxyState;
use crate::keys::KeyPolicy;

pub async fn key_usage(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    auth::answer_for_key(&state, peer, &headers, "/v1/tollgate/usage", |policy| {
        usage(&state, policy)
    })
    .await
}

async fn usage(state: &ProxyState, policy: Arc<KeyPolicy>) -> Response {
    let mut scopes = Vec::with_capacity(policy.scopes.len());
    for scope in &policy.scopes {
        match state.governor.usage(policy.team_id, scope).await {
            Ok(mut usage) => {
                crate::governance::add_forecasts(&state.reads, policy.team_id, &mut usage).await;
                scopes.push(json!({"limits": scope.limits, "usage": usage}));
            }
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
