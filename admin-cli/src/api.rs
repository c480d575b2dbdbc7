//! The admin API's JSON shapes, as the CLI sees them.
//!
//! Ids and timestamps stay strings: the CLI only displays and forwards them, and parsing them
//! would make the CLI reject a response the gateway considers valid. Every object keeps fields
//! it does not know in `extra`, so `--format json` passes them through unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"data": [...]}`, the envelope of every list response.
#[derive(Debug, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub created_at: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Experiment {
    pub id: String,
    pub team_id: String,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    pub created_at: String,
    /// When it was closed as a campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// `running`, `ended` or `closed` (gateways before 0.1 send none: it is worked out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Key {
    pub id: String,
    pub team_id: String,
    #[serde(default)]
    pub experiment_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub prefix: String,
    /// `None` means every model is allowed.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
    pub created_at: String,
    /// After a rotation: when the previous secret stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<String>,
    /// What the key spent so far (listings and `show`), a decimal string in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<String>,
    /// `active`, `revoked`, `expired` or `ended` (listings and `show`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When the key's experiment ends or ended: the key stops then too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_ends_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A key as returned once, at issue time, with its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedKey {
    pub key: String,
    #[serde(flatten)]
    pub info: Key,
}

/// `{"error": {"message", "type", "code", "param"}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The message is shown to people; `code` and `param` let tollctl say a few mistakes in the
/// words of the command that was typed (see `hints`).
#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CreateTeam<'a> {
    pub name: &'a str,
}

#[derive(Debug, Serialize)]
pub struct CreateExperiment<'a> {
    pub team: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub default_tags: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct IssueKeys<'a> {
    pub team: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<&'a str>,
    pub count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub default_tags: BTreeMap<String, String>,
}

/// A scope's limits, as `GET .../limits` shows them and `PUT .../limits` takes them. Fields
/// this version does not know are kept, so `limits set` sends them back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(default)]
    pub budgets: Vec<Budget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_redis_failure: Option<String>,
    /// Limits on one model or group of models inside the scope's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelLimits>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A scope's limits on one model (`gpt-5`) or group of models (`gpt-5*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelLimits {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub budgets: Vec<Budget>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub period: String,
    /// A decimal string in USD; never a float.
    pub amount_usd: String,
}

/// `GET/PUT/DELETE .../limits`: the limits (`null` when the scope has none) and the current
/// usage next to them (`null` when the gateway could not read Redis).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScopeLimits {
    pub scope: String,
    pub id: String,
    #[serde(default)]
    pub limits: Option<Limits>,
    #[serde(default)]
    pub usage: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct LaunchCampaign<'a> {
    pub team: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    pub keys: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub default_tags: BTreeMap<String, String>,
}

/// The answer to a launch: everything it created, the keys with their secrets (once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Launched {
    pub experiment: Experiment,
    #[serde(default)]
    pub limits: Option<Limits>,
    pub keys: Vec<IssuedKey>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerates_and_keeps_unknown_fields() -> serde_json::Result<()> {
        let raw = r#"{"id":"t1","name":"research","created_at":"2025-01-01T00:00:00Z","budget":{"usd":"10"}}"#;
        let team: Team = serde_json::from_str(raw)?;
        assert_eq!(team.name, "research");
        let back = serde_json::to_value(&team)?;
        assert_eq!(back["budget"]["usd"], "10");
        Ok(())
    }

    #[test]
    fn issued_key_splits_secret_from_key_fields() -> serde_json::Result<()> {
        let raw = r#"{"id":"k1","team_id":"t1","experiment_id":null,"name":null,
            "prefix":"tg-AbCd1234","allowed_models":null,"expires_at":null,"revoked_at":null,
            "created_at":"2025-01-01T00:00:00Z","key":"tg-AbCd1234secret"}"#;
        let issued: IssuedKey = serde_json::from_str(raw)?;
        assert_eq!(issued.key, "tg-AbCd1234secret");
        assert_eq!(issued.info.prefix, "tg-AbCd1234");
        assert!(issued.info.allowed_models.is_none());
        assert!(!issued.info.extra.contains_key("key"));
        let back = serde_json::to_value(&issued)?;
        assert_eq!(back["key"], "tg-AbCd1234secret");
        assert_eq!(back["id"], "k1");
        Ok(())
    }

    #[test]
    fn issue_request_omits_unset_fields() -> serde_json::Result<()> {
        let body = IssueKeys {
            team: "research",
            experiment: None,
            count: 3,
            name: None,
            allowed_models: None,
            expires_at: None,
            default_tags: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_string(&body)?,
            r#"{"team":"research","count":3}"#
        );
        Ok(())
    }
}
