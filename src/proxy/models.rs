//! `GET /v1/models`: the models the calling key may use.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth;
use super::auth_failures::Peer;
use super::state::ProxyState;
use crate::keys::KeyPolicy;

pub async fn list_models(
    State(state): State<ProxyState>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let answer = |policy: Arc<KeyPolicy>| std::future::ready(models(&state, &policy));
    auth::answer_for_key(&state, peer, &headers, "/v1/models", answer).await
}

fn models(state: &ProxyState, policy: &KeyPolicy) -> Response {
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
