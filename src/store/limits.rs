//! Limits and budgets of teams, experiments and keys.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::Store;
use super::audit::Tx;
use crate::governance::{
    Budget, BudgetMode, FailurePolicy, Limits, ModelLimits, Period, ScopeKind, ScopeLimits,
};
use crate::ids::TeamId;

struct LimitsRow {
    scope_kind: String,
    scope_id: Uuid,
    rpm: Option<i32>,
    tpm: Option<i64>,
    max_concurrent: Option<i32>,
    budget_mode: String,
    on_redis_failure: String,
    /// JSON text (the query macros read `jsonb` as text).
    models: String,
    scope_name: String,
}

struct BudgetRow {
    scope_kind: String,
    scope_id: Uuid,
    period: String,
    amount_usd: Decimal,
}

impl Store {
    /// The limits of the given scopes, in the order given; scopes without limits are left out.
    /// Each carries its scope's name for messages: the team's or experiment's name, the key's
    /// name or else its visible prefix.
    pub async fn limits_of(
        &self,
        scopes: &[(ScopeKind, Uuid)],
    ) -> Result<Vec<ScopeLimits>, sqlx::Error> {
        let mut conn = self.pool().acquire().await?;
        limits_in(&mut conn, scopes).await
    }

    /// What a scope spent in `[start, end)`, from the hourly rollups (periods start on whole
    /// hours, so no partial hour is involved). With `model`, only its requests for that model
    /// or group (`governance::selector_matches`: a trailing `*` is a prefix).
    pub async fn spend_in_window(
        &self,
        kind: ScopeKind,
        id: Uuid,
        model: Option<&str>,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
    ) -> Result<Decimal, sqlx::Error> {
        // One statement per scope column, so each uses its own index.
        let pool = self.pool();
        match kind {
            ScopeKind::Team => {
                sqlx::query_scalar!(
                    r#"SELECT COALESCE(sum(cost_usd), 0) AS "spent!" FROM spend_hourly
                       WHERE team_id = $1 AND hour >= $2 AND ($3::timestamptz IS NULL OR hour < $3)
                         AND tollgate_model_matches(model, $4::text)"#,
                    id,
                    start,
                    end,
                    model
                )
                .fetch_one(pool)
                .await
            }
            ScopeKind::Experiment => {
                sqlx::query_scalar!(
                    r#"SELECT COALESCE(sum(cost_usd), 0) AS "spent!" FROM spend_hourly
                       WHERE experiment_id = $1 AND hour >= $2 AND ($3::timestamptz IS NULL OR hour < $3)
                         AND tollgate_model_matches(model, $4::text)"#,
                    id,
                    start,
                    end,
                    model
                )
                .fetch_one(pool)
                .await
            }
            ScopeKind::Key => {
                sqlx::query_scalar!(
                    r#"SELECT COALESCE(sum(cost_usd), 0) AS "spent!" FROM spend_hourly
                       WHERE key_id = $1 AND hour >= $2 AND ($3::timestamptz IS NULL OR hour < $3)
                         AND tollgate_model_matches(model, $4::text)"#,
                    id,
                    start,
                    end,
                    model
                )
                .fetch_one(pool)
                .await
            }
        }
    }
}

impl Tx {
    /// The limits of the given scopes as this change sees them.
    pub async fn limits_of(
        &mut self,
        scopes: &[(ScopeKind, Uuid)],
    ) -> Result<Vec<ScopeLimits>, sqlx::Error> {
        limits_in(self.conn(), scopes).await
    }

    /// Locks the scope's own row (team, experiment or key) until the change commits, so two
    /// changes of one scope's limits run one after the other and each audit entry's `before`
    /// is what the change replaced. `false` if there is no such scope.
    pub async fn lock_scope(&mut self, kind: ScopeKind, id: Uuid) -> Result<bool, sqlx::Error> {
        let conn = self.conn();
        let found = match kind {
            ScopeKind::Team => {
                sqlx::query_scalar!("SELECT 1 AS one FROM teams WHERE id = $1 FOR UPDATE", id)
                    .fetch_optional(conn)
                    .await?
            }
            ScopeKind::Experiment => {
                sqlx::query_scalar!(
                    "SELECT 1 AS one FROM experiments WHERE id = $1 FOR UPDATE",
                    id
                )
                .fetch_optional(conn)
                .await?
            }
            ScopeKind::Key => {
                sqlx::query_scalar!(
                    "SELECT 1 AS one FROM virtual_keys WHERE id = $1 FOR UPDATE",
                    id
                )
                .fetch_optional(conn)
                .await?
            }
        };
        Ok(found.is_some())
    }

    /// Replaces a scope's limits and budgets.
    pub async fn set_limits(
        &mut self,
        kind: ScopeKind,
        id: Uuid,
        team: TeamId,
        limits: &Limits,
    ) -> Result<(), sqlx::Error> {
        write_limits(self.conn(), kind, id, team, limits).await
    }

    pub async fn clear_limits(&mut self, kind: ScopeKind, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "DELETE FROM scope_limits WHERE scope_kind = $1 AND scope_id = $2",
            kind.as_str(),
            id
        )
        .execute(self.conn())
        .await
        .map(|_| ())
    }
}

/// [`Store::limits_of`] on the pool or inside a [`Tx`].
async fn limits_in(
    conn: &mut sqlx::PgConnection,
    scopes: &[(ScopeKind, Uuid)],
) -> Result<Vec<ScopeLimits>, sqlx::Error> {
    let kinds: Vec<&str> = scopes.iter().map(|(k, _)| k.as_str()).collect();
    let ids: Vec<Uuid> = scopes.iter().map(|(_, id)| *id).collect();
    // `&str` elements skip the macro's check of the kinds (it only knows `String`); the SQL
    // cast fixes their type.
    let rows = sqlx::query_as!(
        LimitsRow,
        r#"SELECT l.scope_kind, l.scope_id, l.rpm, l.tpm, l.max_concurrent, l.budget_mode,
                  l.on_redis_failure, l.models::text AS "models!",
                  COALESCE(t.name, e.name, k.name, k.key_prefix, l.scope_id::text) AS "scope_name!"
           FROM scope_limits l JOIN UNNEST($1::text[], $2::uuid[]) AS s(kind, id)
             ON l.scope_kind = s.kind AND l.scope_id = s.id
           LEFT JOIN teams t ON l.scope_kind = 'team' AND t.id = l.scope_id
           LEFT JOIN experiments e ON l.scope_kind = 'experiment' AND e.id = l.scope_id
           LEFT JOIN virtual_keys k ON l.scope_kind = 'key' AND k.id = l.scope_id"#,
        &kinds as _,
        &ids
    )
    .fetch_all(&mut *conn)
    .await?;
    let budgets = sqlx::query_as!(
        BudgetRow,
        "SELECT b.scope_kind, b.scope_id, b.period, b.amount_usd
         FROM scope_budgets b JOIN UNNEST($1::text[], $2::uuid[]) AS s(kind, id)
           ON b.scope_kind = s.kind AND b.scope_id = s.id ORDER BY b.period",
        &kinds as _,
        &ids
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for (kind, id) in scopes {
        let Some(row) = rows
            .iter()
            .find(|r| r.scope_kind == kind.as_str() && r.scope_id == *id)
        else {
            continue;
        };
        let limits = Limits {
            rpm: row.rpm.and_then(|v| u32::try_from(v).ok()),
            tpm: row.tpm.and_then(|v| u64::try_from(v).ok()),
            max_concurrent: row.max_concurrent.and_then(|v| u32::try_from(v).ok()),
            budgets: budgets
                .iter()
                .filter(|b| b.scope_kind == row.scope_kind && b.scope_id == row.scope_id)
                .filter_map(|b| {
                    Some(Budget {
                        period: Period::parse(&b.period)?,
                        amount_usd: b.amount_usd,
                    })
                })
                .collect(),
            budget_mode: if row.budget_mode == "estimate" {
                BudgetMode::Estimate
            } else {
                BudgetMode::Strict
            },
            on_redis_failure: if row.on_redis_failure == "open" {
                FailurePolicy::Open
            } else {
                FailurePolicy::Closed
            },
            models: model_limits(&row.models, *kind, *id),
        };
        out.push(ScopeLimits {
            kind: *kind,
            id: *id,
            name: row.scope_name.clone(),
            limits,
        });
    }
    Ok(out)
}

/// The stored model limits of a scope. Only the admin API writes them, after checking them;
/// a value that does not read back (edited by hand) is logged and enforced as none rather
/// than failing every request of the scope.
fn model_limits(stored: &str, kind: ScopeKind, id: Uuid) -> Vec<ModelLimits> {
    serde_json::from_str(stored).unwrap_or_else(|e| {
        tracing::error!(scope = kind.as_str(), %id, error = %e, "stored model limits do not parse; ignoring them");
        Vec::new()
    })
}

/// Replaces a scope's limits and budgets on a connection held in a transaction.
async fn write_limits(
    tx: &mut sqlx::PgConnection,
    kind: ScopeKind,
    id: Uuid,
    team: TeamId,
    limits: &Limits,
) -> Result<(), sqlx::Error> {
    let models =
        serde_json::to_string(&limits.models).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query!(
        "INSERT INTO scope_limits (scope_kind, scope_id, team_id, rpm, tpm, max_concurrent,
                                   budget_mode, on_redis_failure, models)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb)
         ON CONFLICT (scope_kind, scope_id) DO UPDATE SET rpm = EXCLUDED.rpm, tpm = EXCLUDED.tpm,
           max_concurrent = EXCLUDED.max_concurrent, budget_mode = EXCLUDED.budget_mode,
           on_redis_failure = EXCLUDED.on_redis_failure, models = EXCLUDED.models,
           updated_at = now()",
        kind.as_str(),
        id,
        team.0,
        limits.rpm.map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
        limits.tpm.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        limits
            .max_concurrent
            .map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
        match limits.budget_mode {
            BudgetMode::Strict => "strict",
            BudgetMode::Estimate => "estimate",
        },
        match limits.on_redis_failure {
            FailurePolicy::Closed => "closed",
            FailurePolicy::Open => "open",
        },
        models
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM scope_budgets WHERE scope_kind = $1 AND scope_id = $2",
        kind.as_str(),
        id
    )
    .execute(&mut *tx)
    .await?;
    for budget in &limits.budgets {
        sqlx::query!(
            "INSERT INTO scope_budgets (scope_kind, scope_id, period, amount_usd)
             VALUES ($1, $2, $3, $4)",
            kind.as_str(),
            id,
            budget.period.as_str(),
            budget.amount_usd
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
