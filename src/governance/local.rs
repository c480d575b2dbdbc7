//! In-process limits checked before Redis: a per-instance ceiling and a per-key ceiling
//! that shield each instance (and Redis) from a runaway client, and the per-scope limiter
//! used while Redis is down for scopes that fail open. Keyed state is pruned periodically so
//! memory does not grow with the number of keys ever seen.

use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ids::KeyId;

pub struct LocalShield {
    instance: Option<DefaultDirectRateLimiter>,
    per_key: Option<DefaultKeyedRateLimiter<KeyId>>,
    /// By scope, and by model selector for a scope's limits on a model.
    fail_open: DashMap<(uuid::Uuid, Option<Box<str>>), Arc<DefaultDirectRateLimiter>>,
}

impl LocalShield {
    /// `instance_rps` and `key_rps`: requests per second on this instance (None: no ceiling).
    pub fn new(instance_rps: Option<u32>, key_rps: Option<u32>) -> LocalShield {
        let quota = |rps: u32| NonZeroU32::new(rps).map(Quota::per_second);
        LocalShield {
            instance: instance_rps.and_then(quota).map(RateLimiter::direct),
            per_key: key_rps.and_then(quota).map(RateLimiter::keyed),
            fail_open: DashMap::new(),
        }
    }

    /// False when this instance or this key is over its local ceiling.
    pub fn check(&self, key: KeyId) -> bool {
        self.instance.as_ref().is_none_or(|l| l.check().is_ok())
            && self
                .per_key
                .as_ref()
                .is_none_or(|l| l.check_key(&key).is_ok())
    }

    /// The fail-open limiter of one scope: its per-minute request limit, on this instance.
    pub fn check_fail_open(&self, scope: uuid::Uuid, model: Option<&str>, rpm: u32) -> bool {
        let Some(rpm) = NonZeroU32::new(rpm) else {
            return false;
        };
        let limiter = self
            .fail_open
            .entry((scope, model.map(Box::from)))
            .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_minute(rpm))))
            .clone();
        limiter.check().is_ok()
    }

    /// Drops state of keys not seen recently.
    pub fn prune(&self) {
        if let Some(per_key) = &self.per_key {
            per_key.retain_recent();
            per_key.shrink_to_fit();
        }
        self.fail_open.clear();
    }

    pub fn tracked_keys(&self) -> usize {
        self.per_key.as_ref().map_or(0, |l| l.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_key_ceiling_refuses_and_pruning_forgets_idle_keys() {
        let shield = LocalShield::new(None, Some(2));
        let key = KeyId::new();
        assert!(shield.check(key) && shield.check(key));
        assert!(
            !shield.check(key),
            "a third request in the same instant is over 2/s"
        );
        for _ in 0..100 {
            assert!(shield.check(KeyId::new()));
        }
        assert_eq!(shield.tracked_keys(), 101);
        // Once their buckets have refilled, keys are indistinguishable from new ones and go.
        std::thread::sleep(std::time::Duration::from_millis(1600));
        shield.prune();
        assert_eq!(shield.tracked_keys(), 0);
    }

    #[test]
    fn instance_ceiling_applies_to_every_key() {
        let shield = LocalShield::new(Some(3), None);
        let admitted = (0..10).filter(|_| shield.check(KeyId::new())).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn fail_open_limit_is_per_scope() {
        let shield = LocalShield::new(None, None);
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert!(shield.check_fail_open(a, None, 1));
        assert!(!shield.check_fail_open(a, None, 1));
        assert!(shield.check_fail_open(b, None, 1));
        // A scope's limit on a model is its own.
        assert!(shield.check_fail_open(a, Some("gpt-5"), 1));
        assert!(!shield.check_fail_open(a, Some("gpt-5"), 1));
    }
}
