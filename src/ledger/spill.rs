//! The spill file: ledger events that could not reach PostgreSQL, one JSON object per line,
//! appended and synced to disk before they leave memory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::LedgerEvent;

pub struct SpillFile {
    path: PathBuf,
    // Appends come from the writer and, after shutdown, from late events: one at a time.
    lock: Mutex<()>,
}

impl SpillFile {
    pub fn new(dir: &Path, name: &str) -> SpillFile {
        SpillFile {
            path: dir.join(name),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, events: &[LedgerEvent]) -> std::io::Result<()> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = Vec::with_capacity(events.len() * 512);
        for event in events {
            serde_json::to_writer(&mut out, event)?;
            out.push(b'\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&out)?;
        file.sync_data()
    }

    /// Removes the file after its events are in PostgreSQL.
    pub fn remove(&self) -> std::io::Result<()> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }
}

/// Reads a spill file. A line that does not parse (a torn final write after a crash) is
/// reported and skipped rather than blocking every event after it.
pub fn read_events(path: &Path) -> std::io::Result<Vec<LedgerEvent>> {
    let reader = BufReader::new(File::open(path)?);
    let mut events = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(event) => events.push(event),
            Err(e) => {
                tracing::error!(file = %path.display(), line = number + 1, error = %e, "unreadable spilled ledger event skipped")
            }
        }
    }
    Ok(events)
}

/// Spill files left by earlier runs, oldest first.
pub fn leftover_files(dir: &Path, except: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && p != except)
        .collect();
    files.sort();
    files
}
