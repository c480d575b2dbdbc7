//! Authentication and the key caches: refusals by reason, PostgreSQL reads, and the size of
//! each bounded structure (docs/operations.md, "Memory bounds").

use metrics::{counter, describe_counter, describe_gauge, gauge};

pub const AUTH_REFUSALS: &str = "tollgate_auth_refusals_total";
pub const KEY_POLICY_READS: &str = "tollgate_key_policy_reads_total";
pub const KNOWN_KEYS_READS: &str = "tollgate_known_keys_reads_total";
pub const KNOWN_KEYS: &str = "tollgate_known_keys";
pub const KEY_CACHE_ENTRIES: &str = "tollgate_key_cache_entries";
pub const AUTH_FAILURE_ADDRESSES: &str = "tollgate_auth_failure_addresses";

pub(super) fn describe() {
    describe_counter!(
        AUTH_REFUSALS,
        "Requests refused at authentication, by reason: missing, malformed, unknown, throttled."
    );
    describe_counter!(
        KEY_POLICY_READS,
        "PostgreSQL reads of a key's policy (a cache miss for a key that exists)."
    );
    describe_counter!(
        KNOWN_KEYS_READS,
        "PostgreSQL reads of new key hashes into the set of existing keys."
    );
    describe_gauge!(
        KNOWN_KEYS,
        "Key hashes (current and previous secrets) in the set of existing keys."
    );
    describe_gauge!(KEY_CACHE_ENTRIES, "Key policies held in the policy cache.");
    describe_gauge!(
        AUTH_FAILURE_ADDRESSES,
        "Client addresses whose failed authentications are being counted."
    );
}

/// `reason` is one of a fixed few, so the label set is bounded.
pub fn observe_auth_refusal(reason: &'static str) {
    counter!(AUTH_REFUSALS, "reason" => reason).increment(1);
}

pub fn observe_key_policy_read() {
    counter!(KEY_POLICY_READS).increment(1);
}

pub fn observe_known_keys_read() {
    counter!(KNOWN_KEYS_READS).increment(1);
}

/// Sets the size gauges of the key structures.
pub fn observe_key_bounds(known_keys: usize, cached_policies: u64, tracked_addresses: u64) {
    gauge!(KNOWN_KEYS).set(known_keys as f64);
    gauge!(KEY_CACHE_ENTRIES).set(cached_policies as f64);
    gauge!(AUTH_FAILURE_ADDRESSES).set(tracked_addresses as f64);
}
