//! Campaigns: `POST /admin/v1/campaigns` launches an experiment with its limits and N keys in
//! one transaction; `POST /admin/v1/campaigns/{experiment}/close` revokes every key, ends the
//! experiment and answers with its final spend report.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::default_tags;
use super::error::{AdminError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::issuance::{self, IssuedKey};
use super::limit_caps::within_team_limits;
use super::limits::LimitsBody;
use super::spend::{SpendReport, report_of};
use super::teams::{TeamParam, insert_experiment, valid_name};
use crate::governance::{Limits, ScopeKind};
use crate::store::{
    Experiment, KeySettings, NewExperiment, SpendDimension, SpendFilter, SpendQuery,
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
    /// The experiment's default tags: every request of its keys carries them carries unless it sets its own (`{"task": "gsm8k"}`), at most 8
    /// (docs/tags.md).
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    default_tags: Option<BTreeMap<String, String>>,
}

/// Everything a launch created; the secrets are in this answer only.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Launched {
    experiment: Experiment,
    /// The experiment's limits as stored; `null` when none were given.
    limits: Option<Limits>,
    keys: Vec<IssuedKey>,
}

/// What a close did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Closed {
    /// The experiment, with `ends_at` now (or earlier, if it had already ended) and
    /// `state: closed`.
    experiment: Experiment,
    /// How many keys this call revoked (0 when closing again).
    revoked_keys: usize,
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
        (status = 201, body = Launched),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
pub async fn launch(
    State(state): State<AdminState>,
    caller: Caller,
    ApiJson(body): ApiJson<LaunchCampaign>,
) -> Result<(StatusCode, Json<Launched>), AdminError> {
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
    let default_tags = default_tags::parse(body.default_tags)?;
    let team = caller.team_named(&state, &body.team).await?;
    if let Some(limits) = &limits {
        within_team_limits(&state, &caller, team.id, limits).await?;
    }

    // The experiment, its limits, its keys and the audit entries: one transaction.
    let mut tx = state.store.begin().await?;
    let new = NewExperiment {
        team_id: team.id,
        name: name.clone(),
        tags: body.tags,
        ends_at: body.ends_at,
        default_tags,
    };
    let experiment = insert_experiment(&mut tx, new, &team.name).await?;
    if let Some(limits) = &limits {
        tx.set_limits(ScopeKind::Experiment, experiment.id.0, team.id, limits)
            .await?;
    }
    let settings = KeySettings {
        team: team.id,
        experiment: Some(experiment.id),
        name: Some(name),
        allowed_models: body.allowed_models,
        expires_at: None,
        // The campaign's tags are the experiment's; its keys add none of their own.
        default_tags: Default::default(),
    };
    let issued = issuance::issue_new(&mut tx, &settings, body.keys).await?;
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
    changes.extend(issued.keys.iter().map(|k| {
        Change::new("key.issue", "key", k.record.id)
            .team(team.id)
            .after(&k.record)
    }));
    audit::commit(tx, &caller, changes).await?;
    state.keys_added(&issued.hashes()).await;
    Ok((
        StatusCode::CREATED,
        Json(Launched {
            experiment,
            limits,
            keys: issued.keys,
        }),
    ))
}

/// Revokes every key of the campaign (one statement), ends it now unless it already ended, and
/// answers with its final spend report. Closing twice is harmless.
#[utoipa::path(
    post,
    path = "/admin/v1/campaigns/{id}/close",
    tag = "campaigns",
    params(
        ("id" = String, Path, description = "experiment id, or its name with `team`"),
        TeamParam,
    ),
    responses(
        (status = 200, body = Closed),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn close(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(experiment): ApiPath<String>,
    ApiQuery(q): ApiQuery<TeamParam>,
) -> Result<Json<Closed>, AdminError> {
    let id = caller
        .experiment_named(&state, &experiment, q.team.as_deref())
        .await?
        .id;
    let mut tx = state.store.begin().await?;
    let before = tx
        .lock_experiment(id)
        .await?
        .ok_or_else(|| caller.not_found("experiment", &experiment))?;
    let closed = tx.close_campaign(id).await?;
    let team = closed.experiment.team_id;
    // Closing a closed campaign changes nothing, and is not recorded.
    let changed = !closed.revoked.is_empty()
        || closed.experiment.ends_at != before.ends_at
        || closed.experiment.closed_at != before.closed_at;
    let mut changes = Vec::new();
    if changed {
        changes.push(
            Change::new("campaign.close", "experiment", id)
                .team(team)
                .before(&before)
                .after(&closed.experiment),
        );
        changes.extend(
            closed
                .revoked
                .iter()
                .map(|key| Change::new("key.revoke", "key", key).team(team)),
        );
    }
    audit::commit(tx, &caller, changes).await?;
    // One message drops every cached key of the experiment on every instance: the revoked
    // keys and the end time take effect at once.
    state.scope_changed(ScopeKind::Experiment, id.0).await;

    let query = SpendQuery {
        group_by: vec![SpendDimension::Key, SpendDimension::Model],
        filter: SpendFilter {
            experiment: Some(id),
            ..SpendFilter::default()
        },
        ..SpendQuery::default()
    };
    let rows = state.store.spend_report(&query).await?;
    Ok(Json(Closed {
        experiment: closed.experiment,
        revoked_keys: closed.revoked.len(),
        report: report_of(&query, rows, None, None),
    }))
}
