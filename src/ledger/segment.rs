//! Spill segments: ledger events that could not go to PostgreSQL yet, one JSON object per
//! line, appended and synced to disk before they leave memory.
//!
//! Appends go to this run's current segment, `<run>-<n>.jsonl`. To replay, the writer first
//! seals it (renames it to `<run>-<n>.sealed` under the append lock, so the next append
//! starts segment `n + 1`), then reads sealed segments in batches and deletes each only once
//! all of it is in PostgreSQL. A segment being replayed is therefore never appended to, and
//! an event appended meanwhile lands in a segment the next replay picks up.
//!
//! Everything here blocks on the file system: call it from the spill thread or
//! `spawn_blocking`, never from an async task.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::LedgerEvent;

const OPEN: &str = "jsonl";
const SEALED: &str = "sealed";

pub struct Spill {
    dir: PathBuf,
    /// Names this run's segments: `ledger-<uuid v7>`, so names sort by start time.
    run: String,
    current: Mutex<Current>,
}

#[derive(Default)]
struct Current {
    segment: Option<(PathBuf, File)>,
    next: u64,
}

impl Spill {
    pub fn new(dir: &Path, run: String) -> Spill {
        Spill {
            dir: dir.to_path_buf(),
            run,
            current: Mutex::new(Current::default()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends the events and syncs them to disk: once this returns `Ok`, they survive a
    /// crash. After a failed append the segment is closed, so a torn line is always the last
    /// line of its segment (and is skipped on replay); the caller retries the whole batch
    /// into a new segment, and an event written twice that way is inserted once.
    pub fn append(&self, events: &[LedgerEvent]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(events.len().saturating_mul(600));
        for event in events {
            serde_json::to_writer(&mut out, event)?;
            out.push(b'\n');
        }
        let mut current = self.lock();
        let result = self.write_current(&mut current, &out);
        if result.is_err() {
            current.segment = None;
        }
        result
    }

    fn write_current(&self, current: &mut Current, bytes: &[u8]) -> std::io::Result<()> {
        if current.segment.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let n = current.next;
            current.next = n.saturating_add(1);
            let path = self.dir.join(format!("{}-{n:06}.{OPEN}", self.run));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            sync_dir(&self.dir)?;
            current.segment = Some((path, file));
        }
        let Some((_, file)) = current.segment.as_mut() else {
            return Err(std::io::Error::other("no open spill segment"));
        };
        file.write_all(bytes)?;
        file.sync_data()
    }

    /// Closes the current segment for replay: the next append starts a new one.
    pub fn seal(&self) -> std::io::Result<()> {
        let mut current = self.lock();
        if let Some((path, file)) = current.segment.take() {
            drop(file);
            std::fs::rename(&path, path.with_extension(SEALED))?;
        }
        Ok(())
    }

    /// This run's sealed segments, oldest first.
    pub fn sealed_segments(&self) -> Vec<PathBuf> {
        let own = format!("{}-", self.run);
        self.files(|name, extension| name.starts_with(&own) && extension == SEALED)
    }

    /// Segments (open or sealed) of earlier runs, and spill files of older versions
    /// (`ledger-<uuid>.jsonl`), oldest first.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let own = format!("{}-", self.run);
        self.files(|name, extension| {
            !name.starts_with(&own) && (extension == OPEN || extension == SEALED)
        })
    }

    fn files(&self, keep: impl Fn(&str, &str) -> bool) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let extension = path.extension().and_then(|x| x.to_str()).unwrap_or("");
                keep(name, extension)
            })
            .collect();
        files.sort();
        files
    }
}

/// Makes a new file's directory entry durable: without it a crash could lose a whole
/// segment although its contents were synced. (Unix only: elsewhere a directory cannot be
/// opened as a file.)
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Reads a segment a batch at a time, so replay holds one batch in memory whatever the
/// segment's size.
pub struct SegmentReader {
    path: PathBuf,
    reader: BufReader<File>,
    line: usize,
    buf: Vec<u8>,
}

impl SegmentReader {
    pub fn open(path: &Path) -> std::io::Result<SegmentReader> {
        Ok(SegmentReader {
            path: path.to_path_buf(),
            reader: BufReader::new(File::open(path)?),
            line: 0,
            buf: Vec::new(),
        })
    }

    /// Up to `n` events; empty at the end of the segment. A line that does not parse (a
    /// torn final write after a crash) is reported and skipped rather than blocking every
    /// event after it.
    pub fn next_batch(&mut self, n: usize) -> std::io::Result<Vec<LedgerEvent>> {
        let mut events = Vec::with_capacity(n.min(1024));
        while events.len() < n {
            self.buf.clear();
            if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
                break;
            }
            self.line = self.line.saturating_add(1);
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(&self.buf) {
                Ok(event) => events.push(event),
                Err(e) => {
                    tracing::error!(file = %self.path.display(), line = self.line, error = %e, "unreadable spilled ledger event skipped")
                }
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{KeyId, RequestId, TeamId};

    fn event(n: u32) -> LedgerEvent {
        LedgerEvent {
            request_id: RequestId::new(),
            created_at: chrono::Utc::now(),
            team_id: TeamId::new(),
            experiment_id: None,
            key_id: KeyId::new(),
            key_prefix: Some("tg-abcdefgh".into()),
            model: "m".into(),
            upstream_model: "m".into(),
            deployment: "d".into(),
            provider: "openai".into(),
            status: 200,
            error_type: None,
            streamed: false,
            usage_estimated: false,
            usage: Default::default(),
            cost_usd: rust_decimal::Decimal::from(n),
            latency_ms: n,
            upstream_latency_ms: None,
            attempts: 1,
            refused_by: None,
        }
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("tollgate-spill-unit-{}", uuid::Uuid::new_v4()))
    }

    fn read_all(path: &Path, batch: usize) -> Vec<LedgerEvent> {
        let mut reader = SegmentReader::open(path).unwrap();
        let mut all = Vec::new();
        loop {
            let events = reader.next_batch(batch).unwrap();
            if events.is_empty() {
                return all;
            }
            assert!(events.len() <= batch);
            all.extend(events);
        }
    }

    #[test]
    fn appends_during_a_replay_go_to_a_new_segment_and_are_not_lost() {
        let dir = temp_dir();
        let spill = Spill::new(&dir, "ledger-run".into());
        let first: Vec<_> = (0..7).map(event).collect();
        spill.append(&first).unwrap();
        spill.seal().unwrap();
        let sealed = spill.sealed_segments();
        assert_eq!(sealed.len(), 1);

        // Replay has started reading the sealed segment when more events arrive.
        let mut reader = SegmentReader::open(&sealed[0]).unwrap();
        let mut replayed = reader.next_batch(3).unwrap();
        let second: Vec<_> = (7..12).map(event).collect();
        spill.append(&second).unwrap();
        loop {
            let batch = reader.next_batch(3).unwrap();
            if batch.is_empty() {
                break;
            }
            replayed.extend(batch);
        }
        assert_eq!(
            replayed, first,
            "the sealed segment holds exactly what it had"
        );
        std::fs::remove_file(&sealed[0]).unwrap();

        // The events appended meanwhile are in the next segment, found by the next replay.
        spill.seal().unwrap();
        let next = spill.sealed_segments();
        assert_eq!(next.len(), 1);
        assert_ne!(next[0], sealed[0]);
        assert_eq!(read_all(&next[0], 100), second);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_old_spill_files_still_parse() {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let events: Vec<_> = (0..3).map(event).collect();
        let mut text = String::new();
        for e in &events {
            text.push_str(&serde_json::to_string(e).unwrap());
            text.push('\n');
        }
        // A line from before `key_prefix` and `attempts` existed.
        let mut old = serde_json::to_value(event(9)).unwrap();
        old.as_object_mut().unwrap().remove("key_prefix");
        old.as_object_mut().unwrap().remove("attempts");
        text.push_str(&old.to_string());
        text.push('\n');
        text.push_str("{\"request_id\":\"01"); // torn write, then invalid UTF-8
        text.push('\n');
        let path = dir.join("ledger-old.jsonl");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        std::fs::write(&path, bytes).unwrap();

        let read = read_all(&path, 2);
        assert_eq!(read.len(), 4);
        assert_eq!(read[..3], events[..]);
        assert_eq!(read[3].key_prefix, None);
        assert_eq!(read[3].attempts, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftovers_are_other_runs_and_old_files_oldest_first() {
        let dir = temp_dir();
        let old = Spill::new(&dir, "ledger-0001".into());
        old.append(&[event(1)]).unwrap(); // left open, as by a crash
        let older_sealed = Spill::new(&dir, "ledger-0000".into());
        older_sealed.append(&[event(2)]).unwrap();
        older_sealed.seal().unwrap();
        std::fs::write(dir.join("ledger-legacy.jsonl"), "").unwrap();
        std::fs::write(dir.join("notes.txt"), "").unwrap();

        let spill = Spill::new(&dir, "ledger-0002".into());
        spill.append(&[event(3)]).unwrap();
        let names: Vec<String> = spill
            .leftovers()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ledger-0000-000000.sealed",
                "ledger-0001-000000.jsonl",
                "ledger-legacy.jsonl"
            ]
        );
        assert!(spill.sealed_segments().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
