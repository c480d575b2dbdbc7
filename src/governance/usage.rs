//! Reading a scope's current usage next to its limits (for `tollctl` and
//! `GET /v1/tollgate/usage`). Reads only; nothing is taken.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::admission::Governor;
use super::forecast::Forecast;
use super::gate::Gate;
use super::limits::{ScopeLimits, nanos_to_usd};
use crate::ids::TeamId;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScopeUsage {
    pub scope: &'static str,
    pub id: uuid::Uuid,
    pub rpm: Option<RateUsage>,
    pub tpm: Option<RateUsage>,
    pub concurrency: Option<RateUsage>,
    pub budgets: Vec<BudgetUsage>,
    /// The use of the scope's limits on each model or group, in the order of `limits.models`.
    pub models: Vec<ModelUsage>,
}

/// The use of a scope's limits on one model or group of models.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelUsage {
    pub model: String,
    pub rpm: Option<RateUsage>,
    pub tpm: Option<RateUsage>,
    pub budgets: Vec<BudgetUsage>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateUsage {
    pub limit: u64,
    /// Requests or tokens available now (for concurrency: free slots).
    pub remaining: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BudgetUsage {
    pub period: &'static str,
    pub period_start: DateTime<Utc>,
    pub period_end: Option<DateTime<Utc>>,
    #[serde(with = "rust_decimal::serde::str")]
    pub limit_usd: rust_decimal::Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub spent_usd: rust_decimal::Decimal,
    /// Held by requests in flight and by gateway instances' leases.
    #[serde(with = "rust_decimal::serde::str")]
    pub reserved_usd: rust_decimal::Decimal,
    /// Of `reserved_usd`, what gateway instances hold in leases (docs/governance.md):
    /// headroom taken ahead of their requests, given back when they do not use it.
    #[serde(with = "rust_decimal::serde::str")]
    pub leased_usd: rust_decimal::Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub remaining_usd: rust_decimal::Decimal,
    /// The burn rate and when the budget runs out at it (`GET .../limits` and
    /// `GET /v1/tollgate/usage`); `null` where it is not computed or could not be read.
    pub forecast: Option<Forecast>,
}

impl Governor {
    /// A scope's limits next to their use, read from Redis within the governance timeout.
    pub async fn usage(&self, team: TeamId, scope: &ScopeLimits) -> Result<ScopeUsage, String> {
        tokio::time::timeout(self.redis_timeout(), self.read_usage(team, scope))
            .await
            .map_err(|_| "redis timed out".to_string())?
    }

    async fn read_usage(&self, team: TeamId, scope: &ScopeLimits) -> Result<ScopeUsage, String> {
        let mut conn = self.connection();
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let now_ms = secs * 1000 + micros / 1000;
        let own = self
            .read_gate(team, &Gate { scope, model: None }, now_ms)
            .await?;
        let mut models = Vec::with_capacity(scope.limits.models.len());
        for (i, limits) in scope.limits.models.iter().enumerate() {
            let gate = Gate {
                scope,
                model: Some((i, limits)),
            };
            let usage = self.read_gate(team, &gate, now_ms).await?;
            models.push(ModelUsage {
                model: limits.model.clone(),
                rpm: usage.rpm,
                tpm: usage.tpm,
                budgets: usage.budgets,
            });
        }
        Ok(ScopeUsage {
            scope: scope.kind.as_str(),
            id: scope.id,
            rpm: own.rpm,
            tpm: own.tpm,
            concurrency: own.concurrency,
            budgets: own.budgets,
            models,
        })
    }

    /// The use of one gate's limits, at `now_ms` (Redis's clock).
    async fn read_gate(
        &self,
        team: TeamId,
        gate: &Gate<'_>,
        now_ms: i64,
    ) -> Result<GateUsage, String> {
        let now = self.clock().now();
        let keys = gate.keys(self.prefix(), team);
        let mut conn = self.connection();
        let mut bucket =
            async |fields: [&str; 2], limit: Option<u64>| -> Result<Option<RateUsage>, String> {
                let Some(limit) = limit else { return Ok(None) };
                let (level, ts): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
                    .arg(keys.rates())
                    .arg(fields[0])
                    .arg(fields[1])
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let capacity = i64::try_from(limit)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(60_000);
                let level = match (level, ts) {
                    (Some(level), Some(ts)) => {
                        let refill = now_ms
                            .saturating_sub(ts)
                            .saturating_mul(i64::try_from(limit).unwrap_or(i64::MAX));
                        level.saturating_add(refill).min(capacity)
                    }
                    _ => capacity,
                };
                Ok(Some(RateUsage {
                    limit,
                    remaining: u64::try_from(level / 60_000).unwrap_or(0),
                }))
            };
        let rpm = bucket(["r", "rts"], gate.rpm().map(u64::from)).await?;
        let tpm = bucket(["t", "tts"], gate.tpm()).await?;
        let concurrency = match gate.max_concurrent() {
            None => None,
            Some(limit) => {
                let in_flight: u64 = redis::cmd("ZCOUNT")
                    .arg(keys.concurrency())
                    .arg(now_ms)
                    .arg("+inf")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Some(RateUsage {
                    limit: u64::from(limit),
                    remaining: u64::from(limit).saturating_sub(in_flight),
                })
            }
        };
        let mut budgets = Vec::new();
        for budget in gate.budgets() {
            let fields: Vec<(String, i64)> = redis::cmd("HGETALL")
                .arg(keys.budget(&budget.period.label(now)))
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let (spent, reserved, leased) = budget_counters(&fields, now_ms);
            let (start, end) = budget.period.window(now);
            let spent = match spent {
                Some(spent) => nanos_to_usd(spent),
                // Not in Redis (never used this period, or lost): the ledger knows.
                None => self
                    .store()
                    .spend_in_window(gate.kind(), gate.id(), gate.model_selector(), start, end)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let reserved = nanos_to_usd(reserved);
            budgets.push(BudgetUsage {
                period: budget.period.as_str(),
                period_start: start,
                period_end: end,
                limit_usd: budget.amount_usd,
                spent_usd: spent,
                reserved_usd: reserved,
                leased_usd: nanos_to_usd(leased),
                remaining_usd: (budget.amount_usd - spent - reserved)
                    .max(rust_decimal::Decimal::ZERO),
                forecast: None,
            });
        }
        Ok(GateUsage {
            rpm,
            tpm,
            concurrency,
            budgets,
        })
    }
}

/// What one gate's limits have used.
struct GateUsage {
    rpm: Option<RateUsage>,
    tpm: Option<RateUsage>,
    concurrency: Option<RateUsage>,
    budgets: Vec<BudgetUsage>,
}

/// A budget hash's spent counter (if Redis has it), what its live reservations hold
/// (`r:<expiry ms>` fields whose expiry has not passed, and instances' leases, `l:<id>`,
/// expiring at `e:<id>`, that have not expired), and the leases' part of that.
fn budget_counters(fields: &[(String, i64)], now_ms: i64) -> (Option<i64>, i64, i64) {
    let mut spent = None;
    let (mut reserved, mut leased) = (0i64, 0i64);
    let live_lease = |id: &str| {
        fields
            .iter()
            .any(|(f, expiry)| f.strip_prefix("e:") == Some(id) && *expiry > now_ms)
    };
    for (field, value) in fields {
        if field == "spent" {
            spent = Some(*value);
        } else if let Some(expiry) = field.strip_prefix("r:").and_then(|e| e.parse::<i64>().ok())
            && expiry > now_ms
        {
            reserved = reserved.saturating_add(*value);
        } else if let Some(id) = field.strip_prefix("l:")
            && live_lease(id)
        {
            reserved = reserved.saturating_add(*value);
            leased = leased.saturating_add(*value);
        }
    }
    (spent, reserved, leased)
}

#[cfg(test)]
mod tests {
    use super::budget_counters;

    #[test]
    fn live_reservations_count_and_expired_ones_do_not() {
        let fields = vec![
            ("spent".to_string(), 500),
            ("r:2000".to_string(), 30),
            ("r:1000".to_string(), 7),
            ("reserved".to_string(), 99),
        ];
        assert_eq!(budget_counters(&fields, 1500), (Some(500), 30, 0));
        assert_eq!(budget_counters(&fields, 2000), (Some(500), 0, 0));
        assert_eq!(budget_counters(&fields[1..], 0), (None, 37, 0));
    }

    #[test]
    fn leases_count_as_reserved_until_they_expire() {
        let fields = vec![
            ("spent".to_string(), 500),
            ("l:a.1".to_string(), 40),
            ("e:a.1".to_string(), 3000),
            ("l:b.7".to_string(), 5),
            ("e:b.7".to_string(), 1000),
            ("l:c.2".to_string(), 9),
        ];
        assert_eq!(budget_counters(&fields, 1500), (Some(500), 40, 40));
        assert_eq!(budget_counters(&fields, 500), (Some(500), 45, 45));
        assert_eq!(budget_counters(&fields, 3000), (Some(500), 0, 0));
    }
}
