//! Changes to existing keys (a new secret, new settings) and what listings show next to them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::Store;
use super::keys::{KeyRecord, key_columns};
use crate::ids::KeyId;
use crate::keys::KeyHash;

/// What a `PATCH` changes: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyPatch {
    pub name: Option<Option<String>>,
    pub allowed_models: Option<Option<Vec<String>>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

pub enum Rotation {
    Rotated(KeyRecord),
    NoSuchKey,
    /// A revoked key stays revoked: it gets no new secret.
    Revoked,
}

impl Store {
    /// Gives a key a new secret under the same id. The current secret becomes the previous
    /// one, valid until `previous_valid_until`; a secret from an earlier rotation stops at once.
    pub async fn rotate_key(
        &self,
        id: KeyId,
        hash: KeyHash,
        prefix: &str,
        previous_valid_until: DateTime<Utc>,
    ) -> Result<Rotation, sqlx::Error> {
        let rotated: Option<KeyRecord> = sqlx::query_as(concat!(
            "UPDATE virtual_keys SET previous_key_hash = key_hash, previous_valid_until = $4, \
               key_hash = $2, key_prefix = $3 \
             WHERE id = $1 AND revoked_at IS NULL RETURNING ",
            key_columns!()
        ))
        .bind(id)
        .bind(hash.as_bytes())
        .bind(prefix)
        .bind(previous_valid_until)
        .fetch_optional(self.pool())
        .await?;
        Ok(match rotated {
            Some(record) => Rotation::Rotated(record),
            None if self.get_key(id).await?.is_some() => Rotation::Revoked,
            None => Rotation::NoSuchKey,
        })
    }

    /// Applies a patch; `None` if there is no such key.
    pub async fn update_key(
        &self,
        id: KeyId,
        patch: &KeyPatch,
    ) -> Result<Option<KeyRecord>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE virtual_keys SET \
               name = CASE WHEN $2 THEN $3::text ELSE name END, \
               allowed_models = CASE WHEN $4 THEN $5::text[] ELSE allowed_models END, \
               expires_at = CASE WHEN $6 THEN $7::timestamptz ELSE expires_at END \
             WHERE id = $1 RETURNING ",
            key_columns!()
        ))
        .bind(id)
        .bind(patch.name.is_some())
        .bind(patch.name.clone().flatten())
        .bind(patch.allowed_models.is_some())
        .bind(patch.allowed_models.clone().flatten())
        .bind(patch.expires_at.is_some())
        .bind(patch.expires_at.flatten())
        .fetch_optional(self.pool())
        .await
    }

    /// Every key's spend so far (the sum of its hourly rollups), in one grouped query. Keys
    /// that never spent are absent.
    pub async fn spend_of_keys(
        &self,
        keys: &[KeyId],
    ) -> Result<HashMap<KeyId, Decimal>, sqlx::Error> {
        let rows: Vec<(KeyId, Decimal)> = sqlx::query_as(
            "SELECT key_id, sum(cost_usd) FROM spend_hourly WHERE key_id = ANY($1) GROUP BY key_id",
        )
        .bind(keys)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, spend)| (key, spend.normalize()))
            .collect())
    }
}
