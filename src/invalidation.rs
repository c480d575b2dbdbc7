//! Spreads key changes (revocation, new limits, new keys) to every gateway instance through
//! Redis pub/sub. A missed change is covered by the key cache's TTL, a missed new key by the
//! periodic read of new key hashes (and by the read any unknown key triggers), and a dropped
//! subscription clears the whole cache and reads new key hashes when it comes back.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::connect::redis::{RedisConnection, RedisConnector};
use crate::governance::ScopeKind;
use crate::ids::KeyId;
use crate::keys::KeyCache;

pub const CHANNEL: &str = "tollgate:invalidate:v1";
/// Keys were issued or rotated: read the new hashes into the set of existing keys.
const KEYS_ADDED: &str = "keys:added";

#[derive(Clone)]
pub struct Invalidator {
    redis: RedisConnection,
}

impl Invalidator {
    pub fn new(redis: RedisConnection) -> Invalidator {
        Invalidator { redis }
    }

    pub async fn key_changed(&self, key: KeyId) {
        self.publish(format!("key:{key}")).await;
    }

    /// Published after the transaction that issued or rotated keys committed, so a reader
    /// that gets it finds them.
    pub async fn keys_added(&self) {
        self.publish(KEYS_ADDED.to_string()).await;
    }

    pub async fn scope_changed(&self, kind: ScopeKind, id: uuid::Uuid) {
        self.publish(format!("scope:{}:{id}", kind.as_str())).await;
    }

    async fn publish(&self, message: String) {
        let mut conn = self.redis.clone();
        let result = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(&message)
            .query_async::<i64>(&mut conn)
            .await;
        if let Err(e) = result {
            // Other instances still pick the change up when their cache entry expires.
            tracing::warn!(message, error = %e, "could not publish an invalidation");
        }
    }
}

/// Listens for invalidations until the process ends, reconnecting with backoff.
pub async fn listen(redis: RedisConnector, keys: Arc<KeyCache>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match subscribe(&redis, &keys).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => tracing::warn!(error = %e, "invalidation subscription lost; retrying"),
        }
        // Messages may have been missed while disconnected.
        keys.clear();
        keys.known().request_refresh();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe(redis: &RedisConnector, keys: &KeyCache) -> redis::RedisResult<()> {
    let mut pubsub = redis.pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    keys.clear();
    keys.known().request_refresh();
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload: String = message.get_payload()?;
        apply(&payload, keys);
    }
    Ok(())
}

fn apply(message: &str, keys: &KeyCache) {
    if message == KEYS_ADDED {
        return keys.known().request_refresh();
    }
    if let Some(id) = message
        .strip_prefix("key:")
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
    {
        return keys.invalidate_key(KeyId(id));
    }
    let scope = message
        .strip_prefix("scope:")
        .and_then(|rest| rest.split_once(':'));
    match scope
        .and_then(|(kind, id)| Some((ScopeKind::parse(kind)?, uuid::Uuid::parse_str(id).ok()?)))
    {
        Some((kind, id)) => keys.invalidate_scope(kind, id),
        // An unknown message: forgetting everything is always safe.
        None => keys.clear(),
    }
}
