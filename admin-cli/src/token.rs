//! Minting admin API tokens locally from the shared HS256 secret, for bootstrapping.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, across all teams.
    Admin,
    /// Only the team named by `--team`.
    Team,
}

/// The claims the gateway's admin API expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Builds the claims, checking the role/team combination so a token the gateway would
/// reject (or silently treat differently) is never minted.
pub fn claims(
    role: Role,
    team: Option<&str>,
    subject: &str,
    ttl: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Claims> {
    let team = match (role, team) {
        (Role::Team, None) => bail!("--role team requires --team TEAM_UUID"),
        (Role::Admin, Some(_)) => {
            bail!("--team is only valid with --role team (an admin token covers every team)")
        }
        (Role::Admin, None) => None,
        (Role::Team, Some(t)) => {
            let id = uuid::Uuid::parse_str(t.trim()).map_err(|_| {
                anyhow::anyhow!(
                    "--team must be a team UUID, got {t:?} (find it with `tollctl teams show NAME`)"
                )
            })?;
            Some(id.hyphenated().to_string())
        }
    };
    if subject.trim().is_empty() {
        bail!("--subject must not be empty");
    }
    let exp = now
        .checked_add_signed(ttl)
        .context("--ttl is too large")?
        .timestamp();
    Ok(Claims {
        sub: subject.to_string(),
        role,
        team,
        iat: now.timestamp(),
        exp,
    })
}

/// Signs `claims` with HS256. The error never includes the secret.
pub fn mint(claims: &Claims, secret: &str) -> Result<String> {
    if secret.is_empty() {
        bail!("the JWT secret is empty: set TOLLGATE_ADMIN_JWT_SECRET or pass --secret");
    }
    let key = EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .map_err(|e| anyhow::anyhow!("could not sign the token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn decode(token: &str, secret: &str) -> jsonwebtoken::errors::Result<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map(|d| d.claims)
    }

    #[test]
    fn admin_token_round_trips() -> Result<()> {
        let now = Utc::now();
        let c = claims(Role::Admin, None, "ops", TimeDelta::hours(24), now)?;
        let token = mint(&c, SECRET)?;
        let got = decode(&token, SECRET)?;
        assert_eq!(got.sub, "ops");
        assert_eq!(got.role, Role::Admin);
        assert_eq!(got.team, None);
        assert_eq!(got.iat, now.timestamp());
        assert_eq!(got.exp - got.iat, 24 * 3600);
        // The payload has no `team` key at all for admin tokens.
        let header = jsonwebtoken::decode_header(&token)?;
        assert_eq!(header.alg, Algorithm::HS256);
        Ok(())
    }

    #[test]
    fn team_token_round_trips_with_normalized_uuid() -> Result<()> {
        let team = "0190A7C2-4E5B-7C3D-8E9F-0A1B2C3D4E5F";
        let c = claims(
            Role::Team,
            Some(team),
            "ci",
            TimeDelta::minutes(15),
            Utc::now(),
        )?;
        let got = decode(&mint(&c, SECRET)?, SECRET)?;
        assert_eq!(got.role, Role::Team);
        assert_eq!(
            got.team.as_deref(),
            Some("0190a7c2-4e5b-7c3d-8e9f-0a1b2c3d4e5f")
        );
        assert_eq!(got.exp - got.iat, 900);
        Ok(())
    }

    #[test]
    fn claims_serialize_with_lowercase_role() -> Result<()> {
        let c = claims(Role::Admin, None, "x", TimeDelta::seconds(1), Utc::now())?;
        let v = serde_json::to_value(&c)?;
        assert_eq!(v["role"], "admin");
        assert!(v.get("team").is_none());
        Ok(())
    }

    #[test]
    fn wrong_secret_fails_verification() -> Result<()> {
        let c = claims(Role::Admin, None, "ops", TimeDelta::hours(1), Utc::now())?;
        let token = mint(&c, SECRET)?;
        assert!(decode(&token, "another-secret-another-secret-xx").is_err());
        Ok(())
    }

    #[test]
    fn role_and_team_must_agree() {
        let now = Utc::now();
        let ttl = TimeDelta::hours(1);
        let e = claims(Role::Team, None, "s", ttl, now)
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("requires --team"));
        let e = claims(
            Role::Admin,
            Some("0190a7c2-4e5b-7c3d-8e9f-0a1b2c3d4e5f"),
            "s",
            ttl,
            now,
        )
        .err()
        .map(|e| e.to_string());
        assert!(
            e.unwrap_or_default()
                .contains("only valid with --role team")
        );
        let e = claims(Role::Team, Some("research"), "s", ttl, now)
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("must be a team UUID"));
    }

    #[test]
    fn empty_secret_is_rejected() -> Result<()> {
        let c = claims(Role::Admin, None, "ops", TimeDelta::hours(1), Utc::now())?;
        assert!(mint(&c, "").is_err());
        Ok(())
    }
}
