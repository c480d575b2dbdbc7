//! Changes to existing keys: a new secret under the same id (`POST /keys/{id}/rotate`) and
//! new settings (`PATCH /keys/{id}`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer};

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::default_tags;
use super::error::{AdminError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::issuance::{self, Issue, IssueError, IssuedKey};
use super::key_view::{self, ListedKey};
use super::keys;
use crate::store::KeyPatch;

/// How long a rotated key's previous secret keeps working unless the caller says otherwise.
const DEFAULT_GRACE_SECS: u64 = 86_400;
/// Long enough to roll any fleet of workers; a longer overlap would be a second key.
const MAX_GRACE_SECS: u64 = 30 * 86_400;

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
        (status = 200, body = IssuedKey),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
pub async fn rotate_key(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    body: Option<ApiJson<RotateBody>>,
) -> Result<Json<IssuedKey>, AdminError> {
    let grace = body
        .and_then(|ApiJson(b)| b.grace_secs)
        .unwrap_or(DEFAULT_GRACE_SECS);
    if grace > MAX_GRACE_SECS {
        return Err(AdminError::bad(
            "grace_secs",
            format!("`grace_secs` must be 0 to {MAX_GRACE_SECS} (30 days)"),
        ));
    }
    let previous_valid_until = i64::try_from(grace)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .and_then(|g| Utc::now().checked_add_signed(g))
        .ok_or(AdminError::Internal)?;
    let (mut tx, key, before) = keys::begin_key_change(&state, &caller, &id).await?;
    let issued = issuance::issue(
        &mut tx,
        Issue::Rotation {
            key,
            previous_valid_until,
        },
    )
    .await
    .map_err(|e| match e {
        IssueError::NoSuchKey => caller.not_found("key", &id),
        IssueError::Revoked => {
            AdminError::Conflict(format!("key `{id}` is revoked; issue a new key instead"))
        }
        IssueError::Database(e) => e.into(),
    })?;
    let hashes = issued.hashes();
    let rotated = issued.into_one().ok_or(AdminError::Internal)?;
    let change = Change::new("key.rotate", "key", key)
        .team(rotated.record.team_id)
        .before(&before)
        .after(&rotated.record);
    audit::commit(tx, &caller, vec![change]).await?;
    // Drops the cached policy of the old secret everywhere, so its next use reads the grace
    // deadline, and makes the new secret known everywhere.
    state.keys_added(&hashes).await;
    state.invalidate_key(key).await;
    Ok(Json(rotated))
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
    /// Replaces the key's default tags (`{}` or `null` removes them), at most 8.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    default_tags: Option<Option<BTreeMap<String, String>>>,
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
        let default_tags = match self.default_tags {
            None => None,
            Some(tags) => Some(default_tags::parse(tags)?),
        };
        Ok(KeyPatch {
            default_tags,
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
        (status = 200, body = ListedKey),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn update_key(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<KeyUpdate>,
) -> Result<Json<ListedKey>, AdminError> {
    let patch = body.validate()?;
    let (mut tx, key, before) = keys::begin_key_change(&state, &caller, &id).await?;
    let record = tx
        .update_key(key, &patch)
        .await?
        .ok_or_else(|| caller.not_found("key", &id))?;
    let change = Change::new("key.update", "key", key)
        .team(record.team_id)
        .before(&before)
        .after(&record);
    audit::commit(tx, &caller, vec![change]).await?;
    state.invalidate_key(key).await;
    Ok(Json(key_view::one(&state, record).await?))
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
