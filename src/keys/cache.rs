//! The in-process cache of key policies that keeps PostgreSQL off the request path.
//!
//! A key not in the set of existing keys ([`KnownKeys`]) is refused without a read. A known
//! key is answered from a bounded `moka` cache (at most `max_entries` policies, each trusted
//! for `ttl`, a backstop for a missed invalidation); a miss reads PostgreSQL once, and
//! concurrent misses for the same key wait for that one read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::future::Cache;

use super::known::{KnownKeys, RefreshFailed};
use super::{KeyHash, KeyPolicy};
use crate::config::KeyCacheConfig;
use crate::governance::ScopeKind;
use crate::ids::KeyId;
use crate::store::Store;

/// `None`: a hash in the set that no key has any more (a secret replaced by a second
/// rotation), remembered for `negative_ttl`.
type Lookup = Option<Arc<KeyPolicy>>;

/// A policy read that overlapped this many invalidations in a row is used anyway: the TTL
/// still bounds how long it can be stale.
const MAX_REREADS: usize = 3;

#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyLookupError {
    #[error("reading the key's policy failed: {0}")]
    Database(Arc<sqlx::Error>),
    #[error(transparent)]
    KnownKeys(#[from] RefreshFailed),
}

struct Lifetimes {
    ttl: Duration,
    negative_ttl: Duration,
}

impl moka::Expiry<KeyHash, Lookup> for Lifetimes {
    fn expire_after_create(&self, _: &KeyHash, value: &Lookup, _: Instant) -> Option<Duration> {
        Some(match value {
            Some(_) => self.ttl,
            None => self.negative_ttl,
        })
    }
}

pub struct KeyCache {
    policies: Cache<KeyHash, Lookup>,
    known: KnownKeys,
    store: Store,
    /// Bumped by every invalidation, so a policy read that overlapped one is read again
    /// (`invalidate_entries_if` covers only entries already inserted).
    epoch: AtomicU64,
    policy_reads: AtomicU64,
}

impl KeyCache {
    pub fn new(store: Store, known: KnownKeys, config: &KeyCacheConfig) -> KeyCache {
        let policies = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(Lifetimes {
                ttl: config.ttl,
                negative_ttl: config.negative_ttl,
            })
            .support_invalidation_closures()
            .build();
        KeyCache {
            policies,
            known,
            store,
            epoch: AtomicU64::new(0),
            policy_reads: AtomicU64::new(0),
        }
    }

    /// The policy of the key with this hash, or `None` if no such key exists.
    pub async fn get(&self, hash: KeyHash) -> Result<Lookup, KeyLookupError> {
        if !self.known.confirm(hash).await? {
            return Ok(None);
        }
        self.policies
            .try_get_with(hash, self.read(hash))
            .await
            .map_err(KeyLookupError::Database)
    }

    async fn read(&self, hash: KeyHash) -> Result<Lookup, sqlx::Error> {
        let mut attempt = 0;
        loop {
            let epoch = self.epoch.load(Ordering::SeqCst);
            self.policy_reads.fetch_add(1, Ordering::Relaxed);
            crate::metrics::observe_key_policy_read();
            let lookup = self.store.key_policy_by_hash(hash).await?;
            attempt += 1;
            if epoch == self.epoch.load(Ordering::SeqCst) || attempt >= MAX_REREADS {
                return Ok(lookup);
            }
        }
    }

    /// The set of existing keys, for the refresher task and the admin API.
    pub fn known(&self) -> &KnownKeys {
        &self.known
    }

    /// Forgets a key by id (revocation, rotation, changes of its settings).
    pub fn invalidate_key(&self, key_id: KeyId) {
        self.invalidate_if(move |policy| policy.key_id == key_id);
    }

    /// Forgets every key that belongs to a scope whose limits changed.
    pub fn invalidate_scope(&self, kind: ScopeKind, id: uuid::Uuid) {
        self.invalidate_if(move |policy| match kind {
            ScopeKind::Key => policy.key_id.0 == id,
            ScopeKind::Experiment => policy.experiment_id.is_some_and(|e| e.0 == id),
            ScopeKind::Team => policy.team_id.0 == id,
        });
    }

    fn invalidate_if(&self, matches: impl Fn(&KeyPolicy) -> bool + Send + Sync + 'static) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let registered = self
            .policies
            .invalidate_entries_if(move |_, lookup| lookup.as_deref().is_some_and(&matches));
        if registered.is_err() {
            // Only possible if the cache were built without invalidation closures; dropping
            // everything is always safe.
            self.policies.invalidate_all();
        }
    }

    /// Forgets everything; used when invalidation messages may have been missed.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.policies.invalidate_all();
    }

    /// Cached policies (including pending evictions until [`KeyCache::sync`] runs).
    pub fn len(&self) -> u64 {
        self.policies.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies pending evictions and invalidations, so [`KeyCache::len`] is exact.
    pub async fn sync(&self) {
        self.policies.run_pending_tasks().await;
    }

    /// PostgreSQL reads of key policies since start-up.
    pub fn policy_reads(&self) -> u64 {
        self.policy_reads.load(Ordering::Relaxed)
    }
}
