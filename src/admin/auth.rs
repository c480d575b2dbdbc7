//! Admin authentication: a JWT (see [`super::jwt`]) on every route but the public allow-list
//! in [`super::ADMIN_ROUTES`], applied as one layer so a new route cannot forget it. The layer
//! turns the claims into a [`Caller`] for the handlers, and admits team tokens only to the
//! routes marked team-capable there: a route nobody marked is admin-only, so one added without
//! team scoping cannot leak another team's data.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::error::AdminError;
use super::{ADMIN_ROUTES, AdminState, RouteAccess};
use crate::config::Secret;
use crate::ids::TeamId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Team,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamId>,
    /// Informational; not checked (`exp` is).
    #[serde(default)]
    pub iat: u64,
    pub exp: u64,
}

/// Mints a token; used by tests and by `tollctl token mint` (which has its own copy of the
/// claims so the CLI does not depend on the server crate).
pub fn mint(
    secret: &Secret<String>,
    claims: &Claims,
) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
}

pub async fn authenticate(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = match bearer_token(request.headers()) {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    let claims = match state.jwt.verify(&token) {
        Ok(claims) => claims,
        Err(e) => return e.into_response(),
    };
    let caller = match (claims.role, claims.team) {
        (Role::Admin, _) => Caller::admin(claims.sub),
        (Role::Team, Some(team)) => Caller::team(claims.sub, team),
        (Role::Team, None) => {
            return AdminError::Forbidden(
                "a `team` token must carry its team's id in the `team` claim (`tollctl token mint --role team --team <team id>` adds it)",
            )
            .into_response();
        }
    };
    if !caller.is_admin() {
        let path = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let method = request.method().as_str();
        let team_capable = ADMIN_ROUTES
            .iter()
            .any(|r| Some(r.path) == path && r.method == method && r.access == RouteAccess::Team);
        if !team_capable {
            return AdminError::Forbidden("this route needs a token with role `admin`")
                .into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(headers: &axum::http::HeaderMap) -> Result<String, AdminError> {
    let missing = || {
        AdminError::unauthorized(
            "no admin token: send `Authorization: Bearer <admin JWT>` \
             (to bootstrap, mint one from the gateway's secret: tollctl token mint --role admin)",
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| {
        AdminError::unauthorized("the Authorization header is not ASCII; send `Bearer <admin JWT>`")
    })?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AdminError::unauthorized(
            "the Authorization header must be `Bearer <admin JWT>`",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token.to_owned())
}
