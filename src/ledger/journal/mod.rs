//! The journal: every ledger event is appended to a local file before its request's answer
//! is released, so a crash of the process (a `kill -9`, the OOM killer, a panic) loses none
//! of them. A dedicated thread does the appending with group commit: it takes every event
//! that is waiting (up to a batch), writes them with one `write(2)`, optionally syncs them
//! (`ledger.journal_fsync`), and only then answers their callers. Without the sync the
//! events are in the kernel's page cache, which outlives the process; with it they are on
//! the disk, which outlives the machine.
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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, oneshot};

use super::lock::DirLock;
use super::segment::{self, segment_path, sync_dir};
use super::{LedgerEvent, LedgerStats};

/// A segment is sealed once it holds this much...
const SEGMENT_BYTES: u64 = 8 << 20;
/// ...or is this old, so a fully written segment is deleted soon after its last append.
const SEGMENT_AGE: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A failing disk fails every group; say so at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

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

/// What is known about each segment of this run.
#[derive(Default)]
struct Segments {
    by_id: Mutex<BTreeMap<u64, SegmentState>>,
}

struct SegmentState {
    path: PathBuf,
    /// Events handed to the writer and not yet reported written.
    in_memory: u64,
    /// Events the writer's queue had no room for: only a replay writes them.
    disk_only: u64,
    sealed: bool,
}

impl SegmentState {
    fn done(&self) -> bool {
        self.in_memory == 0 && self.disk_only == 0
    }
}

impl Segments {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, SegmentState>> {
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The handle: appends events, and hears from the writer what is in PostgreSQL.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
    segments: Arc<Segments>,
    stats: Arc<LedgerStats>,
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
        let thread = JournalThread {
            rx,
            group: config.group.max(1),
            config,
            segments: segments.clone(),
            writer,
            stats: stats.clone(),
            overflowed,
            current: None,
            next: 0,
            buf: Vec::new(),
            last_log: None,
            _lock: lock,
        };
        std::thread::Builder::new()
            .name("tollgate-ledger-journal".into())
            .spawn(move || thread.run())?;
        let journal = Journal {
            tx,
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
                done |= state.sealed && state.done();
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

struct Open {
    id: u64,
    file: File,
    bytes: u64,
    opened: Instant,
}

struct JournalThread {
    rx: mpsc::Receiver<Job>,
    config: JournalConfig,
    group: usize,
    segments: Arc<Segments>,
    writer: mpsc::Sender<Queued>,
    stats: Arc<LedgerStats>,
    overflowed: Arc<Overflowed>,
    current: Option<Open>,
    next: u64,
    buf: Vec<u8>,
    last_log: Option<Instant>,
    /// Released when the thread ends, with the last handle.
    _lock: DirLock,
}

type Waiting = Vec<(LedgerEvent, oneshot::Sender<()>)>;

impl JournalThread {
    fn run(mut self) {
        let mut group: Waiting = Vec::with_capacity(self.group);
        while let Some(job) = self.rx.blocking_recv() {
            let mut next = Some(job);
            while let Some(job) = next.take() {
                match job {
                    Job::Event(event, ack) => {
                        group.push((event, ack));
                        if group.len() < self.group {
                            next = self.rx.try_recv().ok();
                        }
                    }
                    Job::Trim { force } => {
                        self.commit(&mut group);
                        self.trim(force);
                    }
                    Job::SealForReplay(reply) => {
                        self.commit(&mut group);
                        let _ = reply.send(self.seal_for_replay());
                    }
                }
            }
            self.commit(&mut group);
        }
        // Every handle is gone: the process is ending.
        self.trim(true);
    }

    /// Writes the group and answers its callers. While the disk refuses it, the events go to
    /// the writer in memory only (a full disk must not stop the gateway answering); those
    /// the writer's queue has no room for either wait here for the disk, with backoff.
    fn commit(&mut self, group: &mut Waiting) {
        let mut backoff = MIN_BACKOFF;
        while !group.is_empty() {
            match self.write(group) {
                Ok(id) => self.hand_over(group, id),
                Err(e) => {
                    self.stats.journal_failures.fetch_add(1, Ordering::Relaxed);
                    if self.last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                        self.last_log = Some(Instant::now());
                        tracing::error!(error = %e, dir = %self.config.dir.display(), events = group.len(), "cannot append to the ledger journal; events are held in memory only until it works again");
                    }
                    self.hand_over_in_memory(group);
                    if !group.is_empty() {
                        std::thread::sleep(backoff);
                        backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }

    /// Appends the group to the current segment (opening one if needed); returns its id.
    fn write(&mut self, group: &Waiting) -> std::io::Result<u64> {
        self.buf.clear();
        segment::encode(group.iter().map(|(event, _)| event), &mut self.buf)?;
        if let Some(open) = &self.current
            && (open.bytes >= SEGMENT_BYTES || open.opened.elapsed() >= SEGMENT_AGE)
        {
            self.seal_current();
            self.delete_done();
        }
        let fsync = self.config.fsync;
        let buf = std::mem::take(&mut self.buf);
        let written = self.open_current().and_then(|open| {
            open.file.write_all(&buf)?;
            if fsync {
                open.file.sync_data()?;
            }
            open.bytes = open.bytes.saturating_add(buf.len() as u64);
            Ok(open.id)
        });
        self.buf = buf;
        match written {
            Ok(id) => {
                self.stats
                    .journaled
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                Ok(id)
            }
            Err(e) => {
                // A torn write stays the last line of its segment (replays skip it).
                self.seal_current();
                Err(e)
            }
        }
    }

    fn open_current(&mut self) -> std::io::Result<&mut Open> {
        if self.current.is_none() {
            let id = self.next;
            let path = segment_path(&self.config.dir, &self.config.run, id);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            if self.config.fsync {
                sync_dir(&self.config.dir)?;
            }
            self.next = id.saturating_add(1);
            self.segments.lock().insert(
                id,
                SegmentState {
                    path,
                    in_memory: 0,
                    disk_only: 0,
                    sealed: false,
                },
            );
            self.current = Some(Open {
                id,
                file,
                bytes: 0,
                opened: Instant::now(),
            });
        }
        match self.current.as_mut() {
            Some(open) => Ok(open),
            None => Err(std::io::Error::other("no open journal segment")),
        }
    }

    /// Hands the written group to the writer and answers its callers. The counts change
    /// under the lock the writer's reports take, so a report never precedes its count.
    fn hand_over(&mut self, group: &mut Waiting, id: u64) {
        let mut overflowed = false;
        {
            let mut by_id = self.segments.lock();
            let Some(state) = by_id.get_mut(&id) else {
                // Not possible (the segment is open), but then the group is simply written
                // again into the next segment: a duplicate line is inserted once.
                self.current = None;
                return;
            };
            for (event, ack) in group.drain(..) {
                let queued = Queued {
                    event,
                    segment: Some(id),
                };
                match self.writer.try_send(queued) {
                    Ok(()) => state.in_memory = state.in_memory.saturating_add(1),
                    Err(_) => {
                        state.disk_only = state.disk_only.saturating_add(1);
                        self.stats.reached_disk(1);
                        self.stats.left_memory(1);
                        overflowed = true;
                    }
                }
                let _ = ack.send(());
            }
        }
        if overflowed {
            self.overflowed.mark();
        }
    }

    /// What the writer's queue takes goes there unjournaled, and its callers are answered;
    /// the rest stays in `group`.
    fn hand_over_in_memory(&mut self, group: &mut Waiting) {
        let mut kept = Vec::new();
        for (event, ack) in group.drain(..) {
            match self.writer.try_send(Queued {
                event,
                segment: None,
            }) {
                Ok(()) => {
                    let _ = ack.send(());
                }
                Err(TrySendError::Full(queued) | TrySendError::Closed(queued)) => {
                    kept.push((queued.event, ack));
                }
            }
        }
        *group = kept;
    }

    fn seal_current(&mut self) {
        if let Some(open) = self.current.take()
            && let Some(state) = self.segments.lock().get_mut(&open.id)
        {
            state.sealed = true;
        }
    }

    fn trim(&mut self, force: bool) {
        let current_done = self.current.as_ref().is_some_and(|open| {
            (force || open.opened.elapsed() >= SEGMENT_AGE)
                && self
                    .segments
                    .lock()
                    .get(&open.id)
                    .is_some_and(SegmentState::done)
        });
        if current_done {
            self.seal_current();
        }
        self.delete_done();
    }

    /// Deletes every sealed segment whose events are all in PostgreSQL.
    fn delete_done(&mut self) {
        let done: Vec<PathBuf> = {
            let mut by_id = self.segments.lock();
            let ids: Vec<u64> = by_id
                .iter()
                .filter(|(_, state)| state.sealed && state.done())
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| by_id.remove(id).map(|state| state.path))
                .collect()
        };
        for path in done {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::error!(file = %path.display(), error = %e, "cannot delete a ledger journal segment whose events are all in PostgreSQL; the next start replays it (without counting anything twice)");
            }
        }
    }

    fn seal_for_replay(&mut self) -> Vec<Replayable> {
        let current_overflowed = self.current.as_ref().is_some_and(|open| {
            self.segments
                .lock()
                .get(&open.id)
                .is_some_and(|state| state.disk_only > 0)
        });
        if current_overflowed {
            self.seal_current();
        }
        self.segments
            .lock()
            .iter()
            .filter(|(_, state)| state.sealed && state.disk_only > 0)
            .map(|(id, state)| Replayable {
                id: *id,
                path: state.path.clone(),
            })
            .collect()
    }
}
