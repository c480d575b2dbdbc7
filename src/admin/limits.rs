//! Limits and budgets on any scope: `PUT`, `GET` (with current usage) and `DELETE` on
//! `/admin/v1/{teams|experiments|keys}/{id}/limits`.

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AdminState;
use super::audit::{self, Change};
use super::caller::Caller;
use super::error::{AdminError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::limit_caps::within_team_limits;
use super::teams::TeamParam;
use crate::governance::{
    Budget, BudgetMode, FailurePolicy, Limits, MAX_MODEL_LIMITS, ModelLimits, Period, ScopeKind,
    ScopeLimits, ScopeUsage, budget_amount_problem, selector_problem, tpm_problem,
};
use crate::ids::TeamId;
use crate::store::Tx;

/// A scope's limits with current usage next to them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LimitsView {
    /// `team`, `experiment` or `key`.
    scope: ScopeKind,
    id: uuid::Uuid,
    /// `null` when the scope has none.
    limits: Option<Limits>,
    /// Current usage of each limit; `null` when there are no limits or Redis cannot be read
    /// (the limits are still shown).
    usage: Option<ScopeUsage>,
}

/// The body of `PUT .../limits`: the scope's complete limits (what is omitted is cleared).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    rpm: Option<u32>,
    tpm: Option<u64>,
    max_concurrent: Option<u32>,
    #[serde(default)]
    budgets: Vec<BudgetBody>,
    /// `strict` (default) or `estimate`.
    budget_mode: Option<String>,
    /// `closed` (default) or `open`.
    on_redis_failure: Option<String>,
    /// Limits on one model or group of models inside the scope's (docs/governance.md).
    #[serde(default)]
    models: Vec<ModelLimitsBody>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelLimitsBody {
    /// A model name as clients send it (`gpt-5`), or a group: a prefix ending in `*`.
    model: String,
    rpm: Option<u32>,
    tpm: Option<u64>,
    #[serde(default)]
    budgets: Vec<BudgetBody>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    /// `total`, `daily`, `weekly` or `monthly` (UTC).
    period: String,
    /// A decimal string (or a JSON number written exactly), in USD.
    #[schema(value_type = String, example = "500.00")]
    amount_usd: Value,
}

/// `Some(0)` refused by name: a limit of zero is written by leaving the limit out. `at` says
/// where the limit is in the body (`model "gpt-5": `, or nothing for the scope's own).
fn positive(name: &'static str, at: &str, value: Option<u64>) -> Result<(), AdminError> {
    match value {
        Some(0) => Err(AdminError::bad(
            name,
            format!("{at}`{name}` must be at least 1; omit it for no limit"),
        )),
        _ => Ok(()),
    }
}

/// Checks the requests- and tokens-per-minute limits.
fn check_rates(rpm: Option<u32>, tpm: Option<u64>, at: &str) -> Result<(), AdminError> {
    positive("rpm", at, rpm.map(u64::from))?;
    positive("tpm", at, tpm)?;
    if let Some(problem) = tpm.and_then(|tpm| tpm_problem("tpm", tpm)) {
        return Err(AdminError::bad("tpm", format!("{at}{problem}")));
    }
    Ok(())
}

/// The budgets of a body, one per period; `at` says where they are in the body.
fn parse_budgets(bodies: Vec<BudgetBody>, at: &str) -> Result<Vec<Budget>, AdminError> {
    let mut budgets: Vec<Budget> = Vec::new();
    for b in bodies {
        let period = Period::parse(&b.period).ok_or_else(|| {
            AdminError::bad(
                "budgets",
                format!(
                    "{at}unknown period {:?}: use total, daily, weekly or monthly",
                    b.period
                ),
            )
        })?;
        let text = match &b.amount_usd {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(AdminError::bad(
                    "budgets",
                    format!("{at}`amount_usd` must be a decimal string like \"500.00\""),
                ));
            }
        };
        let amount = Decimal::from_str_exact(text.trim())
            .ok()
            .filter(|a| !a.is_sign_negative())
            .ok_or_else(|| {
                AdminError::bad(
                    "budgets",
                    format!("{at}`amount_usd` {text:?} is not a non-negative decimal"),
                )
            })?;
        if let Some(problem) = budget_amount_problem("amount_usd", amount) {
            return Err(AdminError::bad("budgets", format!("{at}{problem}")));
        }
        if budgets.iter().any(|x| x.period == period) {
            return Err(AdminError::bad(
                "budgets",
                format!("{at}two `{}` budgets: give one per period", period.as_str()),
            ));
        }
        budgets.push(Budget {
            period,
            amount_usd: amount,
        });
    }
    Ok(budgets)
}

/// The model limits of a body: each model (group) once, each with at least one limit.
fn parse_models(bodies: Vec<ModelLimitsBody>) -> Result<Vec<ModelLimits>, AdminError> {
    if bodies.len() > MAX_MODEL_LIMITS {
        return Err(AdminError::bad(
            "models",
            format!(
                "{} model limits: a scope may carry at most {MAX_MODEL_LIMITS}; limit a group of models with a prefix ending in `*`",
                bodies.len()
            ),
        ));
    }
    let mut models: Vec<ModelLimits> = Vec::with_capacity(bodies.len());
    for body in bodies {
        if let Some(problem) = selector_problem(&body.model) {
            return Err(AdminError::bad("models", problem));
        }
        if models.iter().any(|m| m.model == body.model) {
            return Err(AdminError::bad(
                "models",
                format!(
                    "model {:?} is given twice: give its rpm, tpm and budgets in one entry",
                    body.model
                ),
            ));
        }
        let at = format!("model {:?}: ", body.model);
        check_rates(body.rpm, body.tpm, &at)?;
        let limits = ModelLimits {
            budgets: parse_budgets(body.budgets, &at)?,
            model: body.model,
            rpm: body.rpm,
            tpm: body.tpm,
        };
        if limits.is_empty() {
            return Err(AdminError::bad(
                "models",
                format!(
                    "model {:?} has no limit: give it rpm, tpm or budgets, or leave it out",
                    limits.model
                ),
            ));
        }
        models.push(limits);
    }
    Ok(models)
}

impl LimitsBody {
    pub(super) fn validate(self) -> Result<Limits, AdminError> {
        check_rates(self.rpm, self.tpm, "")?;
        positive("max_concurrent", "", self.max_concurrent.map(u64::from))?;
        let budgets = parse_budgets(self.budgets, "")?;
        let budget_mode = match self.budget_mode.as_deref() {
            None | Some("strict") => BudgetMode::Strict,
            Some("estimate") => BudgetMode::Estimate,
            Some(other) => {
                return Err(AdminError::bad(
                    "budget_mode",
                    format!("{other:?}: use strict or estimate"),
                ));
            }
        };
        let on_redis_failure = match self.on_redis_failure.as_deref() {
            None | Some("closed") => FailurePolicy::Closed,
            Some("open") => FailurePolicy::Open,
            Some(other) => {
                return Err(AdminError::bad(
                    "on_redis_failure",
                    format!("{other:?}: use closed or open"),
                ));
            }
        };
        Ok(Limits {
            rpm: self.rpm,
            tpm: self.tpm,
            max_concurrent: self.max_concurrent,
            budgets,
            budget_mode,
            on_redis_failure,
            models: parse_models(self.models)?,
        })
    }
}

/// Resolves `/{scope}/{id}` (an experiment also by name with `?team=`) to the scope and the
/// team it belongs to; 404 for a scope the caller cannot see.
async fn resolve(
    state: &AdminState,
    caller: &Caller,
    kind: ScopeKind,
    id: &str,
    team: Option<&str>,
) -> Result<(uuid::Uuid, TeamId), AdminError> {
    if team.is_some() && kind != ScopeKind::Experiment {
        return Err(AdminError::bad(
            "team",
            "`team` names the team of an experiment given by name; teams and keys are named by themselves",
        ));
    }
    match kind {
        ScopeKind::Team => {
            let team = caller.team_named(state, id).await?;
            Ok((team.id.0, team.id))
        }
        ScopeKind::Experiment => {
            let experiment = caller.experiment_named(state, id, team).await?;
            Ok((experiment.id.0, experiment.team_id))
        }
        ScopeKind::Key => {
            let key = caller.key(state, id).await?;
            Ok((key.id.0, key.team_id))
        }
    }
}

/// A team's own limits are the admin's ceiling for it: team tokens may read them, not change
/// them. (Refused before the team is looked up, so the answer says nothing about it.)
fn may_change(caller: &Caller, kind: ScopeKind) -> Result<(), AdminError> {
    match kind {
        ScopeKind::Team if !caller.is_admin() => Err(AdminError::Forbidden(
            "a team's own limits are set by an admin; a team token may set limits on its experiments and keys",
        )),
        _ => Ok(()),
    }
}

fn scope_kind(segment: &str) -> Result<ScopeKind, AdminError> {
    match segment {
        "teams" => Ok(ScopeKind::Team),
        "experiments" => Ok(ScopeKind::Experiment),
        "keys" => Ok(ScopeKind::Key),
        _ => Err(AdminError::NotFound(format!(
            "no such scope type `{segment}`"
        ))),
    }
}

/// Replaces the scope's limits. Team tokens: experiments and keys of their team only, and
/// never above the team's own limits.
#[utoipa::path(
    put,
    path = "/admin/v1/{scope}/{id}/limits",
    tag = "limits",
    params(
        ("scope" = String, Path, description = "`teams`, `experiments` or `keys`"),
        ("id" = String, Path, description = "the scope's id (a team also by name, an experiment by name with `team`)"),
        TeamParam,
    ),
    request_body = LimitsBody,
    responses(
        (status = 200, body = LimitsView),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn put_limits(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath((segment, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TeamParam>,
    ApiJson(body): ApiJson<LimitsBody>,
) -> Result<Json<LimitsView>, AdminError> {
    let kind = scope_kind(&segment)?;
    may_change(&caller, kind)?;
    let limits = body.validate()?;
    let (scope_id, team) = resolve(&state, &caller, kind, &id, q.team.as_deref()).await?;
    within_team_limits(&state, &caller, team, &limits).await?;
    let (mut tx, before) = begin_limits_change(&state, &caller, kind, scope_id, &id).await?;
    tx.set_limits(kind, scope_id, team, &limits).await?;
    let change = Change::new("limits.set", kind.as_str(), scope_id)
        .team(team)
        .before(&before)
        .after(&limits);
    audit::commit(tx, &caller, vec![change]).await?;
    state.scope_changed(kind, scope_id).await;
    show(&state, kind, scope_id, team).await
}

#[utoipa::path(
    get,
    path = "/admin/v1/{scope}/{id}/limits",
    tag = "limits",
    params(
        ("scope" = String, Path, description = "`teams`, `experiments` or `keys`"),
        ("id" = String, Path, description = "the scope's id (a team also by name, an experiment by name with `team`)"),
        TeamParam,
    ),
    responses((status = 200, body = LimitsView), (status = 404, body = ErrorBody))
)]
pub async fn get_limits(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath((segment, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TeamParam>,
) -> Result<Json<LimitsView>, AdminError> {
    let kind = scope_kind(&segment)?;
    let (scope_id, team) = resolve(&state, &caller, kind, &id, q.team.as_deref()).await?;
    show(&state, kind, scope_id, team).await
}

#[utoipa::path(
    delete,
    path = "/admin/v1/{scope}/{id}/limits",
    tag = "limits",
    params(
        ("scope" = String, Path, description = "`teams`, `experiments` or `keys`"),
        ("id" = String, Path, description = "the scope's id (a team also by name, an experiment by name with `team`)"),
        TeamParam,
    ),
    responses(
        (status = 200, body = LimitsView),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn delete_limits(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath((segment, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TeamParam>,
) -> Result<Json<LimitsView>, AdminError> {
    let kind = scope_kind(&segment)?;
    may_change(&caller, kind)?;
    let (scope_id, team) = resolve(&state, &caller, kind, &id, q.team.as_deref()).await?;
    let (mut tx, before) = begin_limits_change(&state, &caller, kind, scope_id, &id).await?;
    tx.clear_limits(kind, scope_id).await?;
    // Clearing a scope without limits changes nothing and is not recorded.
    let changes = match &before {
        Some(before) => vec![
            Change::new("limits.clear", kind.as_str(), scope_id)
                .team(team)
                .before(before),
        ],
        None => Vec::new(),
    };
    audit::commit(tx, &caller, changes).await?;
    state.scope_changed(kind, scope_id).await;
    show(&state, kind, scope_id, team).await
}

/// The scope's limits with current usage next to each (usage is `null` when Redis cannot
/// be read: the limits are still shown).
async fn show(
    state: &AdminState,
    kind: ScopeKind,
    id: uuid::Uuid,
    team: TeamId,
) -> Result<Json<LimitsView>, AdminError> {
    let scope = state
        .store
        .limits_of(&[(kind, id)])
        .await?
        .into_iter()
        .next();
    let Some(scope) = scope else {
        return Ok(Json(LimitsView {
            scope: kind,
            id,
            limits: None,
            usage: None,
        }));
    };
    let usage = match state.governor.usage(team, &scope).await {
        Ok(mut usage) => {
            crate::governance::add_forecasts(&state.store, team, &mut usage).await;
            Some(usage)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read usage from Redis");
            None
        }
    };
    let ScopeLimits { limits, .. } = scope;
    Ok(Json(LimitsView {
        scope: kind,
        id,
        limits: Some(limits),
        usage,
    }))
}

/// Opens the transaction of a change to a scope's limits, with the scope locked: the limits as
/// they were (what the audit entry's `before` shows).
async fn begin_limits_change(
    state: &AdminState,
    caller: &Caller,
    kind: ScopeKind,
    scope_id: uuid::Uuid,
    named: &str,
) -> Result<(Tx, Option<Limits>), AdminError> {
    let mut tx = state.store.begin().await?;
    if !tx.lock_scope(kind, scope_id).await? {
        return Err(caller.not_found(kind.as_str(), named));
    }
    let before = tx
        .limits_of(&[(kind, scope_id)])
        .await?
        .pop()
        .map(|s| s.limits);
    Ok((tx, before))
}
