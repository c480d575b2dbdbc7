//! `[key_cache]` and `[client_auth]`: how keys are cached and how failed authentications are
//! limited, validated with errors that name the field.

use std::time::Duration;

use super::raw::{RawClientAuth, RawKeyCache};
use super::{ConfigError, Validator};

#[derive(Debug, Clone)]
pub struct KeyCacheConfig {
    /// How long a cached key policy is trusted before it is re-read (a backstop for missed
    /// invalidations).
    pub ttl: Duration,
    /// How long a hash that matches no key any more (a secret replaced by a second rotation)
    /// is remembered as such.
    pub negative_ttl: Duration,
    /// Most key policies held in memory; the least useful are evicted beyond it.
    pub max_entries: u64,
    /// Longest time between two reads of new key hashes when nothing asks for one.
    pub refresh_interval: Duration,
    /// Shortest time between the starts of two reads of new key hashes: unknown keys cost
    /// PostgreSQL at most one read per this interval, however many arrive.
    pub min_refresh_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ClientAuthConfig {
    /// Failed authentications one client address may make per minute before its requests
    /// are refused with 429 for the rest of that minute; `None`: no limit.
    pub max_failures_per_minute: Option<u32>,
    /// Most client addresses whose failures are tracked at once.
    pub tracked_addresses: u64,
    /// How many proxies in front of the gateway append to `X-Forwarded-For`; 0 trusts no
    /// header and uses the connection's peer address.
    pub trusted_proxy_hops: usize,
}

const MAX_PROXY_HOPS: usize = 10;

impl Validator<'_> {
    pub(super) fn key_cache(&self, raw: RawKeyCache) -> Result<KeyCacheConfig, ConfigError> {
        let max_entries = raw.max_entries.unwrap_or(100_000);
        if max_entries == 0 {
            return Err(self.invalid(
                "key_cache.max_entries",
                "must be at least 1",
                "set how many key policies to keep in memory (default 100000)",
            ));
        }
        let min_refresh_ms = raw.min_refresh_interval_ms.unwrap_or(100);
        if !(10..=60_000).contains(&min_refresh_ms) {
            return Err(self.invalid(
                "key_cache.min_refresh_interval_ms",
                format!("{min_refresh_ms} is out of range"),
                "use 10 to 60000 (default 100): a new key waits up to this long on an instance that has not heard of it",
            ));
        }
        let refresh_secs = raw.refresh_interval_secs.unwrap_or(30);
        if !(1..=3600).contains(&refresh_secs) {
            return Err(self.invalid(
                "key_cache.refresh_interval_secs",
                format!("{refresh_secs} is out of range"),
                "use 1 to 3600 (default 30)",
            ));
        }
        Ok(KeyCacheConfig {
            ttl: Duration::from_secs(raw.ttl_secs.unwrap_or(30)),
            negative_ttl: Duration::from_secs(raw.negative_ttl_secs.unwrap_or(5)),
            max_entries,
            refresh_interval: Duration::from_secs(refresh_secs),
            min_refresh_interval: Duration::from_millis(min_refresh_ms),
        })
    }

    pub(super) fn client_auth(&self, raw: RawClientAuth) -> Result<ClientAuthConfig, ConfigError> {
        let tracked_addresses = raw.tracked_addresses.unwrap_or(50_000);
        if tracked_addresses == 0 {
            return Err(self.invalid(
                "client_auth.tracked_addresses",
                "must be at least 1",
                "set how many client addresses to track (default 50000), or turn the limit off with max_failures_per_minute = 0",
            ));
        }
        let trusted_proxy_hops = raw.trusted_proxy_hops.unwrap_or(0);
        if trusted_proxy_hops > MAX_PROXY_HOPS {
            return Err(self.invalid(
                "client_auth.trusted_proxy_hops",
                format!("{trusted_proxy_hops} is out of range"),
                format!("use 0 to {MAX_PROXY_HOPS}: the number of proxies in front of the gateway that append to X-Forwarded-For"),
            ));
        }
        Ok(ClientAuthConfig {
            max_failures_per_minute: Some(raw.max_failures_per_minute.unwrap_or(100))
                .filter(|n| *n > 0),
            tracked_addresses,
            trusted_proxy_hops,
        })
    }
}
