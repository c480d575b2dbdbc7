//! The ledger: every request's attributed usage and cost, written to PostgreSQL by a batch
//! writer. It is not telemetry: an event is never dropped. When PostgreSQL is unreachable
//! events wait in memory, past a bound they are spilled to a local file, and both are
//! written once PostgreSQL is back; writes are idempotent by request id.

mod spill;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ids::{ExperimentId, KeyId, RequestId, TeamId};
use crate::pricing::Usage;

pub use writer::{LedgerWriter, WriterHandle};

/// One request as the ledger records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEvent {
    pub request_id: RequestId,
    /// Microsecond precision (what PostgreSQL stores), so a replayed event is identical.
    pub created_at: DateTime<Utc>,
    pub team_id: TeamId,
    pub experiment_id: Option<ExperimentId>,
    pub key_id: KeyId,
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
    /// The scope (`key`, `experiment`, `team`) whose limit refused the request, for metrics.
    /// Not stored in PostgreSQL: the error type and the scope's own records say the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<String>,
}

/// Spill files written before `attempts` existed describe single attempts.
fn one() -> u16 {
    1
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    pub write_failures: AtomicU64,
    pub spilled: AtomicU64,
}

impl LedgerStats {
    /// Events accepted but not yet written to PostgreSQL (in memory or spilled).
    pub fn depth(&self) -> u64 {
        self.queued
            .load(Ordering::Relaxed)
            .saturating_sub(self.written.load(Ordering::Relaxed))
    }
}

/// The request path's handle: hands events to the writer without waiting.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<LedgerEvent>,
    stats: Arc<LedgerStats>,
    spill: Arc<spill::SpillFile>,
    /// Label metrics with the key id (`metrics.key_labels`).
    key_labels: bool,
}

impl Ledger {
    /// Queues an event. Never blocks and never drops: if the writer has already stopped
    /// (shutdown), the event goes straight to the spill file for the next start to replay.
    /// Every event also feeds the request, token and spend metrics, so they count exactly
    /// what the ledger counts.
    pub fn record(&self, event: LedgerEvent) {
        crate::metrics::observe_event(&event, self.key_labels);
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(event)) = self.tx.send(event) {
            match self.spill.append(std::slice::from_ref(&event)) {
                Ok(()) => {
                    self.stats.spilled.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!(request_id = %event.request_id, error = %e, "ledger event could not be spilled")
                }
            }
        }
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
