//! One instance per journal directory. Two gateways appending to and trimming one journal
//! would delete each other's segments, so the directory holds a `LOCK` file that the instance
//! keeps locked (`flock`, exclusive) while it runs. The kernel releases the lock when the
//! process ends, however it ends, so a `kill -9` never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for as long as the journal is in use; dropping it unlocks.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "ledger.journal_dir {dir} is in use by another tollgate process{holder} (lock file {lock}): give each instance its own journal_dir"
    )]
    InUse {
        dir: String,
        lock: String,
        holder: String,
    },
    #[error("cannot lock ledger.journal_dir {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// Creates `dir` if needed and locks it, or says which process holds it.
pub fn lock(dir: &Path) -> Result<DirLock, LockError> {
    let io = |source| LockError::Io {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path: PathBuf = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::InUse {
                dir: dir.display().to_string(),
                lock: path.display().to_string(),
                holder: if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Only for the message above: the lock itself is what counts.
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_directory_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("tollgate-lock-{}", uuid::Uuid::new_v4()));
        let first = lock(&dir).unwrap();
        let err = lock(&dir).unwrap_err().to_string();
        assert!(
            err.contains("is in use by another tollgate process")
                && err.contains(&format!("pid {}", std::process::id()))
                && err.contains("give each instance its own journal_dir"),
            "{err}"
        );
        drop(first);
        let _again = lock(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
