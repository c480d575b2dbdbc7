//! Teams and experiments.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::error::AdminError;
use super::openapi::{ErrorBody, ExperimentList, TeamList};
use crate::store::{Experiment, NewExperiment, Team, is_unique_violation};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
}

/// Admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/teams",
    tag = "teams",
    request_body = CreateTeam,
    responses(
        (status = 201, body = Team),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
pub async fn create_team(
    State(state): State<AdminState>,
    caller: Caller,
    Json(body): Json<CreateTeam>,
) -> Result<(StatusCode, Json<Team>), AdminError> {
    caller.require_admin()?;
    let name = valid_name("name", &body.name)?;
    match state.store.create_team(name).await {
        Ok(team) => {
            let change = Change::new("team.create", "team", team.id)
                .team(team.id)
                .after(&team);
            audit::record(&state, &caller, change).await;
            Ok((StatusCode::CREATED, Json(team)))
        }
        Err(e) if is_unique_violation(&e) => Err(AdminError::Conflict(format!(
            "team `{name}` already exists"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Every team (a team token: its own).
#[utoipa::path(
    get,
    path = "/admin/v1/teams",
    tag = "teams",
    responses((status = 200, body = TeamList))
)]
pub async fn list_teams(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Value>, AdminError> {
    let teams = match caller.team_filter() {
        None => state.store.list_teams().await?,
        Some(own) => state
            .store
            .find_team(&own.to_string())
            .await?
            .into_iter()
            .collect(),
    };
    Ok(Json(json!({ "data": teams })))
}

#[utoipa::path(
    get,
    path = "/admin/v1/teams/{team}",
    tag = "teams",
    params(("team" = String, Path, description = "team id or name")),
    responses((status = 200, body = Team), (status = 404, body = ErrorBody))
)]
pub async fn show_team(
    State(state): State<AdminState>,
    caller: Caller,
    Path(team): Path<String>,
) -> Result<Json<Team>, AdminError> {
    Ok(Json(caller.team_named(&state, &team).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    /// Team id or name.
    team: String,
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    ends_at: Option<DateTime<Utc>>,
}

#[utoipa::path(
    post,
    path = "/admin/v1/experiments",
    tag = "experiments",
    request_body = CreateExperiment,
    responses(
        (status = 201, body = Experiment),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
pub async fn create_experiment(
    State(state): State<AdminState>,
    caller: Caller,
    Json(body): Json<CreateExperiment>,
) -> Result<(StatusCode, Json<Experiment>), AdminError> {
    let name = valid_name("name", &body.name)?.to_string();
    let team = caller.team_named(&state, &body.team).await?;
    let new = NewExperiment {
        team_id: team.id,
        name: name.clone(),
        tags: body.tags,
        ends_at: body.ends_at,
    };
    match state.store.create_experiment(new).await {
        Ok(experiment) => {
            let change = Change::new("experiment.create", "experiment", experiment.id)
                .team(experiment.team_id)
                .after(&experiment);
            audit::record(&state, &caller, change).await;
            Ok((StatusCode::CREATED, Json(experiment)))
        }
        Err(e) if is_unique_violation(&e) => Err(AdminError::Conflict(format!(
            "team `{}` already has an experiment `{name}`",
            team.name
        ))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct ExperimentFilter {
    team: Option<String>,
}

/// Every experiment the token can see, or those of `team`.
#[utoipa::path(
    get,
    path = "/admin/v1/experiments",
    tag = "experiments",
    params(("team" = Option<String>, Query, description = "team id or name")),
    responses((status = 200, body = ExperimentList), (status = 404, body = ErrorBody))
)]
pub async fn list_experiments(
    State(state): State<AdminState>,
    caller: Caller,
    Query(filter): Query<ExperimentFilter>,
) -> Result<Json<Value>, AdminError> {
    let team = match filter.team {
        Some(t) => Some(caller.team_named(&state, &t).await?.id),
        None => caller.team_filter(),
    };
    Ok(Json(
        json!({"data": state.store.list_experiments(team).await?}),
    ))
}

#[utoipa::path(
    get,
    path = "/admin/v1/experiments/{id}",
    tag = "experiments",
    params(("id" = String, Path, description = "experiment id")),
    responses((status = 200, body = Experiment), (status = 404, body = ErrorBody))
)]
pub async fn show_experiment(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Experiment>, AdminError> {
    Ok(Json(caller.experiment(&state, &id).await?))
}

pub(super) fn valid_name<'a>(param: &'static str, name: &'a str) -> Result<&'a str, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AdminError::bad(
            param,
            format!("`{param}` must be 1 to 200 characters"),
        ));
    }
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(AdminError::bad(
            param,
            format!("`{param}` must not look like an id"),
        ));
    }
    Ok(name)
}
