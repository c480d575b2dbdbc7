//! The in-process cache of key policies that keeps PostgreSQL off the request path.
//!
//! A hit answers from memory. A miss reads PostgreSQL once; concurrent misses for the same
//! key wait for that one read. Entries are re-read after `ttl` (a backstop for a missed
//! invalidation message), and unknown keys are remembered for `negative_ttl` so a flood of
//! bad keys cannot reach the database.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use tokio::sync::OnceCell;

use super::{KeyHash, KeyPolicy};
use crate::config::KeyCacheConfig;
use crate::governance::ScopeKind;
use crate::ids::KeyId;
use crate::store::Store;

type Lookup = Option<Arc<KeyPolicy>>;

struct Entry {
    cell: Arc<OnceCell<Lookup>>,
    created: Instant,
}

pub struct KeyCache {
    entries: DashMap<KeyHash, Entry>,
    store: Store,
    config: KeyCacheConfig,
}

impl KeyCache {
    pub fn new(store: Store, config: KeyCacheConfig) -> KeyCache {
        KeyCache {
            entries: DashMap::new(),
            store,
            config,
        }
    }

    /// The policy of the key with this hash, or `None` if no such key exists.
    pub async fn get(&self, hash: KeyHash) -> Result<Lookup, sqlx::Error> {
        let cell = self.cell_for(hash);
        let result = cell
            .get_or_try_init(|| self.store.key_policy_by_hash(hash))
            .await;
        match result {
            Ok(lookup) => Ok(lookup.clone()),
            Err(e) => {
                // Do not cache the failure: the next request tries again.
                self.entries
                    .remove_if(&hash, |_, entry| Arc::ptr_eq(&entry.cell, &cell));
                Err(e)
            }
        }
    }

    fn cell_for(&self, hash: KeyHash) -> Arc<OnceCell<Lookup>> {
        if let Some(entry) = self.entries.get(&hash)
            && self.is_fresh(&entry)
        {
            return entry.cell.clone();
        }
        let fresh = Entry {
            cell: Arc::new(OnceCell::new()),
            created: Instant::now(),
        };
        let mut slot = self.entries.entry(hash).or_insert_with(|| Entry {
            cell: fresh.cell.clone(),
            created: fresh.created,
        });
        if !self.is_fresh(&slot) {
            *slot = fresh;
        }
        slot.cell.clone()
    }

    fn is_fresh(&self, entry: &Entry) -> bool {
        let ttl = match entry.cell.get() {
            Some(None) => self.config.negative_ttl,
            _ => self.config.ttl,
        };
        entry.created.elapsed() < ttl
    }

    /// Forgets one key so its next use re-reads PostgreSQL.
    pub fn invalidate_hash(&self, hash: KeyHash) {
        self.entries.remove(&hash);
    }

    /// Forgets a key by id (revocation, limit changes).
    pub fn invalidate_key(&self, key_id: KeyId) {
        self.entries.retain(|_, entry| match entry.cell.get() {
            Some(Some(policy)) => policy.key_id != key_id,
            _ => true,
        });
    }

    /// Forgets every key that belongs to a scope whose limits changed.
    pub fn invalidate_scope(&self, kind: ScopeKind, id: uuid::Uuid) {
        self.entries.retain(|_, entry| match entry.cell.get() {
            Some(Some(policy)) => match kind {
                ScopeKind::Key => policy.key_id.0 != id,
                ScopeKind::Experiment => policy.experiment_id.map(|e| e.0) != Some(id),
                ScopeKind::Team => policy.team_id.0 != id,
            },
            _ => true,
        });
    }

    /// Forgets everything; used when invalidation messages may have been missed.
    pub fn clear(&self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
