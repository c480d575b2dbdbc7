//! Journal segments on disk: ledger events as JSON lines, appended by the journal thread and
//! read back, a batch at a time, by replays. A segment is named `journal-<run>-<n>.jsonl`,
//! where `<run>` is a time-ordered id of the process that wrote it, so names sort by age.
//! Spill files of versions before the journal (`ledger-*.jsonl`, `ledger-*.sealed`) have the
//! same lines and are replayed the same way.
//!
//! Everything here blocks on the file system: call it from the journal thread or
//! `spawn_blocking`, never from an async task.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::LedgerEvent;

const EXTENSIONS: [&str; 2] = ["jsonl", "sealed"];

/// Segment `n` of run `run`.
pub fn segment_path(dir: &Path, run: &str, n: u64) -> PathBuf {
    dir.join(format!("journal-{run}-{n:06}.jsonl"))
}

/// Appends the events to `out`, one JSON line each.
pub fn encode(
    events: impl IntoIterator<Item = impl std::borrow::Borrow<LedgerEvent>>,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    for event in events {
        serde_json::to_writer(&mut *out, event.borrow())?;
        out.push(b'\n');
    }
    Ok(())
}

/// Every segment (and older spill file) in `dir`, oldest first; none if `dir` is missing.
pub fn existing_segments(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let extension = path.extension().and_then(|x| x.to_str()).unwrap_or("");
        if (name.starts_with("journal-") || name.starts_with("ledger-"))
            && EXTENSIONS.contains(&extension)
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Makes a new file's directory entry durable: without it a machine crash could lose a whole
/// segment although its contents were synced. (Unix only: elsewhere a directory cannot be
/// opened as a file.)
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
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
            tags: Default::default(),
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
    fn every_segment_and_older_spill_file_is_found_oldest_first() {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "journal-0002-000001.jsonl",
            "journal-0002-000000.jsonl",
            "ledger-0001-000000.sealed",
            "ledger-legacy.jsonl",
            "LOCK",
            "notes.txt",
        ] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let names: Vec<String> = existing_segments(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "journal-0002-000000.jsonl",
                "journal-0002-000001.jsonl",
                "ledger-0001-000000.sealed",
                "ledger-legacy.jsonl"
            ]
        );
        assert_eq!(
            segment_path(&dir, "0003", 7).file_name().unwrap(),
            "journal-0003-000007.jsonl"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
