//! Verification of admin JWTs: HS256 with the configured secret, RS256/ES256 with a PEM public
//! key, or the key a JWKS names by `kid`; `iss` and `aud` when configured; `exp` and `nbf`
//! with a clock-skew leeway.
//!
//! A refused token is told what failed (its format, its signature, its issuer or audience, its
//! expiry, a claim) and where the gateway's key comes from, so the fix is plain; messages never
//! contain the token or the key.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};

use super::auth::Claims;
use super::error::AdminError;
use crate::config::{AdminConfig, ENV_ADMIN_JWT_SECRET, JwtAlgorithm, VerifyingKey};

pub struct JwtVerifier {
    keys: Vec<VerifyingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
    /// Where the verifying key comes from, for messages: the secret, a PEM file or a JWKS.
    source: KeySource,
}

#[derive(Clone, Copy)]
enum KeySource {
    Secret,
    PublicKey,
    Jwks,
}

impl KeySource {
    /// Where the key is configured and how to get a token it accepts.
    fn hint(self) -> String {
        match self {
            KeySource::Secret => format!(
                "the gateway verifies HS256 tokens with its secret ({ENV_ADMIN_JWT_SECRET}, or admin.jwt_secret in its config file); \
                 mint a token with the same secret: {ENV_ADMIN_JWT_SECRET}=<that secret> tollctl token mint --role admin"
            ),
            KeySource::PublicKey => "the gateway verifies tokens with the public key in admin.jwt_public_key_file; \
                 get a token signed by the matching private key from your identity provider"
                .to_owned(),
            KeySource::Jwks => "the gateway verifies tokens with the keys in admin.jwks_file, chosen by the token's `kid`; \
                 get a token from the identity provider that publishes that JWKS"
                .to_owned(),
        }
    }
}

impl JwtVerifier {
    pub fn new(config: &AdminConfig) -> JwtVerifier {
        let source = if config.jwt_secret.is_some() {
            KeySource::Secret
        } else if config.jwt_keys.iter().any(|k| k.kid.is_some()) {
            KeySource::Jwks
        } else {
            KeySource::PublicKey
        };
        JwtVerifier {
            keys: config.jwt_keys.clone(),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            leeway_secs: config.jwt_leeway_secs,
            source,
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
            return Err(AdminError::unauthorized(format!(
                "the admin token names no key (`kid` in its header) and the gateway has several; {}",
                self.source.hint()
            )));
        };
        self.keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| {
                AdminError::unauthorized(format!(
                    "the admin token's key (`kid` {kid:?}) is not one the gateway knows; {}",
                    self.source.hint()
                ))
            })
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
        let malformed = || {
            AdminError::unauthorized(
                "the admin token is malformed: a JWT is three base64url parts separated by dots \
                 (check that the whole token was copied; `tollctl token mint` prints one)",
            )
        };
        if token.split('.').count() != 3 {
            return Err(malformed());
        }
        let header = decode_header(token).map_err(|_| malformed())?;
        let key = self.key_for(header.kid.as_deref())?;
        // The algorithm comes from the key, never from the token: a token claiming another
        // algorithm (HS256 signed with a public key, `none`) is refused.
        let expected = key.algorithm;
        if header.alg != expected.jsonwebtoken() {
            return Err(AdminError::unauthorized(format!(
                "the admin token is signed with {:?}, but the gateway accepts {} tokens only; {}",
                header.alg,
                expected.as_str(),
                self.source.hint()
            )));
        }
        decode::<Claims>(token, &key.key, &self.validation(expected))
            .map(|data| data.claims)
            .map_err(|e| self.refusal(token, e.kind()))
    }

    /// What failed, in words that say how to fix it.
    fn refusal(&self, token: &str, kind: &ErrorKind) -> AdminError {
        let leeway = self.leeway_secs;
        AdminError::unauthorized(match kind {
            ErrorKind::InvalidSignature => format!(
                "the admin token's signature does not match: it was not signed with the gateway's key; {}",
                self.source.hint()
            ),
            ErrorKind::ExpiredSignature => format!(
                "the admin token has expired{} (the gateway allows {leeway} s of clock skew); mint or fetch a new one",
                expired_at(token)
            ),
            ErrorKind::ImmatureSignature => format!(
                "the admin token is not valid yet: its `nbf` is in the future (beyond {leeway} s of clock skew); check the clocks"
            ),
            ErrorKind::InvalidIssuer => format!(
                "the admin token's issuer (`iss`) is not {:?}, the one the gateway accepts (admin.jwt_issuer)",
                self.issuer.as_deref().unwrap_or_default()
            ),
            ErrorKind::InvalidAudience => format!(
                "the admin token is not meant for this gateway: its audience (`aud`) does not include {:?} (admin.jwt_audience)",
                self.audience.as_deref().unwrap_or_default()
            ),
            ErrorKind::MissingRequiredClaim(claim) => format!(
                "the admin token has no `{claim}` claim, which the gateway requires"
            ),
            ErrorKind::InvalidClaimFormat(claim) => {
                format!("the admin token's `{claim}` claim is not of the right type")
            }
            // The signature matched but the claims do not read as admin claims.
            ErrorKind::Json(e) => format!(
                "the admin token's claims are not valid: {e} (`role` must be \"admin\" or \"team\", \
                 `team` a team id, `exp` a number of seconds)"
            ),
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                "the admin token is malformed: a part is not valid base64url JSON (check that the whole token was copied)"
                    .to_owned()
            }
            other => {
                tracing::warn!(error = ?other, "admin token could not be verified");
                format!(
                    "the admin token could not be verified with the gateway's key; {}",
                    self.source.hint()
                )
            }
        })
    }
}

/// ` at 2026-11-01T12:00:00Z`, read from the (expired, but correctly signed) token's `exp`.
fn expired_at(token: &str) -> String {
    jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
        .ok()
        .and_then(|data| data.claims["exp"].as_i64())
        .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0))
        .map(|t| {
            format!(
                " at {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default()
}
