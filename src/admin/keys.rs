//! Virtual keys: issue (N at once, each secret shown once), list, show, revoke.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::csv::{self, Format};
use super::default_tags;
use super::error::{AdminError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::issuance::{self, IssuedKey};
use super::key_view::{self, ListedKey};
use super::response::List;
use crate::ids::KeyId;
use crate::store::{KeyFilter, KeyRecord, KeySettings, Tx};

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
    /// A label stored on every key.
    name: Option<String>,
    /// Models the keys may call; omitted means any.
    allowed_models: Option<Vec<String>>,
    /// RFC 3339; omitted means never.
    expires_at: Option<DateTime<Utc>>,
    /// Tags every request of these keys carries unless it sets its own (`{"task": "gsm8k"}`), at most 8
    /// (docs/tags.md).
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    default_tags: Option<BTreeMap<String, String>>,
}

/// Each secret is in this answer only.
#[utoipa::path(
    post,
    path = "/admin/v1/keys",
    tag = "keys",
    request_body = IssueKeys,
    responses(
        (status = 201, body = List<IssuedKey>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn issue_keys(
    State(state): State<AdminState>,
    caller: Caller,
    ApiJson(body): ApiJson<IssueKeys>,
) -> Result<(StatusCode, Json<List<IssuedKey>>), AdminError> {
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
    let default_tags = default_tags::parse(body.default_tags)?;
    let team = caller.team_named(&state, &body.team).await?;
    let experiment = match &body.experiment {
        None => None,
        Some(e) => Some(caller.experiment_in(&state, &team, e).await?.id),
    };
    let settings = KeySettings {
        team: team.id,
        experiment,
        name: body.name,
        allowed_models: body.allowed_models,
        expires_at: body.expires_at,
        default_tags,
    };
    let mut tx = state.store.begin().await?;
    let issued = issuance::issue_new(&mut tx, &settings, count).await?;
    let changes = issued
        .keys
        .iter()
        .map(|k| {
            Change::new("key.issue", "key", k.record.id)
                .team(k.record.team_id)
                .after(&k.record)
        })
        .collect();
    audit::commit(tx, &caller, changes).await?;
    state.keys_added(&issued.hashes()).await;
    Ok((StatusCode::CREATED, Json(List::of(issued.keys))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// Team id or name.
    team: Option<String>,
    /// Experiment id, or a name within `team`.
    experiment: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// Every key the token can see, or those of `team` / `experiment`.
#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "keys",
    params(KeyQuery),
    responses(
        (status = 200, body = List<ListedKey>, description = "JSON, or text/csv with format=csv"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list_keys(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> Result<Response, AdminError> {
    let format = Format::from_param(q.format.as_deref())?;
    let mut filter = KeyFilter {
        team: match &q.team {
            Some(t) => Some(caller.team_named(&state, t).await?.id),
            None => caller.team_filter(),
        },
        ..KeyFilter::default()
    };
    if let Some(e) = &q.experiment {
        let experiment = caller
            .experiment_named(&state, e, q.team.as_deref())
            .await?;
        filter.experiment = Some(experiment.id);
    }
    let keys = state.store.list_keys(&filter).await?;
    let listed = List::of(key_view::with_usage(&state, keys).await?);
    csv::list(format, listed, |l| &l.data)
}

#[utoipa::path(
    get,
    path = "/admin/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "key id")),
    responses(
        (status = 200, body = ListedKey),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn show_key(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ListedKey>, AdminError> {
    let record = caller.key(&state, &id).await?;
    Ok(Json(key_view::one(&state, record).await?))
}

/// Idempotent: revoking a revoked key returns it unchanged. Any body is ignored.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/revoke",
    tag = "keys",
    params(("id" = String, Path, description = "key id")),
    responses(
        (status = 200, body = KeyRecord),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn revoke_key(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyRecord>, AdminError> {
    let (mut tx, key, before) = begin_key_change(&state, &caller, &id).await?;
    let record = tx
        .revoke_key(key)
        .await?
        .ok_or_else(|| caller.not_found("key", &id))?;
    // Revoking a revoked key changes nothing and is not recorded.
    let changes = if before.revoked_at.is_none() {
        vec![
            Change::new("key.revoke", "key", key)
                .team(record.team_id)
                .before(&before)
                .after(&record),
        ]
    } else {
        Vec::new()
    };
    audit::commit(tx, &caller, changes).await?;
    state.invalidate_key(key).await;
    Ok(Json(record))
}

/// Opens the transaction of a change to the key the caller names, with the key's row locked:
/// its id and the record as it was (what the audit entry's `before` shows).
pub(super) async fn begin_key_change(
    state: &AdminState,
    caller: &Caller,
    id: &str,
) -> Result<(Tx, KeyId, KeyRecord), AdminError> {
    let key = caller.key(state, id).await?.id;
    let mut tx = state.store.begin().await?;
    let before = tx
        .lock_key(key)
        .await?
        .ok_or_else(|| caller.not_found("key", id))?;
    Ok((tx, key, before))
}
