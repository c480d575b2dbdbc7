//! Rebuilding a budget counter Redis no longer has (restart without persistence, flush)
//! from the ledger, before the scope admits traffic again, so a Redis restart never hands
//! out a fresh budget.

use chrono::{DateTime, Utc};

use super::gate::Gate;
use super::limits::{MAX_SPENT_NANOS, to_nanos_ceil};
use super::period::Period;

/// How long a budget counter is kept after its period ends.
pub const BUDGET_KEY_GRACE_SECS: i64 = 7 * 24 * 3600;
use crate::connect::redis::RedisConnection;
use crate::store::Store;

pub async fn budget_counter(
    store: &Store,
    conn: &mut RedisConnection,
    budget_key: &str,
    gate: &Gate<'_>,
    period: Period,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let exists: bool = redis::cmd("HEXISTS")
        .arg(budget_key)
        .arg("spent")
        .query_async(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if exists {
        return Ok(());
    }
    let (start, end) = period.window(now);
    let (kind, id, model) = (gate.kind(), gate.id(), gate.model_selector());
    let spent = store
        .spend_in_window(kind, id, model, start, end)
        .await
        .map_err(|e| e.to_string())?;
    // HSETNX: if another instance rebuilt it first, keep theirs (and what was added since).
    redis::cmd("HSETNX")
        .arg(budget_key)
        .arg("spent")
        .arg(to_nanos_ceil(spent).min(MAX_SPENT_NANOS))
        .query_async::<i64>(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    // The counter outlives its period by a grace week (for inspection), then Redis forgets it.
    if let Some(end) = end {
        let ttl = (end - now)
            .num_seconds()
            .max(1)
            .saturating_add(BUDGET_KEY_GRACE_SECS);
        redis::cmd("EXPIRE")
            .arg(budget_key)
            .arg(ttl)
            .query_async::<i64>(conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    // A scope's first request (nothing spent yet) is routine; a counter restored with spend
    // means Redis had lost it (a restart without persistence, a flush, an eviction).
    if spent.is_zero() {
        tracing::debug!(scope = kind.as_str(), %id, model, period = period.as_str(), "budget counter started (nothing spent yet in this period)");
    } else {
        tracing::info!(scope = kind.as_str(), %id, model, period = period.as_str(), spent_usd = %spent, "budget counter restored from the ledger (Redis did not have it)");
    }
    Ok(())
}
