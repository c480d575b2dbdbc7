//! The journal's files: the open segment and what is known of every segment of this run.
//! Appends take them under a lock, from the journal thread (group commit) or from a
//! request's own task (without fsync), so both see one open segment.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::super::lock::DirLock;
use super::super::segment::{self, segment_path, sync_dir};
use super::super::{LedgerEvent, LedgerStats};
use super::{JournalConfig, Overflowed, Queued, Replayable};

/// A segment is sealed once it holds this much...
const SEGMENT_BYTES: u64 = 8 << 20;
/// ...or is this old, so a fully written segment is deleted soon after its last append.
pub(super) const SEGMENT_AGE: Duration = Duration::from_secs(1);
/// A failing disk fails every append; say so at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What is known about each segment of this run.
#[derive(Default)]
pub(super) struct Segments {
    by_id: Mutex<BTreeMap<u64, SegmentState>>,
}

pub(super) struct SegmentState {
    path: PathBuf,
    /// Events handed to the writer and not yet reported written.
    pub(super) in_memory: u64,
    /// Events the writer's queue had no room for: only a replay writes them.
    pub(super) disk_only: u64,
    sealed: bool,
}

impl SegmentState {
    pub(super) fn done(&self) -> bool {
        self.in_memory == 0 && self.disk_only == 0
    }

    pub(super) fn sealed(&self) -> bool {
        self.sealed
    }
}

impl Segments {
    pub(super) fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, SegmentState>> {
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Open {
    id: u64,
    file: File,
    bytes: u64,
    opened: Instant,
}

/// The files and where their events go once written.
pub(super) struct Files {
    config: JournalConfig,
    segments: Arc<Segments>,
    writer: mpsc::Sender<Queued>,
    stats: Arc<LedgerStats>,
    overflowed: Arc<Overflowed>,
    current: Option<Open>,
    next: u64,
    buf: Vec<u8>,
    last_log: Option<Instant>,
    /// Released with the last holder of the files (the thread or a handle).
    _lock: DirLock,
}

/// Events waiting for the journal thread, each with its caller to answer once it is written.
pub(super) type Waiting = Vec<(LedgerEvent, tokio::sync::oneshot::Sender<()>)>;

impl Files {
    pub(super) fn new(
        config: JournalConfig,
        lock: DirLock,
        segments: Arc<Segments>,
        writer: mpsc::Sender<Queued>,
        stats: Arc<LedgerStats>,
        overflowed: Arc<Overflowed>,
    ) -> Files {
        Files {
            config,
            segments,
            writer,
            stats,
            overflowed,
            current: None,
            next: 0,
            buf: Vec::new(),
            last_log: None,
            _lock: lock,
        }
    }

    /// Appends one event and hands it to the writer. Gives the event back, unwritten, when
    /// the disk refused it (counted and logged), for the journal thread to handle.
    pub(super) fn append_one(&mut self, event: LedgerEvent) -> Option<LedgerEvent> {
        match self.write(std::iter::once(&event)) {
            Ok(id) => self.hand_over_one(event, id),
            Err(e) => {
                self.failed(&e, 1);
                Some(event)
            }
        }
    }

    /// Writes the group and answers its callers; false when the disk refused it (counted
    /// and logged), with the group untouched.
    pub(super) fn commit(&mut self, group: &mut Waiting) -> bool {
        match self.write(group.iter().map(|(event, _)| event)) {
            Ok(id) => {
                self.hand_over(group, id);
                true
            }
            Err(e) => {
                self.failed(&e, group.len());
                false
            }
        }
    }

    fn failed(&mut self, e: &std::io::Error, events: usize) {
        self.stats.journal_failures.fetch_add(1, Ordering::Relaxed);
        if self.last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            self.last_log = Some(Instant::now());
            tracing::error!(error = %e, dir = %self.config.dir.display(), events, "cannot append to the ledger journal; events are held in memory only until it works again");
        }
    }

    /// Appends the events to the current segment (opening one if needed); returns its id.
    fn write<'a>(&mut self, events: impl Iterator<Item = &'a LedgerEvent>) -> std::io::Result<u64> {
        self.buf.clear();
        let mut count: u64 = 0;
        segment::encode(events.inspect(|_| count += 1), &mut self.buf)?;
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
                self.stats.journaled.fetch_add(count, Ordering::Relaxed);
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
                overflowed |= !self.queue(state, event, id);
                let _ = ack.send(());
            }
        }
        if overflowed {
            self.overflowed.mark();
        }
    }

    /// Hands one written event to the writer (as [`Files::hand_over`] does a group); gives
    /// it back in the case `hand_over` writes its group again.
    fn hand_over_one(&mut self, event: LedgerEvent, id: u64) -> Option<LedgerEvent> {
        let queued = {
            let mut by_id = self.segments.lock();
            let Some(state) = by_id.get_mut(&id) else {
                self.current = None;
                return Some(event);
            };
            self.queue(state, event, id)
        };
        if !queued {
            self.overflowed.mark();
        }
        None
    }

    /// Queues a written event for the writer, counting it in its segment; false when the
    /// queue had no room, so the event is on disk only.
    fn queue(&self, state: &mut SegmentState, event: LedgerEvent, id: u64) -> bool {
        let queued = Queued {
            event,
            segment: Some(id),
        };
        match self.writer.try_send(queued) {
            Ok(()) => {
                state.in_memory = state.in_memory.saturating_add(1);
                true
            }
            Err(_) => {
                state.disk_only = state.disk_only.saturating_add(1);
                self.stats.reached_disk(1);
                self.stats.left_memory(1);
                false
            }
        }
    }

    /// What the writer's queue takes goes there unjournaled, and its callers are answered;
    /// the rest stays in `group`.
    pub(super) fn hand_over_in_memory(&mut self, group: &mut Waiting) {
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

    pub(super) fn trim(&mut self, force: bool) {
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

    pub(super) fn seal_for_replay(&mut self) -> Vec<Replayable> {
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
