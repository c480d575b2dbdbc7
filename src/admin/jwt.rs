//! Verification of admin JWTs: HS256 with the configured secret, RS256/ES256 with a PEM public
//! key, or the key a JWKS names by `kid`; `iss` and `aud` when configured; `exp` and `nbf`
//! with a clock-skew leeway.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};

use super::auth::Claims;
use super::error::AdminError;
use crate::config::{AdminConfig, JwtAlgorithm, VerifyingKey};

pub struct JwtVerifier {
    keys: Vec<VerifyingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

impl JwtVerifier {
    pub fn new(config: &AdminConfig) -> JwtVerifier {
        JwtVerifier {
            keys: config.jwt_keys.clone(),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            leeway_secs: config.jwt_leeway_secs,
        }
    }

    /// The key a token is checked with. A lone key without a `kid` (the secret, a PEM key)
    /// verifies every token whatever `kid` it names; otherwise the token must name its key.
    fn key_for(&self, kid: Option<&str>) -> Result<&VerifyingKey, AdminError> {
        if let [only] = self.keys.as_slice()
            && (only.kid.is_none() || kid.is_none())
        {
            return Ok(only);
        }
        let Some(kid) = kid else {
            return Err(AdminError::Unauthorized(
                "the admin token names no key (`kid`); the gateway has several",
            ));
        };
        self.keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or(AdminError::Unauthorized(
                "the admin token's key (`kid`) is not one the gateway knows",
            ))
    }

    fn validation(&self, algorithm: JwtAlgorithm) -> Validation {
        let mut validation = Validation::new(algorithm.jsonwebtoken());
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Not configured: a token's `aud` is not checked (nor refused).
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AdminError> {
        let invalid = AdminError::Unauthorized("the admin token is not valid");
        let header = decode_header(token).map_err(|_| invalid)?;
        let key = self.key_for(header.kid.as_deref())?;
        // The algorithm comes from the key, never from the token: a token claiming another
        // algorithm (HS256 signed with a public key, `none`) is refused.
        if header.alg != key.algorithm.jsonwebtoken() {
            return Err(AdminError::Unauthorized(
                "the admin token is signed with an algorithm the gateway does not accept",
            ));
        }
        decode::<Claims>(token, &key.key, &self.validation(key.algorithm))
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    AdminError::Unauthorized("the admin token has expired")
                }
                ErrorKind::ImmatureSignature => {
                    AdminError::Unauthorized("the admin token is not valid yet (`nbf`)")
                }
                ErrorKind::InvalidIssuer => {
                    AdminError::Unauthorized("the admin token's issuer (`iss`) is not accepted")
                }
                ErrorKind::InvalidAudience => AdminError::Unauthorized(
                    "the admin token is not meant for this gateway (`aud`)",
                ),
                ErrorKind::MissingRequiredClaim(_) => AdminError::Unauthorized(
                    "the admin token lacks a required claim (`sub`, `exp`, or the configured `iss`/`aud`)",
                ),
                _ => AdminError::Unauthorized("the admin token is not valid"),
            })
    }
}
