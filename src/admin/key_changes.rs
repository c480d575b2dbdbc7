//! Changes to existing keys: a new secret under the same id (`POST /keys/{id}/rotate`), new
//! settings (`PATCH /keys/{id}`), and the spend and limits that listings show next to a key.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::error::AdminError;
use super::openapi::{ErrorBody, IssuedKeyDoc, ListedKeyDoc};
use crate::governance::{Limits, ScopeKind};
use crate::ids::KeyId;
use crate::keys::NewKey;
use crate::store::{KeyPatch, KeyRecord, Rotation};

/// How long a rotated key's previous secret keeps working unless the caller says otherwise.
const DEFAULT_GRACE_SECS: u64 = 86_400;
/// Long enough to roll any fleet of workers; a longer overlap would be a second key.
const MAX_GRACE_SECS: u64 = 30 * 86_400;

/// A key with its secret, shown once: at issue, at launch and at rotation.
#[derive(Serialize)]
pub struct Issued {
    #[serde(flatten)]
    pub record: KeyRecord,
    pub key: String,
}

/// A key as listings show it: the record, what it spent so far and its own limits (the limits
/// of its experiment and team are on those scopes). Never the secret or its hash.
#[derive(Serialize)]
pub struct ListedKey {
    #[serde(flatten)]
    record: KeyRecord,
    /// USD, exact, from the hourly rollups.
    #[serde(with = "rust_decimal::serde::str")]
    spend_usd: Decimal,
    limits: Option<Limits>,
}

/// Adds spend and limits to keys with a fixed number of queries, whatever their number.
pub async fn with_usage(
    state: &AdminState,
    records: Vec<KeyRecord>,
) -> Result<Vec<ListedKey>, AdminError> {
    let ids: Vec<KeyId> = records.iter().map(|r| r.id).collect();
    let spend = state.store.spend_of_keys(&ids).await?;
    let scopes: Vec<(ScopeKind, uuid::Uuid)> =
        ids.iter().map(|id| (ScopeKind::Key, id.0)).collect();
    let mut limits: HashMap<uuid::Uuid, Limits> = state
        .store
        .limits_of(&scopes)
        .await?
        .into_iter()
        .map(|s| (s.id, s.limits))
        .collect();
    Ok(records
        .into_iter()
        .map(|record| ListedKey {
            spend_usd: spend.get(&record.id).copied().unwrap_or(Decimal::ZERO),
            limits: limits.remove(&record.id.0),
            record,
        })
        .collect())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the previous secret keeps working, 0..=2592000 seconds; default 86400.
    grace_secs: Option<u64>,
}

/// A new secret for the same key id, so its limits, spend and attribution carry on. The
/// previous secret works until `previous_valid_until`; a secret from an earlier rotation stops
/// at once. The body may be omitted.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/rotate",
    tag = "keys",
    params(("id" = String, Path, description = "key id")),
    request_body = RotateBody,
    responses(
        (status = 200, body = IssuedKeyDoc),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
pub async fn rotate_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Json<RotateBody>>,
) -> Result<Json<Issued>, AdminError> {
    let grace = body
        .map(|Json(b)| b.grace_secs)
        .unwrap_or_default()
        .unwrap_or(DEFAULT_GRACE_SECS);
    if grace > MAX_GRACE_SECS {
        return Err(AdminError::bad(
            "grace_secs",
            format!("`grace_secs` must be 0 to {MAX_GRACE_SECS} (30 days)"),
        ));
    }
    let valid_until = i64::try_from(grace)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .and_then(|g| Utc::now().checked_add_signed(g))
        .ok_or(AdminError::Internal)?;
    let before = caller.key(&state, &id).await?;
    let key = before.id;
    let new = NewKey::generate();
    let record = match state
        .store
        .rotate_key(key, new.hash, &new.prefix, valid_until)
        .await?
    {
        Rotation::Rotated(record) => record,
        Rotation::NoSuchKey => return Err(caller.not_found("key", &id)),
        Rotation::Revoked => {
            return Err(AdminError::Conflict(format!(
                "key `{id}` is revoked; issue a new key instead"
            )));
        }
    };
    // Drops the cached policy of the old secret everywhere, so its next use reads the grace
    // deadline, and makes the new secret known everywhere.
    state.invalidate_key(key).await;
    state.keys_added(&[new.hash]).await;
    let change = Change::new("key.rotate", "key", key)
        .team(record.team_id)
        .before(&before)
        .after(&record);
    audit::record(&state, &caller, change).await;
    Ok(Json(Issued {
        record,
        key: new.secret,
    }))
}

/// `Some(None)` for an explicit `null`, `Some(Some(v))` for a value; with `#[serde(default)]`
/// an absent field stays `None`.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Each field is optional: an absent field is left as it is, `null` clears it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    /// The key's label; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    /// Models the key may call; `null` allows every model.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    allowed_models: Option<Option<Vec<String>>>,
    /// RFC 3339 expiry; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<DateTime<Utc>>>,
}

impl KeyUpdate {
    fn validate(self) -> Result<KeyPatch, AdminError> {
        if let Some(Some(name)) = &self.name
            && (name.trim().is_empty() || name.len() > 200)
        {
            return Err(AdminError::bad(
                "name",
                "`name` must be 1 to 200 characters; null removes it",
            ));
        }
        if let Some(Some(models)) = &self.allowed_models
            && models.iter().all(|m| m.trim().is_empty())
        {
            return Err(AdminError::bad(
                "allowed_models",
                "`allowed_models` is empty; null allows every model",
            ));
        }
        Ok(KeyPatch {
            name: self.name.map(|n| n.map(|n| n.trim().to_owned())),
            allowed_models: self.allowed_models.map(|m| {
                m.map(|m| {
                    m.into_iter()
                        .map(|m| m.trim().to_owned())
                        .filter(|m| !m.is_empty())
                        .collect()
                })
            }),
            expires_at: self.expires_at,
        })
    }
}

/// Changes take effect on every gateway instance at once.
#[utoipa::path(
    patch,
    path = "/admin/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "key id")),
    request_body = KeyUpdate,
    responses(
        (status = 200, body = ListedKeyDoc),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn update_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<KeyUpdate>,
) -> Result<Json<ListedKey>, AdminError> {
    let patch = body.validate()?;
    let before = caller.key(&state, &id).await?;
    let key = before.id;
    let record = state
        .store
        .update_key(key, &patch)
        .await?
        .ok_or_else(|| caller.not_found("key", &id))?;
    state.invalidate_key(key).await;
    let change = Change::new("key.update", "key", key)
        .team(record.team_id)
        .before(&before)
        .after(&record);
    audit::record(&state, &caller, change).await;
    with_usage(&state, vec![record])
        .await?
        .pop()
        .map(Json)
        .ok_or(AdminError::Internal)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn patch(json: &str) -> Result<KeyPatch, AdminError> {
        serde_json::from_str::<KeyUpdate>(json).unwrap().validate()
    }

    #[test]
    fn absent_null_and_values_are_told_apart() {
        let p = patch(r#"{"allowed_models": null}"#).unwrap();
        assert_eq!(p.allowed_models, Some(None));
        assert_eq!(p.name, None);
        assert_eq!(p.expires_at, None);
        let p = patch(r#"{"allowed_models": [" a ", "b"], "name": null}"#).unwrap();
        assert_eq!(p.allowed_models, Some(Some(vec!["a".into(), "b".into()])));
        assert_eq!(p.name, Some(None));
        let p = patch(r#"{"expires_at": "2030-01-01T00:00:00Z"}"#).unwrap();
        assert!(matches!(p.expires_at, Some(Some(_))));
    }

    #[test]
    fn empty_lists_names_and_unknown_fields_are_refused() {
        assert!(patch(r#"{"allowed_models": []}"#).is_err());
        assert!(patch(r#"{"name": "  "}"#).is_err());
        assert!(serde_json::from_str::<KeyUpdate>(r#"{"models": ["a"]}"#).is_err());
    }
}
