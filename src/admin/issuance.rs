//! Issuing key secrets, in one place for every route that hands one out: `POST /keys`
//! (N new keys), `POST /campaigns` (a campaign's keys) and `POST /keys/{id}/rotate` (a new
//! secret under an existing id). [`issue`] generates the secrets, hashes them, takes their
//! visible prefixes, writes them in the caller's [`Tx`] and returns the secrets, which exist
//! nowhere else and are shown once.
//!
//! Whatever must follow the commit of new secrets (announcing them to other instances) hangs
//! off the one value every such route gets back: [`Issued::hashes`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::AdminError;
use crate::ids::KeyId;
use crate::keys::{KeyHash, NewKey};
use crate::store::{KeyRecord, KeySettings, NewKeyRecord, Tx};

/// What to issue.
pub enum Issue<'a> {
    /// `count` new keys sharing `settings`.
    New {
        settings: &'a KeySettings,
        count: u32,
    },
    /// A new secret for an existing key that is not revoked; its current secret keeps working
    /// until `previous_valid_until`.
    Rotation {
        key: KeyId,
        previous_valid_until: DateTime<Utc>,
    },
}

/// A key with its secret, shown once: in the answer to the call that issued it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub record: KeyRecord,
    /// The secret (`tg-...`). It is stored only as a hash: this answer is the only place it
    /// appears.
    pub key: String,
    #[serde(skip)]
    hash: KeyHash,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// The keys one call issued, in the order they were generated.
#[derive(Debug)]
pub struct Issued {
    pub keys: Vec<IssuedKey>,
}

impl Issued {
    /// The hashes of the new secrets: what instances look keys up by.
    pub fn hashes(&self) -> Vec<KeyHash> {
        self.keys.iter().map(|k| k.hash).collect()
    }

    /// The single key of a rotation (or of a call that issued one).
    pub fn into_one(self) -> Option<IssuedKey> {
        self.keys.into_iter().next()
    }
}

/// Why nothing was issued (besides a database error).
#[derive(Debug)]
pub enum IssueError {
    /// A rotation of a key that does not exist.
    NoSuchKey,
    /// A rotation of a revoked key: it stays revoked and gets no secret.
    Revoked,
    Database(sqlx::Error),
}

impl From<sqlx::Error> for IssueError {
    fn from(e: sqlx::Error) -> IssueError {
        IssueError::Database(e)
    }
}

/// Generates, hashes and writes the secrets of `what` in `tx`. Nothing is visible to anyone
/// until the caller commits `tx`.
pub async fn issue(tx: &mut Tx, what: Issue<'_>) -> Result<Issued, IssueError> {
    match what {
        Issue::New { settings, count } => {
            let fresh: Vec<(KeyId, NewKey)> = (0..count)
                .map(|_| (KeyId::new(), NewKey::generate()))
                .collect();
            let records: Vec<NewKeyRecord> = fresh
                .iter()
                .map(|(id, k)| NewKeyRecord {
                    id: *id,
                    hash: k.hash,
                    prefix: k.prefix.clone(),
                })
                .collect();
            let mut stored = tx.insert_keys(settings, &records).await?;
            let mut keys = Vec::with_capacity(fresh.len());
            for (id, new) in fresh {
                // The insert returns every row it wrote; matched by id, not by position.
                let index = stored
                    .iter()
                    .position(|r| r.id == id)
                    .ok_or(IssueError::Database(sqlx::Error::RowNotFound))?;
                keys.push(IssuedKey {
                    record: stored.swap_remove(index),
                    key: new.secret,
                    hash: new.hash,
                });
            }
            Ok(Issued { keys })
        }
        Issue::Rotation {
            key,
            previous_valid_until,
        } => {
            let current = tx.lock_key(key).await?.ok_or(IssueError::NoSuchKey)?;
            if current.revoked_at.is_some() {
                return Err(IssueError::Revoked);
            }
            let new = NewKey::generate();
            let record = tx
                .rotate_key(key, new.hash, &new.prefix, previous_valid_until)
                .await?
                .ok_or(IssueError::Revoked)?;
            Ok(Issued {
                keys: vec![IssuedKey {
                    record,
                    key: new.secret,
                    hash: new.hash,
                }],
            })
        }
    }
}

/// Issues `count` new keys with `settings` in `tx` (a new key has no rotation to refuse).
pub async fn issue_new(
    tx: &mut Tx,
    settings: &KeySettings,
    count: u32,
) -> Result<Issued, AdminError> {
    issue(tx, Issue::New { settings, count })
        .await
        .map_err(|e| match e {
            IssueError::Database(e) => AdminError::from(e),
            IssueError::NoSuchKey | IssueError::Revoked => AdminError::Internal,
        })
}
