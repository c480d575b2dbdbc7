//! Retention of the request log (`ledger.retention_days`): a task on every instance that,
//! once per `ledger.retention_interval_secs` across all of them, drops the request-log
//! partitions past the retention period (see `store::retention`), and the same run on demand
//! for `tollgate retention run`.

use std::sync::Arc;

use chrono::{DateTime, Days, TimeDelta, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::governance::Clock;
use crate::store::{RetentionReport, RetentionRun, Skipped, Store};

/// Longest a drop waits for queries reading the partition before the run gives up (and the
/// next one tries again): the ledger's writes queue behind a drop that waits.
const LOCK_TIMEOUT_MS: u64 = 5_000;

/// Requests created before this are past a retention of `days` whole UTC days: today, and
/// the `days` days before it, are kept.
pub fn cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let day = now
        .date_naive()
        .checked_sub_days(Days::new(u64::from(days)))
        .unwrap_or(chrono::NaiveDate::MIN);
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// One run now, whatever the last run was. `actor` names who asked, for the audit log.
pub async fn run_now(
    store: &Store,
    days: u32,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<Result<RetentionReport, Skipped>, sqlx::Error> {
    store
        .run_retention(&RetentionRun {
            actor,
            retention_days: days,
            cutoff: cutoff(now, days),
            not_within: None,
            lock_timeout_ms: LOCK_TIMEOUT_MS,
        })
        .await
}

/// Starts the periodic task. Every instance wakes once per interval (the first time at
/// start); the instances' runs are serialised by an advisory lock and skipped when another
/// instance ran within the interval, so there is one audited run per interval in all.
/// `stop` ends the task between runs; a run under way finishes, so its drops and its audit
/// row commit together.
pub fn spawn(
    store: Store,
    config: RetentionConfig,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Instances started together wake a little apart; a run a moment short of the
        // interval after the last still counts as due.
        let slack = config.interval / 20;
        let not_within =
            TimeDelta::from_std(config.interval.saturating_sub(slack)).unwrap_or(TimeDelta::MAX);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let run = RetentionRun {
                actor: "tollgate (ledger.retention_days)",
                retention_days: config.days,
                cutoff: cutoff(clock.now(), config.days),
                not_within: Some(not_within),
                lock_timeout_ms: LOCK_TIMEOUT_MS,
            };
            match store.run_retention(&run).await {
                Ok(Ok(report)) => log_report(&report),
                Ok(Err(Skipped::Busy)) => {
                    tracing::debug!("request-log retention skipped: another instance is running it")
                }
                Ok(Err(Skipped::RecentRun(at))) => {
                    tracing::debug!(last_run = %at, "request-log retention skipped: it ran within the interval")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "request-log retention failed; it runs again at the next interval")
                }
            }
        }
    })
}

pub fn log_report(report: &RetentionReport) {
    let partitions: Vec<&str> = report
        .dropped_partitions
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    tracing::info!(
        cutoff = %report.cutoff,
        retention_days = report.retention_days,
        dropped = ?partitions,
        default_partition_rows_deleted = report.default_partition_rows_deleted,
        "request-log retention ran"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_keeps_today_and_whole_days_before_it() {
        let now: DateTime<Utc> = "2026-03-01T10:30:00Z".parse().unwrap();
        assert_eq!(cutoff(now, 1).to_rfc3339(), "2026-02-28T00:00:00+00:00");
        assert_eq!(cutoff(now, 30).to_rfc3339(), "2026-01-30T00:00:00+00:00");
        assert_eq!(cutoff(now, 36_500).date_naive().to_string(), "1926-03-26");
    }
}
