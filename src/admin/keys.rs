//! Virtual keys: issue (N at once, each secret shown once), list, show, revoke.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AdminState;
use super::error::AdminError;
use super::teams::find_team;
use crate::ids::KeyId;
use crate::keys::NewKey;
use crate::store::{KeyFilter, KeyRecord, NewKeyRecord};

const MAX_KEYS_PER_CALL: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueKeys {
    team: String,
    experiment: Option<String>,
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

pub async fn issue_keys(
    State(state): State<AdminState>,
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
    let team = find_team(&state, &body.team).await?;
    let experiment = match &body.experiment {
        None => None,
        Some(e) => Some(
            state
                .store
                .find_experiment(team.id, e)
                .await?
                .ok_or_else(|| {
                    AdminError::NotFound(format!("team `{}` has no experiment `{e}`", team.name))
                })?
                .id,
        ),
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
    Ok((StatusCode::CREATED, Json(json!({ "data": issued }))))
}

#[derive(Deserialize)]
pub struct KeyQuery {
    team: Option<String>,
    experiment: Option<String>,
}

pub async fn list_keys(
    State(state): State<AdminState>,
    Query(q): Query<KeyQuery>,
) -> Result<Json<Value>, AdminError> {
    let mut filter = KeyFilter::default();
    if let Some(t) = &q.team {
        filter.team = Some(find_team(&state, t).await?.id);
    }
    if let Some(e) = &q.experiment {
        let not_found = || AdminError::NotFound(format!("no experiment `{e}`"));
        let experiment = match (uuid::Uuid::parse_str(e), filter.team) {
            (Ok(id), _) => {
                state
                    .store
                    .get_experiment(crate::ids::ExperimentId(id))
                    .await?
            }
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
    Ok(Json(json!({"data": state.store.list_keys(&filter).await?})))
}

fn key_id(id: &str) -> Result<KeyId, AdminError> {
    uuid::Uuid::parse_str(id)
        .map(KeyId)
        .map_err(|_| AdminError::NotFound(format!("no key `{id}`")))
}

pub async fn show_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, AdminError> {
    let not_found = AdminError::NotFound(format!("no key `{id}`"));
    state
        .store
        .get_key(key_id(&id)?)
        .await?
        .map(Json)
        .ok_or(not_found)
}

pub async fn revoke_key(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, AdminError> {
    let key = key_id(&id)?;
    let record = state
        .store
        .revoke_key(key)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no key `{id}`")))?;
    state.invalidate_key(key).await;
    Ok(Json(record))
}
