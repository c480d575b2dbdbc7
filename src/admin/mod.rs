//! The control plane: the admin REST API under `/admin/v1`, on its own listener with its
//! own state type, so no data-plane handler can reach an admin write.

mod alert_view;
mod alerts;
mod audit;
mod auth;
mod caller;
mod campaigns;
mod csv;
mod default_tags;
mod error;
mod extract;
mod issuance;
mod jwt;
mod key_changes;
mod key_view;
mod keys;
mod limit_caps;
mod limits;
mod openapi;
mod params;
mod pricing;
mod pricing_reload;
mod requests;
mod response;
mod spend;
mod teams;

use std::sync::Arc;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::routing::{delete, get, post, put};

pub use auth::{Claims, Role, mint};
pub use caller::Caller;
pub use error::{AdminError, ErrorBody};
pub use issuance::{Issued, IssuedKey};
pub use jwt::JwtVerifier;
pub use openapi::AdminApiDoc;

use crate::governance::{Governor, ScopeKind};
use crate::ids::KeyId;
use crate::invalidation::Invalidator;
use crate::keys::{KeyCache, KeyHash};
use crate::store::Store;

#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub keys: Arc<KeyCache>,
    pub jwt: Arc<JwtVerifier>,
    pub invalidator: Invalidator,
    /// The live price table, the same snapshot the proxy reads.
    pub prices: Arc<arc_swap::ArcSwap<crate::pricing::PriceTable>>,
    /// Where `prices` is reloaded from (`pricing.dir`).
    pub pricing_dir: std::path::PathBuf,
    pub governor: Arc<Governor>,
    /// Alert rules' defaults, and test deliveries.
    pub alerts: Arc<crate::alerts::Alerts>,
}

impl AdminState {
    /// Makes a key change visible: this instance at once, the others through Redis.
    pub async fn invalidate_key(&self, key: KeyId) {
        self.keys.invalidate_key(key);
        self.invalidator.key_changed(key).await;
    }

    /// Makes newly written key hashes (issued or rotated keys, committed) usable at once on
    /// this instance and announces them to the others.
    pub async fn keys_added(&self, hashes: &[KeyHash]) {
        self.keys.known().note(hashes);
        self.invalidator.keys_added().await;
    }

    /// Makes a change of a scope's limits visible on every instance.
    pub async fn scope_changed(&self, kind: ScopeKind, id: uuid::Uuid) {
        self.keys.invalidate_scope(kind, id);
        self.invalidator.scope_changed(kind, id).await;
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteAccess {
    /// No token: the OpenAPI document only.
    Public,
    /// Admin tokens only. The default for a new route: team tokens get 403 until its handler
    /// scopes what it reads and changes to the caller's team.
    Admin,
    /// Admin tokens, and team tokens that the handler restricts to their own team.
    Team,
}

#[derive(Clone, Copy, Debug)]
pub struct AdminRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub access: RouteAccess,
}

const fn route(method: &'static str, path: &'static str, access: RouteAccess) -> AdminRoute {
    AdminRoute {
        method,
        path,
        access,
    }
}

/// Every admin route, with who may call it. The router below must serve exactly these, and
/// the OpenAPI document must describe each (tests/it/openapi.rs checks both); the auth layer
/// admits team tokens only to the `Team` ones.
pub const ADMIN_ROUTES: &[AdminRoute] = &[
    route("GET", "/admin/v1/openapi.json", RouteAccess::Public),
    route("POST", "/admin/v1/teams", RouteAccess::Admin),
    route("GET", "/admin/v1/teams", RouteAccess::Team),
    route("GET", "/admin/v1/teams/{team}", RouteAccess::Team),
    route("POST", "/admin/v1/experiments", RouteAccess::Team),
    route("GET", "/admin/v1/experiments", RouteAccess::Team),
    route("GET", "/admin/v1/experiments/{id}", RouteAccess::Team),
    route("POST", "/admin/v1/keys", RouteAccess::Team),
    route("GET", "/admin/v1/keys", RouteAccess::Team),
    route("GET", "/admin/v1/keys/{id}", RouteAccess::Team),
    route("PATCH", "/admin/v1/keys/{id}", RouteAccess::Team),
    route("POST", "/admin/v1/keys/{id}/revoke", RouteAccess::Team),
    route("POST", "/admin/v1/keys/{id}/rotate", RouteAccess::Team),
    route("POST", "/admin/v1/campaigns", RouteAccess::Team),
    route("POST", "/admin/v1/campaigns/{id}/close", RouteAccess::Team),
    route("PUT", "/admin/v1/{scope}/{id}/limits", RouteAccess::Team),
    route("GET", "/admin/v1/{scope}/{id}/limits", RouteAccess::Team),
    route("DELETE", "/admin/v1/{scope}/{id}/limits", RouteAccess::Team),
    route("GET", "/admin/v1/spend", RouteAccess::Team),
    route("GET", "/admin/v1/spend/top", RouteAccess::Team),
    route("GET", "/admin/v1/requests", RouteAccess::Team),
    route("GET", "/admin/v1/pricing", RouteAccess::Team),
    route("POST", "/admin/v1/pricing/quote", RouteAccess::Team),
    route("POST", "/admin/v1/pricing/reload", RouteAccess::Admin),
    route("GET", "/admin/v1/audit", RouteAccess::Team),
    route("POST", "/admin/v1/alerts", RouteAccess::Team),
    route("GET", "/admin/v1/alerts", RouteAccess::Team),
    route("DELETE", "/admin/v1/alerts/{id}", RouteAccess::Team),
    route("POST", "/admin/v1/alerts/{id}/test", RouteAccess::Team),
    route("GET", "/admin/v1/alert-events", RouteAccess::Team),
];

/// Every route but the public OpenAPI document requires a JWT (the layer below); team tokens
/// reach only the routes `ADMIN_ROUTES` marks `Team`. A path no route has, and a method a path
/// does not take, get the API's JSON error like everything else (404 `unknown_route`, 405
/// `method_not_allowed`).
pub fn router(state: AdminState) -> Router {
    let public = Router::new()
        .route("/admin/v1/openapi.json", get(openapi::document))
        .method_not_allowed_fallback(method_not_allowed);
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
        .route(
            "/admin/v1/keys/{id}",
            get(keys::show_key).patch(key_changes::update_key),
        )
        .route("/admin/v1/keys/{id}/revoke", post(keys::revoke_key))
        .route("/admin/v1/keys/{id}/rotate", post(key_changes::rotate_key))
        .route("/admin/v1/campaigns", post(campaigns::launch))
        .route("/admin/v1/campaigns/{id}/close", post(campaigns::close))
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
        .route("/admin/v1/pricing/reload", post(pricing_reload::reload))
        .route("/admin/v1/audit", get(audit::list))
        .route("/admin/v1/alerts", post(alerts::create).get(alerts::list))
        .route("/admin/v1/alerts/{id}", delete(alerts::remove))
        .route("/admin/v1/alerts/{id}/test", post(alerts::test))
        .route("/admin/v1/alert-events", get(alerts::history))
        .method_not_allowed_fallback(method_not_allowed)
        // Applies to the routes above only: `public` is merged after it.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .merge(public)
        .fallback(no_such_route)
        .with_state(state)
}

async fn no_such_route(uri: Uri) -> AdminError {
    let path: String = uri.path().chars().take(200).collect();
    AdminError::NoSuchRoute(format!(
        "the admin API has no route {path}; GET /admin/v1/openapi.json lists them all"
    ))
}

async fn method_not_allowed(method: Method, path: Option<MatchedPath>) -> AdminError {
    let path = path.as_ref().map_or("this path", MatchedPath::as_str);
    let methods: Vec<&str> = ADMIN_ROUTES
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.method)
        .collect();
    AdminError::MethodNotAllowed(format!(
        "{path} does not take {method}; it takes {}",
        methods.join(", ")
    ))
}
