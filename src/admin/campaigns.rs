//! Campaigns: `POST /admin/v1/campaigns` launches an experiment with its limits and N keys in
//! one transaction; `POST /admin/v1/campaigns/{experiment}/close` revokes every key, ends the
//! experiment and answers with its final spend report.

use std::collections::HashMap;

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
use super::key_changes::Issued;
use super::limit_caps::within_team_limits;
use super::limits::LimitsBody;
use super::openapi::{ErrorBody, IssuedKeyDoc, SpendReport};
use super::params::Params;
use super::spend::to_json;
use super::teams::valid_name;
use crate::governance::ScopeKind;
use crate::ids::KeyId;
use crate::keys::NewKey;
use crate::store::{
    Experiment, NewCampaign, NewExperiment, NewKeyRecord, SpendDimension, SpendFilter, SpendQuery,
    SpendTotals, is_unique_violation,
};

const MAX_KEYS: u32 = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchCampaign {
    /// Team id or name.
    team: String,
    /// The experiment's name, unique within the team; also the label of its keys.
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    /// When the campaign ends: its keys are refused from then on (403 `experiment_ended`).
    ends_at: Option<DateTime<Utc>>,
    /// How many keys to issue, 1..=1000.
    keys: u32,
    /// Models the keys may call; omitted means any.
    allowed_models: Option<Vec<String>>,
    /// The experiment's limits and budgets, as in `PUT .../limits`.
    limits: Option<LimitsBody>,
}

/// The answer to a launch (for the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
pub struct LaunchedDoc {
    experiment: Experiment,
    /// The experiment's limits as stored; `null` when none were given.
    #[schema(value_type = Option<Object>)]
    limits: Option<Value>,
    /// Each secret is in this answer only.
    keys: Vec<IssuedKeyDoc>,
}

/// The answer to a close (for the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClosedDoc {
    /// The experiment, with `ends_at` now (or earlier, if it had already ended).
    experiment: Experiment,
    /// How many keys this call revoked.
    revoked_keys: u64,
    /// Its spend by key and model, with the total.
    report: SpendReport,
}

/// The experiment, its limits and its keys in one transaction: all of it or, on any error,
/// none of it.
#[utoipa::path(
    post,
    path = "/admin/v1/campaigns",
    tag = "campaigns",
    request_body = LaunchCampaign,
    responses(
        (status = 201, body = LaunchedDoc),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
pub async fn launch(
    State(state): State<AdminState>,
    caller: Caller,
    Json(body): Json<LaunchCampaign>,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    // Everything is checked before anything is written.
    let name = valid_name("name", &body.name)?.to_owned();
    if !(1..=MAX_KEYS).contains(&body.keys) {
        return Err(AdminError::bad(
            "keys",
            format!("`keys` must be 1 to {MAX_KEYS}"),
        ));
    }
    if body.allowed_models.as_ref().is_some_and(|m| m.is_empty()) {
        return Err(AdminError::bad(
            "allowed_models",
            "`allowed_models` is empty; omit it to allow every model",
        ));
    }
    if body.ends_at.is_some_and(|t| t <= Utc::now()) {
        return Err(AdminError::bad(
            "ends_at",
            "`ends_at` is in the past: the campaign would refuse every request",
        ));
    }
    let limits = body.limits.map(LimitsBody::validate).transpose()?;
    let team = caller.team_named(&state, &body.team).await?;
    if let Some(limits) = &limits {
        within_team_limits(&state, &caller, team.id, limits).await?;
    }

    let generated: Vec<(KeyId, NewKey)> = (0..body.keys)
        .map(|_| (KeyId::new(), NewKey::generate()))
        .collect();
    let records: Vec<NewKeyRecord> = generated
        .iter()
        .map(|(id, k)| NewKeyRecord {
            id: *id,
            hash: k.hash,
            prefix: k.prefix.clone(),
        })
        .collect();
    let new = NewCampaign {
        experiment: NewExperiment {
            team_id: team.id,
            name: name.clone(),
            tags: body.tags,
            ends_at: body.ends_at,
        },
        limits: limits.clone(),
        allowed_models: body.allowed_models,
        key_name: Some(name.clone()),
        keys: records,
    };
    let (experiment, stored) = match state.store.launch_campaign(new).await {
        Ok(done) => done,
        Err(e) if is_unique_violation(&e) => {
            return Err(AdminError::Conflict(format!(
                "team `{}` already has an experiment `{name}`",
                team.name
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let hashes: Vec<_> = generated.iter().map(|(_, k)| k.hash).collect();
    state.keys_added(&hashes).await;
    let mut secrets: HashMap<KeyId, String> = generated
        .into_iter()
        .map(|(id, k)| (id, k.secret))
        .collect();
    let keys: Vec<Issued> = stored
        .into_iter()
        .map(|record| Issued {
            key: secrets.remove(&record.id).unwrap_or_default(),
            record,
        })
        .collect();
    let mut changes = vec![
        Change::new("campaign.launch", "experiment", experiment.id)
            .team(team.id)
            .after(&experiment),
    ];
    if let Some(limits) = &limits {
        changes.push(
            Change::new("limits.set", "experiment", experiment.id)
                .team(team.id)
                .after(limits),
        );
    }
    changes.extend(keys.iter().map(|k| {
        Change::new("key.issue", "key", k.record.id)
            .team(team.id)
            .after(&k.record)
    }));
    audit::record_all(&state, &caller, changes).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"experiment": experiment, "limits": limits, "keys": keys})),
    ))
}

/// `{experiment}` is an id, or a name within `?team=`.
async fn find_experiment(
    state: &AdminState,
    caller: &Caller,
    experiment: &str,
    params: &Params,
) -> Result<Experiment, AdminError> {
    match (params.get("team"), uuid::Uuid::parse_str(experiment)) {
        (Some(team), _) => {
            let team = caller.team_named(state, team).await?;
            caller.experiment_in(state, &team, experiment).await
        }
        (None, Ok(_)) => caller.experiment(state, experiment).await,
        (None, Err(_)) => Err(AdminError::bad(
            "team",
            "give the experiment's id, or its name with `?team=<id|name>`",
        )),
    }
}

/// Revokes every key of the campaign (one statement), ends it now unless it already ended, and
/// answers with its final spend report. Closing twice is harmless.
#[utoipa::path(
    post,
    path = "/admin/v1/campaigns/{id}/close",
    tag = "campaigns",
    params(
        ("id" = String, Path, description = "experiment id, or its name with `team`"),
        ("team" = Option<String>, Query, description = "team id or name, when `id` is a name"),
    ),
    responses(
        (status = 200, body = ClosedDoc),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn close(
    State(state): State<AdminState>,
    caller: Caller,
    Path(experiment): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, AdminError> {
    let params = Params::new(pairs, &["team"])?;
    let before = find_experiment(&state, &caller, &experiment, &params).await?;
    let id = before.id;
    let closed = state
        .store
        .close_campaign(id)
        .await?
        .ok_or_else(|| caller.not_found("experiment", &experiment))?;
    // One message drops every cached key of the experiment on every instance: the revoked
    // keys and the end time take effect at once.
    state.scope_changed(ScopeKind::Experiment, id.0).await;
    // Closing a closed campaign changes nothing, and is not recorded.
    if !closed.revoked.is_empty() || closed.experiment.ends_at != before.ends_at {
        let team = closed.experiment.team_id;
        let mut changes = vec![
            Change::new("campaign.close", "experiment", id)
                .team(team)
                .before(&before)
                .after(&closed.experiment),
        ];
        changes.extend(
            closed
                .revoked
                .iter()
                .map(|key| Change::new("key.revoke", "key", key).team(team)),
        );
        audit::record_all(&state, &caller, changes).await;
    }

    let query = SpendQuery {
        group_by: vec![SpendDimension::Key, SpendDimension::Model],
        filter: SpendFilter {
            experiment: Some(id),
            ..SpendFilter::default()
        },
        ..SpendQuery::default()
    };
    let rows = state.store.spend_report(&query).await?;
    let mut total = SpendTotals::default();
    rows.iter().for_each(|row| total.add(&row.totals));
    let data: Vec<Value> = rows
        .iter()
        .map(|row| Value::Object(to_json(&query.group_by, row)))
        .collect();
    Ok(Json(json!({
        "experiment": closed.experiment,
        "revoked_keys": closed.revoked.len(),
        "report": {
            "group_by": ["key", "model"],
            "from": null,
            "to": null,
            "data": data,
            "total": total,
        },
    })))
}
