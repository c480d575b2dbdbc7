//! The `[database]` and `[ledger]` sections: PostgreSQL pools, the report time limit, the
//! ledger's bounds, journal and retention.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawDatabase, RawLedger};
use super::{ConfigError, Validator};

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Connections of the data plane's pool: key-cache misses, budget rebuilds and the
    /// ledger writer. Admin traffic never takes one.
    pub pool_size: u32,
    /// Connections of the admin API's pool (reports, key and limit management).
    pub admin_pool_size: u32,
    /// Longest wait for a free connection before the caller gets an error.
    pub acquire_timeout: Duration,
    /// Longest a report query (spend, request log, audit log) may run before PostgreSQL
    /// cancels it.
    pub report_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Capacity of the in-memory queue between the journal and the writer. When it is full
    /// (PostgreSQL slow or down) new events stay on disk only, in the journal, until the
    /// writer replays them.
    pub max_in_memory: usize,
    /// This instance's journal: every event is appended here before its request's answer is
    /// released. One directory per instance (a lock file enforces it).
    pub journal_dir: PathBuf,
    /// Sync every journal append to the disk (`fdatasync`) before releasing the answers it
    /// carries: survives a machine crash, not only a process crash, at the cost of a disk
    /// flush per group of appends.
    pub journal_fsync: bool,
    /// Dropping old `request_log` partitions; `None` keeps every request forever.
    pub retention: Option<RetentionConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Requests are kept at least this many whole days (UTC).
    pub days: u32,
    /// How often the instances (together) run retention.
    pub interval: Duration,
}

impl LedgerConfig {
    /// The defaults, with the journal in `journal_dir`.
    pub fn with_dir(journal_dir: PathBuf) -> LedgerConfig {
        LedgerConfig {
            batch_size: 500,
            flush_interval: Duration::from_millis(20),
            max_in_memory: 10_000,
            journal_dir,
            journal_fsync: false,
            retention: None,
        }
    }

    /// Capacity of the journal's queue (events waiting for their append). A few batches:
    /// enough to keep the journal thread busy while one group is written, small next to the
    /// writer's queue.
    pub fn journal_queue(&self) -> usize {
        self.batch_size.saturating_mul(4)
    }

    /// The most events the ledger holds in memory at once, whatever PostgreSQL and the disk
    /// do: the journal's queue, the group being appended, the writer's queue and the batch
    /// the writer is writing (or replaying).
    pub fn memory_bound(&self) -> usize {
        self.max_in_memory
            .saturating_add(self.journal_queue())
            .saturating_add(self.batch_size.saturating_mul(2))
    }
}

const MAX_POOL_SIZE: u32 = 1000;
const MAX_IN_MEMORY: usize = 10_000_000;
/// A hundred years.
const MAX_RETENTION_DAYS: u32 = 36_500;
/// Thirty days.
const MAX_RETENTION_INTERVAL: u64 = 30 * 86_400;

impl Validator<'_> {
    pub(super) fn database(&self, raw: RawDatabase) -> Result<DatabaseConfig, ConfigError> {
        // The ledger writer holds one connection while it writes; a data pool of one would
        // leave key lookups waiting behind it.
        let pool_size = raw.pool_size.unwrap_or(10);
        if !(2..=MAX_POOL_SIZE).contains(&pool_size) {
            return Err(self.invalid(
                "database.pool_size",
                format!("{pool_size} is out of range"),
                format!("use 2 to {MAX_POOL_SIZE} (default 10)"),
            ));
        }
        let admin_pool_size = raw.admin_pool_size.unwrap_or(4);
        if !(1..=MAX_POOL_SIZE).contains(&admin_pool_size) {
            return Err(self.invalid(
                "database.admin_pool_size",
                format!("{admin_pool_size} is out of range"),
                format!("use 1 to {MAX_POOL_SIZE} (default 4)"),
            ));
        }
        let acquire_timeout = Duration::from_millis(raw.acquire_timeout_ms.unwrap_or(5000));
        if acquire_timeout.is_zero() {
            return Err(self.invalid(
                "database.acquire_timeout_ms",
                "must be greater than 0",
                "set how long a query may wait for a free connection (default 5000)",
            ));
        }
        let report_timeout = Duration::from_millis(raw.report_timeout_ms.unwrap_or(5000));
        if report_timeout.is_zero() {
            return Err(self.invalid(
                "database.report_timeout_ms",
                "must be greater than 0",
                "set how long a report may run, e.g. 30000 for 30 s (default 5000)",
            ));
        }
        Ok(DatabaseConfig {
            pool_size,
            admin_pool_size,
            acquire_timeout,
            report_timeout,
        })
    }

    pub(super) fn ledger(&self, raw: RawLedger) -> Result<LedgerConfig, ConfigError> {
        let batch_size = raw.batch_size.unwrap_or(500);
        if !(1..=10_000).contains(&batch_size) {
            return Err(self.invalid(
                "ledger.batch_size",
                format!("{batch_size} is out of range"),
                "use 1 to 10000",
            ));
        }
        let max_in_memory = raw.max_in_memory.unwrap_or(10_000);
        if !(batch_size..=MAX_IN_MEMORY).contains(&max_in_memory) {
            return Err(self.invalid(
                "ledger.max_in_memory",
                format!("{max_in_memory} is out of range"),
                format!(
                    "use ledger.batch_size ({batch_size}) to {MAX_IN_MEMORY} events (default 10000)"
                ),
            ));
        }
        let retention = match (raw.retention_days, raw.retention_interval_secs) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(self.invalid(
                    "ledger.retention_interval_secs",
                    "is set but ledger.retention_days is not",
                    "set ledger.retention_days to the days of requests to keep, or remove ledger.retention_interval_secs",
                ));
            }
            (Some(days), interval) => {
                if !(1..=MAX_RETENTION_DAYS).contains(&days) {
                    return Err(self.invalid(
                        "ledger.retention_days",
                        format!("{days} is out of range"),
                        format!(
                            "use 1 to {MAX_RETENTION_DAYS} days, or remove it to keep every request"
                        ),
                    ));
                }
                let interval = interval.unwrap_or(86_400);
                if !(60..=MAX_RETENTION_INTERVAL).contains(&interval) {
                    return Err(self.invalid(
                        "ledger.retention_interval_secs",
                        format!("{interval} is out of range"),
                        format!(
                            "use 60 to {MAX_RETENTION_INTERVAL} seconds (default 86400, a day)"
                        ),
                    ));
                }
                Some(RetentionConfig {
                    days,
                    interval: Duration::from_secs(interval),
                })
            }
        };
        Ok(LedgerConfig {
            batch_size,
            flush_interval: Duration::from_millis(raw.flush_interval_ms.unwrap_or(20)),
            max_in_memory,
            journal_dir: raw
                .journal_dir
                .unwrap_or_else(|| PathBuf::from(".tollgate/journal")),
            journal_fsync: raw.journal_fsync.unwrap_or(false),
            retention,
        })
    }
}
