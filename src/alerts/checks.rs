//! What fires: each kind of rule against what a scope has spent, how fast, when it ends and
//! how many of its requests were refused. Pure functions of their inputs; the evaluator
//! gathers the inputs and records what these return.
//!
//! Every alert carries a dedupe key naming what it is about — the scope, the budget's period
//! and the window of it, the threshold — so it fires once per such thing however often and
//! on however many instances it is seen. A new window of a periodic budget has a new key,
//! which re-arms its thresholds.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::governance::BudgetUsage;
use crate::store::{AlertTarget, WindowStats};

/// One alert to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub kind: &'static str,
    pub dedupe_key: String,
    /// The body's fields but `id`, `type`, `created_at`, `rule_id`, `team`, `scope` (added
    /// when the alert is recorded).
    pub details: Value,
    pub summary: String,
}

pub const THRESHOLD: &str = "budget.threshold";
pub const PROJECTION: &str = "budget.projected_exhaustion";
pub const EXPIRY: &str = "scope.expiring";
pub const REFUSALS: &str = "requests.refusals";
pub const TEST: &str = "test";

pub const KINDS: [&str; 4] = [THRESHOLD, PROJECTION, EXPIRY, REFUSALS];

/// How a scope is named in a sentence: `experiment "gsm8k" of team "research"`.
pub fn scope_phrase(target: &AlertTarget) -> String {
    match target.scope_kind.as_str() {
        "team" => format!("team {:?}", target.team_name),
        kind => format!(
            "{kind} {:?} of team {:?}",
            target.scope_name, target.team_name
        ),
    }
}

/// An exact amount with at least cents: `$81.20`, `$0.000214`.
pub fn usd(amount: Decimal) -> String {
    let amount = amount.normalize();
    if amount.scale() < 2 {
        format!("${:.2}", amount)
    } else {
        format!("${amount}")
    }
}

/// `part` as a percentage of `whole`, to one decimal at most (rounded down: `80`, `80.4`);
/// `None` for a zero whole.
fn percent_of(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole <= Decimal::ZERO {
        return None;
    }
    part.checked_mul(Decimal::ONE_HUNDRED)?
        .checked_div(whole)
        .map(|p| {
            p.round_dp_with_strategy(1, rust_decimal::RoundingStrategy::ToZero)
                .normalize()
        })
}

fn budget_json(budget: &BudgetUsage) -> Value {
    json!({
        "period": budget.period,
        "period_start": budget.period_start,
        "period_end": budget.period_end,
        "limit_usd": budget.limit_usd.normalize().to_string(),
        "spent_usd": budget.spent_usd.normalize().to_string(),
        "reserved_usd": budget.reserved_usd.normalize().to_string(),
        "remaining_usd": budget.remaining_usd.normalize().to_string(),
    })
}

fn budget_key(target: &AlertTarget, budget: &BudgetUsage) -> String {
    format!(
        "{}:{}:{}:{}",
        target.scope_kind,
        target.scope_id,
        budget.period,
        budget.period_start.to_rfc3339()
    )
}

/// Each threshold the budget's spend has reached: spent ≥ threshold % of the budget.
pub fn thresholds(target: &AlertTarget, budget: &BudgetUsage, thresholds: &[i16]) -> Vec<Fired> {
    let Some(spent_percent) = percent_of(budget.spent_usd, budget.limit_usd) else {
        return Vec::new();
    };
    let mut fired = Vec::new();
    for &threshold in thresholds {
        let Some(line) = Decimal::from(threshold)
            .checked_mul(budget.limit_usd)
            .and_then(|x| x.checked_div(Decimal::ONE_HUNDRED))
        else {
            continue;
        };
        if threshold <= 0 || budget.spent_usd < line {
            continue;
        }
        fired.push(Fired {
            kind: THRESHOLD,
            dedupe_key: format!("{THRESHOLD}:{}:{threshold}", budget_key(target, budget)),
            details: json!({
                "budget": budget_json(budget),
                "threshold_percent": threshold,
                "spent_percent": spent_percent.to_string(),
            }),
            summary: format!(
                "The {} has spent {} of its {} budget of {} ({spent_percent} %), past the {threshold} % alert.",
                scope_phrase(target),
                usd(budget.spent_usd),
                budget.period,
                usd(budget.limit_usd),
            ),
        });
    }
    fired
}

/// Whether, at the burn rate of the last `window`, the budget runs out before the scope ends
/// (the campaign's end or the key's expiry, or else the end of the budget's period): fires
/// once per budget window.
pub fn projection(
    target: &AlertTarget,
    budget: &BudgetUsage,
    window: Duration,
    recent: &WindowStats,
    now: DateTime<Utc>,
) -> Option<Fired> {
    let end = match (target.ends_at, budget.period_end) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let window_secs = Decimal::from(window.num_seconds());
    let left_secs = Decimal::from((end - now).num_seconds());
    let remaining = budget.remaining_usd;
    if window_secs <= Decimal::ZERO
        || left_secs <= Decimal::ZERO
        || recent.spent <= Decimal::ZERO
        || remaining <= Decimal::ZERO
    {
        return None;
    }
    // Spend by the end at this rate: spent_in_window × left / window.
    let by_end = recent
        .spent
        .checked_mul(left_secs)?
        .checked_div(window_secs)?;
    if by_end < remaining {
        return None;
    }
    let per_hour = recent
        .spent
        .checked_mul(Decimal::from(3600))?
        .checked_div(window_secs)?;
    let secs_to_exhaustion = remaining
        .checked_mul(window_secs)?
        .checked_div(recent.spent)?
        .floor();
    let exhausted_at = now + Duration::seconds(i64::try_from(secs_to_exhaustion).ok()?);
    let per_hour_text = per_hour.round_dp(6).normalize();
    Some(Fired {
        kind: PROJECTION,
        dedupe_key: format!("{PROJECTION}:{}", budget_key(target, budget)),
        details: json!({
            "budget": budget_json(budget),
            "burn_rate_usd_per_hour": per_hour_text.to_string(),
            "window_secs": window.num_seconds(),
            "projected_exhaustion_at": exhausted_at,
            "ends_at": end,
        }),
        summary: format!(
            "At {} an hour (the last {} minutes), the {} runs out of its {} budget of {} at {}, before it ends at {}.",
            usd(per_hour_text),
            window.num_minutes().max(1),
            scope_phrase(target),
            budget.period,
            usd(budget.limit_usd),
            exhausted_at.format("%Y-%m-%d %H:%M UTC"),
            end.format("%Y-%m-%d %H:%M UTC"),
        ),
    })
}

/// The campaign ends, or the key expires, within `hours`: fires once per end time.
pub fn expiry(target: &AlertTarget, hours: i32, now: DateTime<Utc>) -> Option<Fired> {
    let ends_at = target.ends_at?;
    if ends_at <= now || ends_at > now + Duration::hours(i64::from(hours)) {
        return None;
    }
    let verb = if target.scope_kind == "key" {
        "expires"
    } else {
        "ends"
    };
    let left = ends_at - now;
    Some(Fired {
        kind: EXPIRY,
        dedupe_key: format!(
            "{EXPIRY}:{}:{}:{}",
            target.scope_kind,
            target.scope_id,
            ends_at.to_rfc3339()
        ),
        details: json!({ "ends_at": ends_at, "within_hours": hours }),
        summary: format!(
            "The {} {verb} at {} (in {} h {} min).",
            scope_phrase(target),
            ends_at.format("%Y-%m-%d %H:%M UTC"),
            left.num_hours(),
            left.num_minutes() % 60,
        ),
    })
}

/// At least `min_requests` requests over the window, and at least `percent` % of them
/// refused (402, 429) or failed (5xx): fires once per window (windows counted from the Unix
/// epoch, so every instance agrees on them).
pub fn refusals(
    target: &AlertTarget,
    percent: i16,
    window: Duration,
    min_requests: i32,
    recent: &WindowStats,
    now: DateTime<Utc>,
) -> Option<Fired> {
    let window_secs = window.num_seconds();
    if window_secs <= 0 || recent.requests < i64::from(min_requests) || recent.requests == 0 {
        return None;
    }
    if recent.refusals.checked_mul(100)? < i64::from(percent).checked_mul(recent.requests)? {
        return None;
    }
    let share = percent_of(
        Decimal::from(recent.refusals),
        Decimal::from(recent.requests),
    )?;
    let bucket = now.timestamp().div_euclid(window_secs);
    Some(Fired {
        kind: REFUSALS,
        dedupe_key: format!(
            "{REFUSALS}:{}:{}:{window_secs}:{bucket}",
            target.scope_kind, target.scope_id
        ),
        details: json!({
            "window_secs": window_secs,
            "requests": recent.requests,
            "refused": recent.refusals,
            "refused_percent": share.to_string(),
            "threshold_percent": percent,
        }),
        summary: format!(
            "{share} % of the {} requests to the {} in the last {} minutes were refused or failed (402, 429 or 5xx), at or above the {percent} % alert.",
            recent.requests,
            scope_phrase(target),
            window.num_minutes().max(1),
        ),
    })
}

#[cfg(test)]
mod tests;
