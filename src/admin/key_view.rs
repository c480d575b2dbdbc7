//! A key as listings and `GET /keys/{id}` show it: the record, where it stands (`status`),
//! what it spent so far and its own limits. Never the secret or its hash.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::AdminState;
use super::error::AdminError;
use crate::governance::{Limits, ScopeKind};
use crate::ids::{ExperimentId, KeyId};
use crate::store::KeyRecord;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListedKey {
    #[serde(flatten)]
    pub record: KeyRecord,
    /// Whether the key works now, and if not why.
    pub status: KeyStatus,
    /// When the key's experiment ends (or ended): the key is refused from then on, whatever
    /// its own `expires_at`. `null` for a key without an experiment or an experiment without
    /// an end.
    pub experiment_ends_at: Option<DateTime<Utc>>,
    /// USD, exact, from the hourly rollups (a decimal string).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "12.3456")]
    pub spend_usd: Decimal,
    /// The key's own limits, as in `PUT .../limits`; `null` when it has none (its
    /// experiment's and team's limits are on those scopes).
    pub limits: Option<Limits>,
}

/// `active`, or why the key is refused: `revoked` (first), `expired` (its own `expires_at`
/// passed), `ended` (its experiment's `ends_at` passed, e.g. a closed campaign).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
    Ended,
}

impl KeyStatus {
    /// The refusal the data plane would give first, in the same order.
    pub fn of(
        record: &KeyRecord,
        experiment_ends_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> KeyStatus {
        if record.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if record.expires_at.is_some_and(|t| t <= now) {
            KeyStatus::Expired
        } else if experiment_ends_at.is_some_and(|t| t <= now) {
            KeyStatus::Ended
        } else {
            KeyStatus::Active
        }
    }
}

/// Adds status, spend and limits to keys with a fixed number of queries, whatever their number.
pub async fn with_usage(
    state: &AdminState,
    records: Vec<KeyRecord>,
) -> Result<Vec<ListedKey>, AdminError> {
    let ids: Vec<KeyId> = records.iter().map(|r| r.id).collect();
    let spend = state.store.spend_of_keys(&ids).await?;
    let scopes: Vec<(ScopeKind, uuid::Uuid)> =
        ids.iter().map(|id| (ScopeKind::Key, id.0)).collect();
    let mut limits: HashMap<uuid::Uuid, Limits> = state
        .store
        .limits_of(&scopes)
        .await?
        .into_iter()
        .map(|s| (s.id, s.limits))
        .collect();
    let mut experiments: Vec<ExperimentId> =
        records.iter().filter_map(|r| r.experiment_id).collect();
    experiments.sort_unstable();
    experiments.dedup();
    let ends = state.store.experiment_ends(&experiments).await?;
    let now = Utc::now();
    Ok(records
        .into_iter()
        .map(|record| {
            let experiment_ends_at = record.experiment_id.and_then(|e| ends.get(&e).copied());
            ListedKey {
                status: KeyStatus::of(&record, experiment_ends_at, now),
                experiment_ends_at,
                spend_usd: spend.get(&record.id).copied().unwrap_or(Decimal::ZERO),
                limits: limits.remove(&record.id.0),
                record,
            }
        })
        .collect())
}

/// One key with its status, spend and limits.
pub async fn one(state: &AdminState, record: KeyRecord) -> Result<ListedKey, AdminError> {
    with_usage(state, vec![record])
        .await?
        .pop()
        .ok_or(AdminError::Internal)
}
