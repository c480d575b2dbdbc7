//! The data plane's own PostgreSQL pool, and the admin API's report time limit: slow or stuck
//! admin reports never take the connections requests need, and a report that runs too long
//! is stopped with an error that says how to narrow it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{Options, TestApp};

fn with_database(fields: &str) -> Options {
    Options {
        extra: format!("[database]\n{fields}\n"),
        ..Options::default()
    }
}

/// Holds `table` locked against every reader until the transaction is dropped or rolled back.
async fn lock(pool: &PgPool, table: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits until `n` queries of the gateway wait for a lock in this test's database.
async fn wait_for_blocked_queries(pool: &PgPool, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let blocked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if blocked >= n || tokio::time::Instant::now() > deadline {
            assert_eq!(blocked, n, "queries waiting for the lock");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin_get(app: &TestApp, path: &str) -> (u16, Value) {
    app.admin(Method::GET, path, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_need_the_database_succeed_while_reports_hold_every_admin_connection() {
    let app = TestApp::spawn_with(with_database(
        "admin_pool_size = 2\nacquire_timeout_ms = 1000\nreport_timeout_ms = 60000",
    ))
    .await;
    // Issued now, used only once the admin pool is exhausted: their first use reads
    // PostgreSQL (a key-cache miss, and for the second a budget rebuilt from the ledger).
    let (plain, _) = app.issue_key(json!({})).await;
    let (budgeted, record) = app.issue_key(json!({})).await;
    let (status, body) = app
        .admin(
            Method::PUT,
            &format!("/keys/{}/limits", record["id"].as_str().unwrap()),
            Some(json!({"budgets": [{"period": "daily", "amount_usd": "10"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Two audit reports stuck behind a lock hold both admin connections.
    let held = lock(&app.db, "audit_log").await;
    let mut reports = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (http, url, token) = (
            app.http.clone(),
            format!("{}/admin/v1/audit", app.admin_url),
            app.admin_token.clone(),
        );
        reports.spawn(async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            response.status().as_u16()
        });
    }
    wait_for_blocked_queries(&app.db, 2).await;

    // The admin API says it is out of connections, by name...
    let (status, body) = admin_get(&app, "/teams").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_busy");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("database.admin_pool_size"), "{message}");

    // ...while the data plane, on its own pool, serves keys it has never seen.
    for key in [&plain, &budgeted] {
        let response = app
            .chat(key, json!({"model": "test-model", "messages": []}))
            .await;
        assert_eq!(response.status(), 200);
    }
    let ready = app
        .http
        .get(format!("{}/readyz", app.data_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    app.ledger_rows(2).await;

    held.rollback().await.unwrap();
    while let Some(status) = reports.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(admin_get(&app, "/teams").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_runs_past_the_time_limit_is_stopped_with_advice_and_frees_its_connection() {
    let app = TestApp::spawn_with(with_database(
        "admin_pool_size = 1\nreport_timeout_ms = 300",
    ))
    .await;
    let key = app.key().await;
    let response = app
        .chat(&key, json!({"model": "test-model", "messages": []}))
        .await;
    assert_eq!(response.status(), 200);
    app.ledger_rows(1).await;

    for (table, path) in [
        ("spend_hourly", "/spend?group_by=team,day"),
        ("request_log", "/requests"),
        ("audit_log", "/audit"),
    ] {
        let held = lock(&app.db, table).await;
        let (status, body) = admin_get(&app, path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"]["code"], "report_timeout", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        for advice in ["database.report_timeout_ms", "from/to", "group_by"] {
            assert!(message.contains(advice), "{path}: {message}");
        }
        held.rollback().await.unwrap();
        // The single admin connection came back: the next report runs.
        let (status, body) = admin_get(&app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}
