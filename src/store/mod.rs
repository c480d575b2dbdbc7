//! Everything Tollgate keeps in PostgreSQL. Only the control plane, the key cache's misses
//! and the ledger writer call it; the request path never waits on it for a cached key.

mod audit;
mod campaigns;
mod filters;
mod key_changes;
mod keys;
mod ledger;
mod limits;
mod requests;
mod spend;
mod teams;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use audit::{ActionFilter, AuditCursor, AuditEntry, AuditFilter, NewAuditEntry};
pub use campaigns::{ClosedCampaign, NewCampaign};
pub use key_changes::{KeyPatch, Rotation};
pub use keys::{HashHorizon, KeyFilter, KeyHashes, KeyRecord, NewKeyRecord};
pub use requests::{RequestCursor, RequestFilter, RequestPage, RequestRow, StatusFilter};
pub use spend::{
    SpendDimension, SpendFilter, SpendMetric, SpendOrder, SpendOrderKey, SpendQuery, SpendRow,
    SpendTotals,
};
pub use teams::{Experiment, NewExperiment, Team};

use crate::config::Secret;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub async fn connect(url: &Secret<String>, max_connections: u32) -> Result<Store, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url.expose())
            .await?;
        Ok(Store { pool })
    }

    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// True when the error is a unique-constraint violation (a name or hash already taken).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
