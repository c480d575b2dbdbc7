//! Keys that do not exist are cheap to refuse: a key of the wrong shape is refused without a
//! lookup, a flood of distinct well-formed made-up keys costs PostgreSQL a bounded number of
//! reads (counted by the gateway and, independently, by PostgreSQL's own statistics) and no
//! memory, valid keys keep working meanwhile, and a key issued during the flood on one
//! instance works at once on the other. A client address that keeps failing is refused before
//! any lookup, with bounded state however many addresses it uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tollgate::keys::NewKey;

use crate::common::{Options, TestApp, two_instances};

/// `key_cache.min_refresh_interval_ms` in these tests (the default).
const MIN_REFRESH: Duration = Duration::from_millis(100);
const FLOOD_KEYS: usize = 20_000;
/// Each made-up key waits for a read of new hashes (up to `MIN_REFRESH`), so the flood's pace
/// is set by how many are in flight.
const FLOOD_CONCURRENCY: usize = 256;

fn without_auth_limit() -> Options {
    Options {
        extra: "[client_auth]\nmax_failures_per_minute = 0\n".into(),
        ..Options::default()
    }
}

fn chat_body() -> Value {
    json!({"model": "test-model", "messages": [{"role": "user", "content": "hi"}]})
}

/// A key of the right shape that was never issued.
fn made_up_key() -> String {
    NewKey::generate().secret
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn models(app: &TestApp, key: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .get(format!("{}/v1/models", app.data_url))
        .bearer_auth(key);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

/// Sends `keys` to `/v1/models`, `concurrency` at a time; returns how many got each of 401
/// and anything else.
async fn flood(
    app: &TestApp,
    keys: impl Iterator<Item = String>,
    concurrency: usize,
) -> (u64, u64) {
    let url = format!("{}/v1/models", app.data_url);
    let unauthorized = AtomicU64::new(0);
    let other = AtomicU64::new(0);
    futures_util::stream::iter(keys)
        .map(|key| {
            let request = app.http.get(&url).bearer_auth(key);
            async move { request.send().await.map(|r| r.status().as_u16()) }
        })
        .buffer_unordered(concurrency)
        .for_each(|status| {
            match status {
                Ok(401) => unauthorized.fetch_add(1, Ordering::Relaxed),
                _ => other.fetch_add(1, Ordering::Relaxed),
            };
            async {}
        })
        .await;
    (unauthorized.into_inner(), other.into_inner())
}

/// The most distinct statements one gateway connection runs on the flood's paths (reads of
/// new key hashes, policy reads, ledger batches, alert rules, the admin calls that issue a
/// key): each is prepared once per connection, and PostgreSQL counts the Parse round trip as
/// a transaction.
const STATEMENTS_PER_CONNECTION: i64 = 20;

/// Connections to `stats`'s database other than `stats` itself, asked from another database
/// so the asking adds nothing to the database's counts.
async fn open_sessions(stats: &mut PgConnection) -> i64 {
    let (pid, database): (i32, String) =
        sqlx::query_as("SELECT pg_backend_pid(), current_database()")
            .fetch_one(&mut *stats)
            .await
            .unwrap();
    let mut observer = PgConnection::connect(&crate::common::admin_database_url())
        .await
        .unwrap();
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2")
        .bind(&database)
        .bind(pid)
        .fetch_one(&mut observer)
        .await
        .unwrap()
}

/// PostgreSQL's own counts for one database: committed transactions, and scans of
/// `virtual_keys` (every key lookup and every read of key hashes scans it; nothing else on
/// the request path does).
#[derive(Debug, Clone, Copy)]
struct PgCounts {
    commits: i64,
    /// Sessions ever established to the database (PostgreSQL 14 and later).
    sessions: i64,
    key_table_scans: i64,
    /// Autovacuum and autoanalyze runs on any table of the database, system catalogs included
    /// (migrations and test set-up churn them): PostgreSQL's own transactions, not the gateway's.
    background_runs: i64,
}

async fn pg_counts(conn: &mut PgConnection) -> PgCounts {
    let (commits, sessions, key_table_scans, background_runs): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), \
                (SELECT sessions FROM pg_stat_database WHERE datname = current_database()), \
                (SELECT COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0) FROM pg_stat_user_tables \
                 WHERE relname = 'virtual_keys'), \
                (SELECT COALESCE(sum(autovacuum_count + autoanalyze_count), 0)::bigint \
                 FROM pg_stat_all_tables)",
        )
        .fetch_one(conn)
        .await
        .unwrap();
    PgCounts {
        commits,
        sessions,
        key_table_scans,
        background_runs,
    }
}

/// A backend reports its statistics when it ends (or when idle, up to seconds later): waits
/// until every connection to the database but `stats` has closed, so the counts are complete.
/// Asks from another database, so the polling adds nothing to the counts.
async fn all_other_backends_gone(stats: &mut PgConnection) {
    let (pid, database): (i32, String) =
        sqlx::query_as("SELECT pg_backend_pid(), current_database()")
            .fetch_one(&mut *stats)
            .await
            .unwrap();
    let mut observer = PgConnection::connect(&crate::common::admin_database_url())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
        )
        .bind(&database)
        .bind(pid)
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if others == 0 {
            // The ending backend writes its statistics just before it leaves the list.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        assert!(Instant::now() < deadline, "{others} connections still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until PostgreSQL's count of the database's commits holds everything done so far. A
/// backend reports its statistics when it has been idle for 10 s (PGSTAT_IDLE_INTERVAL), later
/// on a loaded machine, so a fixed wait can leave dozens of the set-up's commits to be counted
/// as the flood's. After those 10 s, waits until two seconds pass in which the count grew by
/// no more than the gateways' own reads of keys explain (the instances read new key hashes when
/// any instance on the Redis announces keys). Asks from another database, so the polling adds
/// nothing to the counts.
async fn set_up_reported(database_url: &str, apps: &[&TestApp]) {
    let (_, database) = database_url.rsplit_once('/').unwrap();
    let mut observer = PgConnection::connect(&crate::common::admin_database_url())
        .await
        .unwrap();
    let mut sample = async || {
        let commits: i64 =
            sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
                .bind(database)
                .fetch_one(&mut observer)
                .await
                .unwrap();
        // A read of new hashes is one transaction, a policy read three statements.
        let reads: u64 = apps
            .iter()
            .map(|app| app.proxy.keys.known().reads() + 3 * app.proxy.keys.policy_reads())
            .sum();
        (commits, i64::try_from(reads).unwrap())
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = sample().await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = sample().await;
        let unexplained = (now.0 - last.0) - (now.1 - last.1);
        // One read counted just before a sample may be reported just after it.
        if unexplained <= 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL's commit count kept growing ({unexplained} commits in 2 s beyond the gateways' reads)"
        );
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_keys_costs_bounded_reads_and_memory_while_real_keys_work() {
    let _heavy = crate::common::heavy().await;
    let (mut a, mut b) = two_instances(without_auth_limit).await;
    let mut stats = PgConnection::connect(&a.database_url).await.unwrap();
    let mut valid = Vec::new();
    for _ in 0..4 {
        valid.push(a.key().await);
    }
    // Each instance has seen every valid key once.
    for key in &valid {
        for app in [&a, &b] {
            assert_eq!(app.chat(key, chat_body()).await.status(), 200);
        }
    }
    // The set-up's ledger rows are written, and its statistics reported, before the counts
    // start: the set-up (migrations, admin calls) is not the flood's.
    a.ledger_rows(valid.len() * 2).await;
    // Autovacuum's and auto-analyze's transactions count as commits too, and how many run
    // depends on how long the flood takes on a busy machine: off for this database's tables, so
    // every commit counted below is the gateway's.
    sqlx::query(
        "DO $$ DECLARE t regclass; BEGIN \
           FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                    WHERE n.nspname = 'public' AND c.relkind = 'r' LOOP \
             EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = false)', t); \
           END LOOP; END $$",
    )
    .execute(&mut stats)
    .await
    .unwrap();
    set_up_reported(&a.database_url, &[&a, &b]).await;
    let known_before = b.proxy.keys.known().len();
    let (known_reads_before, policy_reads_before) = (
        a.proxy.keys.known().reads() + b.proxy.keys.known().reads(),
        a.proxy.keys.policy_reads() + b.proxy.keys.policy_reads(),
    );
    let b_known_reads_before = b.proxy.keys.known().reads();
    let pg_before = pg_counts(&mut stats).await;
    let open_before = open_sessions(&mut stats).await;
    let started = Instant::now();

    // Valid keys are served all through the flood.
    let flooding = Arc::new(AtomicBool::new(true));
    let served = tokio::spawn({
        let (http, url, keys, flooding) = (
            b.http.clone(),
            format!("{}/v1/chat/completions", b.data_url),
            valid.clone(),
            flooding.clone(),
        );
        async move {
            let mut statuses = Vec::new();
            for key in keys.iter().cycle() {
                if !flooding.load(Ordering::Relaxed) {
                    break;
                }
                let response = http
                    .post(&url)
                    .bearer_auth(key)
                    .json(&chat_body())
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            statuses
        }
    });
    // A key issued on A in the middle of the flood works on B at once: B has not necessarily
    // heard of it, and its first use waits for a read of new hashes.
    let issued_mid_flood = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let key = a.key().await;
        let asked = Instant::now();
        let status = b.chat(&key, chat_body()).await.status().as_u16();
        (status, asked.elapsed())
    };
    let ((unauthorized, other), (new_key_status, new_key_latency)) = tokio::join!(
        flood(
            &b,
            (0..FLOOD_KEYS).map(|_| made_up_key()),
            FLOOD_CONCURRENCY
        ),
        issued_mid_flood
    );
    let elapsed = started.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let statuses = served.await.unwrap();

    assert_eq!((unauthorized, other), (FLOOD_KEYS as u64, 0));
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "valid keys refused during the flood: {statuses:?}"
    );
    assert_eq!(new_key_status, 200);

    // The gateway's own count: reads of new hashes on B are at most one per
    // min_refresh_interval (plus the periodic one and the one running when the flood began),
    // and key policies were read only for the key issued during the flood.
    let b_known_reads = b.proxy.keys.known().reads() - b_known_reads_before;
    let bound = elapsed.as_millis() / MIN_REFRESH.as_millis() + 2;
    assert!(
        u128::from(b_known_reads) <= bound,
        "{b_known_reads} reads of key hashes in {elapsed:?} (bound {bound})"
    );
    let known_reads =
        a.proxy.keys.known().reads() + b.proxy.keys.known().reads() - known_reads_before;
    let policy_reads =
        a.proxy.keys.policy_reads() + b.proxy.keys.policy_reads() - policy_reads_before;
    // The new key on each instance (a read may be repeated if an invalidation overlapped
    // it), and the valid keys again if the flood outlasted their 30 s TTL.
    let ttl_rounds = 1 + elapsed.as_secs() / 30;
    assert!(
        policy_reads <= 2 * 3 + valid.len() as u64 * 2 * ttl_rounds,
        "{policy_reads} policy reads"
    );

    // Memory: the set of existing keys grew by the one key issued, not by the flood; the
    // policy cache holds only real keys.
    assert_eq!(b.proxy.keys.known().len(), known_before + 1);
    b.proxy.keys.sync().await;
    assert!(
        b.proxy.keys.len() <= valid.len() as u64 + 1,
        "{} cached policies",
        b.proxy.keys.len()
    );
    eprintln!(
        "flood of {FLOOD_KEYS} made-up keys in {elapsed:?}: {b_known_reads} reads of new key hashes on B, \
         {policy_reads} policy reads, {} valid requests served, a key issued mid-flood answered in {new_key_latency:?}",
        statuses.len()
    );

    // PostgreSQL's count, once every gateway connection has closed and reported.
    a.stop().await;
    b.stop().await;
    a.db.close().await;
    b.db.close().await;
    drop((a, b));
    all_other_backends_gone(&mut stats).await;
    let pg_after = pg_counts(&mut stats).await;
    // Each instance's alert evaluator reads the rules once per interval (5 s; there are none,
    // so nothing more), and its deliverer looks at the outbox once at start.
    let alert_reads = 2 * (i64::try_from(started.elapsed().as_secs()).unwrap() / 5 + 2);
    let scans = pg_after.key_table_scans - pg_before.key_table_scans;
    let commits = pg_after.commits - pg_before.commits;
    let background = pg_after.background_runs - pg_before.background_runs;
    eprintln!(
        "PostgreSQL: {scans} scans of virtual_keys, {commits} commits during the flood, \
         {background} autovacuum and autoanalyze runs, {open_before} connections open at its \
         start and {} opened during it",
        pg_after.sessions - pg_before.sessions
    );
    // A policy read may scan both hash indexes; the admin API's issuing of one key (its
    // checks, its audit entry) scans the table a few times.
    let counted = i64::try_from(known_reads + policy_reads).unwrap();
    assert!(
        scans <= 2 * counted + 10,
        "{scans} scans of virtual_keys, {counted} reads counted"
    );
    // Besides the reads (a policy read is three statements): at most one ledger batch per
    // valid request, the admin calls and PostgreSQL's own upkeep. Nothing is per made-up key.
    // And one more per statement a connection prepares: the first use of a statement on a
    // connection is a Parse round trip of its own, which PostgreSQL counts as a transaction.
    // How many connections the pools use (and so prepare on) depends on how requests overlap,
    // which is why the count varies with the load beside the test; each connection open
    // during the flood prepares at most the statements of the flood's paths, fewer than
    // STATEMENTS_PER_CONNECTION.
    let served = i64::try_from(statuses.len()).unwrap();
    let policy_reads = i64::try_from(policy_reads).unwrap();
    let known_reads = i64::try_from(known_reads).unwrap();
    let connections = open_before + (pg_after.sessions - pg_before.sessions);
    let explained = known_reads
        + 3 * policy_reads
        + served
        + 3 * background
        + alert_reads
        + STATEMENTS_PER_CONNECTION * connections;
    assert!(
        commits <= explained + 50,
        "{commits} commits: {known_reads} + 3 x {policy_reads} reads, {served} valid requests, \
         {background} autovacuum and autoanalyze runs, {alert_reads} reads of alert rules, \
         {connections} connections"
    );
    assert!(
        commits < (FLOOD_KEYS / 20) as i64,
        "{commits} commits for {FLOOD_KEYS} made-up keys"
    );
}

#[tokio::test]
async fn a_key_written_without_any_announcement_works_at_once() {
    // Written straight into PostgreSQL: no instance has it in its set and no `keys:added`
    // message is sent, so only the read its first use waits for can find it.
    let app = TestApp::spawn().await;
    let (status, team) = app
        .admin(Method::POST, "/teams", Some(json!({"name": "silent"})))
        .await;
    assert_eq!(status, 201);
    let team_id = uuid::Uuid::parse_str(team["id"].as_str().unwrap()).unwrap();
    let before = settled_reads(&app).await;
    let key = NewKey::generate();
    sqlx::query(
        "INSERT INTO virtual_keys (id, team_id, key_hash, key_prefix) VALUES ($1, $2, $3, $4)",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(team_id)
    .bind(key.hash.as_bytes())
    .bind(&key.prefix)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(app.chat(&key.secret, chat_body()).await.status(), 200);
    assert!(app.proxy.keys.known().reads() > before);
}

#[tokio::test]
async fn a_key_of_the_wrong_shape_is_refused_without_a_lookup() {
    let app = TestApp::spawn_with(without_auth_limit()).await;
    let good = app.key().await;
    let known_reads = settled_reads(&app).await;
    let cases = [
        (
            "tg-short".to_string(),
            "5 characters after `tg-` instead of 43",
        ),
        (
            good.replacen("tg-", "sk-", 1),
            "it does not start with `tg-`",
        ),
        (
            format!("{}!", &good[..good.len() - 1]),
            "a character other than a letter or digit",
        ),
        (
            format!("{good}x"),
            "44 characters after `tg-` instead of 43",
        ),
    ];
    for (key, problem) in cases {
        let (status, body) = error_of(models(&app, &key, None).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(problem), "{message}");
        assert!(
            message.contains("`tg-` followed by 43 letters and digits"),
            "{message}"
        );
        assert!(!message.contains(&key), "the key is not echoed: {message}");
    }
    // A well-formed unknown key is told it is unknown, after a read of new hashes.
    let (status, body) = error_of(models(&app, &made_up_key(), None).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        "the API key is not a known Tollgate virtual key"
    );
    assert_eq!(
        app.proxy.keys.known().reads(),
        known_reads + 1,
        "only the well-formed key caused a read"
    );
    assert_eq!(models(&app, &good, None).await.status(), 200);
}

#[tokio::test]
async fn a_client_that_keeps_failing_is_refused_before_any_lookup_with_bounded_state() {
    const LIMIT: u32 = 5;
    const TRACKED: u64 = 500;
    let app = TestApp::spawn_with(Options {
        extra: format!(
            "[client_auth]\nmax_failures_per_minute = {LIMIT}\ntracked_addresses = {TRACKED}\ntrusted_proxy_hops = 1\n"
        ),
        ..Options::default()
    })
    .await;
    let good = app.key().await;
    let guesser = Some("198.51.100.7");
    for _ in 0..LIMIT {
        assert_eq!(models(&app, &made_up_key(), guesser).await.status(), 401);
    }
    let reads = (
        app.proxy.keys.known().reads(),
        app.proxy.keys.policy_reads(),
    );
    let response = models(&app, &made_up_key(), guesser).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, body) = error_of(response).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_failed_authentications");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("from 198.51.100.7: 5 within a minute"),
        "{message}"
    );
    // The refused address is refused whatever it sends, a valid key included; the refusals
    // cost no lookup.
    assert_eq!(models(&app, &good, guesser).await.status(), 429);
    let (status, _) = error_of(
        app.http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(&good)
            .header("x-forwarded-for", "198.51.100.7")
            .json(&chat_body())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(
        (
            app.proxy.keys.known().reads(),
            app.proxy.keys.policy_reads()
        ),
        reads
    );
    // Other addresses, and the balancer itself (no header), are not affected. Only what the
    // trusted proxy appended counts: an address the client wrote further left is ignored.
    assert_eq!(
        models(&app, &good, Some("198.51.100.8")).await.status(),
        200
    );
    assert_eq!(models(&app, &good, None).await.status(), 200);
    assert_eq!(
        models(&app, &good, Some("198.51.100.7, 198.51.100.9"))
            .await
            .status(),
        200
    );

    // A flood of failures from many addresses: the state stays within its bound.
    let url = format!("{}/v1/models", app.data_url);
    futures_util::stream::iter(0..4 * TRACKED)
        .map(|i| {
            let request = app
                .http
                .get(&url)
                .bearer_auth("tg-bad")
                .header("x-forwarded-for", format!("10.{}.{}.1", i / 256, i % 256));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(FLOOD_CONCURRENCY)
        .for_each(|status| {
            assert_eq!(status, 401);
            async {}
        })
        .await;
    app.proxy.auth_failures.sync().await;
    let tracked = app.proxy.auth_failures.tracked();
    assert!(tracked <= TRACKED, "{tracked} addresses tracked");
}

#[tokio::test]
async fn an_ended_campaign_is_named_with_its_team_and_end_time() {
    let app = TestApp::spawn().await;
    let team = format!("team-{}", uuid::Uuid::new_v4().simple());
    let (status, _) = app
        .admin(Method::POST, "/teams", Some(json!({"name": team})))
        .await;
    assert_eq!(status, 201);
    let ends_at = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    let (status, launched) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(json!({"team": team, "name": "gsm8k", "keys": 1, "ends_at": ends_at})),
        )
        .await;
    assert_eq!(status, 201, "{launched}");
    let key = launched["keys"][0]["key"].as_str().unwrap().to_owned();
    assert_eq!(app.chat(&key, chat_body()).await.status(), 200);
    let wait = (ends_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    let (status, body) = error_of(app.chat(&key, chat_body()).await).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "experiment_ended");
    let message = body["error"]["message"].as_str().unwrap();
    let ended = ends_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        message,
        format!(
            "experiment \"gsm8k\" of team \"{team}\" ended at {ended}; its keys no longer work (more requests need a new campaign: `tollctl campaigns launch`)"
        )
    );
}

/// The one-off measurement recorded in docs/operations.md: `TOLLGATE_FLOOD_KEYS` (default a
/// million) distinct made-up keys against one instance, `TOLLGATE_FLOOD_CONCURRENCY` (default
/// 1024) at a time, with the process's RSS before and after. Run with
/// `cargo test --release --test it key_flood::measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a one-off measurement; minutes long"]
async fn measure_a_flood_of_made_up_keys() {
    let count: usize = std::env::var("TOLLGATE_FLOOD_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let concurrency: usize = std::env::var("TOLLGATE_FLOOD_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let app = TestApp::spawn_with(without_auth_limit()).await;
    let key = app.key().await;
    assert_eq!(models(&app, &key, None).await.status(), 200);
    let mut stats = PgConnection::connect(&app.database_url).await.unwrap();
    set_up_reported(&app.database_url, &[&app]).await;
    let rss_before = rss_kib();
    let reads_before = (
        app.proxy.keys.known().reads(),
        app.proxy.keys.policy_reads(),
    );
    let pg_before = pg_counts(&mut stats).await;
    let started = Instant::now();
    // In tenths, with the RSS after each: memory that grew with the keys would show here.
    let (mut unauthorized, mut other) = (0, 0);
    let mut rss_by_tenth = Vec::new();
    for _ in 0..10 {
        let (u, o) = flood(&app, (0..count / 10).map(|_| made_up_key()), concurrency).await;
        (unauthorized, other) = (unauthorized + u, other + o);
        rss_by_tenth.push(rss_kib());
    }
    let count = count / 10 * 10;
    let elapsed = started.elapsed();
    app.proxy.keys.sync().await;
    let rss_after = rss_kib();
    let known_reads = app.proxy.keys.known().reads() - reads_before.0;
    let policy_reads = app.proxy.keys.policy_reads() - reads_before.1;
    let cached = app.proxy.keys.len();
    assert_eq!((unauthorized, other), (count as u64, 0));
    let mut app = app;
    app.stop().await;
    app.db.close().await;
    drop(app);
    all_other_backends_gone(&mut stats).await;
    let pg_after = pg_counts(&mut stats).await;
    eprintln!(
        "{count} made-up keys, {concurrency} at a time, in {elapsed:?} ({:.0}/s): RSS {rss_before} KiB before, {rss_after} KiB after; \
         {known_reads} reads of new key hashes, {policy_reads} policy reads, {cached} cached policies; \
         PostgreSQL: {} commits, {} scans of virtual_keys; RSS after each tenth (KiB): {rss_by_tenth:?}",
        count as f64 / elapsed.as_secs_f64(),
        pg_after.commits - pg_before.commits,
        pg_after.key_table_scans - pg_before.key_table_scans,
    );
}

/// The one-off measurement of what one cached policy and one tracked client address cost,
/// recorded in docs/operations.md: `TOLLGATE_CACHED_KEYS` (default 20000) keys used once
/// each, then failures from `TOLLGATE_FAILING_ADDRESSES` (default 100000) addresses. Run with
/// `cargo test --release --test it key_flood::measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a one-off measurement; minutes long"]
async fn measure_memory_per_cached_policy_and_tracked_address() {
    let env = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let keys_wanted = env("TOLLGATE_CACHED_KEYS", 20_000);
    let addresses = env("TOLLGATE_FAILING_ADDRESSES", 100_000);
    let app = TestApp::spawn_with(Options {
        extra: format!(
            "[client_auth]\ntrusted_proxy_hops = 1\ntracked_addresses = {addresses}\n\
             [key_cache]\nmax_entries = {keys_wanted}\nttl_secs = 3600\n"
        ),
        ..Options::default()
    })
    .await;
    let team = format!("team-{}", uuid::Uuid::new_v4().simple());
    let (status, _) = app
        .admin(Method::POST, "/teams", Some(json!({"name": team})))
        .await;
    assert_eq!(status, 201);
    let mut keys = Vec::new();
    while (keys.len() as u64) < keys_wanted {
        let (status, issued) = app
            .admin(
                Method::POST,
                "/keys",
                Some(json!({"team": team, "count": 1000, "name": "worker"})),
            )
            .await;
        assert_eq!(status, 201);
        keys.extend(
            issued["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["key"].as_str().unwrap().to_owned()),
        );
    }
    let rss_before = rss_kib();
    let url = format!("{}/v1/models", app.data_url);
    futures_util::stream::iter(keys.iter())
        .map(|key| {
            let request = app.http.get(&url).bearer_auth(key);
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(64)
        .for_each(|status| {
            assert_eq!(status, 200);
            async {}
        })
        .await;
    app.proxy.keys.sync().await;
    let rss_cached = rss_kib();
    let cached = app.proxy.keys.len();
    futures_util::stream::iter(0..addresses)
        .map(|i| {
            let request = app.http.get(&url).bearer_auth("tg-bad").header(
                "x-forwarded-for",
                std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).to_string(),
            );
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(64)
        .for_each(|status| {
            assert_eq!(status, 401);
            async {}
        })
        .await;
    app.proxy.auth_failures.sync().await;
    let rss_tracked = rss_kib();
    let tracked = app.proxy.auth_failures.tracked();
    eprintln!(
        "{cached} cached policies: RSS {rss_before} -> {rss_cached} KiB ({} B each); \
         {tracked} tracked addresses: RSS -> {rss_tracked} KiB ({} B each); {} known key hashes",
        (rss_cached.saturating_sub(rss_before) * 1024) / cached.max(1),
        (rss_tracked.saturating_sub(rss_cached) * 1024) / tracked.max(1),
        app.proxy.keys.known().len(),
    );
}

/// The instance's reads of new key hashes, once no read has started for a while (issuing a
/// key announces it, which makes every instance, this one included, read).
async fn settled_reads(app: &TestApp) -> u64 {
    let mut reads = app.proxy.keys.known().reads();
    loop {
        tokio::time::sleep(MIN_REFRESH * 5).await;
        let now = app.proxy.keys.known().reads();
        if now == reads {
            return now;
        }
        reads = now;
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
