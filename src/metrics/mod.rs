//! Prometheus metrics, served at `/metrics` on the data-plane listener (docs/operations.md).
//!
//! Two kinds of series live here:
//!
//! - **Counts and latencies** (requests, errors, tokens, histograms in seconds) go through the
//!   `metrics` crate into one process-wide Prometheus recorder ([`install`]).
//! - **Money** (spend, budget remaining) never goes through a float: it is kept as exact
//!   `Decimal` sums ([`exact`], [`budgets`]) and written into the scrape as decimal text.
//!   Token counts are kept there too, as saturating sums (the crate's counters wrap).
//!   `tollgate_cost_nanousd_total` is the exact integer counter (the floor of the exact sum in
//!   nano-USD); `tollgate_cost_usd_total` is the same sum in USD, for dashboards.
//!
//! Every counter of a request is fed from its ledger event by [`Ledger::record`], so the metrics
//! and the ledger count the same requests. The proxy adds what the event cannot carry:
//! [`observe_overhead`] (microsecond timings), [`note_budget_scopes`] and [`observe_unpriced`].
//!
//! Labels stay low-cardinality: team and experiment are ids (names would need a lookup per
//! request), `model` is the public model name only for routed requests (a configured model),
//! and key ids appear only with `metrics.key_labels = true`.
//!
//! [`Ledger::record`]: crate::ledger::Ledger::record

mod alerts;
mod budgets;
mod endpoint;
mod events;
mod exact;
mod keys;
mod text;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use alerts::{AlertDelivery, observe_alert_delivery, observe_alert_fired};
pub use budgets::note_budget_scopes;
pub use endpoint::{CONTENT_TYPE, router, spawn_background};
pub use events::observe_event;
pub use keys::{
    observe_auth_refusal, observe_key_bounds, observe_key_policy_read, observe_known_keys_read,
};

pub const REQUESTS: &str = "tollgate_requests_total";
pub const ERRORS: &str = "tollgate_errors_total";
pub const TOKENS: &str = "tollgate_tokens_total";
pub const COST_NANOUSD: &str = "tollgate_cost_nanousd_total";
pub const COST_USD: &str = "tollgate_cost_usd_total";
pub const UPSTREAM_LATENCY: &str = "tollgate_upstream_latency_seconds";
pub const GATEWAY_OVERHEAD: &str = "tollgate_gateway_overhead_seconds";
pub const ADMISSION_LATENCY: &str = "tollgate_admission_seconds";
pub const UNPRICED: &str = "tollgate_unpriced_requests_total";
pub const ORPHANED_ADMISSIONS: &str = "tollgate_orphaned_admissions_total";
pub const LEASE_RENEWALS: &str = "tollgate_governance_lease_renewals_total";
pub const SATURATED: &str = "tollgate_saturated_requests_total";
pub const LEDGER_QUEUE_DEPTH: &str = "tollgate_ledger_queue_depth";
pub const LEDGER_WRITTEN: &str = "tollgate_ledger_written_total";
pub const LEDGER_WRITE_FAILURES: &str = "tollgate_ledger_write_failures_total";
pub const LEDGER_SPILLED: &str = "tollgate_ledger_spilled_total";
pub const LEDGER_IN_MEMORY: &str = "tollgate_ledger_in_memory";
pub const LEDGER_IN_MEMORY_PEAK: &str = "tollgate_ledger_in_memory_peak";
pub const LEDGER_ON_DISK: &str = "tollgate_ledger_on_disk";
pub const LEDGER_REPLAYED: &str = "tollgate_ledger_replayed_total";
pub const LEDGER_JOURNALED: &str = "tollgate_ledger_journaled_total";
pub const LEDGER_JOURNAL_FAILURES: &str = "tollgate_ledger_journal_failures_total";
pub const BUDGET_REMAINING: &str = "tollgate_budget_remaining_usd";

/// Histogram bucket bounds in seconds: from 10 µs (the gateway's own overhead is tens of
/// microseconds) to a minute (a long generation).
const LATENCY_BUCKETS: [f64; 22] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder, installed on first use. Several apps in one process (the
/// tests) share it; if some other recorder was installed first, the handle renders only our
/// exact series and a warning is logged.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        };
        match builder().install_recorder() {
            Ok(handle) => {
                describe();
                handle
            }
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics will show only spend, budgets and the ledger");
                builder().build_recorder().handle()
            }
        }
    })
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    keys::describe();
    alerts::describe();
    describe_counter!(
        REQUESTS,
        "Requests recorded in the ledger, by team, experiment, model, provider and status class."
    );
    describe_counter!(
        ERRORS,
        "Requests that ended in an error, by error type (the ledger's error_type) and scope."
    );
    describe_counter!(
        UNPRICED,
        "Requests for models without a price, served at zero cost (pricing.allow_unpriced)."
    );
    describe_counter!(
        ORPHANED_ADMISSIONS,
        "Admissions Redis answered after their request stopped waiting (a timeout): what they took was released."
    );
    describe_counter!(
        LEASE_RENEWALS,
        "Governance lease calls to Redis, by outcome: granted (something was granted), held (nothing new: a report, a heartbeat or a give-back), lost (Redis no longer held the lease, or the call may have run unanswered), failed (did not run)."
    );
    describe_counter!(
        SATURATED,
        "Requests whose usage (what=usage: a token count of 2^64-1) or cost (what=cost: 9223372036.854775807 USD) reached the gateway's maximum and was recorded at it."
    );
    describe_histogram!(
        UPSTREAM_LATENCY,
        metrics::Unit::Seconds,
        "Time from sending the request upstream to the end of its response (millisecond resolution)."
    );
    describe_histogram!(
        GATEWAY_OVERHEAD,
        metrics::Unit::Seconds,
        "The gateway's own time per request: total latency minus upstream latency."
    );
    describe_histogram!(
        ADMISSION_LATENCY,
        metrics::Unit::Seconds,
        "Time a request with limits waited for its admission: the Redis round trip, batching included."
    );
}

/// Records the gateway's own time for one request: `total` (from the request's arrival to the
/// end of its response) minus `upstream` (the part spent waiting for the upstream). The proxy
/// calls it with `Instant`-based durations; the ledger's milliseconds are too coarse for it.
pub fn observe_overhead(total: Duration, upstream: Duration) {
    let overhead = total.saturating_sub(upstream);
    metrics::histogram!(GATEWAY_OVERHEAD).record(overhead.as_secs_f64());
}

/// Records how long one admission took in Redis, as the request saw it.
/// Counts an admission whose request had stopped waiting when Redis answered; the batcher
/// released what it took.
pub fn observe_orphaned_admission() {
    metrics::counter!(ORPHANED_ADMISSIONS).increment(1);
}

/// Counts one lease call by its outcome (`granted`, `held`, `lost`, `failed`).
pub fn observe_lease_renewal(outcome: &'static str) {
    metrics::counter!(LEASE_RENEWALS, "outcome" => outcome).increment(1);
}

pub fn observe_admission(waited: Duration) {
    metrics::histogram!(ADMISSION_LATENCY).record(waited.as_secs_f64());
}

/// Counts one request for a model without a price, served at zero cost. `model` is the
/// public name of a routed model, so the label set is bounded by the routing table.
pub fn observe_unpriced(model: &str) {
    metrics::counter!(UNPRICED, "model" => model.to_string()).increment(1);
}
