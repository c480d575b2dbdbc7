//! The journal: every ledger event is appended to a local file before its request's answer
//! is released, so a crash of the process (a `kill -9`, the OOM killer, a panic) loses none
//! of them. Without `ledger.journal_fsync` an append is one `write(2)` into the kernel's page
//! cache, which outlives the process; the request's own task makes it, under a lock, because
//! that costs less than handing the event to another thread and being woken when it is done.
//! With fsync the events must also reach the disk, which outlives the machine, and a sync
//! takes milliseconds: a dedicated thread then does the appending with group commit (it
//! takes every event that is waiting, up to a batch, writes them with one `write(2)`, syncs
//! them, and only then answers their callers). The thread also trims and seals segments,
//! and takes over an append the disk refused, retrying it with backoff off the runtime.
//!
//! Once written, each event is handed to the writer's in-memory queue, tagged with the
//! segment that holds it. The writer reports what it has written to PostgreSQL, and a
//! sealed segment whose events are all there is deleted (trimmed). When the queue is full
//! (PostgreSQL slow or down) an event stays on disk only; its segment is then replayed by
//! the writer, batch by batch, once PostgreSQL keeps up, and deleted after that. So the
//! journal is also what used to be the spill file.
//!
//! A segment is sealed (closed for appends) when it reaches `SEGMENT_BYTES` or
//! `SEGMENT_AGE`, when the writer wants to replay it, and at shutdown. In the usual case a
//! segment is deleted within about a second of its last append, before the kernel has
//! written it back, so without fsync the journal rarely reaches the disk at all.

mod files;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};

use self::files::{Files, SEGMENT_AGE, Segments, Waiting};
use super::lock::DirLock;
use super::{LedgerEvent, LedgerStats};

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct JournalConfig {
    pub dir: PathBuf,
    /// Names this process's segments: time-ordered, so names sort by age.
    pub run: String,
    pub fsync: bool,
    /// Capacity of the queue in front of the thread.
    pub queue: usize,
    /// Most events appended with one write.
    pub group: usize,
}

/// An event on the writer's queue, with the journal segment that holds it (`None` when the
/// journal could not write it: it is then in memory only).
pub struct Queued {
    pub event: LedgerEvent,
    pub segment: Option<u64>,
}

/// A sealed segment with events that are on disk only, for the writer to replay.
pub struct Replayable {
    pub id: u64,
    pub path: PathBuf,
}

/// Tells the writer that events stayed on disk only since it last looked.
#[derive(Default)]
pub struct Overflowed {
    flag: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Overflowed {
    fn mark(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether anything overflowed since the last call. Taken before the writer asks for the
    /// segments to replay: an overflow after that sets it again, so none is missed.
    pub fn take(&self) -> bool {
        self.flag.swap(false, Ordering::AcqRel)
    }

    /// Resolves after the next overflow (or at once if one happened unobserved).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

// Nearly every job is an event: boxing it to shrink the rare variants would cost an
// allocation per event.
#[allow(clippy::large_enum_variant)]
enum Job {
    /// Appended with the others waiting; the sender hears once it is written.
    Event(LedgerEvent, oneshot::Sender<()>),
    /// Deletes the segments whose events are all in PostgreSQL. `force` also seals the
    /// current segment if it is done, however young (shutdown).
    Trim { force: bool },
    /// Seals the current segment if it has events on disk only, and lists every such sealed
    /// segment.
    SealForReplay(oneshot::Sender<Vec<Replayable>>),
}

/// The handle: appends events, and hears from the writer what is in PostgreSQL.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
    /// Shared with the thread; `None` with fsync, when only the thread appends.
    files: Option<Arc<SharedFiles>>,
    segments: Arc<Segments>,
    stats: Arc<LedgerStats>,
}

/// The files, locked by whoever appends.
struct SharedFiles(Mutex<Files>);

impl SharedFiles {
    fn lock(&self) -> MutexGuard<'_, Files> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Journal {
    /// Starts the journal thread, which hands written events to `writer`.
    pub fn start(
        config: JournalConfig,
        lock: DirLock,
        writer: mpsc::Sender<Queued>,
        stats: Arc<LedgerStats>,
        overflowed: Arc<Overflowed>,
    ) -> std::io::Result<Journal> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let segments = Arc::new(Segments::default());
        let group = config.group.max(1);
        let inline = !config.fsync;
        let files = Arc::new(SharedFiles(Mutex::new(Files::new(
            config,
            lock,
            segments.clone(),
            writer,
            stats.clone(),
            overflowed,
        ))));
        let thread = JournalThread {
            rx,
            group,
            files: files.clone(),
        };
        std::thread::Builder::new()
            .name("tollgate-ledger-journal".into())
            .spawn(move || thread.run())?;
        let journal = Journal {
            tx,
            files: inline.then_some(files),
            segments,
            stats,
        };
        // Holds only a weak sender: the task ends by itself once the journal is dropped.
        tokio::spawn(trim_periodically(journal.tx.downgrade()));
        Ok(journal)
    }

    /// Appends the event; returns once it is written (and synced, with `journal_fsync`).
    pub async fn append(&self, event: LedgerEvent) {
        self.stats.entered_memory(1);
        let event = match &self.files {
            Some(files) => match files.lock().append_one(event) {
                None => return,
                // The disk refused it: the thread holds it in memory, or retries.
                Some(event) => event,
            },
            None => event,
        };
        let (ack, written) = oneshot::channel();
        match self.tx.send(Job::Event(event, ack)).await {
            Ok(()) => {
                let _ = written.await;
            }
            Err(mpsc::error::SendError(job)) => {
                self.stats.left_memory(1);
                if let Job::Event(event, _) = job {
                    super::lost(&event, "the journal thread has stopped");
                }
            }
        }
    }

    /// The writer wrote events of these segments to PostgreSQL. True when a segment is now
    /// done and can be deleted.
    pub fn written(&self, segments: &[Option<u64>]) -> bool {
        let mut by_id = self.segments.lock();
        let mut done = false;
        for id in segments.iter().flatten() {
            if let Some(state) = by_id.get_mut(id) {
                state.in_memory = state.in_memory.saturating_sub(1);
                done |= state.sealed() && state.done();
            }
        }
        done
    }

    /// A replay wrote every event of segment `id` to PostgreSQL.
    pub fn replayed(&self, id: u64) {
        let mut by_id = self.segments.lock();
        if let Some(state) = by_id.get_mut(&id) {
            self.stats.left_disk(state.disk_only);
            state.disk_only = 0;
        }
    }

    /// Deletes the segments that are done (waits only for the thread's queue).
    pub async fn trim(&self, force: bool) {
        let _ = self.tx.send(Job::Trim { force }).await;
    }

    /// The sealed segments with events on disk only, sealing the current one first if it
    /// has any.
    pub async fn seal_for_replay(&self) -> Vec<Replayable> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Job::SealForReplay(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }
}

/// Seals and deletes segments that are done even when no write prompts it (the last
/// segment after traffic stops). Ends with the journal.
async fn trim_periodically(tx: mpsc::WeakSender<Job>) {
    let mut tick = tokio::time::interval(SEGMENT_AGE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(tx) = tx.upgrade() else { return };
        // A full queue means the thread is busy appending, and it trims as it rotates.
        if let Err(TrySendError::Closed(_)) = tx.try_send(Job::Trim { force: false }) {
            return;
        }
    }
}

struct JournalThread {
    rx: mpsc::Receiver<Job>,
    group: usize,
    files: Arc<SharedFiles>,
}

impl JournalThread {
    fn run(self) {
        let mut group: Waiting = Vec::with_capacity(self.group);
        let mut rx = self.rx;
        while let Some(job) = rx.blocking_recv() {
            let mut next = Some(job);
            while let Some(job) = next.take() {
                match job {
                    Job::Event(event, ack) => {
                        group.push((event, ack));
                        if group.len() < self.group {
                            next = rx.try_recv().ok();
                        }
                    }
                    Job::Trim { force } => {
                        commit(&self.files, &mut group);
                        self.files.lock().trim(force);
                    }
                    Job::SealForReplay(reply) => {
                        commit(&self.files, &mut group);
                        let _ = reply.send(self.files.lock().seal_for_replay());
                    }
                }
            }
            commit(&self.files, &mut group);
        }
        // Every handle is gone: the process is ending.
        self.files.lock().trim(true);
    }
}

/// Writes the group and answers its callers. While the disk refuses it, the events go to the
/// writer in memory only (a full disk must not stop the gateway answering); those the
/// writer's queue has no room for either wait here for the disk, with backoff. The lock is
/// not held while waiting: appends from requests' tasks must never wait for a backoff.
fn commit(files: &SharedFiles, group: &mut Waiting) {
    let mut backoff = MIN_BACKOFF;
    while !group.is_empty() {
        {
            let mut files = files.lock();
            if files.commit(group) {
                continue;
            }
            files.hand_over_in_memory(group);
        }
        if !group.is_empty() {
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
        }
    }
}
