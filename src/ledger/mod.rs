//! The ledger: every request's attributed usage and cost, written to PostgreSQL by a batch
//! writer. It is not telemetry: an event is never dropped, and a crash of the process loses
//! none either.
//!
//! The path of an event, and what bounds the memory it takes:
//! 1. [`Ledger::record`] appends it to the journal (`journal`): a dedicated thread writes the
//!    events waiting, a group at a time, to a local segment file, and `record` returns once
//!    its event is written. The request path records before it releases the answer's last
//!    byte, so every answer a client saw in full is in the journal.
//! 2. The journal thread hands each written event to the writer's bounded in-memory queue
//!    (`ledger.max_in_memory`); the writer takes batches off it and writes them to
//!    PostgreSQL, idempotent by request id, and tells the journal, which deletes segments
//!    whose events are all there.
//! 3. When the queue is full (PostgreSQL slow or down), an event stays on disk only; the
//!    writer replays those segments batch by batch once PostgreSQL answers.
//! 4. At start-up, before the gateway serves, segments left by an earlier run (a crash, or a
//!    shutdown that could not write everything) are replayed. Replays never touch Redis: the
//!    settlement of a request already counted its spend there before the crash, or it
//!    expired with its reservation (see docs/operations.md, "Durability").
//! 5. Retention (`retention`) drops whole `request_log` partitions past `ledger.retention_days`.

mod journal;
mod lock;
pub mod retention;
mod segment;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ids::{ExperimentId, KeyId, RequestId, TeamId};
use crate::pricing::Usage;
use crate::tags::Tags;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use lock::LockError;
pub use writer::{LedgerWriter, StartError, WriterHandle};

/// Longest `model` the ledger keeps. The field is the name the client sent, and a request
/// refused for an unknown model can send anything up to the body limit; the queue's bound is
/// in events, so each event must stay small.
pub const MAX_MODEL_LEN: usize = 256;

/// One request as the ledger records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEvent {
    pub request_id: RequestId,
    /// Microsecond precision (what PostgreSQL stores), so a replayed event is identical.
    pub created_at: DateTime<Utc>,
    pub team_id: TeamId,
    pub experiment_id: Option<ExperimentId>,
    pub key_id: KeyId,
    /// The key's visible prefix when the request was made (a rotation later gives the key a
    /// new one). `None` in spill files written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// The public model name the client asked for.
    pub model: String,
    pub upstream_model: String,
    pub deployment: String,
    pub provider: String,
    /// The HTTP status the client saw (499 when the client went away first).
    pub status: u16,
    pub error_type: Option<String>,
    pub streamed: bool,
    /// True when the upstream did not report usage and the tokens are an estimate.
    pub usage_estimated: bool,
    pub usage: Usage,
    pub cost_usd: Decimal,
    pub latency_ms: u32,
    pub upstream_latency_ms: Option<u32>,
    /// Upstream attempts (fallbacks and retries included); `deployment` answered.
    #[serde(default = "one")]
    pub attempts: u16,
    /// The request's tags (none in journal segments written before tags existed).
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// The scope (`key`, `experiment`, `team`) whose limit refused the request, for metrics.
    /// Not stored in PostgreSQL: the error type and the scope's own records say the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<String>,
}

/// Spill files written before `attempts` existed describe single attempts.
fn one() -> u16 {
    1
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Events accepted by [`Ledger::record`].
    pub queued: AtomicU64,
    /// Events appended to the journal.
    pub journaled: AtomicU64,
    /// Failed journal appends (the events were then held in memory only until it worked).
    pub journal_failures: AtomicU64,
    /// Rows written to PostgreSQL: live events and replayed ones.
    pub written: AtomicU64,
    pub write_failures: AtomicU64,
    /// Events kept on disk only, in the journal, because the writer's queue was full.
    pub spilled: AtomicU64,
    /// Events replayed from journal segments into PostgreSQL (this run's and earlier runs').
    pub replayed: AtomicU64,
    in_memory: AtomicU64,
    in_memory_peak: AtomicU64,
    on_disk: AtomicU64,
}

impl LedgerStats {
    /// Events accepted but not yet written to PostgreSQL (in memory, or on disk only in this
    /// run's journal).
    pub fn depth(&self) -> u64 {
        self.in_memory().saturating_add(self.on_disk())
    }

    /// Events held in memory: waiting for the journal, in the writer's queue and batch.
    pub fn in_memory(&self) -> u64 {
        self.in_memory.load(Ordering::Relaxed)
    }

    /// The most events that were ever held in memory at once since start.
    pub fn in_memory_peak(&self) -> u64 {
        self.in_memory_peak.load(Ordering::Relaxed)
    }

    /// Events of this run on disk only (the writer's queue was full), not yet replayed.
    pub fn on_disk(&self) -> u64 {
        self.on_disk.load(Ordering::Relaxed)
    }

    /// Called before the events become visible to their consumer, so the gauge never reads
    /// lower than what is really held.
    fn entered_memory(&self, n: usize) {
        let n = n as u64;
        let now = self
            .in_memory
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        self.in_memory_peak.fetch_max(now, Ordering::Relaxed);
    }

    fn left_memory(&self, n: usize) {
        saturating_sub(&self.in_memory, n as u64);
    }

    fn reached_disk(&self, n: usize) {
        self.on_disk.fetch_add(n as u64, Ordering::Relaxed);
        self.spilled.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn left_disk(&self, n: u64) {
        saturating_sub(&self.on_disk, n);
    }
}

fn saturating_sub(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// The last resort when neither the journal nor the writer can take an event: the whole
/// event in the error log (it carries no secret), so an operator can still recover it.
fn lost(event: &LedgerEvent, why: &str) {
    let json = serde_json::to_string(event).unwrap_or_default();
    tracing::error!(request_id = %event.request_id, event = %json, reason = why, "ledger event could not be stored");
}

/// The request path's handle: appends events to the journal, which hands them to the writer.
#[derive(Clone)]
pub struct Ledger {
    journal: journal::Journal,
    stats: Arc<LedgerStats>,
    /// Label metrics with the key id (`metrics.key_labels`).
    key_labels: bool,
}

impl Ledger {
    /// Records an event; it is never dropped. Returns once the event is in the journal
    /// (written, and synced with `ledger.journal_fsync`), so a crash of the process from
    /// then on cannot lose it; that takes one group commit, usually well under a
    /// millisecond. It waits longer only while the journal's queue is full, or while the
    /// disk refuses appends and the writer's queue is full too. Every event also feeds the
    /// request, token and spend metrics, so they count exactly what the ledger counts.
    pub async fn record(&self, mut event: LedgerEvent) {
        truncate(&mut event.model, MAX_MODEL_LEN);
        crate::metrics::observe_event(&event, self.key_labels);
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.journal.append(event).await;
    }

    pub fn stats(&self) -> &Arc<LedgerStats> {
        &self.stats
    }

    /// Adds the key id to the labels of the metrics fed from events (off by default: one
    /// series per key can be a lot of series).
    pub fn with_key_labels(mut self, key_labels: bool) -> Ledger {
        self.key_labels = key_labels;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut text = "é".repeat(200); // 400 bytes
        truncate(&mut text, MAX_MODEL_LEN);
        assert_eq!(text.len(), MAX_MODEL_LEN);
        let mut odd = format!("a{}", "é".repeat(200));
        truncate(&mut odd, MAX_MODEL_LEN);
        assert_eq!(odd.len(), MAX_MODEL_LEN - 1);
        let mut short = "gpt-4o".to_string();
        truncate(&mut short, MAX_MODEL_LEN);
        assert_eq!(short, "gpt-4o");
    }

    #[test]
    fn memory_gauge_tracks_its_peak_and_never_underflows() {
        let stats = LedgerStats::default();
        stats.entered_memory(5);
        stats.entered_memory(3);
        stats.left_memory(6);
        stats.left_memory(10);
        assert_eq!(stats.in_memory(), 0);
        assert_eq!(stats.in_memory_peak(), 8);
    }
}
