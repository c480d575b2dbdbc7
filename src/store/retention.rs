//! Retention of the request log: whole `request_log` partitions whose every row is older
//! than the cutoff are dropped, and older rows that landed in the default partition are
//! deleted. `spend_hourly` is never touched, so spend reports and budget rebuilds (which read
//! only the rollups) add up over any period, however old. Each run is one transaction with
//! its audit entry: the drops and the entry are committed together or not at all.

use chrono::{DateTime, Utc};

use serde::Serialize;

use super::{NewAuditEntry, Store};

/// Any constant: the advisory lock that lets one instance at a time run retention.
const RETENTION_LOCK: i64 = 0x746f_6c6c_7265_7465; // "tollrete"
/// The action of a run's audit entry.
pub const RETENTION_ACTION: &str = "ledger.retention";

/// One dropped partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DroppedPartition {
    pub name: String,
    pub from_at: DateTime<Utc>,
    pub to_at: DateTime<Utc>,
    /// PostgreSQL's estimate (counting would read the whole partition).
    pub estimated_rows: i64,
}

/// What a run did, as its audit entry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub retention_days: u32,
    /// Requests created before this were removed.
    pub cutoff: DateTime<Utc>,
    pub dropped_partitions: Vec<DroppedPartition>,
    /// Rows older than the cutoff deleted from the default partition (rows whose day had no
    /// partition when they were written).
    pub default_partition_rows_deleted: u64,
}

/// Why a run did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Another instance is running retention right now.
    Busy,
    /// The last run (by any instance) is more recent than the interval.
    RecentRun(DateTime<Utc>),
}

/// Who runs retention, for its audit entry.
pub struct RetentionRun<'a> {
    pub actor: &'a str,
    pub retention_days: u32,
    pub cutoff: DateTime<Utc>,
    /// Skip the run if one was recorded less than this long ago (`None`: run regardless).
    pub not_within: Option<chrono::TimeDelta>,
    /// Longest wait for the lock a drop needs (it waits for queries reading the partition).
    pub lock_timeout_ms: u64,
}

impl Store {
    /// Runs retention once; see the module documentation.
    pub async fn run_retention(
        &self,
        run: &RetentionRun<'_>,
    ) -> Result<Result<RetentionReport, Skipped>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RETENTION_LOCK)
            .fetch_one(tx.conn())
            .await?;
        if !locked {
            return Ok(Err(Skipped::Busy));
        }
        if let Some(within) = run.not_within {
            // The database's clock for both sides, as it stamped `at`.
            let recent: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT max(at) FROM audit_log WHERE action = $1 \
                 HAVING max(at) > now() - $2 * interval '1 second'",
            )
            .bind(RETENTION_ACTION)
            .bind(within.num_seconds())
            .fetch_optional(tx.conn())
            .await?
            .flatten();
            if let Some(last) = recent {
                return Ok(Err(Skipped::RecentRun(last)));
            }
        }
        // A drop waits for every query on the partition; rather than stall the ledger's
        // writes behind it for long, give up and try again next run.
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", run.lock_timeout_ms))
            .execute(tx.conn())
            .await?;
        let dropped: Vec<DroppedPartition> = sqlx::query_as(
            "SELECT name, from_at, to_at, estimated_rows FROM tollgate_request_log_partitions() \
             WHERE to_at <= $1 ORDER BY from_at",
        )
        .bind(run.cutoff)
        .fetch_all(tx.conn())
        .await?;
        for partition in &dropped {
            sqlx::query("SELECT tollgate_drop_request_log_partition($1)")
                .bind(&partition.name)
                .execute(tx.conn())
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM request_log_default WHERE created_at < $1")
            .bind(run.cutoff)
            .execute(tx.conn())
            .await?
            .rows_affected();
        let report = RetentionReport {
            retention_days: run.retention_days,
            cutoff: run.cutoff,
            dropped_partitions: dropped,
            default_partition_rows_deleted: deleted,
        };
        let entry = NewAuditEntry {
            actor: run.actor.to_owned(),
            role: "system",
            team_id: None,
            action: RETENTION_ACTION,
            target_kind: "request_log",
            target_id: "request_log".to_owned(),
            before: None,
            after: serde_json::to_value(&report).ok(),
        };
        tx.commit_audited(&[entry]).await?;
        Ok(Ok(report))
    }
}
