//! The batch writer task: takes batches off the queue and writes them, retries with
//! backoff, moves its backlog to disk while writes keep failing, replays spill segments once
//! PostgreSQL answers, and drains on shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{Datelike, Months, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use super::spill::{SegmentReader, Spill};
use super::stage::{Appended, SpillStage};
use super::{Ledger, LedgerEvent, LedgerStats};
use crate::config::LedgerConfig;
use crate::store::Store;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Consecutive failed writes after which the writer stops holding events in memory and
/// moves them to disk (about a third of a second of failures with the backoff above): a
/// crash then loses nothing that was accepted more than a moment ago.
const SPILL_AFTER_FAILURES: u32 = 3;

pub struct LedgerWriter {
    rx: mpsc::Receiver<LedgerEvent>,
    store: Store,
    config: LedgerConfig,
    stats: Arc<LedgerStats>,
    spill: Arc<Spill>,
    stage: SpillStage,
    /// Marked by the spill thread after each append.
    appended: Arc<Appended>,
    /// The events being written; at most `batch_size`.
    batch: Vec<LedgerEvent>,
    partitions_month: Option<(i32, u32)>,
    failures: u32,
    backoff: Duration,
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

/// Runs blocking file-system work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

impl LedgerWriter {
    /// Starts the writer task and the spill thread. Fails only if the thread cannot be
    /// started.
    pub fn spawn(store: Store, config: LedgerConfig) -> std::io::Result<(Ledger, WriterHandle)> {
        let (tx, rx) = mpsc::channel(config.max_in_memory.max(1));
        let stats = Arc::new(LedgerStats::default());
        let run = format!("ledger-{}", uuid::Uuid::now_v7());
        let spill = Arc::new(Spill::new(&config.spill_dir, run));
        let appended = Arc::new(Appended::default());
        let stage = SpillStage::start(
            spill.clone(),
            stats.clone(),
            config.spill_queue(),
            config.batch_size,
            appended.clone(),
        )?;
        let ledger = Ledger {
            tx,
            spill: stage.clone(),
            stats: stats.clone(),
            key_labels: false,
        };
        let writer = LedgerWriter {
            rx,
            store,
            stats,
            spill,
            stage,
            appended,
            batch: Vec::with_capacity(config.batch_size),
            config,
            partitions_month: None,
            failures: 0,
            backoff: MIN_BACKOFF,
        };
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(writer.run(stop_rx));
        Ok((ledger, WriterHandle { stop, task }))
    }

    async fn run(mut self, mut stop: watch::Receiver<Option<Duration>>) {
        let spill = self.spill.clone();
        let mut leftovers = blocking(move || Ok(spill.leftovers()))
            .await
            .unwrap_or_default();
        // This run's spill has something PostgreSQL does not have yet.
        let mut own_pending = false;
        let mut retry_at: Option<Instant> = None;
        loop {
            if self.batch.is_empty() {
                own_pending |= self.appended.take();
                let replay_due = own_pending || !leftovers.is_empty();
                if replay_due && retry_at.is_none_or(|at| Instant::now() >= at) {
                    if self.replay(&mut leftovers, &stop).await {
                        own_pending = false;
                        retry_at = None;
                    } else {
                        retry_at = Some(Instant::now() + self.next_backoff());
                    }
                    continue;
                }
                let wake = retry_at.filter(|_| replay_due);
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    event = self.rx.recv() => match event {
                        Some(event) => self.batch.push(event),
                        None => break,
                    },
                    () = self.appended.wait() => continue,
                    () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => continue,
                }
                if self.rx.len() < self.config.batch_size && !self.window(&mut stop).await {
                    break;
                }
                self.fill_batch();
            }
            match self.write_batch().await {
                Ok(()) => retry_at = None,
                Err(e) => {
                    tracing::warn!(error = %e, events = self.batch.len(), failures = self.failures, "ledger write failed; retrying");
                    if self.failures >= SPILL_AFTER_FAILURES {
                        self.spill_backlog().await;
                    }
                    let wake = Instant::now() + self.next_backoff();
                    retry_at = Some(wake);
                    tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        () = sleep_until(wake) => {}
                    }
                }
            }
        }
        let grace = (*stop.borrow()).unwrap_or(Duration::from_secs(30));
        self.drain(grace, leftovers).await;
    }

    /// Gives a batch a moment to fill, so a burst becomes a few large writes. The writer
    /// sleeps through it rather than waking for every event (a wake-up per request would
    /// cost the request path CPU). False when asked to stop.
    async fn window(&mut self, stop: &mut watch::Receiver<Option<Duration>>) -> bool {
        tokio::select! {
            biased;
            _ = stop.changed() => false,
            () = sleep(self.config.flush_interval) => true,
        }
    }

    /// Takes what is queued, up to a batch.
    fn fill_batch(&mut self) {
        while self.batch.len() < self.config.batch_size {
            match self.rx.try_recv() {
                Ok(event) => self.batch.push(event),
                Err(_) => break,
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let backoff = self.backoff;
        self.backoff = self.backoff.saturating_mul(2).min(MAX_BACKOFF);
        backoff
    }

    /// Writes the batch; on success it is empty, on failure it is kept for a retry.
    async fn write_batch(&mut self) -> Result<(), sqlx::Error> {
        let result = match self.ensure_partitions().await {
            Ok(()) => self.store.insert_ledger_batch(&self.batch).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                let n = self.batch.len();
                self.batch.clear();
                self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
                self.stats.left_memory(n);
                self.failures = 0;
                self.backoff = MIN_BACKOFF;
                Ok(())
            }
            Err(e) => {
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                self.failures = self.failures.saturating_add(1);
                Err(e)
            }
        }
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

    /// Moves the batch to disk. False (the batch kept in memory) if the disk refused it.
    async fn spill_batch(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let events = std::mem::take(&mut self.batch);
        match self.stage.write(events).await {
            Ok(()) => true,
            Err(events) => {
                self.batch = events;
                false
            }
        }
    }

    /// Moves the batch and what is queued now to disk, a batch at a time, while PostgreSQL
    /// keeps failing. Events that arrive meanwhile wait for the next attempt.
    async fn spill_backlog(&mut self) {
        let mut backlog = self.rx.len();
        loop {
            if !self.spill_batch().await || backlog == 0 {
                return;
            }
            let before = self.batch.len();
            while self.batch.len() < self.config.batch_size.min(backlog) {
                match self.rx.try_recv() {
                    Ok(event) => self.batch.push(event),
                    Err(_) => break,
                }
            }
            let taken = self.batch.len() - before;
            if taken == 0 {
                return;
            }
            backlog = backlog.saturating_sub(taken);
        }
    }

    /// Replays earlier runs' leftovers, then this run's spill (sealing its current segment
    /// first). True when nothing is left to replay.
    async fn replay(
        &mut self,
        leftovers: &mut Vec<PathBuf>,
        stop: &watch::Receiver<Option<Duration>>,
    ) -> bool {
        while let Some(path) = leftovers.first().cloned() {
            if !self.replay_segment(&path, false, stop).await {
                return false;
            }
            leftovers.remove(0);
        }
        let spill = self.spill.clone();
        let sealed = blocking(move || {
            spill.seal()?;
            Ok(spill.sealed_segments())
        })
        .await;
        let sealed = match sealed {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::error!(error = %e, "cannot seal the ledger spill segment for replay");
                return false;
            }
        };
        for path in sealed {
            if !self.replay_segment(&path, true, stop).await {
                return false;
            }
        }
        self.backoff = MIN_BACKOFF;
        true
    }

    /// Writes a segment's events in batches and deletes it once all of them are in
    /// PostgreSQL. Between its batches, fresh events from the queue are written too, so a
    /// long replay does not hold them back. True when the segment is done.
    async fn replay_segment(
        &mut self,
        path: &Path,
        own: bool,
        stop: &watch::Receiver<Option<Duration>>,
    ) -> bool {
        if let Err(e) = self.ensure_partitions().await {
            tracing::warn!(error = %e, "spill replay postponed: PostgreSQL unavailable");
            return false;
        }
        let opened = path.to_path_buf();
        let mut reader = match blocking(move || SegmentReader::open(&opened)).await {
            Ok(reader) => reader,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read spill segment; it is left in place");
                return true;
            }
        };
        let batch_size = self.config.batch_size;
        let mut replayed: u64 = 0;
        loop {
            if stop.borrow().is_some() {
                return false;
            }
            let (back, events) = match blocking(move || {
                let events = reader.next_batch(batch_size)?;
                Ok((reader, events))
            })
            .await
            {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read spill segment");
                    return false;
                }
            };
            reader = back;
            if events.is_empty() {
                break;
            }
            if let Err(e) = self.store.insert_ledger_batch(&events).await {
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(file = %path.display(), error = %e, "spill replay postponed");
                return false;
            }
            replayed = replayed.saturating_add(events.len() as u64);
            if !self.rx.is_empty() {
                self.fill_batch();
                if self.write_batch().await.is_err() {
                    return false;
                }
            }
        }
        let removed = path.to_path_buf();
        if let Err(e) = blocking(move || std::fs::remove_file(&removed)).await {
            tracing::error!(file = %path.display(), error = %e, "could not remove replayed spill segment");
        }
        self.stats.replayed.fetch_add(replayed, Ordering::Relaxed);
        self.stats.written.fetch_add(replayed, Ordering::Relaxed);
        if own {
            self.stats.left_disk(replayed);
        }
        tracing::info!(file = %path.display(), events = replayed, "spilled ledger events replayed");
        true
    }

    /// Shutdown: no more events are queued in memory (late ones go straight to the spill
    /// file); what is queued is written within `grace`, the rest is spilled, and the spill
    /// stage is flushed. What is on disk is replayed if time is left, or by the next start.
    async fn drain(mut self, grace: Duration, mut leftovers: Vec<PathBuf>) {
        self.rx.close();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.batch.is_empty() && !self.take_closing_batch().await {
                break;
            }
            // A write stuck behind a lock must not hold shutdown past its grace.
            match timeout_at(deadline, self.write_batch()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "ledger write failed during shutdown");
                    let backoff = self.next_backoff();
                    sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
                Err(_) => break,
            }
        }
        self.spill_remaining().await;
        let flush_deadline = Instant::now() + grace.max(Duration::from_secs(1));
        if timeout_at(flush_deadline, self.stage.flush())
            .await
            .is_err()
        {
            tracing::error!("ledger spill not finished at shutdown: the disk is not taking events");
            return;
        }
        if self.failures == 0 && Instant::now() < deadline {
            let (_never_stops, stop) = watch::channel(None);
            let replayed = timeout_at(deadline, self.replay(&mut leftovers, &stop)).await;
            if !matches!(replayed, Ok(true)) {
                tracing::info!("spilled ledger events remain on disk for the next start to replay");
            }
            // A replay cut short may have taken queued stragglers into the batch.
            self.spill_remaining().await;
            let _ = timeout_at(flush_deadline, self.stage.flush()).await;
        }
        tracing::info!("ledger drained");
    }

    /// After the queue is closed: the next batch, waiting for senders that already hold a
    /// slot. False once the queue is empty for good.
    async fn take_closing_batch(&mut self) -> bool {
        match self.rx.recv().await {
            Some(event) => {
                self.batch.push(event);
                self.fill_batch();
                true
            }
            None => false,
        }
    }

    /// Moves every event still in memory (the batch and the closed queue) to disk; what the
    /// disk refuses is logged in full.
    async fn spill_remaining(&mut self) {
        loop {
            if self.batch.is_empty() && !self.take_closing_batch().await {
                return;
            }
            let events = std::mem::take(&mut self.batch);
            if let Err(events) = self.stage.write(events).await {
                self.stats.left_memory(events.len());
                for event in &events {
                    let json = serde_json::to_string(event).unwrap_or_default();
                    tracing::error!(request_id = %event.request_id, event = %json, "ledger event could not be stored at shutdown");
                }
            }
        }
    }
}
