//! `GET /metrics` and the background task that keeps the metrics fresh.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::task::JoinHandle;

use super::text::Family;
use super::{
    LEDGER_IN_MEMORY, LEDGER_IN_MEMORY_PEAK, LEDGER_JOURNAL_FAILURES, LEDGER_JOURNALED,
    LEDGER_ON_DISK, LEDGER_QUEUE_DEPTH, LEDGER_REPLAYED, LEDGER_SPILLED, LEDGER_WRITE_FAILURES,
    LEDGER_WRITTEN, budgets, exact, install,
};
use crate::governance::Governor;
use crate::ledger::LedgerStats;

/// The Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram samples are folded into their buckets at least this often even when nobody
/// scrapes, so they cannot pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// After a new budget scope is noted, wait this long for others before reading them all.
const NEW_SCOPE_DEBOUNCE: Duration = Duration::from_millis(200);

/// `GET /metrics`, unauthenticated (it is on the style guide's allow-list), for the
/// data-plane listener. The ledger's counters are read at scrape time, off the request path.
pub fn router(ledger: Arc<LedgerStats>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(ledger)
}

async fn scrape(State(ledger): State<Arc<LedgerStats>>) -> impl IntoResponse {
    let mut out = install().render();
    exact::render(&mut out);
    budgets::render(&mut out);
    render_ledger(&mut out, &ledger);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out)
}

fn render_ledger(out: &mut String, stats: &LedgerStats) {
    use std::sync::atomic::Ordering::Relaxed;
    Family::new(
        out,
        LEDGER_QUEUE_DEPTH,
        "gauge",
        "Ledger events accepted but not yet written to PostgreSQL (in memory or on disk).",
    )
    .sample(&[], stats.depth());
    Family::new(
        out,
        LEDGER_WRITTEN,
        "counter",
        "Ledger events written to PostgreSQL.",
    )
    .sample(&[], stats.written.load(Relaxed));
    Family::new(
        out,
        LEDGER_WRITE_FAILURES,
        "counter",
        "Failed ledger batch writes (each is retried; nothing is dropped).",
    )
    .sample(&[], stats.write_failures.load(Relaxed));
    Family::new(
        out,
        LEDGER_SPILLED,
        "counter",
        "Ledger events kept on disk only, in the journal, while PostgreSQL was behind.",
    )
    .sample(&[], stats.spilled.load(Relaxed));
    Family::new(
        out,
        LEDGER_REPLAYED,
        "counter",
        "Ledger events replayed from journal segments into PostgreSQL.",
    )
    .sample(&[], stats.replayed.load(Relaxed));
    Family::new(
        out,
        LEDGER_IN_MEMORY,
        "gauge",
        "Ledger events held in memory (journal queue, writer queue and batch).",
    )
    .sample(&[], stats.in_memory());
    Family::new(
        out,
        LEDGER_IN_MEMORY_PEAK,
        "gauge",
        "The most ledger events held in memory at once since start.",
    )
    .sample(&[], stats.in_memory_peak());
    Family::new(
        out,
        LEDGER_ON_DISK,
        "gauge",
        "Ledger events of this run on disk only (the writer's queue was full), not yet replayed.",
    )
    .sample(&[], stats.on_disk());
    Family::new(
        out,
        LEDGER_JOURNALED,
        "counter",
        "Ledger events appended to the journal before their answers were released.",
    )
    .sample(&[], stats.journaled.load(Relaxed));
    Family::new(
        out,
        LEDGER_JOURNAL_FAILURES,
        "counter",
        "Failed journal appends (their events were held in memory only until the journal worked again).",
    )
    .sample(&[], stats.journal_failures.load(Relaxed));
}

/// Starts the task that folds histogram samples and refreshes the budget gauges. The app
/// aborts it at shutdown.
pub fn spawn_background(governor: Arc<Governor>) -> JoinHandle<()> {
    let handle = install().clone();
    tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
        let mut refresh = tokio::time::interval(budgets::REFRESH_EVERY);
        loop {
            tokio::select! {
                _ = upkeep.tick() => handle.run_upkeep(),
                _ = refresh.tick() => budgets::refresh(&governor).await,
                () = budgets::new_scope_noted() => {
                    tokio::time::sleep(NEW_SCOPE_DEBOUNCE).await;
                    budgets::refresh(&governor).await;
                }
            }
        }
    })
}
