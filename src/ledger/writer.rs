//! The batch writer task: collects events, writes them in batches, retries with backoff,
//! spills past the memory bound, replays spill files, and drains on shutdown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{Datelike, Months, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use super::spill::{self, SpillFile};
use super::{Ledger, LedgerEvent, LedgerStats};
use crate::config::LedgerConfig;
use crate::store::Store;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct LedgerWriter {
    rx: mpsc::UnboundedReceiver<LedgerEvent>,
    store: Store,
    config: LedgerConfig,
    stats: Arc<LedgerStats>,
    spill: Arc<SpillFile>,
    pending: VecDeque<LedgerEvent>,
    partitions_month: Option<(i32, u32)>,
}

/// Owned by the app: stops the writer and waits until every event is written or spilled.
pub struct WriterHandle {
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

impl WriterHandle {
    /// Stops accepting events, writes what is queued (retrying for up to `grace`), and
    /// spills whatever PostgreSQL did not take.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "ledger writer task failed");
        }
    }
}

impl LedgerWriter {
    pub fn spawn(store: Store, config: LedgerConfig) -> (Ledger, WriterHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(LedgerStats::default());
        let name = format!("ledger-{}.jsonl", uuid::Uuid::now_v7());
        let spill = Arc::new(SpillFile::new(&config.spill_dir, &name));
        let ledger = Ledger {
            tx,
            stats: stats.clone(),
            spill: spill.clone(),
            key_labels: false,
        };
        let writer = LedgerWriter {
            rx,
            store,
            config,
            stats,
            spill,
            pending: VecDeque::new(),
            partitions_month: None,
        };
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(writer.run(stop_rx));
        (ledger, WriterHandle { stop, task })
    }

    async fn run(mut self, mut stop: watch::Receiver<Option<Duration>>) {
        self.replay_leftovers().await;
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                event = self.rx.recv() => match event {
                    Some(event) => self.pending.push_back(event),
                    None => break,
                },
            }
            // Give the batch a moment to fill, so a burst becomes a few large writes. The
            // writer sleeps through it rather than waking for every event (a wake-up per
            // request would cost the request path CPU), then takes what has arrived.
            let stopping = tokio::select! {
                biased;
                _ = stop.changed() => true,
                _ = sleep_until(Instant::now() + self.config.flush_interval) => false,
            };
            while self.pending.len() < self.config.max_in_memory {
                match self.rx.try_recv() {
                    Ok(event) => self.pending.push_back(event),
                    Err(_) => break,
                }
            }
            if stopping {
                break;
            }
            if !self.write_pending(&mut stop).await {
                break;
            }
        }
        let grace = (*stop.borrow()).unwrap_or(Duration::from_secs(30));
        self.drain(grace).await;
    }

    /// Writes everything pending, retrying while receiving new events. Returns false when
    /// asked to stop.
    async fn write_pending(&mut self, stop: &mut watch::Receiver<Option<Duration>>) -> bool {
        let mut backoff = MIN_BACKOFF;
        while !self.pending.is_empty() {
            match self.write_front_batch().await {
                Ok(()) => {
                    backoff = MIN_BACKOFF;
                    if self.pending.is_empty() && self.spill.exists() {
                        self.replay_own_spill().await;
                    }
                }
                Err(e) => {
                    self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, pending = self.pending.len(), "ledger write failed; retrying");
                    if self.pending.len() > self.config.max_in_memory {
                        self.spill_pending();
                    }
                    let wake = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    loop {
                        tokio::select! {
                            biased;
                            _ = stop.changed() => return false,
                            _ = sleep_until(wake) => break,
                            event = self.rx.recv() => match event {
                                Some(event) => self.pending.push_back(event),
                                None => return false,
                            },
                        }
                    }
                }
            }
        }
        true
    }

    async fn write_front_batch(&mut self) -> Result<(), sqlx::Error> {
        self.ensure_partitions().await?;
        let n = self.pending.len().min(self.config.batch_size);
        let batch = &self.pending.make_contiguous()[..n];
        self.store.insert_ledger_batch(batch).await?;
        self.pending.drain(..n);
        self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Creates this month's and next month's request-log partitions before rows need them.
    async fn ensure_partitions(&mut self) -> Result<(), sqlx::Error> {
        let today = Utc::now().date_naive();
        let month = (today.year(), today.month());
        if self.partitions_month == Some(month) {
            return Ok(());
        }
        self.store.ensure_request_log_partition(today).await?;
        if let Some(next) = today.checked_add_months(Months::new(1)) {
            self.store.ensure_request_log_partition(next).await?;
        }
        self.partitions_month = Some(month);
        Ok(())
    }

    /// Moves every pending event to the spill file, freeing memory.
    fn spill_pending(&mut self) {
        let events = self.pending.make_contiguous();
        match self.spill.append(events) {
            Ok(()) => {
                tracing::warn!(events = events.len(), file = %self.spill.path().display(), "ledger events spilled to disk");
                self.stats
                    .spilled
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                self.pending.clear();
            }
            Err(e) => tracing::error!(error = %e, "ledger spill failed; events stay in memory"),
        }
    }

    async fn replay_own_spill(&mut self) {
        let path = self.spill.path().to_path_buf();
        if self.replay_file(&path).await
            && let Err(e) = self.spill.remove()
        {
            tracing::error!(error = %e, "could not remove replayed spill file");
        }
    }

    /// Replays spill files that earlier runs left behind.
    async fn replay_leftovers(&mut self) {
        for path in spill::leftover_files(&self.config.spill_dir, self.spill.path()) {
            if self.replay_file(&path).await
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::error!(file = %path.display(), error = %e, "could not remove replayed spill file");
            }
        }
    }

    /// Writes a spill file's events; true when all of them are in PostgreSQL.
    async fn replay_file(&mut self, path: &std::path::Path) -> bool {
        let events = match spill::read_events(path) {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read spill file");
                return false;
            }
        };
        if let Err(e) = self.ensure_partitions().await {
            tracing::warn!(error = %e, "spill replay postponed: PostgreSQL unavailable");
            return false;
        }
        for batch in events.chunks(self.config.batch_size) {
            if let Err(e) = self.store.insert_ledger_batch(batch).await {
                tracing::warn!(file = %path.display(), error = %e, "spill replay postponed");
                return false;
            }
        }
        tracing::info!(file = %path.display(), events = events.len(), "spilled ledger events replayed");
        true
    }

    /// Shutdown: no more events are accepted (late ones go straight to the spill file);
    /// what is queued is written within `grace`, and the rest is spilled.
    async fn drain(mut self, grace: Duration) {
        self.rx.close();
        while let Some(event) = self.rx.recv().await {
            self.pending.push_back(event);
        }
        let deadline = Instant::now() + grace;
        let mut backoff = MIN_BACKOFF;
        while !self.pending.is_empty() && Instant::now() < deadline {
            match self.write_front_batch().await {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(e) => {
                    self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "ledger write failed during shutdown");
                    sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if !self.pending.is_empty() {
            self.spill_pending();
        } else if self.spill.exists() {
            self.replay_own_spill().await;
        }
        tracing::info!("ledger drained");
    }
}
