//! The ledger: nothing lost, nothing counted twice, rollups equal to the request log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use common::{Options, TestApp, create_database, dec};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tollgate::config::LedgerConfig;
use tollgate::ids::{KeyId, RequestId, TeamId};
use tollgate::ledger::{LedgerEvent, LedgerWriter};
use tollgate::pricing::Usage;
use tollgate::store::Store;

fn event(cost: &str) -> LedgerEvent {
    LedgerEvent {
        request_id: RequestId::new(),
        created_at: Utc::now().trunc_subsecs(6),
        team_id: TeamId::new(),
        experiment_id: None,
        key_id: KeyId::new(),
        key_prefix: Some("tg-testtest".into()),
        model: "test-model".into(),
        upstream_model: "test-model".into(),
        deployment: "mock".into(),
        provider: "openai".into(),
        status: 200,
        error_type: None,
        streamed: false,
        usage_estimated: false,
        usage: Usage {
            input_tokens: 7,
            output_tokens: 3,
            ..Usage::default()
        },
        cost_usd: dec(cost),
        latency_ms: 1,
        upstream_latency_ms: Some(1),
        attempts: 1,
        refused_by: None,
    }
}

async fn migrated_store() -> (Store, PgPool) {
    let url = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    let store = Store::from_pool(pool.clone());
    store.migrate().await.unwrap();
    (store, pool)
}

async fn totals(pool: &PgPool) -> (i64, Decimal, i64, Decimal) {
    let (log_rows, log_cost): (i64, Option<Decimal>) =
        sqlx::query_as("SELECT count(*), sum(cost_usd) FROM request_log")
            .fetch_one(pool)
            .await
            .unwrap();
    let (rollup_requests, rollup_cost): (Option<Decimal>, Option<Decimal>) =
        sqlx::query_as("SELECT sum(requests), sum(cost_usd) FROM spend_hourly")
            .fetch_one(pool)
            .await
            .unwrap();
    (
        log_rows,
        log_cost.unwrap_or_default(),
        rollup_requests.map(|d| d.try_into().unwrap()).unwrap_or(0),
        rollup_cost.unwrap_or_default(),
    )
}

fn ledger_config(spill_dir: PathBuf) -> LedgerConfig {
    LedgerConfig {
        batch_size: 10,
        flush_interval: Duration::from_millis(5),
        max_in_memory: 20,
        spill_dir,
    }
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "tollgate-ledger-test-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

#[tokio::test]
async fn a_retried_batch_never_counts_twice() {
    let (store, pool) = migrated_store().await;
    let events: Vec<LedgerEvent> = (0..25).map(|i| event(&format!("0.00000{i}1"))).collect();
    store
        .ensure_request_log_partition(Utc::now().date_naive())
        .await
        .unwrap();
    store.insert_ledger_batch(&events).await.unwrap();
    store.insert_ledger_batch(&events).await.unwrap();
    store.insert_ledger_batch(&events[..5]).await.unwrap();
    let expected: Decimal = events.iter().map(|e| e.cost_usd).sum();
    assert_eq!(totals(&pool).await, (25, expected, 25, expected));
}

#[tokio::test]
async fn events_survive_postgres_being_down_via_the_spill_file() {
    let spill_dir = temp_dir();
    // A store whose database does not answer: every write fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy(&format!("postgres://nobody:nothing@{closed}/nothing"))
        .unwrap();
    let (ledger, writer) =
        LedgerWriter::spawn(Store::from_pool(dead), ledger_config(spill_dir.clone())).unwrap();
    let events: Vec<LedgerEvent> = (0..50).map(|_| event("0.000001")).collect();
    for e in &events {
        ledger.record(e.clone()).await;
    }
    // Past the in-memory bound, events go to disk while PostgreSQL is down.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ledger.stats().spilled.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was spilled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.shutdown(Duration::from_millis(300)).await;
    // After shutdown a late event still goes to the spill file rather than being dropped.
    let late = event("0.000001");
    ledger.record(late.clone()).await;
    assert_eq!(ledger.stats().spilled.load(Ordering::Relaxed), 51);

    // The next start replays every spilled event into PostgreSQL, once.
    let (store, pool) = migrated_store().await;
    let files: Vec<_> = std::fs::read_dir(&spill_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    let copy = spill_dir.join("zz-copy.jsonl");
    std::fs::copy(&files[0], &copy).unwrap();
    let (_ledger, writer) = LedgerWriter::spawn(store, ledger_config(spill_dir.clone())).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (rows, ..) = totals(&pool).await;
        if rows == 51 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.shutdown(Duration::from_secs(5)).await;
    let expected = dec("0.000051");
    assert_eq!(totals(&pool).await, (51, expected, 51, expected));
    assert_eq!(
        std::fs::read_dir(&spill_dir).unwrap().count(),
        0,
        "replayed spill files are removed"
    );
}

#[tokio::test]
async fn thousand_concurrent_requests_make_thousand_rows_and_matching_rollups() {
    let mut app = TestApp::spawn().await;
    let key = app.key().await;
    let body = json!({"model": "test-model", "messages": [{"role": "user", "content": "ping"}]});
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let http = app.http.clone();
        let url = format!("{}/v1/chat/completions", app.data_url);
        let key = key.clone();
        let mut body = body.clone();
        // A spread of usages so the sum is not just 1000 × one price.
        body["mock"] = json!({"usage": {"prompt_tokens": 10 + i, "completion_tokens": 1 + i % 7}});
        requests.spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            dec(response.headers()["x-tollgate-cost-usd"].to_str().unwrap())
        });
    }
    let mut charged = Decimal::ZERO;
    while let Some(cost) = requests.join_next().await {
        charged += cost.unwrap();
    }
    app.stop().await;
    let (rows, log_cost, rollup_requests, rollup_cost) = totals(&app.db).await;
    assert_eq!(rows, 1000);
    assert_eq!(rollup_requests, 1000);
    assert_eq!(
        log_cost, charged,
        "the ledger holds what the clients were told"
    );
    assert_eq!(rollup_cost, log_cost);
    let expected: Decimal = (0..1000u64)
        .map(|i| Decimal::from(10 + i) * dec("2.50") + Decimal::from(1 + i % 7) * dec("10.00"))
        .sum::<Decimal>()
        / Decimal::from(1_000_000);
    assert_eq!(log_cost, expected);
}

#[tokio::test]
async fn shutdown_drains_the_queue() {
    // A writer that would not flush on its own for a minute: only shutdown writes these.
    let mut app = TestApp::spawn_with(Options {
        ledger_extra: "batch_size = 1000\nflush_interval_ms = 60000".into(),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    for _ in 0..50 {
        let response = app
            .chat(&key, json!({"model": "test-model", "messages": []}))
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        totals(&app.db).await.0,
        0,
        "nothing written before shutdown"
    );
    app.stop().await;
    assert_eq!(totals(&app.db).await.0, 50);
}
