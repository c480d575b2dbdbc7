//! Admin authentication: JWTs signed with the configured HS256 secret. Applied as a layer to
//! every admin route, so a new route cannot forget it.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::AdminError;
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
    pub iat: u64,
    pub exp: u64,
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    pub fn hs256(secret: &Secret<String>) -> JwtVerifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtVerifier {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AdminError> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    AdminError::Unauthorized("the admin token has expired")
                }
                _ => AdminError::Unauthorized("the admin token is not valid"),
            })
    }
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

pub async fn require_admin(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return AdminError::Unauthorized("send `Authorization: Bearer <admin JWT>`")
            .into_response();
    };
    match state.jwt.verify(token.trim()) {
        // Team-scoped tokens are verified but not yet granted any admin route.
        Ok(claims) if claims.role != Role::Admin => {
            AdminError::Forbidden("this route needs a token with role `admin`").into_response()
        }
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}
