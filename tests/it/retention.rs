//! Retention (`ledger.retention_days`): request-log partitions past the period are dropped
//! whole, each run is audited, and reports over any period still add up, because they read
//! the hourly rollups that retention keeps.

use chrono::{DateTime, Days, TimeDelta, Utc};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tollgate::ids::{KeyId, TeamId};
use tollgate::ledger::LedgerEvent;
use tollgate::pricing::Usage;
use tollgate::store::Store;
use uuid::Uuid;

use crate::common::{TestApp, dec};

const RETENTION_DAYS: u32 = 7;

fn event(team: Uuid, key: Uuid, created_at: DateTime<Utc>, n: i64) -> LedgerEvent {
    LedgerEvent {
        created_at,
        team_id: TeamId(team),
        key_id: KeyId(key),
        key_prefix: None,
        usage: Usage {
            input_tokens: 100,
            output_tokens: 10,
            ..Usage::default()
        },
        // Nano-dollar fractions: a report that rounded would show it.
        cost_usd: Decimal::new(1_000 + n, 9),
        ..crate::common::events::ledger_event("0")
    }
}

async fn partitions(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM tollgate_request_log_partitions() ORDER BY from_at")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn retention_audit_entries(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'ledger.retention'")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn old_partitions_go_whole_and_reports_over_the_whole_range_still_add_up() {
    let app = TestApp::spawn().await;
    let (status, team) = app
        .admin(Method::POST, "/teams", Some(json!({"name": "kept"})))
        .await;
    assert_eq!(status, 201, "{team}");
    let team = Uuid::parse_str(team["id"].as_str().unwrap()).unwrap();
    let (status, issued) = app
        .admin(
            Method::POST,
            "/keys",
            Some(json!({"team": team.to_string()})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let key = Uuid::parse_str(issued["data"][0]["id"].as_str().unwrap()).unwrap();

    // Three requests on each of six days, from 40 days ago to today.
    let now = Utc::now();
    let store = Store::from_pool(app.db.clone());
    let mut events = Vec::new();
    for days_ago in [40u64, 20, 8, 7, 1, 0] {
        let day = now
            .date_naive()
            .checked_sub_days(Days::new(days_ago))
            .unwrap();
        store.ensure_request_log_partition(day).await.unwrap();
        let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc().min(now);
        for n in 0..3 {
            let at = noon - TimeDelta::minutes(n);
            events.push(event(team, key, at, events.len() as i64));
        }
    }
    assert_eq!(store.write_ledger_batch(&events).await.unwrap(), 18);
    let total: Decimal = events.iter().map(|e| e.cost_usd).sum();
    let before = partitions(&app).await;

    let report = tollgate::ledger::retention::run_now(&store, RETENTION_DAYS, now, "test")
        .await
        .unwrap()
        .unwrap();

    // Today and the seven days before it are kept: the partitions of 40, 20 and 8 days ago go.
    let cutoff = tollgate::ledger::retention::cutoff(now, RETENTION_DAYS);
    let day_name = |days_ago: u64| {
        let day = now
            .date_naive()
            .checked_sub_days(Days::new(days_ago))
            .unwrap();
        format!("request_log_{}", day.format("%Y_%m_%d"))
    };
    let mut dropped: Vec<String> = report
        .dropped_partitions
        .iter()
        .map(|p| p.name.clone())
        .collect();
    dropped.sort();
    assert_eq!(dropped, [day_name(40), day_name(20), day_name(8)]);
    let after = partitions(&app).await;
    for name in &before {
        assert_eq!(after.contains(name), !dropped.contains(name), "{name}");
    }
    let rows: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT created_at FROM request_log")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|at| *at >= cutoff), "{rows:?}");
    assert_eq!(retention_audit_entries(&app).await, 1);

    // The rollups keep every hour, dropped or not: a report over the whole range is the sum of
    // all eighteen requests, and equals the rollups.
    let midnight = |days_ago: i64| {
        let day = now.date_naive() - TimeDelta::days(days_ago);
        urlencode(&format!("{day}T00:00:00Z"))
    };
    let spend = async |from: String, to: String| {
        let (status, body): (u16, Value) = app
            .admin(Method::GET, &format!("/spend?from={from}&to={to}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let whole = spend(midnight(60), midnight(-1)).await;
    assert_eq!(whole["total"]["requests"], 18, "{whole}");
    assert_eq!(dec(whole["total"]["cost_usd"].as_str().unwrap()), total);
    // A day whose rows are gone is still reported in full.
    let gone = spend(midnight(20), midnight(19)).await;
    assert_eq!(gone["total"]["requests"], 3, "{gone}");
    let gone_cost: Decimal = events[3..6].iter().map(|e| e.cost_usd).sum();
    assert_eq!(dec(gone["total"]["cost_usd"].as_str().unwrap()), gone_cost);
    let rollups: Decimal = sqlx::query_scalar("SELECT sum(cost_usd) FROM spend_hourly")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rollups, total);

    // A second run finds nothing more to drop, and is audited too.
    let again = tollgate::ledger::retention::run_now(&store, RETENTION_DAYS, now, "test")
        .await
        .unwrap()
        .unwrap();
    assert!(again.dropped_partitions.is_empty());
    assert_eq!(retention_audit_entries(&app).await, 2);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
