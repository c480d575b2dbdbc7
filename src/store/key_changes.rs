//! Writing keys (issuing, revoking, a new secret, new settings), always inside an admin
//! change's [`Tx`], and what listings show next to them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::Store;
use super::audit::Tx;
use super::keys::{KeyRecord, NewKeyRecord, insert_keys_in};
use crate::ids::{ExperimentId, KeyId, TeamId};
use crate::keys::KeyHash;
use crate::tags::Tags;

/// What a `PATCH` changes: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyPatch {
    pub name: Option<Option<String>>,
    pub allowed_models: Option<Option<Vec<String>>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Replaces the key's default tags (`{}` removes them).
    pub default_tags: Option<Tags>,
}

/// What every key of one issuing call shares.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub team: TeamId,
    pub experiment: Option<ExperimentId>,
    /// The label stored on every key.
    pub name: Option<String>,
    /// `None`: any model.
    pub allowed_models: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub default_tags: Tags,
}

impl Tx {
    /// The key as it is, locked until the change commits, so concurrent changes of one key run
    /// one after the other and each audit entry's `before` is what the change replaced.
    pub async fn lock_key(&mut self, id: KeyId) -> Result<Option<KeyRecord>, sqlx::Error> {
        sqlx::query_as!(
            KeyRecord,
            r#"SELECT id AS "id: KeyId", team_id AS "team_id: TeamId",
                      experiment_id AS "experiment_id: ExperimentId", name, key_prefix AS prefix,
                      allowed_models, expires_at, revoked_at, created_at, previous_valid_until,
                      default_tags::text AS "default_tags!: Tags"
               FROM virtual_keys WHERE id = $1 FOR UPDATE"#,
            id.0
        )
        .fetch_optional(self.conn())
        .await
    }

    /// Inserts keys that share owner and settings, all or none.
    pub async fn insert_keys(
        &mut self,
        settings: &KeySettings,
        keys: &[NewKeyRecord],
    ) -> Result<Vec<KeyRecord>, sqlx::Error> {
        insert_keys_in(
            self.conn(),
            settings.team,
            settings.experiment,
            settings.name.as_deref(),
            settings.allowed_models.as_deref(),
            settings.expires_at,
            &settings.default_tags,
            keys,
        )
        .await
    }

    /// Revokes a key (keeping the first revocation time if it was already revoked).
    pub async fn revoke_key(&mut self, id: KeyId) -> Result<Option<KeyRecord>, sqlx::Error> {
        sqlx::query_as!(
            KeyRecord,
            r#"UPDATE virtual_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
               RETURNING id AS "id: KeyId", team_id AS "team_id: TeamId",
                         experiment_id AS "experiment_id: ExperimentId", name, key_prefix AS prefix,
                         allowed_models, expires_at, revoked_at, created_at, previous_valid_until,
                      default_tags::text AS "default_tags!: Tags""#,
            id.0
        )
        .fetch_optional(self.conn())
        .await
    }

    /// Gives a key that is not revoked a new secret under the same id. The current secret
    /// becomes the previous one, valid until `previous_valid_until`; a secret from an earlier
    /// rotation stops at once. `None` if there is no such key or it is revoked.
    pub async fn rotate_key(
        &mut self,
        id: KeyId,
        hash: KeyHash,
        prefix: &str,
        previous_valid_until: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, sqlx::Error> {
        sqlx::query_as!(
            KeyRecord,
            r#"UPDATE virtual_keys SET previous_key_hash = key_hash, previous_valid_until = $4,
                                      key_hash = $2, key_prefix = $3
               WHERE id = $1 AND revoked_at IS NULL
               RETURNING id AS "id: KeyId", team_id AS "team_id: TeamId",
                         experiment_id AS "experiment_id: ExperimentId", name, key_prefix AS prefix,
                         allowed_models, expires_at, revoked_at, created_at, previous_valid_until,
                      default_tags::text AS "default_tags!: Tags""#,
            id.0,
            hash.as_bytes(),
            prefix,
            previous_valid_until
        )
        .fetch_optional(self.conn())
        .await
    }

    /// Applies a patch; `None` if there is no such key.
    pub async fn update_key(
        &mut self,
        id: KeyId,
        patch: &KeyPatch,
    ) -> Result<Option<KeyRecord>, sqlx::Error> {
        sqlx::query_as!(
            KeyRecord,
            r#"UPDATE virtual_keys SET
                 name = CASE WHEN $2 THEN $3::text ELSE name END,
                 allowed_models = CASE WHEN $4 THEN $5::text[] ELSE allowed_models END,
                 expires_at = CASE WHEN $6 THEN $7::timestamptz ELSE expires_at END,
                 default_tags = COALESCE($8::text::jsonb, default_tags)
               WHERE id = $1
               RETURNING id AS "id: KeyId", team_id AS "team_id: TeamId",
                         experiment_id AS "experiment_id: ExperimentId", name, key_prefix AS prefix,
                         allowed_models, expires_at, revoked_at, created_at, previous_valid_until,
                      default_tags::text AS "default_tags!: Tags""#,
            id.0,
            patch.name.is_some(),
            patch.name.clone().flatten(),
            patch.allowed_models.is_some(),
            patch.allowed_models.as_ref().and_then(Option::as_deref),
            patch.expires_at.is_some(),
            patch.expires_at.flatten(),
            patch.default_tags.as_ref().map(Tags::to_json_text)
        )
        .fetch_optional(self.conn())
        .await
    }
}

impl Store {
    /// Every key's spend so far (the sum of its hourly rollups), in one grouped query. Keys
    /// that never spent are absent.
    pub async fn spend_of_keys(
        &self,
        keys: &[KeyId],
    ) -> Result<HashMap<KeyId, Decimal>, sqlx::Error> {
        let keys: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = sqlx::query!(
            r#"SELECT key_id AS "key_id: KeyId", sum(cost_usd) AS "spend!: Decimal"
               FROM spend_hourly WHERE key_id = ANY($1) GROUP BY key_id"#,
            &keys
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.key_id, row.spend.normalize()))
            .collect())
    }
}
