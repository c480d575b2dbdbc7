//! Forecasts shown next to a budget: how fast it is being spent and when, at that rate, it
//! runs out. The rate is the ledger's spend over the budget's current window, at most the
//! last [`WINDOW_HOURS`] hours (since midnight for a daily budget at 09:00; the last 24 hours
//! for a total or monthly one) and from the window's first request, so it follows what a
//! campaign does now rather than its lifetime average.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::usage::{BudgetUsage, ScopeUsage};
use crate::ids::TeamId;
use crate::store::Store;

pub const WINDOW_HOURS: i64 = 24;
/// A window shorter than this (just after midnight, say) is measured as this long, so a
/// first request does not project a rate of its whole cost per second.
const MIN_WINDOW_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Forecast {
    /// Where the measured window starts (it ends now): the first request since the budget's
    /// period began, at most 24 hours ago.
    pub window_start: DateTime<Utc>,
    #[serde(with = "rust_decimal::serde::str")]
    pub spent_in_window_usd: Decimal,
    /// `spent_in_window_usd` per hour of the window, to the nano-USD.
    #[serde(with = "rust_decimal::serde::str")]
    pub burn_rate_usd_per_hour: Decimal,
    /// When the remaining amount is gone at this rate; `null` when nothing is being spent.
    pub exhausted_at: Option<DateTime<Utc>>,
    /// Whether that comes before the budget's period ends (a total budget: whenever it is
    /// known), i.e. whether the budget will refuse requests before it renews.
    pub exhausted_before_period_end: bool,
}

/// The start of the window a budget's rate is measured over.
pub fn window_start(period_start: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    period_start.max(now - Duration::hours(WINDOW_HOURS))
}

/// The forecast from `spent` since `start`, with `remaining` left of a budget whose period
/// ends at `period_end`. `None` only if the numbers are beyond what can be computed.
pub fn forecast(
    start: DateTime<Utc>,
    spent: Decimal,
    remaining: Decimal,
    period_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Forecast> {
    let elapsed = (now - start).num_seconds().max(MIN_WINDOW_SECS);
    let per_hour = spent
        .checked_mul(Decimal::from(3600))?
        .checked_div(Decimal::from(elapsed))?
        .round_dp(9)
        .normalize();
    let exhausted_at = if spent <= Decimal::ZERO || per_hour <= Decimal::ZERO {
        None
    } else if remaining <= Decimal::ZERO {
        Some(now)
    } else {
        // remaining / rate, in whole seconds: remaining × elapsed / spent.
        let secs = remaining
            .checked_mul(Decimal::from(elapsed))?
            .checked_div(spent)?
            .floor();
        i64::try_from(secs)
            .ok()
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
    };
    let exhausted_before_period_end = match (exhausted_at, period_end) {
        (Some(at), Some(end)) => at < end,
        (Some(_), None) => true,
        (None, _) => false,
    };
    Some(Forecast {
        window_start: start,
        spent_in_window_usd: spent.normalize(),
        burn_rate_usd_per_hour: per_hour,
        exhausted_at,
        exhausted_before_period_end,
    })
}

/// Fills in the forecast of each of `usage`'s budgets, its models' too, from the request log
/// (one read per distinct window). The rate is measured from the window's first request, so a
/// campaign that started an hour ago is not averaged over a day it did not run. On a read
/// error the forecasts stay `null`: the usage is still shown.
pub async fn add_forecasts(store: &Store, team: TeamId, usage: &mut ScopeUsage) {
    let (scope, id) = (usage.scope, usage.id);
    if forecast_budgets(store, team, (scope, id, None), &mut usage.budgets)
        .await
        .is_err()
    {
        return;
    }
    for model in &mut usage.models {
        let selector = Some(model.model.as_str());
        if forecast_budgets(store, team, (scope, id, selector), &mut model.budgets)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The forecasts of one scope's (or one of its models') budgets.
async fn forecast_budgets(
    store: &Store,
    team: TeamId,
    (scope, id, model): (&str, uuid::Uuid, Option<&str>),
    budgets: &mut [BudgetUsage],
) -> Result<(), ()> {
    // The request log is stamped with the wall clock.
    let now = Utc::now();
    let mut read: Vec<(DateTime<Utc>, Decimal, DateTime<Utc>)> = Vec::new();
    for budget in budgets {
        let start = window_start(budget.period_start, now);
        let (spent, from) = match read.iter().find(|(s, _, _)| *s == start) {
            Some((_, spent, from)) => (*spent, *from),
            None => match store.window_stats(team, scope, id, model, start).await {
                Ok(stats) => {
                    let from = stats.first_at.map_or(start, |first| first.max(start));
                    read.push((start, stats.spent, from));
                    (stats.spent, from)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "spend for a budget forecast could not be read");
                    return Err(());
                }
            },
        };
        budget.forecast = forecast(from, spent, budget.remaining_usd, budget.period_end, now);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_window_is_the_current_period_up_to_a_day() {
        let now = at("2026-12-04T09:00:00Z");
        assert_eq!(
            window_start(at("2026-12-04T00:00:00Z"), now),
            at("2026-12-04T00:00:00Z")
        );
        assert_eq!(
            window_start(DateTime::<Utc>::UNIX_EPOCH, now),
            at("2026-12-03T09:00:00Z")
        );
    }

    #[test]
    fn a_steady_burn_projects_when_the_rest_runs_out() {
        let now = at("2026-12-04T09:00:00Z");
        // $9 in the 9 hours since midnight, $3 left of a daily budget: gone at noon.
        let f = forecast(
            at("2026-12-04T00:00:00Z"),
            dec("9"),
            dec("3"),
            Some(at("2026-12-05T00:00:00Z")),
            now,
        )
        .unwrap();
        assert_eq!(f.burn_rate_usd_per_hour, dec("1"));
        assert_eq!(f.exhausted_at, Some(at("2026-12-04T12:00:00Z")));
        assert!(f.exhausted_before_period_end);
        // $30 left: it would last until 09:00 tomorrow, after the day's budget renews.
        let f = forecast(
            at("2026-12-04T00:00:00Z"),
            dec("9"),
            dec("30"),
            Some(at("2026-12-05T00:00:00Z")),
            now,
        )
        .unwrap();
        assert_eq!(f.exhausted_at, Some(at("2026-12-05T15:00:00Z")));
        assert!(!f.exhausted_before_period_end);
    }

    #[test]
    fn no_spend_no_exhaustion_and_nothing_left_is_now() {
        let now = at("2026-12-04T09:00:00Z");
        let start = at("2026-12-03T09:00:00Z");
        let idle = forecast(start, Decimal::ZERO, dec("5"), None, now).unwrap();
        assert_eq!(idle.burn_rate_usd_per_hour, Decimal::ZERO);
        assert_eq!(idle.exhausted_at, None);
        assert!(!idle.exhausted_before_period_end);
        let spent = forecast(start, dec("5"), Decimal::ZERO, None, now).unwrap();
        assert_eq!(spent.exhausted_at, Some(now));
        assert!(spent.exhausted_before_period_end);
    }

    #[test]
    fn a_first_request_just_after_midnight_is_measured_over_a_minute() {
        let now = at("2026-12-04T00:00:01Z");
        let f = forecast(
            at("2026-12-04T00:00:00Z"),
            dec("0.01"),
            dec("10"),
            None,
            now,
        )
        .unwrap();
        assert_eq!(f.burn_rate_usd_per_hour, dec("0.6"));
    }

    #[test]
    fn extreme_amounts_do_not_panic() {
        let now = at("2026-12-04T09:00:00Z");
        let start = at("2026-12-03T09:00:00Z");
        let tiny = Decimal::new(1, 28);
        let _ = forecast(start, Decimal::MAX, Decimal::MAX, None, now);
        let f = forecast(start, tiny, Decimal::MAX, None, now);
        // A rate that rounds to zero at the nano-USD projects no exhaustion.
        assert_eq!(f.and_then(|f| f.exhausted_at), None);
    }
}
