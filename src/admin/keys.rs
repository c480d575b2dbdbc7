//! Virtual keys: issue (N at once, each secret shown once), list, show, revoke.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::error::AdminError;
use super::key_changes::{ListedKey, with_usage};
use super::openapi::{ErrorBody, IssuedKeyList, KeyList, ListedKeyDoc};
use crate::ids::KeyId;
use crate::keys::NewKey;
use crate::store::{KeyFilter, KeyRecord, NewKeyRecord};

const MAX_KEYS_PER_CALL: u32 = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKeys {
    /// Team id or name.
    team: String,
    /// Experiment id, or a name within `team`.
    experiment: Option<String>,
    /// 1..=1000, default 1.
    count: Option<u32>,
    name: Option<String>,
    allowed_models: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    record: KeyRecord,
    /// The secret; returned by this call only.
    key: String,
}

/// Each secret is in this answer only.
#[utoipa::path(
    post,
    path = "/admin/v1/keys",
    tag = "keys",
    request_body = IssueKeys,
    responses(
        (status = 201, body = IssuedKeyList),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn issue_keys(
    State(state): State<AdminState>,
    caller: Caller,
    Json(body): Json<IssueKeys>,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let count = body.count.unwrap_or(1);
    if !(1..=MAX_KEYS_PER_CALL).contains(&count) {
        return Err(AdminError::bad(
            "count",
            format!("`count` must be 1 to {MAX_KEYS_PER_CALL}"),
        ));
    }
    if body.allowed_models.as_ref().is_some_and(|m| m.is_empty()) {
        return Err(AdminError::bad(
            "allowed_models",
            "`allowed_models` is empty; omit it to allow every model",
        ));
    }
    let team = caller.team_named(&state, &body.team).await?;
    let experiment = match &body.experiment {
        None => None,
        Some(e) => Some(caller.experiment_in(&state, &team, e).await?.id),
    };
    let generated: Vec<NewKey> = (0..count).map(|_| NewKey::generate()).collect();
    let records: Vec<NewKeyRecord> = generated
        .iter()
        .map(|k| NewKeyRecord {
            id: KeyId::new(),
            hash: k.hash,
            prefix: k.prefix.clone(),
        })
        .collect();
    let stored = state
        .store
        .insert_keys(
            team.id,
            experiment,
            body.name.as_deref(),
            body.allowed_models.as_deref(),
            body.expires_at,
            &records,
        )
        .await?;
    let hashes: Vec<_> = records.iter().map(|r| r.hash).collect();
    state.keys_added(&hashes).await;
    let issued: Vec<IssuedKey> = stored
        .into_iter()
        .map(|record| {
            let index = records
                .iter()
                .position(|r| r.id == record.id)
                .unwrap_or_default();
            IssuedKey {
                key: generated[index].secret.clone(),
                record,
            }
        })
        .collect();
    let changes = issued
        .iter()
        .map(|k| {
            Change::new("key.issue", "key", k.record.id)
                .team(k.record.team_id)
                .after(&k.record)
        })
        .collect();
    audit::record_all(&state, &caller, changes).await;
    Ok((StatusCode::CREATED, Json(json!({ "data": issued }))))
}

#[derive(Deserialize)]
pub struct KeyQuery {
    team: Option<String>,
    experiment: Option<String>,
}

/// Every key the token can see, or those of `team` / `experiment`.
#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "keys",
    params(
        ("team" = Option<String>, Query, description = "team id or name"),
        ("experiment" = Option<String>, Query, description = "experiment id, or a name within `team`"),
    ),
    responses(
        (status = 200, body = KeyList),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list_keys(
    State(state): State<AdminState>,
    caller: Caller,
    Query(q): Query<KeyQuery>,
) -> Result<Json<Value>, AdminError> {
    let mut filter = KeyFilter {
        team: match &q.team {
            Some(t) => Some(caller.team_named(&state, t).await?.id),
            None => caller.team_filter(),
        },
        ..KeyFilter::default()
    };
    if let Some(e) = &q.experiment {
        let not_found = || caller.not_found("experiment", e);
        let experiment = match (uuid::Uuid::parse_str(e), filter.team) {
            (Ok(_), _) => Some(caller.experiment(&state, e).await?),
            (Err(_), Some(team)) => state.store.find_experiment(team, e).await?,
            (Err(_), None) => {
                return Err(AdminError::bad(
                    "experiment",
                    "name the team too, or give the experiment's id",
                ));
            }
        };
        filter.experiment = Some(experiment.ok_or_else(not_found)?.id);
    }
    let keys = state.store.list_keys(&filter).await?;
    Ok(Json(json!({"data": with_usage(&state, keys).await?})))
}

#[utoipa::path(
    get,
    path = "/admin/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = ListedKeyDoc), (status = 404, body = ErrorBody))
)]
pub async fn show_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ListedKey>, AdminError> {
    let record = caller.key(&state, &id).await?;
    with_usage(&state, vec![record])
        .await?
        .pop()
        .map(Json)
        .ok_or_else(|| caller.not_found("key", &id))
}

/// Idempotent: revoking a revoked key returns it unchanged.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/revoke",
    tag = "keys",
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = KeyRecord), (status = 404, body = ErrorBody))
)]
pub async fn revoke_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, AdminError> {
    let before = caller.key(&state, &id).await?;
    let key = before.id;
    let record = state
        .store
        .revoke_key(key)
        .await?
        .ok_or_else(|| caller.not_found("key", &id))?;
    state.invalidate_key(key).await;
    if before.revoked_at.is_none() {
        let change = Change::new("key.revoke", "key", key)
            .team(record.team_id)
            .before(&before)
            .after(&record);
        audit::record(&state, &caller, change).await;
    }
    Ok(Json(record))
}
