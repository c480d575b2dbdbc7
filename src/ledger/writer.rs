//! The batch writer task: takes batches off the queue and writes them, retries with
//! backoff, replays journal segments (an earlier run's at start-up, this run's whose events
//! overflowed the queue once PostgreSQL answers), tells the journal what is written, and
//! drains on shutdown.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use super::journal::{Journal, JournalConfig, Overflowed, Queued};
use super::lock::{self, LockError};
use super::segment::{SegmentReader, existing_segments};
use super::{Ledger, LedgerEvent, LedgerStats};
use crate::config::LedgerConfig;
use crate::store::Store;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Request-log partitions the writer has made sure of; beyond this many days it forgets the
/// oldest (a replay of old segments touches many days once).
const KNOWN_DAYS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot read the ledger journal in {dir}: {source}")]
    Journal {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct LedgerWriter {
    rx: mpsc::Receiver<Queued>,
    store: Store,
    config: LedgerConfig,
    stats: Arc<LedgerStats>,
    journal: Journal,
    overflowed: Arc<Overflowed>,
    /// The events being written; at most `batch_size`.
    batch: Vec<LedgerEvent>,
    /// The journal segment of each event in `batch`.
    batch_segments: Vec<Option<u64>>,
    partitions: BTreeSet<NaiveDate>,
    failures: u32,
    backoff: Duration,
}

/// Owned by the app: stops the writer and waits until every event is written or left in
/// the journal for the next start.
pub struct WriterHandle {
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

impl WriterHandle {
    /// Stops taking events from the queue, writes what is queued (retrying for up to
    /// `grace`), and trims the journal; what PostgreSQL did not take stays in the journal.
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
    /// Locks the journal directory, replays what earlier runs left in it (before this
    /// returns, so before the gateway serves), then starts the journal thread and the writer
    /// task. Fails if another process holds the directory. The journal thread keeps the
    /// directory locked until the last [`Ledger`] handle is dropped: events recorded after
    /// shutdown still go there. If PostgreSQL fails during the
    /// start-up replay, the rest is replayed in the background once it answers.
    pub async fn start(
        store: Store,
        config: LedgerConfig,
    ) -> Result<(Ledger, WriterHandle), StartError> {
        let dir = config.journal_dir.clone();
        let journal_error = |source| StartError::Journal {
            dir: dir.display().to_string(),
            source,
        };
        let locked = dir.clone();
        let dir_lock = tokio::task::spawn_blocking(move || lock::lock(&locked))
            .await
            .map_err(|e| journal_error(std::io::Error::other(e)))??;
        let listed = dir.clone();
        let mut leftovers = blocking(move || existing_segments(&listed))
            .await
            .map_err(journal_error)?;
        let (tx, rx) = mpsc::channel(config.max_in_memory.max(1));
        let stats = Arc::new(LedgerStats::default());
        let overflowed = Arc::new(Overflowed::default());
        let journal = Journal::start(
            JournalConfig {
                dir: dir.clone(),
                run: uuid::Uuid::now_v7().simple().to_string(),
                fsync: config.journal_fsync,
                queue: config.journal_queue(),
                group: config.batch_size,
            },
            dir_lock,
            tx,
            stats.clone(),
            overflowed.clone(),
        )
        .map_err(journal_error)?;
        let ledger = Ledger {
            journal: journal.clone(),
            stats: stats.clone(),
            key_labels: false,
        };
        let mut writer = LedgerWriter {
            rx,
            store,
            stats,
            journal,
            overflowed,
            batch: Vec::with_capacity(config.batch_size),
            batch_segments: Vec::with_capacity(config.batch_size),
            config,
            partitions: BTreeSet::new(),
            failures: 0,
            backoff: MIN_BACKOFF,
        };
        let (stop, stop_rx) = watch::channel(None);
        if !leftovers.is_empty() {
            tracing::info!(dir = %dir.display(), segments = leftovers.len(), "replaying the ledger journal left by an earlier run before serving");
            if !writer.replay_leftovers(&mut leftovers, &stop_rx).await {
                tracing::warn!(
                    segments = leftovers.len(),
                    "PostgreSQL failed during the start-up replay of the ledger journal; the rest is replayed in the background"
                );
            }
        }
        let task = tokio::spawn(writer.run(stop_rx, leftovers));
        Ok((ledger, WriterHandle { stop, task }))
    }

    async fn run(
        mut self,
        mut stop: watch::Receiver<Option<Duration>>,
        mut leftovers: Vec<PathBuf>,
    ) {
        let mut replay_due = !leftovers.is_empty();
        let mut retry_at: Option<Instant> = None;
        loop {
            if self.batch.is_empty() {
                replay_due |= self.overflowed.take();
                if replay_due && retry_at.is_none_or(|at| Instant::now() >= at) {
                    if self.replay(&mut leftovers, &stop).await {
                        replay_due = false;
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
                    queued = self.rx.recv() => match queued {
                        Some(queued) => self.push(queued),
                        None => break,
                    },
                    () = self.overflowed.wait() => continue,
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
                    // The events are in the journal: holding them here loses nothing.
                    tracing::warn!(error = %e, events = self.batch.len(), failures = self.failures, "ledger write failed; retrying");
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

    fn push(&mut self, queued: Queued) {
        self.batch.push(queued.event);
        self.batch_segments.push(queued.segment);
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
                Ok(queued) => self.push(queued),
                Err(_) => break,
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let backoff = self.backoff;
        self.backoff = self.backoff.saturating_mul(2).min(MAX_BACKOFF);
        backoff
    }

    /// Writes the batch; on success it is empty and the journal knows, on failure it is kept
    /// for a retry.
    async fn write_batch(&mut self) -> Result<(), sqlx::Error> {
        let result = match self.ensure_partitions(&days_of(&self.batch)).await {
            Ok(()) => self.store.write_ledger_batch(&self.batch).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(inserted) => {
                let n = self.batch.len();
                self.batch.clear();
                // A replay may have written some of these already: count rows, not events.
                self.stats.written.fetch_add(inserted, Ordering::Relaxed);
                self.stats.left_memory(n);
                self.failures = 0;
                self.backoff = MIN_BACKOFF;
                if self.journal.written(&self.batch_segments) {
                    self.journal.trim(false).await;
                }
                self.batch_segments.clear();
                Ok(())
            }
            Err(e) => {
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                self.failures = self.failures.saturating_add(1);
                Err(e)
            }
        }
    }

    /// Creates the daily request-log partitions these events need (and tomorrow's, ahead of
    /// time) before rows need them.
    async fn ensure_partitions(&mut self, days: &BTreeSet<NaiveDate>) -> Result<(), sqlx::Error> {
        let today = Utc::now().date_naive();
        let ahead = today.succ_opt().into_iter().chain([today]);
        for day in days.iter().copied().chain(ahead) {
            if self.partitions.contains(&day) {
                continue;
            }
            self.store.ensure_request_log_partition(day).await?;
            if self.partitions.len() >= KNOWN_DAYS {
                self.partitions.pop_first();
            }
            self.partitions.insert(day);
        }
        Ok(())
    }

    /// Replays earlier runs' leftovers, then this run's segments whose events overflowed the
    /// queue. True when nothing is left to replay.
    async fn replay(
        &mut self,
        leftovers: &mut Vec<PathBuf>,
        stop: &watch::Receiver<Option<Duration>>,
    ) -> bool {
        if !self.replay_leftovers(leftovers, stop).await {
            return false;
        }
        for segment in self.journal.seal_for_replay().await {
            if !self.replay_segment(&segment.path, stop).await {
                return false;
            }
            self.journal.replayed(segment.id);
            self.journal.trim(false).await;
        }
        self.backoff = MIN_BACKOFF;
        true
    }

    /// Replays and deletes segments left by earlier runs, oldest first. True when all are
    /// done.
    async fn replay_leftovers(
        &mut self,
        leftovers: &mut Vec<PathBuf>,
        stop: &watch::Receiver<Option<Duration>>,
    ) -> bool {
        while let Some(path) = leftovers.first().cloned() {
            if !self.replay_segment(&path, stop).await {
                return false;
            }
            let removed = path.clone();
            if let Err(e) = blocking(move || std::fs::remove_file(&removed)).await {
                tracing::error!(file = %path.display(), error = %e, "could not remove a replayed ledger journal segment");
            }
            leftovers.remove(0);
        }
        true
    }

    /// Writes a segment's events in batches, idempotently (some or all of them may be in
    /// PostgreSQL already). Between its batches, fresh events from the queue are written
    /// too, so a long replay does not hold them back. True when all of it is written.
    async fn replay_segment(
        &mut self,
        path: &Path,
        stop: &watch::Receiver<Option<Duration>>,
    ) -> bool {
        let opened = path.to_path_buf();
        let mut reader = match blocking(move || SegmentReader::open(&opened)).await {
            Ok(reader) => reader,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read ledger journal segment; it is left in place");
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
                    tracing::error!(file = %path.display(), error = %e, "cannot read ledger journal segment");
                    return false;
                }
            };
            reader = back;
            if events.is_empty() {
                break;
            }
            let written = match self.ensure_partitions(&days_of(&events)).await {
                Ok(()) => self.store.insert_ledger_batch(&events).await,
                Err(e) => Err(e),
            };
            match written {
                Ok(inserted) => replayed = replayed.saturating_add(inserted),
                Err(e) => {
                    self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(file = %path.display(), error = %e, "ledger journal replay postponed");
                    return false;
                }
            }
            if !self.rx.is_empty() {
                self.fill_batch();
                if self.write_batch().await.is_err() {
                    return false;
                }
            }
        }
        self.stats.replayed.fetch_add(replayed, Ordering::Relaxed);
        self.stats.written.fetch_add(replayed, Ordering::Relaxed);
        tracing::info!(file = %path.display(), inserted = replayed, "ledger journal segment replayed (events already in PostgreSQL are skipped)");
        true
    }

    /// Shutdown: takes nothing more from the queue (the journal keeps what arrives later for
    /// the next start); writes what is queued within `grace`, replays what overflowed if
    /// time is left, and trims the journal, so after a clean shutdown with PostgreSQL up it
    /// is empty.
    async fn drain(mut self, grace: Duration, mut leftovers: Vec<PathBuf>) {
        self.rx.close();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.batch.is_empty() {
                match self.rx.recv().await {
                    Some(queued) => {
                        self.push(queued);
                        self.fill_batch();
                    }
                    None => break,
                }
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
        if self.failures == 0 && Instant::now() < deadline {
            let (_never_stops, stop) = watch::channel(None);
            let replayed = timeout_at(deadline, self.replay(&mut leftovers, &stop)).await;
            if !matches!(replayed, Ok(true)) {
                tracing::info!("ledger events remain in the journal for the next start to replay");
            }
        }
        self.journal.trim(true).await;
        let left = self.stats.in_memory().saturating_add(self.stats.on_disk());
        if left > 0 {
            tracing::warn!(
                events = left,
                "ledger events not yet in PostgreSQL stay in the journal for the next start"
            );
        }
        tracing::info!("ledger drained");
    }
}

/// The UTC days of the events, for the partitions they need.
fn days_of(events: &[LedgerEvent]) -> BTreeSet<NaiveDate> {
    events.iter().map(|e| e.created_at.date_naive()).collect()
}
