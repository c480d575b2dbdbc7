//! Teams and experiments.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminState;
use super::error::AdminError;
use crate::ids::ExperimentId;
use crate::store::{Experiment, NewExperiment, Team, is_unique_violation};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
}

pub async fn create_team(
    State(state): State<AdminState>,
    Json(body): Json<CreateTeam>,
) -> Result<(StatusCode, Json<Team>), AdminError> {
    let name = valid_name("name", &body.name)?;
    match state.store.create_team(name).await {
        Ok(team) => Ok((StatusCode::CREATED, Json(team))),
        Err(e) if is_unique_violation(&e) => Err(AdminError::Conflict(format!(
            "team `{name}` already exists"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn list_teams(State(state): State<AdminState>) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!({"data": state.store.list_teams().await?})))
}

pub async fn show_team(
    State(state): State<AdminState>,
    Path(team): Path<String>,
) -> Result<Json<Team>, AdminError> {
    Ok(Json(find_team(&state, &team).await?))
}

pub async fn find_team(state: &AdminState, id_or_name: &str) -> Result<Team, AdminError> {
    state
        .store
        .find_team(id_or_name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no team `{id_or_name}`")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    team: String,
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    ends_at: Option<DateTime<Utc>>,
}

pub async fn create_experiment(
    State(state): State<AdminState>,
    Json(body): Json<CreateExperiment>,
) -> Result<(StatusCode, Json<Experiment>), AdminError> {
    let name = valid_name("name", &body.name)?.to_string();
    let team = find_team(&state, &body.team).await?;
    let new = NewExperiment {
        team_id: team.id,
        name: name.clone(),
        tags: body.tags,
        ends_at: body.ends_at,
    };
    match state.store.create_experiment(new).await {
        Ok(experiment) => Ok((StatusCode::CREATED, Json(experiment))),
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

pub async fn list_experiments(
    State(state): State<AdminState>,
    Query(filter): Query<ExperimentFilter>,
) -> Result<Json<Value>, AdminError> {
    let team = match filter.team {
        Some(t) => Some(find_team(&state, &t).await?.id),
        None => None,
    };
    Ok(Json(
        json!({"data": state.store.list_experiments(team).await?}),
    ))
}

pub async fn show_experiment(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Experiment>, AdminError> {
    let not_found = || AdminError::NotFound(format!("no experiment `{id}`"));
    let id = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    state
        .store
        .get_experiment(ExperimentId(id))
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

fn valid_name<'a>(param: &'static str, name: &'a str) -> Result<&'a str, AdminError> {
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
