//! The ledger: nothing lost, nothing counted twice, rollups equal to the request log.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tollgate::config::LedgerConfig;
use tollgate::ids::{KeyId, RequestId, TeamId};
use tollgate::ledger::{LedgerEvent, LedgerWriter};
use tollgate::pricing::Usage;
use tollgate::store::Store;

use crate::common::{Options, TestApp, create_database, dec};

fn event(cost: &str) -> LedgerEvent {
    crate::common::events::ledger_event(cost)
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

fn ledger_config(journal_dir: PathBuf) -> LedgerConfig {
    LedgerConfig {
        batch_size: 10,
        flush_interval: Duration::from_millis(5),
        max_in_memory: 20,
        ..LedgerConfig::with_dir(journal_dir)
    }
}

/// Segment files in a journal directory (its `LOCK` file is not one).
fn segment_files(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a writer on `dir` once the previous instance's journal thread has let go of it
/// (it ends shortly after its last handle is dropped).
async fn start_when_free(
    store: Store,
    config: LedgerConfig,
) -> (tollgate::ledger::Ledger, tollgate::ledger::WriterHandle) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match LedgerWriter::start(store.clone(), config.clone()).await {
            Ok(started) => return started,
            Err(tollgate::ledger::StartError::Lock(e))
                if tokio::time::Instant::now() < deadline =>
            {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
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
async fn the_fast_write_stores_exactly_what_the_idempotent_write_stores() {
    let (store, pool) = migrated_store().await;
    store
        .ensure_request_log_partition(Utc::now().date_naive())
        .await
        .unwrap();
    let odd = LedgerEvent {
        experiment_id: Some(tollgate::ids::ExperimentId::new()),
        key_prefix: None,
        model: "modèle-模型".into(),
        status: 499,
        error_type: Some("client_disconnected".into()),
        streamed: true,
        usage_estimated: true,
        usage: Usage {
            input_tokens: u64::MAX,
            cached_input_tokens: 3,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 1 << 40,
            output_tokens: u64::MAX - 1,
            reasoning_tokens: 9,
        },
        cost_usd: dec("9223372036.854775807"),
        latency_ms: u32::MAX,
        upstream_latency_ms: None,
        attempts: u16::MAX,
        tags: tollgate::tags::Tags::from_header("task=gsm8k,note=ça \"va\"").unwrap(),
        ..event("0")
    };
    let twin = LedgerEvent {
        request_id: RequestId::new(),
        ..odd.clone()
    };
    assert_eq!(
        store
            .write_ledger_batch(std::slice::from_ref(&odd))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .insert_ledger_batch(std::slice::from_ref(&twin))
            .await
            .unwrap(),
        1
    );
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT (to_jsonb(r) - 'request_id')::text FROM request_log r ORDER BY request_id = $1",
    )
    .bind(odd.request_id.0)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0], rows[1],
        "COPY and the bound arrays store the same row"
    );
    assert!(rows[0].contains("9223372036854775807") && rows[0].contains("modèle-模型"));
    assert!(
        rows[0].contains(r#""tags": {"note": "ça \"va\"", "task": "gsm8k"}"#),
        "{}",
        rows[0]
    );
    // Both rolled up into the same hourly row, tokens saturated rather than wrapped.
    let (requests, input, cost): (i64, i64, Decimal) =
        sqlx::query_as("SELECT requests, input_tokens, cost_usd FROM spend_hourly")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((requests, input), (2, i64::MAX));
    assert_eq!(cost, dec("18446744073.709551614"));
}

/// A request-log row as the fast-write test reads it back.
type Stored = (
    uuid::Uuid,
    chrono::DateTime<Utc>,
    Decimal,
    Option<String>,
    i16,
);

#[tokio::test]
async fn the_fast_write_falls_back_to_the_idempotent_one_when_a_row_is_already_there() {
    let (store, pool) = migrated_store().await;
    store
        .ensure_request_log_partition(Utc::now().date_naive())
        .await
        .unwrap();
    let events: Vec<LedgerEvent> = (0..40).map(|i| event(&format!("0.00000{i}3"))).collect();
    assert_eq!(store.write_ledger_batch(&events[..10]).await.unwrap(), 10);
    // Half of this batch is already in the log: the COPY fails as a whole, and the
    // fallback inserts (and rolls up) only the other half.
    assert_eq!(store.write_ledger_batch(&events[5..20]).await.unwrap(), 10);
    assert_eq!(store.write_ledger_batch(&events[..20]).await.unwrap(), 0);
    assert_eq!(store.write_ledger_batch(&events).await.unwrap(), 20);
    let expected: Decimal = events.iter().map(|e| e.cost_usd).sum();
    assert_eq!(totals(&pool).await, (40, expected, 40, expected));
    let rollup_tokens: (Decimal, Decimal) =
        sqlx::query_as("SELECT sum(input_tokens), sum(output_tokens) FROM spend_hourly")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        rollup_tokens,
        (Decimal::from(40 * 7), Decimal::from(40 * 3))
    );
    // What the fast write stored is exactly what was sent, field by field.
    let back: Vec<Stored> = sqlx::query_as(
        "SELECT request_id, created_at, cost_usd, key_prefix, attempts FROM request_log \
             ORDER BY created_at, request_id LIMIT 10",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut sent: Vec<_> = events[..10].to_vec();
    sent.sort_by_key(|e| (e.created_at, e.request_id));
    for (row, e) in back.iter().zip(&sent) {
        assert_eq!(
            row,
            &(
                e.request_id.0,
                e.created_at,
                e.cost_usd,
                e.key_prefix.clone(),
                1
            )
        );
    }
}

#[tokio::test]
async fn events_survive_postgres_being_down_via_the_journal() {
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
        LedgerWriter::start(Store::from_pool(dead), ledger_config(spill_dir.clone()))
            .await
            .unwrap();
    let events: Vec<LedgerEvent> = (0..50).map(|_| event("0.000001")).collect();
    for e in &events {
        ledger.record(e.clone()).await;
    }
    // Every event is in the journal; past the in-memory bound, events are on disk only.
    assert_eq!(ledger.stats().journaled.load(Ordering::Relaxed), 50);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ledger.stats().spilled.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was spilled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.shutdown(Duration::from_millis(300)).await;
    // After shutdown a late event still goes to the journal rather than being dropped.
    let late = event("0.000001");
    ledger.record(late.clone()).await;
    assert_eq!(ledger.stats().journaled.load(Ordering::Relaxed), 51);
    drop(ledger);

    // The next start replays every event into PostgreSQL, once, before it returns.
    let (store, pool) = migrated_store().await;
    let files = segment_files(&spill_dir);
    assert!(!files.is_empty());
    // A spill file of an older version, repeating events: each is inserted once.
    let copy = spill_dir.join("ledger-zz-copy.jsonl");
    std::fs::copy(&files[0], &copy).unwrap();
    let (_ledger, writer) = start_when_free(store, ledger_config(spill_dir.clone())).await;
    assert_eq!(
        totals(&pool).await.0,
        51,
        "replayed before the start returned"
    );
    writer.shutdown(Duration::from_secs(5)).await;
    let expected = dec("0.000051");
    assert_eq!(totals(&pool).await, (51, expected, 51, expected));
    assert_eq!(
        segment_files(&spill_dir),
        Vec::<PathBuf>::new(),
        "replayed segments are removed"
    );
}

/// A journal directory that disappears (a volume unmounted, a clean-up job) must not stop the
/// ledger or lose an event: appends fail, the events reach PostgreSQL from memory, and the
/// journal works again once the directory is back. Both ways of appending: from the
/// caller's task (no fsync) and from the journal thread (fsync).
#[tokio::test]
async fn events_reach_postgres_while_the_journal_directory_is_gone() {
    for fsync in [false, true] {
        let (store, pool) = migrated_store().await;
        let dir = temp_dir();
        let config = LedgerConfig {
            journal_fsync: fsync,
            ..ledger_config(dir.clone())
        };
        let (ledger, writer) = LedgerWriter::start(store, config).await.unwrap();
        let journaled = || ledger.stats().journaled.load(Ordering::Relaxed);
        let failures = || ledger.stats().journal_failures.load(Ordering::Relaxed);
        for _ in 0..10 {
            ledger.record(event("0.000001")).await;
        }
        assert_eq!((journaled(), failures()), (10, 0), "fsync {fsync}");

        std::fs::remove_dir_all(&dir).unwrap();
        // The open segment is sealed once it is a second old; the next cannot be created.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let started = tokio::time::Instant::now();
        for _ in 0..30 {
            ledger.record(event("0.000001")).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "fsync {fsync}: recording waited for the missing directory ({:?})",
            started.elapsed()
        );
        assert_eq!(
            journaled(),
            10,
            "fsync {fsync}: nothing journaled while gone"
        );
        assert!(failures() > 0, "fsync {fsync}: the failures are counted");

        std::fs::create_dir_all(&dir).unwrap();
        for _ in 0..10 {
            ledger.record(event("0.000001")).await;
        }
        assert_eq!(journaled(), 20, "fsync {fsync}: the journal works again");
        writer.shutdown(Duration::from_secs(5)).await;
        let expected = dec("0.00005");
        assert_eq!(
            totals(&pool).await,
            (50, expected, 50, expected),
            "fsync {fsync}"
        );
        assert_eq!(
            segment_files(&dir),
            Vec::<PathBuf>::new(),
            "fsync {fsync}: written segments are removed"
        );
        drop(ledger);
        let _ = std::fs::remove_dir_all(&dir);
    }
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

/// Takes `request_log` with a lock every ledger write waits behind: PostgreSQL "slow", not down.
async fn lock_request_log(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE request_log IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

fn events_costing(n: usize) -> (Vec<LedgerEvent>, Decimal) {
    let events: Vec<LedgerEvent> = (0..n)
        .map(|i| LedgerEvent {
            cost_usd: Decimal::new(i as i64 + 1, 9),
            ..event("0")
        })
        .collect();
    let total = events.iter().map(|e| e.cost_usd).sum();
    (events, total)
}

/// Records `events` from `tasks` concurrent tasks, yielding every `pace` events so recording
/// spreads over time.
async fn record_all(ledger: &tollgate::ledger::Ledger, events: Vec<LedgerEvent>, tasks: usize) {
    let mut set = tokio::task::JoinSet::new();
    let per_task = events.len().div_ceil(tasks);
    for chunk in events.chunks(per_task) {
        let ledger = ledger.clone();
        let chunk = chunk.to_vec();
        set.spawn(async move {
            for (i, e) in chunk.into_iter().enumerate() {
                ledger.record(e).await;
                if i % 10 == 9 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

async fn wait_for_rows(pool: &PgPool, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (rows, ..) = totals(pool).await;
        if rows >= n || tokio::time::Instant::now() > deadline {
            assert_eq!(rows, n, "ledger rows");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until nothing is held in memory or left on disk, and the journal is trimmed.
async fn wait_until_settled(ledger: &tollgate::ledger::Ledger, spill_dir: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let files = segment_files(spill_dir).len();
        let depth = ledger.stats().depth();
        if (files == 0 && depth == 0) || tokio::time::Instant::now() > deadline {
            assert_eq!((files, depth), (0, 0), "journal segments and ledger depth");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_request_log_spills_to_disk_within_the_memory_bound_and_loses_nothing() {
    let (store, pool) = migrated_store().await;
    let spill_dir = temp_dir();
    let config = LedgerConfig {
        batch_size: 50,
        flush_interval: Duration::from_millis(5),
        max_in_memory: 200,
        ..LedgerConfig::with_dir(spill_dir.clone())
    };
    let bound = config.memory_bound() as u64;
    let (ledger, writer) = LedgerWriter::start(store, config).await.unwrap();
    let lock = lock_request_log(&pool).await;

    // Every event is accepted while PostgreSQL takes none: record() never waits on it.
    const N: usize = 5000;
    let (events, expected) = events_costing(N);
    record_all(&ledger, events, 8).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = ledger.stats();
    assert_eq!(stats.queued.load(Ordering::Relaxed), N as u64);
    assert_eq!(stats.written.load(Ordering::Relaxed), 0, "the lock holds");
    assert!(
        stats.in_memory_peak() <= bound,
        "at most {bound} events in memory, saw {}",
        stats.in_memory_peak()
    );
    assert!(stats.in_memory() <= 200 + 50, "{}", stats.in_memory());
    let spilled = stats.spilled.load(Ordering::Relaxed);
    assert!(
        spilled >= N as u64 - bound,
        "the rest went to disk: {spilled}"
    );
    assert_eq!(stats.in_memory() + stats.on_disk(), N as u64);

    // Once the lock is gone, every event is in PostgreSQL exactly once.
    lock.rollback().await.unwrap();
    wait_for_rows(&pool, N as i64).await;
    wait_until_settled(&ledger, &spill_dir).await;
    assert_eq!(
        totals(&pool).await,
        (N as i64, expected, N as i64, expected)
    );
    assert!(stats.replayed.load(Ordering::Relaxed) >= spilled);
    assert_eq!(
        stats.written.load(Ordering::Relaxed),
        N as u64,
        "rows, each once"
    );
    writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(totals(&pool).await.0, N as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spilled_while_the_spill_is_being_replayed_are_not_lost() {
    let (store, pool) = migrated_store().await;
    let spill_dir = temp_dir();
    let config = LedgerConfig {
        batch_size: 10,
        flush_interval: Duration::from_millis(1),
        max_in_memory: 10,
        ..LedgerConfig::with_dir(spill_dir.clone())
    };
    let (ledger, writer) = LedgerWriter::start(store, config).await.unwrap();
    let lock = lock_request_log(&pool).await;
    let (events, expected) = events_costing(2000);
    let (before, during) = events.split_at(1000);
    record_all(&ledger, before.to_vec(), 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let spilled_before = ledger.stats().spilled.load(Ordering::Relaxed);
    assert!(spilled_before >= 900, "{spilled_before}");

    // The replay of a hundred batches starts as the lock goes; meanwhile the tiny queue
    // keeps overflowing, so new events are appended to the spill as it is replayed.
    lock.rollback().await.unwrap();
    record_all(&ledger, during.to_vec(), 4).await;
    assert!(
        ledger.stats().spilled.load(Ordering::Relaxed) > spilled_before,
        "events were spilled during the replay"
    );
    wait_for_rows(&pool, 2000).await;
    wait_until_settled(&ledger, &spill_dir).await;
    assert_eq!(totals(&pool).await, (2000, expected, 2000, expected));
    writer.shutdown(Duration::from_secs(5)).await;
}

/// The value of an unlabelled sample in a Prometheus text scrape.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the scrape"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_the_gateway_are_served_and_recorded_while_the_ledger_table_is_locked() {
    let mut app = TestApp::spawn_with(Options {
        ledger_extra: "batch_size = 20\nmax_in_memory = 100".into(),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    // The key is cached before the lock (its lookup does not touch the ledger anyway).
    let response = app
        .chat(&key, json!({"model": "test-model", "messages": []}))
        .await;
    assert_eq!(response.status(), 200);
    let lock = lock_request_log(&app.db).await;

    const N: usize = 600;
    let mut requests = tokio::task::JoinSet::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(30));
    for i in 0..N {
        let (http, url, key, gate) = (
            app.http.clone(),
            format!("{}/v1/chat/completions", app.data_url),
            key.clone(),
            gate.clone(),
        );
        requests.spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            let body = json!({"model": "test-model", "messages": [],
                "mock": {"usage": {"prompt_tokens": 10 + i, "completion_tokens": 3}}});
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
    let scrape = app
        .http
        .get(format!("{}/metrics", app.data_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // 100 queued + 80 waiting for the journal + a batch being written and a group being
    // appended.
    let peak = sample(&scrape, "tollgate_ledger_in_memory_peak");
    assert!(peak <= 100 + 80 + 2 * 20, "peak {peak}");
    assert!(sample(&scrape, "tollgate_ledger_spilled_total") > 0);
    assert_eq!(sample(&scrape, "tollgate_ledger_written_total"), 0);

    lock.rollback().await.unwrap();
    let total = app.ledger_cost(N + 1).await;
    let first = app.all_ledger_rows().await[0].cost_usd;
    assert_eq!(
        total - first,
        charged,
        "the ledger holds what clients were told"
    );
    app.stop().await;
    let (rows, log_cost, rollup_requests, rollup_cost) = totals(&app.db).await;
    assert_eq!((rows, rollup_requests), (N as i64 + 1, N as i64 + 1));
    assert_eq!((log_cost, rollup_cost), (total, total));
}

#[tokio::test]
async fn a_rotated_keys_older_requests_keep_the_prefix_they_were_made_with() {
    let app = TestApp::spawn().await;
    let (old, record) = app.issue_key(json!({})).await;
    let id = record["id"].as_str().unwrap().to_owned();
    let old_prefix = record["prefix"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let response = app
            .chat(&old, json!({"model": "test-model", "messages": []}))
            .await;
        assert_eq!(response.status(), 200);
    }
    app.ledger_rows(2).await;
    let (status, rotated) = app
        .admin(
            reqwest::Method::POST,
            &format!("/keys/{id}/rotate"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["key"].as_str().unwrap().to_owned();
    let new_prefix = rotated["prefix"].as_str().unwrap().to_owned();
    assert_ne!(new_prefix, old_prefix);
    let response = app
        .chat(&new, json!({"model": "test-model", "messages": []}))
        .await;
    assert_eq!(response.status(), 200);
    app.ledger_rows(3).await;

    let (status, page) = app
        .admin(reqwest::Method::GET, &format!("/requests?key={id}"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    let prefixes: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["key_prefix"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(prefixes, [&new_prefix, &old_prefix, &old_prefix]);
}

#[tokio::test]
async fn rows_from_before_the_prefix_column_are_backfilled_with_the_keys_prefix() {
    let url = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    let all = sqlx::migrate::Migrator::new(std::path::Path::new("migrations"))
        .await
        .unwrap();
    let mut earlier = sqlx::migrate::Migrator::new(std::path::Path::new("migrations"))
        .await
        .unwrap();
    earlier.migrations = all
        .migrations
        .iter()
        .filter(|m| m.version < 8)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    earlier.run(&pool).await.unwrap();

    let team = uuid::Uuid::new_v4();
    let key = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO teams (id, name) VALUES ($1, 'old-team')")
        .bind(team)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO virtual_keys (id, team_id, key_hash, key_prefix) \
         VALUES ($1, $2, sha256('k'::bytea), 'tg-oldrow1')",
    )
    .bind(key)
    .bind(team)
    .execute(&pool)
    .await
    .unwrap();
    let mut old = event("0.001");
    old.team_id = TeamId(team);
    old.key_id = KeyId(key);
    sqlx::query(
        "INSERT INTO request_log (request_id, created_at, team_id, key_id, model, upstream_model, \
         deployment, provider, status, streamed, usage_estimated, input_tokens, cached_input_tokens, \
         cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd, latency_ms) \
         VALUES ($1, $2, $3, $4, 'm', 'm', 'd', 'openai', 200, false, false, 1, 0, 0, 0, 1, 0, 0.001, 1)",
    )
    .bind(old.request_id.0)
    .bind(old.created_at)
    .bind(team)
    .bind(key)
    .execute(&pool)
    .await
    .unwrap();

    all.run(&pool).await.unwrap();
    let prefix: Option<String> = sqlx::query_scalar("SELECT key_prefix FROM request_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(prefix.as_deref(), Some("tg-oldrow1"));
}

/// A kB figure from /proc/self/status (Linux).
fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap()
}

/// Not a pass/fail test: the measurement behind docs/operations.md "Memory bounds". Records
/// `N` (default 200000) events, one team and key like a real campaign, while `request_log`
/// is locked, and prints the process's memory before and after, then the time to catch up.
/// `N=400000 cargo test --test it ledger::measure -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_memory_while_the_request_log_is_locked() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let template = LedgerEvent {
        experiment_id: Some(tollgate::ids::ExperimentId::new()),
        model: "gpt-4o-mini".into(),
        upstream_model: "gpt-4o-mini-2024-07-18".into(),
        deployment: "openai-primary".into(),
        key_prefix: Some("tg-abcdefgh".into()),
        ..event("0.000123456")
    };
    println!(
        "LedgerEvent: {} bytes inline, {} bytes of strings, {} bytes as a spill line",
        std::mem::size_of::<LedgerEvent>(),
        [
            &template.model,
            &template.upstream_model,
            &template.deployment,
            &template.provider
        ]
        .iter()
        .map(|s| s.len())
        .sum::<usize>()
            + 11,
        serde_json::to_string(&template).unwrap().len() + 1
    );
    let (store, pool) = migrated_store().await;
    let spill_dir = temp_dir();
    let config = LedgerConfig::with_dir(spill_dir.clone());
    println!("bound: {} events", config.memory_bound());
    let (ledger, writer) = LedgerWriter::start(store, config).await.unwrap();
    let lock = lock_request_log(&pool).await;
    let before = proc_status_kb("VmRSS:");
    let started = std::time::Instant::now();
    for _ in 0..n {
        ledger
            .record(LedgerEvent {
                request_id: RequestId::new(),
                ..template.clone()
            })
            .await;
    }
    let recorded = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = ledger.stats();
    let on_disk: u64 = segment_files(&spill_dir)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    println!(
        "{n} events recorded in {recorded:?}: RSS {before} -> {} kB, in memory {} (peak {}), \
         spilled {} ({on_disk} bytes)",
        proc_status_kb("VmRSS:"),
        stats.in_memory(),
        stats.in_memory_peak(),
        stats.spilled.load(Ordering::Relaxed),
    );
    lock.rollback().await.unwrap();
    let started = std::time::Instant::now();
    wait_for_rows(&pool, n as i64).await;
    wait_until_settled(&ledger, &spill_dir).await;
    println!(
        "written to PostgreSQL {:?} after the lock went; peak RSS {} kB",
        started.elapsed(),
        proc_status_kb("VmHWM:")
    );
    writer.shutdown(Duration::from_secs(5)).await;
}
