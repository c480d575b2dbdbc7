//! Virtual keys as stored: hash and visible prefix only, never the secret.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use uuid::Uuid;

use super::Store;
use crate::governance::ScopeKind;
use crate::ids::{ExperimentId, KeyId, TeamId};
use crate::keys::{KeyHash, KeyPolicy};
use crate::tags::Tags;

/// A key as the admin API shows it (no secret, no hash). Every query that returns one lists
/// the same columns (queries are checked at compile time, so the list is written out in each).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyRecord {
    pub id: KeyId,
    pub team_id: TeamId,
    pub experiment_id: Option<ExperimentId>,
    pub name: Option<String>,
    pub prefix: String,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// After a rotation: when the previous secret stops working.
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// Tags each of its requests carries unless the request sets its own (over its
    /// experiment's defaults).
    pub default_tags: Tags,
}

pub struct NewKeyRecord {
    pub id: KeyId,
    pub hash: KeyHash,
    pub prefix: String,
}

#[derive(Debug, Default)]
pub struct KeyFilter {
    pub team: Option<TeamId>,
    pub experiment: Option<ExperimentId>,
}

struct PolicyRow {
    id: KeyId,
    team_id: TeamId,
    team_name: String,
    experiment_id: Option<ExperimentId>,
    experiment_name: Option<String>,
    name: Option<String>,
    key_prefix: String,
    allowed_models: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    experiment_ends_at: Option<DateTime<Utc>>,
    default_tags: Tags,
    experiment_default_tags: Tags,
    /// The hash presented is the key's previous secret (it was rotated).
    matched_previous: bool,
    previous_valid_until: Option<DateTime<Utc>>,
}

/// A key's current and previous hash.
struct HashRow {
    key_hash: Vec<u8>,
    previous_key_hash: Option<Vec<u8>>,
}

/// Where the next incremental read of key hashes starts: the oldest transaction still running
/// when the previous read took its snapshot (see migrations/0007_known_key_hashes.sql).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashHorizon(i64);

/// Key hashes read by [`Store::key_hashes`], as 64-bit prefixes.
pub struct KeyHashes {
    pub horizon: HashHorizon,
    pub prefixes: Vec<u64>,
}

impl Store {
    pub async fn key_policy_by_hash(
        &self,
        hash: KeyHash,
    ) -> Result<Option<Arc<KeyPolicy>>, sqlx::Error> {
        // The experiment's columns come from a LEFT JOIN: absent for a key of no experiment.
        let row = sqlx::query_as!(
            PolicyRow,
            r#"SELECT k.id AS "id: KeyId", k.team_id AS "team_id: TeamId", t.name AS team_name,
                      k.experiment_id AS "experiment_id: ExperimentId",
                      e.name AS "experiment_name?", k.name, k.key_prefix, k.allowed_models,
                      k.expires_at, k.revoked_at, e.ends_at AS "experiment_ends_at?",
                      k.key_hash <> $1 AS "matched_previous!", k.previous_valid_until,
                      k.default_tags::text AS "default_tags!: Tags",
                      COALESCE(e.default_tags, '{}')::text AS "experiment_default_tags!: Tags"
               FROM virtual_keys k JOIN teams t ON t.id = k.team_id
                 LEFT JOIN experiments e ON e.id = k.experiment_id
               WHERE k.key_hash = $1 OR k.previous_key_hash = $1"#,
            hash.as_bytes()
        )
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let mut scopes = vec![(ScopeKind::Key, r.id.0)];
        if let Some(experiment) = r.experiment_id {
            scopes.push((ScopeKind::Experiment, experiment.0));
        }
        scopes.push((ScopeKind::Team, r.team_id.0));
        let scopes = self.limits_of(&scopes).await?;
        Ok(Some(Arc::new(KeyPolicy {
            key_id: r.id,
            team_id: r.team_id,
            team_name: r.team_name,
            experiment_id: r.experiment_id,
            experiment_name: r.experiment_name,
            name: r.name,
            prefix: r.key_prefix,
            allowed_models: r.allowed_models.map(|m| m.into_iter().collect()),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            experiment_ends_at: r.experiment_ends_at,
            // A previous secret without a deadline cannot exist (a CHECK forbids it); were
            // it to, it would be refused rather than work for ever.
            grace_until: r
                .matched_previous
                .then(|| r.previous_valid_until.unwrap_or(DateTime::<Utc>::MIN_UTC)),
            default_tags: r.experiment_default_tags.merged(&r.default_tags),
            scopes,
        })))
    }

    /// The hashes (current and previous) of every key whose hashes were written since
    /// `since`, or of every key when `since` is `None`, with the horizon to pass next time.
    /// One read-only transaction, so the horizon and the rows come from one snapshot.
    pub async fn key_hashes(&self, since: Option<HashHorizon>) -> Result<KeyHashes, sqlx::Error> {
        let mut tx = self
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let horizon = sqlx::query_scalar!(
            r#"SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "horizon!""#
        )
        .fetch_one(&mut *tx)
        .await?;
        let mut prefixes = Vec::new();
        let mut rows = match since {
            None => sqlx::query_as!(
                HashRow,
                "SELECT key_hash, previous_key_hash FROM virtual_keys"
            )
            .fetch(&mut *tx),
            Some(HashHorizon(since)) => sqlx::query_as!(
                HashRow,
                "SELECT key_hash, previous_key_hash FROM virtual_keys
                 WHERE hashes_xid >= $1::bigint::text::xid8",
                since
            )
            .fetch(&mut *tx),
        };
        while let Some(row) = rows.try_next().await? {
            prefixes.extend(
                [Some(row.key_hash), row.previous_key_hash]
                    .into_iter()
                    .flatten()
                    .filter_map(|h| KeyHash::from_slice(&h))
                    .map(|h| h.prefix64()),
            );
        }
        drop(rows);
        tx.commit().await?;
        Ok(KeyHashes {
            horizon: HashHorizon(horizon),
            prefixes,
        })
    }

    pub async fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, sqlx::Error> {
        sqlx::query_as!(
            KeyRecord,
            r#"SELECT id AS "id: KeyId", team_id AS "team_id: TeamId",
                      experiment_id AS "experiment_id: ExperimentId", name, key_prefix AS prefix,
                      allowed_models, expires_at, revoked_at, created_at, previous_valid_until,
                      default_tags::text AS "default_tags!: Tags"
               FROM virtual_keys
               WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::uuid IS NULL OR experiment_id = $2)
               ORDER BY created_at, id"#,
            filter.team.map(|t| t.0),
            filter.experiment.map(|e| e.0)
        )
        .fetch_all(self.pool())
        .await
    }

    pub async fn get_key(&self, id: KeyId) -> Result<Option<KeyRecord>, sqlx::Error> {
        sqlx::query_as!(
            KeyRecord,
            r#"SELECT id AS "id: KeyId", team_id AS "team_id: TeamId",
                      experiment_id AS "experiment_id: ExperimentId", name, key_prefix AS prefix,
                      allowed_models, expires_at, revoked_at, created_at, previous_valid_until,
                      default_tags::text AS "default_tags!: Tags"
               FROM virtual_keys WHERE id = $1"#,
            id.0
        )
        .fetch_optional(self.pool())
        .await
    }
}

/// Inserts keys that share owner and settings, all or none, on any executor (the admin API
/// calls it inside a change's transaction).
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_keys_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    team: TeamId,
    experiment: Option<ExperimentId>,
    name: Option<&str>,
    allowed_models: Option<&[String]>,
    expires_at: Option<DateTime<Utc>>,
    default_tags: &Tags,
    keys: &[NewKeyRecord],
) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let ids: Vec<Uuid> = keys.iter().map(|k| k.id.0).collect();
    let hashes: Vec<&[u8]> = keys.iter().map(|k| k.hash.as_bytes()).collect();
    let prefixes: Vec<&str> = keys.iter().map(|k| k.prefix.as_str()).collect();
    // Borrowed elements (`&[u8]`, `&str`) skip the macro's check of these two binds (it only
    // knows owned ones); their SQL casts fix the types.
    sqlx::query_as!(
        KeyRecord,
        r#"INSERT INTO virtual_keys (id, team_id, experiment_id, name, key_hash, key_prefix,
                                    allowed_models, expires_at, default_tags)
           SELECT id, $4, $5, $6, hash, prefix, $7, $8, $9::text::jsonb
           FROM UNNEST($1::uuid[], $2::bytea[], $3::text[]) AS t(id, hash, prefix)
           RETURNING id AS "id: KeyId", team_id AS "team_id: TeamId",
                     experiment_id AS "experiment_id: ExperimentId", name, key_prefix AS prefix,
                     allowed_models, expires_at, revoked_at, created_at, previous_valid_until,
                      default_tags::text AS "default_tags!: Tags""#,
        &ids,
        hashes as _,
        prefixes as _,
        team.0,
        experiment.map(|e| e.0),
        name,
        allowed_models,
        expires_at,
        default_tags.to_json_text()
    )
    .fetch_all(db)
    .await
}
