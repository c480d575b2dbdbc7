//! The spill stage: a bounded queue feeding a dedicated thread that appends events to the
//! spill segment, one sync per batch. File I/O never runs on an async runtime thread, and
//! the queue's bound is the request path's backpressure when the disk cannot keep up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use super::spill::Spill;
use super::{LedgerEvent, LedgerStats};

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A spill during a long outage happens once per batch; say so at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Tells the writer that the spill thread appended something since it last looked.
#[derive(Default)]
pub struct Appended {
    flag: AtomicBool,
    notify: Notify,
}

impl Appended {
    fn mark(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether anything was appended since the last call. Taken before the writer seals the
    /// segment: an append after that sets it again, so none is ever missed.
    pub fn take(&self) -> bool {
        self.flag.swap(false, Ordering::AcqRel)
    }

    /// Resolves after the next append (or at once if one happened unobserved).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// What the writer gets back when its batch could not be spilled: the events themselves, so
/// they stay in memory rather than being lost.
pub type Refused = Vec<LedgerEvent>;

// Nearly every job is an event: boxing it to shrink the rare variants would cost an
// allocation per event.
#[allow(clippy::large_enum_variant)]
enum Job {
    /// From the request path: appended with others, retried until the disk takes it.
    Event(LedgerEvent),
    /// Appended once; the outcome goes back to the sender, with the events on failure.
    Batch(Vec<LedgerEvent>, oneshot::Sender<Result<(), Refused>>),
    /// Answered once every job queued before it is on disk.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct SpillStage {
    tx: mpsc::Sender<Job>,
    stats: Arc<LedgerStats>,
}

impl SpillStage {
    /// Starts the spill thread. It ends when every handle is dropped, after writing what
    /// was queued. `appended` is marked after every append, so the writer knows there is
    /// something to replay.
    pub fn start(
        spill: Arc<Spill>,
        stats: Arc<LedgerStats>,
        capacity: usize,
        batch_size: usize,
        appended: Arc<Appended>,
    ) -> std::io::Result<SpillStage> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let thread = SpillThread {
            rx,
            spill,
            stats: stats.clone(),
            batch_size: batch_size.max(1),
            appended,
            last_log: None,
        };
        std::thread::Builder::new()
            .name("tollgate-ledger-spill".into())
            .spawn(move || thread.run())?;
        Ok(SpillStage { tx, stats })
    }

    /// Queues an event for the spill file, waiting only while the queue is full.
    pub async fn push(&self, event: LedgerEvent) {
        match self.tx.reserve().await {
            Ok(permit) => {
                self.stats.entered_memory(1);
                permit.send(Job::Event(event));
            }
            Err(_) => lost(&event, "the spill thread has stopped"),
        }
    }

    /// Writes an event to the spill file and waits until it is on disk (used after the
    /// writer has stopped, when nothing else would ever write it).
    pub async fn push_durably(&self, event: LedgerEvent) {
        self.stats.entered_memory(1);
        if let Err(events) = self.write(vec![event]).await {
            self.stats.left_memory(events.len());
            for event in &events {
                lost(event, "the spill file cannot be written");
            }
        }
    }

    /// Appends the writer's events (already counted as in memory) and waits for the result.
    pub async fn write(&self, events: Vec<LedgerEvent>) -> Result<(), Refused> {
        let (ack, outcome) = oneshot::channel();
        match self.tx.send(Job::Batch(events, ack)).await {
            Ok(()) => outcome.await.unwrap_or_else(|_| Err(Vec::new())),
            Err(mpsc::error::SendError(Job::Batch(events, _))) => Err(events),
            Err(_) => Err(Vec::new()),
        }
    }

    /// Waits until every event queued so far is on disk.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Job::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// The last resort when neither PostgreSQL nor the disk takes an event: the whole event in
/// the error log (it carries no secret), so an operator can still recover it.
fn lost(event: &LedgerEvent, why: &str) {
    let json = serde_json::to_string(event).unwrap_or_default();
    tracing::error!(request_id = %event.request_id, event = %json, reason = why, "ledger event could not be stored");
}

struct SpillThread {
    rx: mpsc::Receiver<Job>,
    spill: Arc<Spill>,
    stats: Arc<LedgerStats>,
    batch_size: usize,
    appended: Arc<Appended>,
    last_log: Option<Instant>,
}

impl SpillThread {
    fn run(mut self) {
        let mut events = Vec::with_capacity(self.batch_size);
        while let Some(job) = self.rx.blocking_recv() {
            let mut next = Some(job);
            while let Some(job) = next.take() {
                match job {
                    Job::Event(event) => {
                        events.push(event);
                        if events.len() < self.batch_size {
                            next = self.rx.try_recv().ok();
                        }
                    }
                    Job::Batch(batch, ack) => {
                        self.append_until_done(&mut events);
                        let outcome = match self.append(&batch) {
                            Ok(()) => Ok(()),
                            Err(e) => {
                                tracing::error!(error = %e, dir = %self.spill.dir().display(), events = batch.len(), "ledger spill failed; the events stay in memory");
                                Err(batch)
                            }
                        };
                        // A writer that stopped waiting still counted these as in memory.
                        if let Err(Err(batch)) = ack.send(outcome) {
                            self.stats.left_memory(batch.len());
                            for event in &batch {
                                lost(event, "the spill file cannot be written");
                            }
                        }
                    }
                    Job::Flush(ack) => {
                        self.append_until_done(&mut events);
                        let _ = ack.send(());
                    }
                }
            }
            self.append_until_done(&mut events);
        }
    }

    /// Appends events from the request path, retrying until the disk takes them: they have
    /// nowhere else to go. Meanwhile the queue fills and the request path waits.
    fn append_until_done(&mut self, events: &mut Vec<LedgerEvent>) {
        let mut backoff = MIN_BACKOFF;
        while !events.is_empty() {
            match self.append(events) {
                Ok(()) => events.clear(),
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.spill.dir().display(), events = events.len(), "ledger spill failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn append(&mut self, events: &[LedgerEvent]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.spill.append(events)?;
        self.stats.reached_disk(events.len());
        self.stats.left_memory(events.len());
        self.appended.mark();
        if self.last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            self.last_log = Some(Instant::now());
            tracing::warn!(
                events = events.len(),
                spilled_total = self.stats.spilled.load(Ordering::Relaxed),
                dir = %self.spill.dir().display(),
                "ledger events spilled to disk: PostgreSQL is behind"
            );
        }
        Ok(())
    }
}
