//! The control plane: the admin REST API under `/admin/v1`, on its own listener with its
//! own state type, so no data-plane handler can reach an admin write.

mod auth;
mod error;
mod keys;
mod teams;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

pub use auth::{Claims, JwtVerifier, Role, mint};
pub use error::AdminError;

use crate::ids::KeyId;
use crate::invalidation::Invalidator;
use crate::keys::KeyCache;
use crate::store::Store;

#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub keys: Arc<KeyCache>,
    pub jwt: Arc<JwtVerifier>,
    pub invalidator: Invalidator,
}

impl AdminState {
    /// Makes a key change visible: this instance at once, the others through Redis.
    pub async fn invalidate_key(&self, key: KeyId) {
        self.keys.invalidate_key(key);
        self.invalidator.key_changed(key).await;
    }
}

/// Every route requires an admin JWT (the layer below); there is no unauthenticated route.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/admin/v1/teams",
            post(teams::create_team).get(teams::list_teams),
        )
        .route("/admin/v1/teams/{team}", get(teams::show_team))
        .route(
            "/admin/v1/experiments",
            post(teams::create_experiment).get(teams::list_experiments),
        )
        .route("/admin/v1/experiments/{id}", get(teams::show_experiment))
        .route(
            "/admin/v1/keys",
            post(keys::issue_keys).get(keys::list_keys),
        )
        .route("/admin/v1/keys/{id}", get(keys::show_key))
        .route("/admin/v1/keys/{id}/revoke", post(keys::revoke_key))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .with_state(state)
}
