use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::ids::TeamId;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn target(ends_at: Option<DateTime<Utc>>) -> AlertTarget {
    AlertTarget {
        rule_id: uuid::Uuid::nil(),
        team_id: TeamId(uuid::Uuid::nil()),
        team_name: "research".into(),
        scope_kind: "experiment".into(),
        scope_id: uuid::Uuid::from_u128(7),
        scope_name: "gsm8k".into(),
        ends_at,
    }
}

fn budget(period: &'static str, start: &str, limit: &str, spent: &str) -> BudgetUsage {
    let limit = dec(limit);
    let spent = dec(spent);
    BudgetUsage {
        period,
        period_start: at(start),
        period_end: Some(at(start) + Duration::days(1)),
        limit_usd: limit,
        spent_usd: spent,
        reserved_usd: Decimal::ZERO,
        leased_usd: Decimal::ZERO,
        forecast: None,
        remaining_usd: (limit - spent).max(Decimal::ZERO),
    }
}

fn stats(spent: &str, requests: i64, refusals: i64) -> WindowStats {
    WindowStats {
        spent: dec(spent),
        requests,
        refusals,
        first_at: None,
    }
}

#[test]
fn each_threshold_fires_once_it_is_reached_and_not_before() {
    let t = target(None);
    let b = budget("daily", "2026-12-04T00:00:00Z", "100", "79.999999999");
    let fired = thresholds(&t, &b, &[50, 80, 100]);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].details["threshold_percent"], 50);
    let b = budget("daily", "2026-12-04T00:00:00Z", "100", "80");
    let fired = thresholds(&t, &b, &[50, 80, 100]);
    assert_eq!(fired.len(), 2);
    assert_eq!(
        fired[1].summary,
        "The experiment \"gsm8k\" of team \"research\" has spent $80.00 of its daily budget of $100.00 (80 %), past the 80 % alert."
    );
    assert_eq!(fired[1].details["budget"]["spent_usd"], "80");
    // A zero budget has no percentages.
    let b = budget("daily", "2026-12-04T00:00:00Z", "0", "0");
    assert!(thresholds(&t, &b, &[50]).is_empty());
}

#[test]
fn a_new_period_is_a_new_dedupe_key_and_the_same_one_is_not() {
    let t = target(None);
    let today = budget("daily", "2026-12-04T00:00:00Z", "10", "9");
    let again = budget("daily", "2026-12-04T00:00:00Z", "10", "9.5");
    let tomorrow = budget("daily", "2026-12-05T00:00:00Z", "10", "9");
    let key = |b: &BudgetUsage| thresholds(&t, b, &[80])[0].dedupe_key.clone();
    assert_eq!(key(&today), key(&again));
    assert_ne!(key(&today), key(&tomorrow));
}

#[test]
fn a_burn_that_runs_out_before_the_end_is_projected_and_a_slower_one_is_not() {
    let now = at("2026-12-04T12:00:00Z");
    // Ends in 10 hours; $10 left.
    let t = target(Some(now + Duration::hours(10)));
    let mut b = budget("total", "1970-01-01T00:00:00Z", "20", "10");
    b.period_end = None;
    // $1.50 in the last hour: $15 by the end, more than the $10 left; out in 6 h 40 min.
    let fired = projection(&t, &b, Duration::hours(1), &stats("1.5", 10, 0), now).unwrap();
    assert_eq!(fired.details["burn_rate_usd_per_hour"], "1.5");
    assert_eq!(
        fired.details["projected_exhaustion_at"],
        serde_json::json!(now + Duration::seconds(24_000))
    );
    // $0.90 an hour: $9 by the end, the budget lasts.
    assert!(projection(&t, &b, Duration::hours(1), &stats("0.9", 10, 0), now).is_none());
    // No end and a total budget: nothing to run out before.
    assert!(
        projection(
            &target(None),
            &b,
            Duration::hours(1),
            &stats("5", 1, 0),
            now
        )
        .is_none()
    );
    // Nothing spent lately.
    assert!(projection(&t, &b, Duration::hours(1), &stats("0", 0, 0), now).is_none());
}

#[test]
fn expiry_fires_inside_its_horizon_only() {
    let now = at("2026-12-04T12:00:00Z");
    let soon = target(Some(now + Duration::hours(5)));
    let fired = expiry(&soon, 24, now).unwrap();
    assert!(
        fired
            .summary
            .contains("ends at 2026-12-04 17:00 UTC (in 5 h 0 min)")
    );
    assert!(expiry(&target(Some(now + Duration::hours(30))), 24, now).is_none());
    assert!(expiry(&target(Some(now - Duration::hours(1))), 24, now).is_none());
    assert!(expiry(&target(None), 24, now).is_none());
}

#[test]
fn refusals_need_enough_requests_and_a_large_enough_share() {
    let now = at("2026-12-04T12:00:00Z");
    let t = target(None);
    let w = Duration::minutes(5);
    assert!(refusals(&t, 25, w, 20, &stats("0", 19, 19), now).is_none());
    assert!(refusals(&t, 25, w, 20, &stats("0", 40, 9), now).is_none());
    let fired = refusals(&t, 25, w, 20, &stats("0", 40, 10), now).unwrap();
    assert_eq!(fired.details["refused_percent"], "25");
    let later = refusals(&t, 25, w, 20, &stats("0", 40, 10), now + w).unwrap();
    assert_ne!(
        fired.dedupe_key, later.dedupe_key,
        "a new window fires again"
    );
}

#[test]
fn amounts_are_exact_with_at_least_cents() {
    assert_eq!(usd(dec("81.2")), "$81.20");
    assert_eq!(usd(dec("100")), "$100.00");
    assert_eq!(usd(dec("0.000214")), "$0.000214");
}
