//! `GET /v1/models`: the models the calling key may use.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth;
use super::auth_failures::Peer;
use super::finish::{access_log_unauthenticated, with_request_id};
use super::state::ProxyState;
use crate::ids::RequestId;

pub async fn list_models(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let request_id = RequestId::new();
    with_request_id(models(&state, peer, &headers, request_id).await, request_id)
}

async fn models(
    state: &ProxyState,
    peer: Peer,
    headers: &HeaderMap,
    request_id: RequestId,
) -> Response {
    let policy = match auth::authenticate(state, headers, peer).await {
        Ok(policy) => policy,
        Err(e) => {
            access_log_unauthenticated(state, request_id, "/v1/models", &e);
            return e.into_response();
        }
    };
    let mut models: Vec<&str> = state
        .routes
        .public_models()
        .filter(|m| policy.allows_model(m))
        .collect();
    models.sort_unstable();
    let data: Vec<_> = models
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}
