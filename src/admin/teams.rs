//! Teams and experiments.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::default_tags;
use super::error::{AdminError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::response::List;
use crate::store::{Experiment, NewExperiment, Team, Tx, is_unique_violation};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// Unique, 1 to 200 characters, not shaped like an id.
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
    ApiJson(body): ApiJson<CreateTeam>,
) -> Result<(StatusCode, Json<Team>), AdminError> {
    caller.require_admin()?;
    let name = valid_name("name", &body.name)?;
    let mut tx = state.store.begin().await?;
    let team = match tx.create_team(name).await {
        Ok(team) => team,
        Err(e) if is_unique_violation(&e) => {
            return Err(AdminError::Conflict(format!(
                "team `{name}` already exists"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let change = Change::new("team.create", "team", team.id)
        .team(team.id)
        .after(&team);
    audit::commit(tx, &caller, vec![change]).await?;
    Ok((StatusCode::CREATED, Json(team)))
}

/// Every team (a team token: its own).
#[utoipa::path(
    get,
    path = "/admin/v1/teams",
    tag = "teams",
    responses((status = 200, body = List<Team>))
)]
pub async fn list_teams(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<List<Team>>, AdminError> {
    let teams = match caller.team_filter() {
        None => state.store.list_teams().await?,
        Some(own) => state
            .store
            .find_team(&own.to_string())
            .await?
            .into_iter()
            .collect(),
    };
    Ok(Json(List::of(teams)))
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
    ApiPath(team): ApiPath<String>,
) -> Result<Json<Team>, AdminError> {
    Ok(Json(caller.team_named(&state, &team).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    /// Team id or name.
    team: String,
    /// Unique within the team, 1 to 200 characters, not shaped like an id.
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    /// RFC 3339; its keys are refused from then on. Omitted: no end.
    ends_at: Option<DateTime<Utc>>,
    /// Tags every request of its keys carries unless it sets its own (`{"task": "gsm8k"}`), at most 8
    /// (docs/tags.md).
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    default_tags: Option<BTreeMap<String, String>>,
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
    ApiJson(body): ApiJson<CreateExperiment>,
) -> Result<(StatusCode, Json<Experiment>), AdminError> {
    let name = valid_name("name", &body.name)?.to_string();
    let default_tags = default_tags::parse(body.default_tags)?;
    let team = caller.team_named(&state, &body.team).await?;
    let new = NewExperiment {
        team_id: team.id,
        name: name.clone(),
        tags: body.tags,
        ends_at: body.ends_at,
        default_tags,
    };
    let mut tx = state.store.begin().await?;
    let experiment = insert_experiment(&mut tx, new, &team.name).await?;
    let change = Change::new("experiment.create", "experiment", experiment.id)
        .team(experiment.team_id)
        .after(&experiment);
    audit::commit(tx, &caller, vec![change]).await?;
    Ok((StatusCode::CREATED, Json(experiment)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TeamParam {
    /// Team id or name.
    pub(super) team: Option<String>,
}

/// Every experiment the token can see, or those of `team`.
#[utoipa::path(
    get,
    path = "/admin/v1/experiments",
    tag = "experiments",
    params(TeamParam),
    responses(
        (status = 200, body = List<Experiment>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list_experiments(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<TeamParam>,
) -> Result<Json<List<Experiment>>, AdminError> {
    let team = match filter.team {
        Some(t) => Some(caller.team_named(&state, &t).await?.id),
        None => caller.team_filter(),
    };
    Ok(Json(List::of(state.store.list_experiments(team).await?)))
}

/// `{id}` is the experiment's id, or its name with `?team=`.
#[utoipa::path(
    get,
    path = "/admin/v1/experiments/{id}",
    tag = "experiments",
    params(
        ("id" = String, Path, description = "experiment id, or its name with `team`"),
        TeamParam,
    ),
    responses(
        (status = 200, body = Experiment),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn show_experiment(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TeamParam>,
) -> Result<Json<Experiment>, AdminError> {
    Ok(Json(
        caller
            .experiment_named(&state, &id, q.team.as_deref())
            .await?,
    ))
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

/// Creates an experiment in `tx`; a name its team already uses is a 409 that names both.
pub(super) async fn insert_experiment(
    tx: &mut Tx,
    new: NewExperiment,
    team_name: &str,
) -> Result<Experiment, AdminError> {
    let name = new.name.clone();
    match tx.create_experiment(new).await {
        Ok(experiment) => Ok(experiment),
        Err(e) if is_unique_violation(&e) => Err(AdminError::Conflict(format!(
            "team `{team_name}` already has an experiment `{name}`"
        ))),
        Err(e) => Err(e.into()),
    }
}
