//! What the ledger costs PostgreSQL: records events through the ledger at a fixed rate, waits
//! until all are written, and prints the CPU time the PostgreSQL server's processes used per
//! event. `bench/ledger.sh` runs it against a PostgreSQL server of its own, so nothing else
//! runs on that server and every process of it counts.
//!
//! Environment: `DATABASE_URL` (an empty database), `PGDATA` (the server's data directory,
//! for its postmaster's pid), `EVENTS` (default 200000), `RATE` events/s (default 14000, the
//! saturated benchmark's rate), `KEYS` (default 1: every event from one key, as in
//! `bench/run.sh`; a campaign with a key per worker has more).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{SubsecRound, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tollgate::config::LedgerConfig;
use tollgate::ids::{ExperimentId, KeyId, RequestId, TeamId};
use tollgate::ledger::{LedgerEvent, LedgerWriter};
use tollgate::pricing::Usage;
use tollgate::store::Store;

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name} must be a whole number, not {value:?}")),
        Err(_) => Ok(default),
    }
}

/// utime + stime (+ the reaped children's, for the postmaster) in clock ticks.
fn ticks(stat: &str, with_children: bool) -> Option<u64> {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Counting from field 3 (state) at index 0: utime is field 14, stime 15, cutime 16, cstime 17.
    let own = field(11)?.checked_add(field(12)?)?;
    if with_children {
        own.checked_add(field(13)?)?.checked_add(field(14)?)
    } else {
        Some(own)
    }
}

/// CPU ticks of the postmaster and every live child of it (backends, WAL writer,
/// checkpointer, autovacuum); children that ended are in the postmaster's cutime/cstime.
fn server_ticks(postmaster: u32) -> anyhow::Result<u64> {
    let own = std::fs::read_to_string(format!("/proc/{postmaster}/stat"))?;
    let mut total = ticks(&own, true).context("cannot parse the postmaster's stat")?;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(postmaster) {
            total = total.saturating_add(ticks(&stat, false).unwrap_or(0));
        }
    }
    Ok(total)
}

fn postmaster_pid(pgdata: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .with_context(|| format!("reading {}/postmaster.pid", pgdata.display()))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("postmaster.pid has no pid on its first line")
}

async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("set DATABASE_URL")?;
    let pgdata = PathBuf::from(std::env::var("PGDATA").context("set PGDATA")?);
    let events = env_number("EVENTS", 200_000)?;
    let rate = env_number("RATE", 14_000)?.max(1);
    let keys = env_number("KEYS", 1)?.max(1);
    let postmaster = postmaster_pid(&pgdata)?;
    let clock_ticks = 100.0; // USER_HZ on Linux

    let pool = PgPool::connect(&url).await?;
    let store = Store::from_pool(pool.clone());
    store.migrate().await?;
    if let Ok(path) = std::env::var("EXTRA_SQL") {
        sqlx::raw_sql(&std::fs::read_to_string(path)?)
            .execute(&pool)
            .await?;
    }
    let journal_dir =
        std::env::temp_dir().join(format!("tollgate-ledger-cost-{}", std::process::id()));
    let config = LedgerConfig::with_dir(journal_dir.clone());
    let (ledger, writer) = LedgerWriter::start(store, config).await?;

    let team = TeamId::new();
    let experiment = ExperimentId::new();
    let key_ids: Vec<KeyId> = (0..keys).map(|_| KeyId::new()).collect();
    let template = LedgerEvent {
        request_id: RequestId::new(),
        created_at: Utc::now().trunc_subsecs(6),
        team_id: team,
        experiment_id: Some(experiment),
        key_id: key_ids[0],
        key_prefix: Some("tg-abcdefgh".into()),
        model: "gpt-4o-mini".into(),
        upstream_model: "gpt-4o-mini".into(),
        deployment: "mock".into(),
        provider: "openai".into(),
        status: 200,
        error_type: None,
        streamed: false,
        usage_estimated: false,
        usage: Usage {
            input_tokens: 10,
            output_tokens: 20,
            ..Usage::default()
        },
        cost_usd: Decimal::new(135, 7),
        latency_ms: 1,
        upstream_latency_ms: Some(1),
        attempts: 1,
        refused_by: None,
        tags: Default::default(),
    };

    // Recording in ticks of 10 ms keeps the rate without a timer per event.
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let before_ticks = server_ticks(postmaster)?;
    let before_commits = commits(&pool).await?;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut next = tokio::time::Instant::now();
    while sent < events {
        for _ in 0..per_tick.min(events - sent) {
            let key = key_ids[(sent % keys) as usize];
            ledger
                .record(LedgerEvent {
                    request_id: RequestId::new(),
                    created_at: Utc::now().trunc_subsecs(6),
                    key_id: key,
                    ..template.clone()
                })
                .await;
            sent += 1;
        }
        next += tick;
        tokio::time::sleep_until(next).await;
    }
    let recorded = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while ledger.stats().written.load(Ordering::Relaxed) < events {
        if Instant::now() > deadline {
            bail!("the ledger did not write every event within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after_ticks = server_ticks(postmaster)?;
    let after_commits = commits(&pool).await?;
    writer.shutdown(Duration::from_secs(30)).await;
    let _ = std::fs::remove_dir_all(&journal_dir);

    let cpu_secs = after_ticks.saturating_sub(before_ticks) as f64 / clock_ticks;
    let transactions = after_commits.saturating_sub(before_commits).max(1);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM request_log")
        .fetch_one(&pool)
        .await?;
    let relation_bytes: i64 = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
         JOIN pg_inherits i ON i.inhrelid = c.oid \
         WHERE i.inhparent = 'request_log'::regclass",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "events {events} recorded in {:.1} s ({:.0}/s), {keys} key(s); rows in request_log {rows}; \
         transactions {transactions} (about {:.0} events each)",
        recorded.as_secs_f64(),
        events as f64 / recorded.as_secs_f64(),
        events as f64 / transactions as f64,
    );
    println!(
        "PostgreSQL CPU: {cpu_secs:.2} s, {:.1} µs per event; request_log with its indexes: {:.0} bytes per row",
        cpu_secs * 1e6 / events as f64,
        relation_bytes as f64 / rows.max(1) as f64,
    );
    Ok(())
}
