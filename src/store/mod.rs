//! Everything Tollgate keeps in PostgreSQL. Only the control plane, the key cache's misses
//! and the ledger writer call it; the request path never waits on it for a cached key.
//!
//! The gateway opens two pools: one for the data plane (key lookups, budget rebuilds, the
//! ledger writer) and one for the admin API, so a heavy report can never take the
//! connections a request needs. Reports run under a statement timeout ([`Store::begin_report`]).

mod alerts;
mod audit;
mod campaigns;
mod filters;
mod key_changes;
mod keys;
mod ledger;
mod ledger_rows;
mod limits;
mod requests;
mod retention;
mod spend;
mod teams;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

pub use alerts::{AlertEventRow, AlertRule, AlertTarget, DueAlert, WindowStats};
pub use audit::{ActionFilter, AuditCursor, AuditEntry, AuditFilter, NewAuditEntry, Tx};
pub use campaigns::ClosedCampaign;
pub use key_changes::{KeyPatch, KeySettings};
pub use keys::{HashHorizon, KeyFilter, KeyHashes, KeyRecord, NewKeyRecord};
pub use requests::{RequestCursor, RequestFilter, RequestPage, RequestRow, StatusFilter};
pub use retention::{DroppedPartition, RETENTION_ACTION, RetentionReport, RetentionRun, Skipped};
pub use spend::{
    SpendDimension, SpendFilter, SpendMetric, SpendOrder, SpendOrderKey, SpendQuery, SpendRow,
    SpendTotals,
};
pub use teams::{Experiment, ExperimentState, NewExperiment, Team};

use crate::config::Secret;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Statement timeout of report queries; `None` lets them run as long as they take.
    report_timeout: Option<Duration>,
}

impl Store {
    /// A pool of up to `max_connections`; a query waits at most `acquire_timeout` for one.
    pub async fn connect(
        url: &Secret<String>,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect(url.expose())
            .await?;
        Ok(Store::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Store {
        Store {
            pool,
            report_timeout: None,
        }
    }

    /// The same pool, with report queries cancelled by PostgreSQL after `timeout`.
    pub fn with_report_timeout(mut self, timeout: Duration) -> Store {
        self.report_timeout = Some(timeout);
        self
    }

    pub fn report_timeout(&self) -> Option<Duration> {
        self.report_timeout
    }

    /// A transaction for a report: every statement in it is cancelled by PostgreSQL once
    /// it has run for the report timeout (an error [`is_statement_timeout`] recognises).
    /// The server enforces it, so a report stuck behind a lock or on a huge scan frees its
    /// connection even if the client has gone.
    pub async fn begin_report(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if let Some(timeout) = self.report_timeout {
            let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            // set_config(.., true) is SET LOCAL with a bound value: it ends with the transaction.
            sqlx::query!(
                "SELECT set_config('statement_timeout', $1, true)",
                format!("{millis}ms")
            )
            .fetch_one(&mut *tx)
            .await?;
        }
        Ok(tx)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query!("SELECT 1 AS one")
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
    }
}

/// True when PostgreSQL cancelled the statement: the report timeout ran out (SQLSTATE
/// 57014, `query_canceled`).
pub fn is_statement_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

/// True when the error is a unique-constraint violation (a name or hash already taken).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
