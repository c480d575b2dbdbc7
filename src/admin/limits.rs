//! Limits and budgets on any scope: `PUT`, `GET` (with current usage) and `DELETE` on
//! `/admin/v1/{teams|experiments|keys}/{id}/limits`.

use axum::Json;
use axum::extract::{Path, State};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminState;
use super::error::AdminError;
use super::teams::find_team;
use crate::governance::{
    Budget, BudgetMode, FailurePolicy, Limits, Period, ScopeKind, ScopeLimits,
};
use crate::ids::{ExperimentId, KeyId, TeamId};

/// The body of `PUT .../limits`: the scope's complete limits (what is omitted is cleared).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    rpm: Option<u32>,
    tpm: Option<u64>,
    max_concurrent: Option<u32>,
    #[serde(default)]
    budgets: Vec<BudgetBody>,
    budget_mode: Option<String>,
    on_redis_failure: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    period: String,
    /// A decimal string (or a JSON number written exactly), in USD.
    amount_usd: Value,
}

impl LimitsBody {
    fn validate(self) -> Result<Limits, AdminError> {
        let positive = |name: &'static str, v: Option<u64>| match v {
            Some(0) => Err(AdminError::bad(
                name,
                format!("`{name}` must be at least 1; omit it for no limit"),
            )),
            _ => Ok(()),
        };
        positive("rpm", self.rpm.map(u64::from))?;
        positive("tpm", self.tpm)?;
        positive("max_concurrent", self.max_concurrent.map(u64::from))?;
        let mut budgets: Vec<Budget> = Vec::new();
        for b in self.budgets {
            let period = Period::parse(&b.period).ok_or_else(|| {
                AdminError::bad(
                    "budgets",
                    format!(
                        "unknown period {:?}: use total, daily, weekly or monthly",
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
                        "`amount_usd` must be a decimal string like \"500.00\"",
                    ));
                }
            };
            let amount = Decimal::from_str_exact(text.trim())
                .ok()
                .filter(|a| !a.is_sign_negative())
                .ok_or_else(|| {
                    AdminError::bad(
                        "budgets",
                        format!("`amount_usd` {text:?} is not a non-negative decimal"),
                    )
                })?;
            if budgets.iter().any(|x| x.period == period) {
                return Err(AdminError::bad(
                    "budgets",
                    format!("two `{}` budgets: give one per period", period.as_str()),
                ));
            }
            budgets.push(Budget {
                period,
                amount_usd: amount,
            });
        }
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
        })
    }
}

/// Resolves `/{scope}/{id}` to the scope and the team it belongs to.
async fn resolve(
    state: &AdminState,
    kind: ScopeKind,
    id: &str,
) -> Result<(uuid::Uuid, TeamId), AdminError> {
    let not_found = || AdminError::NotFound(format!("no {} `{id}`", kind.as_str()));
    match kind {
        ScopeKind::Team => {
            let team = find_team(state, id).await?;
            Ok((team.id.0, team.id))
        }
        ScopeKind::Experiment => {
            let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
            let experiment = state
                .store
                .get_experiment(ExperimentId(uuid))
                .await?
                .ok_or_else(not_found)?;
            Ok((uuid, experiment.team_id))
        }
        ScopeKind::Key => {
            let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
            let key = state
                .store
                .get_key(KeyId(uuid))
                .await?
                .ok_or_else(not_found)?;
            Ok((uuid, key.team_id))
        }
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

pub async fn put_limits(
    State(state): State<AdminState>,
    Path((segment, id)): Path<(String, String)>,
    Json(body): Json<LimitsBody>,
) -> Result<Json<Value>, AdminError> {
    let kind = scope_kind(&segment)?;
    let limits = body.validate()?;
    let (scope_id, team) = resolve(&state, kind, &id).await?;
    state
        .store
        .set_limits(kind, scope_id, team, &limits)
        .await?;
    state.scope_changed(kind, scope_id).await;
    show(&state, kind, scope_id, team).await
}

pub async fn get_limits(
    State(state): State<AdminState>,
    Path((segment, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let kind = scope_kind(&segment)?;
    let (scope_id, team) = resolve(&state, kind, &id).await?;
    show(&state, kind, scope_id, team).await
}

pub async fn delete_limits(
    State(state): State<AdminState>,
    Path((segment, id)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let kind = scope_kind(&segment)?;
    let (scope_id, team) = resolve(&state, kind, &id).await?;
    state.store.clear_limits(kind, scope_id).await?;
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
) -> Result<Json<Value>, AdminError> {
    let limits = state
        .store
        .limits_of(&[(kind, id)])
        .await?
        .into_iter()
        .next();
    let Some(scope) = limits else {
        return Ok(Json(
            json!({"scope": kind.as_str(), "id": id, "limits": null, "usage": null}),
        ));
    };
    let usage = match state.governor.usage(team, &scope).await {
        Ok(usage) => serde_json::to_value(usage).unwrap_or(Value::Null),
        Err(e) => {
            tracing::warn!(error = %e, "could not read usage from Redis");
            Value::Null
        }
    };
    let ScopeLimits { limits, .. } = scope;
    Ok(Json(
        json!({"scope": kind.as_str(), "id": id, "limits": limits, "usage": usage}),
    ))
}
