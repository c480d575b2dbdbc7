//! The set of every key hash that exists, so a well-formed key that does not exist is refused
//! from memory instead of costing a PostgreSQL read.
//!
//! The set holds the 64-bit prefix of each key's current hash and of its previous one (a
//! rotated key's old secret, during its grace and after, so the old secret is told it expired
//! rather than that it is unknown). It is loaded whole at start-up and then kept current by
//! incremental reads of the rows written since the last read (migrations/0007). A read runs:
//!
//! - when a presented key is not in the set: the request waits for a read that *starts after
//!   it arrived*, so a key issued a moment ago through another instance's admin API is found;
//! - when an instance announces new keys (the `keys:added` invalidation message);
//! - every `refresh_interval`, a backstop for a missed message.
//!
//! Reads are single-flight and start at least `min_refresh_interval` apart: every miss that
//! arrives while a read is running or waiting shares the next one, so a flood of distinct
//! unknown keys costs PostgreSQL at most one read per `min_refresh_interval` per instance,
//! however many keys it sends.
//!
//! Hashes are never removed while the process runs: the set grows only with keys issued and
//! rotated through the admin API, never with what a stranger sends.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::KeyHash;
use crate::store::{HashHorizon, Store};

/// Longest a single read of the set may take before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct RefreshConfig {
    /// Shortest time between the starts of two reads.
    pub min_interval: Duration,
    /// Longest time between two reads when nothing asks for one.
    pub interval: Duration,
    /// Longest a request waits for the read its miss asked for.
    pub wait: Duration,
}

/// The set could not be brought up to date (PostgreSQL failed or was too slow), so whether
/// the key exists is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the set of existing keys could not be refreshed from PostgreSQL")]
pub struct RefreshFailed;

/// The last read that finished: its number and whether it succeeded.
#[derive(Debug, Clone, Copy)]
struct Finished {
    round: u64,
    ok: bool,
}

pub struct KnownKeys {
    prefixes: RwLock<HashSet<u64>>,
    horizon: Mutex<HashHorizon>,
    /// Number of the last read that started; read N starts after every miss that saw N - 1.
    started: AtomicU64,
    finished: watch::Sender<Finished>,
    wake: Notify,
    store: Store,
    config: RefreshConfig,
    reads: AtomicU64,
}

impl KnownKeys {
    /// Reads every key hash (one query), so the set is complete before the first request.
    pub async fn load(store: Store, config: RefreshConfig) -> Result<KnownKeys, sqlx::Error> {
        let all = store.key_hashes(None).await?;
        let mut prefixes = HashSet::with_capacity(all.prefixes.len());
        prefixes.extend(all.prefixes);
        Ok(KnownKeys {
            prefixes: RwLock::new(prefixes),
            horizon: Mutex::new(all.horizon),
            started: AtomicU64::new(0),
            finished: watch::Sender::new(Finished { round: 0, ok: true }),
            wake: Notify::new(),
            store,
            config,
            reads: AtomicU64::new(1),
        })
    }

    pub fn contains(&self, hash: KeyHash) -> bool {
        self.prefixes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&hash.prefix64())
    }

    /// Whether a key with this hash exists. Answers from memory when it is in the set;
    /// otherwise waits for a read that starts after this call, shared with every other miss.
    pub async fn confirm(&self, hash: KeyHash) -> Result<bool, RefreshFailed> {
        if self.contains(hash) {
            return Ok(true);
        }
        // Any read numbered above the one last started begins after this point.
        let round = self.started.load(Ordering::SeqCst).saturating_add(1);
        self.wake.notify_one();
        let mut finished = self.finished.subscribe();
        let outcome =
            tokio::time::timeout(self.config.wait, finished.wait_for(|f| f.round >= round))
                .await
                .ok()
                .and_then(|seen| seen.ok().map(|f| f.ok));
        if self.contains(hash) {
            return Ok(true);
        }
        match outcome {
            Some(true) => Ok(false),
            // The read failed, timed out, or the refresher is gone.
            _ => Err(RefreshFailed),
        }
    }

    /// Adds hashes this instance just wrote (it issued or rotated keys), before any read.
    pub fn note(&self, hashes: &[KeyHash]) {
        let mut prefixes = self
            .prefixes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        prefixes.extend(hashes.iter().map(KeyHash::prefix64));
    }

    /// Asks for a read soon (another instance announced new keys), without waiting for it.
    pub fn request_refresh(&self) {
        self.wake.notify_one();
    }

    pub fn len(&self) -> usize {
        self.prefixes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// PostgreSQL reads of the set since start-up, the initial load included.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Runs the reads until the process ends: one when asked (a miss, a message) or after
    /// `interval` without one, never two starting less than `min_interval` apart.
    pub async fn keep_current(&self) {
        let mut last_start = Instant::now();
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.interval) => {}
            }
            tokio::time::sleep_until(last_start + self.config.min_interval).await;
            last_start = Instant::now();
            let round = self
                .started
                .fetch_add(1, Ordering::SeqCst)
                .saturating_add(1);
            let ok = self.read_changes().await;
            self.finished.send_replace(Finished { round, ok });
        }
    }

    async fn read_changes(&self) -> bool {
        let since = *self.horizon.lock().unwrap_or_else(PoisonError::into_inner);
        self.reads.fetch_add(1, Ordering::Relaxed);
        crate::metrics::observe_known_keys_read();
        match tokio::time::timeout(READ_TIMEOUT, self.store.key_hashes(Some(since))).await {
            Ok(Ok(changed)) => {
                if !changed.prefixes.is_empty() {
                    let mut prefixes = self
                        .prefixes
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    prefixes.extend(changed.prefixes);
                }
                *self.horizon.lock().unwrap_or_else(PoisonError::into_inner) = changed.horizon;
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read new key hashes");
                false
            }
            Err(_) => {
                tracing::warn!(
                    timeout_secs = READ_TIMEOUT.as_secs(),
                    "reading new key hashes timed out"
                );
                false
            }
        }
    }
}
