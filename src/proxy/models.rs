//! `GET /v1/models`: the models the calling key may use.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth;
use super::auth_failures::Peer;
use super::state::ProxyState;

pub async fn list_models(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let policy = match auth::authenticate(&state, &headers, peer).await {
        Ok(policy) => policy,
        Err(e) => return e.into_response(),
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
