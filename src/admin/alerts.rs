//! Alert rules: made, listed and removed here, evaluated and delivered by `crate::alerts`.
//! A rule watches a team, an experiment, a key, or every campaign of a team (those launched
//! later included); a request that names none of the kinds of alert gets the default set
//! (`[alerts]` in the configuration).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::AdminState;
use super::alert_view::{self, AlertEventView, AlertRuleView, CreatedAlertRule};
use super::audit::{self, Change};
use super::caller::Caller;
use super::error::{AdminError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::params::Params;
use super::response::List;
use crate::alerts::TestDelivery;
use crate::config::{AlertDefaults, MAX_THRESHOLD_PERCENT, Secret};
use crate::ids::TeamId;
use crate::store::{AlertRule, Team};

const MAX_URL_LEN: usize = 2048;
const MAX_THRESHOLDS: usize = 20;
const DEFAULT_HISTORY: i64 = 50;
const MAX_HISTORY: i64 = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlertRule {
    /// Team id or name; team tokens: their own (the default). Needed to name an experiment
    /// by name, and for a rule on the team itself or on every campaign.
    team: Option<String>,
    /// Watch this experiment (id, or name within `team`).
    experiment: Option<String>,
    /// Watch this key (id).
    key: Option<String>,
    /// Watch every campaign (experiment) of `team` that is not closed, later ones included.
    #[serde(default)]
    every_campaign: bool,
    /// Percentages (1..=1000) of each of the scope's budgets, e.g. `[50, 80, 100]`.
    thresholds: Option<Vec<u16>>,
    /// Alert when the burn rate over this window would exhaust a budget before the scope
    /// ends (the campaign's end, the key's expiry, or the budget's period).
    projection_window_secs: Option<u32>,
    /// Alert this many hours before the campaign ends or the key expires.
    expiry_hours: Option<u32>,
    refusals: Option<RefusalsRule>,
    /// Where alerts are posted: an `http` or `https` URL.
    webhook_url: String,
    /// `json` (default): the event; `slack`: `{"text": <summary>}` for a Slack-compatible
    /// incoming webhook.
    format: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefusalsRule {
    /// Alert when at least this share (1..=100 %) of the scope's requests over the window
    /// were refused or failed (402, 429, 5xx).
    percent: u16,
    /// Default `alerts.default_refusal_window_secs`.
    window_secs: Option<u32>,
    /// Fewer requests than this over the window never alert. Default
    /// `alerts.default_refusal_min_requests`.
    min_requests: Option<u32>,
}

/// Creates a rule. Without any of `thresholds`, `projection_window_secs`, `expiry_hours`,
/// `refusals`, the rule gets the default set.
#[utoipa::path(
    post,
    path = "/admin/v1/alerts",
    tag = "alerts",
    request_body = CreateAlertRule,
    responses(
        (status = 201, body = CreatedAlertRule, description = "the rule and its signing secret, shown once"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AdminState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateAlertRule>,
) -> Result<(StatusCode, Json<CreatedAlertRule>), AdminError> {
    let scope = scope(&state, &caller, &body).await?;
    let webhook_url = webhook(&body.webhook_url)?;
    let format = match body.format.as_deref().unwrap_or("json") {
        f @ ("json" | "slack") => f.to_owned(),
        other => {
            return Err(AdminError::bad(
                "format",
                format!("`format` is `json` or `slack`, not `{other}`"),
            ));
        }
    };
    let kinds = kinds(&body, state.alerts.defaults())?;
    let signing_secret = crate::alerts::sign::new_secret();
    let rule = AlertRule {
        id: Uuid::now_v7(),
        team_id: scope.team.id,
        team_name: scope.team.name,
        scope_kind: scope.kind.to_owned(),
        scope_id: scope.id,
        scope_name: scope.name,
        thresholds: kinds.thresholds,
        projection_window_secs: kinds.projection_window_secs,
        expiry_hours: kinds.expiry_hours,
        refusal_percent: kinds.refusals.map(|r| r.0),
        refusal_window_secs: kinds.refusals.map(|r| r.1),
        refusal_min_requests: kinds.refusals.map(|r| r.2),
        webhook_url: Secret::new(webhook_url),
        format,
        signing_secret: signing_secret.clone(),
        created_by: caller.subject().to_owned(),
        // To the microsecond, as PostgreSQL keeps it, so the view equals a later read.
        created_at: chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
            .unwrap_or_else(chrono::Utc::now),
    };
    let view = alert_view::rule(&rule);
    let mut tx = state.store.begin().await?;
    tx.insert_alert_rule(&rule).await?;
    let change = Change::new("alert.create", "alert_rule", rule.id)
        .team(rule.team_id)
        .after(&view);
    audit::commit(tx, &caller, vec![change]).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAlertRule {
            rule: view,
            signing_secret: signing_secret.expose().clone(),
        }),
    ))
}

/// The rules of the teams the caller can see, oldest first.
#[utoipa::path(
    get,
    path = "/admin/v1/alerts",
    tag = "alerts",
    params(("team" = Option<String>, Query, description = "team id or name (team tokens: always their own)")),
    responses(
        (status = 200, body = List<AlertRuleView>),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<List<AlertRuleView>>, AdminError> {
    let params = Params::new(pairs, &["team"])?;
    let team = team_param(&state, &caller, &params).await?;
    let rules = state.store.alert_rules(team).await?;
    Ok(Json(List::of(rules.iter().map(alert_view::rule).collect())))
}

/// Removes a rule; its pending alerts are not delivered, and its history goes with it.
#[utoipa::path(
    delete,
    path = "/admin/v1/alerts/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "the rule's id")),
    responses(
        (status = 200, body = AlertRuleView, description = "the rule removed"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AlertRuleView>, AdminError> {
    let rule = visible_rule(&state, &caller, &id).await?;
    let view = alert_view::rule(&rule);
    let mut tx = state.store.begin().await?;
    if !tx.delete_alert_rule(rule.id).await? {
        return Err(caller.not_found("alert rule", &id));
    }
    let change = Change::new("alert.delete", "alert_rule", rule.id)
        .team(rule.team_id)
        .before(&view);
    audit::commit(tx, &caller, vec![change]).await?;
    Ok(Json(view))
}

/// Sends a `test` event to the rule's webhook now, signed like every alert, and answers what
/// the receiver said. Nothing is recorded.
#[utoipa::path(
    post,
    path = "/admin/v1/alerts/{id}/test",
    tag = "alerts",
    params(("id" = String, Path, description = "the rule's id")),
    responses(
        (status = 200, body = TestDelivery, description = "delivered or not, and why"),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn test(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TestDelivery>, AdminError> {
    let rule = visible_rule(&state, &caller, &id).await?;
    Ok(Json(state.alerts.send_test(&rule).await))
}

/// The alerts fired, newest first, with their delivery: `pending`, `delivered` or `failed`.
#[utoipa::path(
    get,
    path = "/admin/v1/alert-events",
    tag = "alerts",
    params(
        ("team" = Option<String>, Query, description = "team id or name (team tokens: always their own)"),
        ("rule" = Option<String>, Query, description = "one rule's id"),
        ("limit" = Option<i64>, Query, description = "1..=1000, default 50"),
    ),
    responses(
        (status = 200, body = List<AlertEventView>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<List<AlertEventView>>, AdminError> {
    let params = Params::new(pairs, &["team", "rule", "limit"])?;
    let team = team_param(&state, &caller, &params).await?;
    let limit = params.number("limit", DEFAULT_HISTORY, 1..=MAX_HISTORY)?;
    let rule = match params.get("rule") {
        Some(id) => Some(visible_rule(&state, &caller, id).await?.id),
        None => None,
    };
    let rows = state.store.alert_history(team, rule, limit).await?;
    Ok(Json(List::of(
        rows.into_iter().map(alert_view::event).collect(),
    )))
}

async fn team_param(
    state: &AdminState,
    caller: &Caller,
    params: &Params,
) -> Result<Option<TeamId>, AdminError> {
    Ok(match params.get("team") {
        Some(t) => Some(caller.team_named(state, t).await?.id),
        None => caller.team_filter(),
    })
}

async fn visible_rule(
    state: &AdminState,
    caller: &Caller,
    input: &str,
) -> Result<AlertRule, AdminError> {
    let not_a_rule = || {
        AdminError::bad(
            "id",
            format!("`{input}` is not an alert rule id (`GET /admin/v1/alerts` lists them)"),
        )
    };
    let id = Uuid::parse_str(input.trim()).map_err(|_| not_a_rule())?;
    state
        .store
        .alert_rule(id)
        .await?
        .filter(|rule| caller.can_see_team(rule.team_id))
        .ok_or_else(|| caller.not_found("alert rule", input))
}

/// What a rule watches, resolved.
struct WatchedScope {
    team: Team,
    kind: &'static str,
    id: Option<Uuid>,
    name: Option<String>,
}

async fn scope(
    state: &AdminState,
    caller: &Caller,
    body: &CreateAlertRule,
) -> Result<WatchedScope, AdminError> {
    let named = [
        body.experiment.is_some(),
        body.key.is_some(),
        body.every_campaign,
    ];
    if named.iter().filter(|n| **n).count() > 1 {
        return Err(AdminError::bad(
            "experiment",
            "a rule watches one scope: give one of `experiment`, `key`, `every_campaign` (or \
             none of them, for the team itself)",
        ));
    }
    let team = match body.team.as_deref() {
        Some(t) => Some(caller.team_named(state, t).await?),
        None => match caller.team_filter() {
            Some(own) => Some(caller.team_named(state, &own.to_string()).await?),
            None => None,
        },
    };
    if let Some(input) = body.experiment.as_deref() {
        let experiment = match &team {
            Some(team) => caller.experiment_in(state, team, input).await?,
            None => caller.experiment_named(state, input, None).await?,
        };
        let team = owning_team(state, caller, team, experiment.team_id).await?;
        return Ok(WatchedScope {
            team,
            kind: "experiment",
            id: Some(experiment.id.0),
            name: Some(experiment.name),
        });
    }
    if let Some(input) = body.key.as_deref() {
        let key = caller.key(state, input).await?;
        if let Some(team) = team.as_ref().filter(|t| t.id != key.team_id) {
            return Err(AdminError::bad(
                "key",
                format!("key `{input}` is not a key of team `{}`", team.name),
            ));
        }
        let team = owning_team(state, caller, team, key.team_id).await?;
        return Ok(WatchedScope {
            team,
            kind: "key",
            id: Some(key.id.0),
            name: Some(key.name.unwrap_or(key.prefix)),
        });
    }
    let team = team.ok_or_else(|| {
        AdminError::bad(
            "team",
            "name the team (`team`): a rule on a team or on every campaign of it needs one",
        )
    })?;
    Ok(if body.every_campaign {
        WatchedScope {
            team,
            kind: "experiment",
            id: None,
            name: None,
        }
    } else {
        WatchedScope {
            kind: "team",
            id: Some(team.id.0),
            name: Some(team.name.clone()),
            team,
        }
    })
}

/// The team of the experiment or key named, read when the request did not name it.
async fn owning_team(
    state: &AdminState,
    caller: &Caller,
    named: Option<Team>,
    owner: TeamId,
) -> Result<Team, AdminError> {
    match named {
        Some(team) => Ok(team),
        None => caller.team_named(state, &owner.to_string()).await,
    }
}

fn webhook(url: &str) -> Result<String, AdminError> {
    let bad = |why: &str| AdminError::bad("webhook_url", format!("`webhook_url` {why}"));
    if url.len() > MAX_URL_LEN {
        return Err(bad(&format!("is longer than {MAX_URL_LEN} characters")));
    }
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| bad(&format!("is not a URL ({e}); give http(s)://host/path")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(&format!(
            "must be http or https, not `{}`",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(parsed.to_string())
}

/// The kinds of alert a rule has, checked and with defaults filled in.
struct Kinds {
    thresholds: Vec<i16>,
    projection_window_secs: Option<i32>,
    expiry_hours: Option<i32>,
    /// (percent, window, minimum requests)
    refusals: Option<(i16, i32, i32)>,
}

fn kinds(body: &CreateAlertRule, defaults: &AlertDefaults) -> Result<Kinds, AdminError> {
    let none_named = body.thresholds.is_none()
        && body.projection_window_secs.is_none()
        && body.expiry_hours.is_none()
        && body.refusals.is_none();
    if none_named {
        return Ok(Kinds {
            thresholds: defaults
                .thresholds
                .iter()
                .filter_map(|t| i16::try_from(*t).ok())
                .collect(),
            projection_window_secs: i32::try_from(defaults.projection_window_secs).ok(),
            expiry_hours: i32::try_from(defaults.expiry_hours).ok(),
            refusals: Some((
                i16::try_from(defaults.refusal_percent).unwrap_or(i16::MAX),
                i32::try_from(defaults.refusal_window_secs).unwrap_or(i32::MAX),
                i32::try_from(defaults.refusal_min_requests).unwrap_or(i32::MAX),
            )),
        });
    }
    let mut thresholds = Vec::new();
    if let Some(given) = &body.thresholds {
        if given.is_empty() || given.len() > MAX_THRESHOLDS {
            return Err(AdminError::bad(
                "thresholds",
                format!("`thresholds` takes 1 to {MAX_THRESHOLDS} percentages, e.g. [50, 80, 100]"),
            ));
        }
        for &t in given {
            if t == 0 || t > MAX_THRESHOLD_PERCENT {
                return Err(AdminError::bad(
                    "thresholds",
                    format!(
                        "threshold {t} is not a percentage from 1 to {MAX_THRESHOLD_PERCENT} of a budget"
                    ),
                ));
            }
            thresholds.push(i16::try_from(t).unwrap_or(i16::MAX));
        }
        thresholds.sort_unstable();
        thresholds.dedup();
    }
    let positive = |param: &'static str, value: Option<u32>, what: &str| {
        value
            .map(|v| {
                i32::try_from(v)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| AdminError::bad(param, format!("`{param}` must be {what}")))
            })
            .transpose()
    };
    let projection_window_secs = positive(
        "projection_window_secs",
        body.projection_window_secs,
        "a number of seconds greater than 0",
    )?;
    let expiry_hours = positive(
        "expiry_hours",
        body.expiry_hours,
        "a number of hours greater than 0",
    )?;
    let refusals = match &body.refusals {
        None => None,
        Some(r) => {
            if !(1..=100).contains(&r.percent) {
                return Err(AdminError::bad(
                    "refusals.percent",
                    format!(
                        "`refusals.percent` is a share from 1 to 100, not {}",
                        r.percent
                    ),
                ));
            }
            let window = positive(
                "refusals.window_secs",
                Some(r.window_secs.unwrap_or(defaults.refusal_window_secs)),
                "a number of seconds greater than 0",
            )?
            .unwrap_or(1);
            let min = positive(
                "refusals.min_requests",
                Some(r.min_requests.unwrap_or(defaults.refusal_min_requests)),
                "a number of requests greater than 0",
            )?
            .unwrap_or(1);
            Some((i16::try_from(r.percent).unwrap_or(100), window, min))
        }
    };
    Ok(Kinds {
        thresholds,
        projection_window_secs,
        expiry_hours,
        refusals,
    })
}
