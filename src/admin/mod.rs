//! The control plane: the admin REST API under `/admin/v1`, on its own listener with its
//! own state type, so no data-plane handler can reach an admin write.

mod auth;
mod error;
mod keys;
mod limits;
mod params;
mod pricing;
mod requests;
mod spend;
mod teams;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post, put};

pub use auth::{Claims, JwtVerifier, Role, mint};
pub use error::AdminError;

use crate::governance::{Governor, ScopeKind};
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
    /// The live price table, the same snapshot the proxy reads.
    pub prices: Arc<arc_swap::ArcSwap<crate::pricing::PriceTable>>,
    pub governor: Arc<Governor>,
}

impl AdminState {
    /// Makes a key change visible: this instance at once, the others through Redis.
    pub async fn invalidate_key(&self, key: KeyId) {
        self.keys.invalidate_key(key);
        self.invalidator.key_changed(key).await;
    }

    /// Makes a change of a scope's limits visible on every instance.
    pub async fn scope_changed(&self, kind: ScopeKind, id: uuid::Uuid) {
        self.keys.invalidate_scope(kind, id);
        self.invalidator.scope_changed(kind, id).await;
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
        .route(
            "/admin/v1/{scope}/{id}/limits",
            put(limits::put_limits)
                .get(limits::get_limits)
                .delete(limits::delete_limits),
        )
        .route("/admin/v1/spend", get(spend::report))
        .route("/admin/v1/spend/top", get(spend::top))
        .route("/admin/v1/requests", get(requests::list))
        .route("/admin/v1/pricing", get(pricing::list))
        .route("/admin/v1/pricing/quote", post(pricing::quote))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .with_state(state)
}
