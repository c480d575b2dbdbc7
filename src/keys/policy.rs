//! What the data plane needs to know about a virtual key, and the checks made on it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::governance::ScopeLimits;
use crate::ids::{ExperimentId, KeyId, TeamId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    pub key_id: KeyId,
    pub team_id: TeamId,
    pub experiment_id: Option<ExperimentId>,
    /// The visible prefix, safe to log.
    pub prefix: String,
    /// `None`: every configured model.
    pub allowed_models: Option<HashSet<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub experiment_ends_at: Option<DateTime<Utc>>,
    /// Set when the key was presented with its previous secret (after a rotation): that
    /// secret stops working at this time, whatever `expires_at` says.
    pub grace_until: Option<DateTime<Utc>>,
    /// Limits of the key, its experiment and its team, in that order (scopes without
    /// limits are left out).
    pub scopes: Vec<ScopeLimits>,
}

/// Why a known key may not be used right now (all answered with 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Revoked,
    Expired,
    ExperimentEnded,
}

impl KeyPolicy {
    pub fn check_usable(&self, now: DateTime<Utc>) -> Result<(), KeyRefusal> {
        if self.revoked_at.is_some_and(|t| t <= now) {
            return Err(KeyRefusal::Revoked);
        }
        if self.expires_at.is_some_and(|t| t <= now) || self.grace_until.is_some_and(|t| t <= now) {
            return Err(KeyRefusal::Expired);
        }
        if self.experiment_ends_at.is_some_and(|t| t <= now) {
            return Err(KeyRefusal::ExperimentEnded);
        }
        Ok(())
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|set| set.contains(model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn policy() -> KeyPolicy {
        KeyPolicy {
            key_id: KeyId::new(),
            team_id: TeamId::new(),
            experiment_id: None,
            prefix: "tg-abc".into(),
            allowed_models: None,
            expires_at: None,
            revoked_at: None,
            experiment_ends_at: None,
            grace_until: None,
            scopes: Vec::new(),
        }
    }

    #[test]
    fn refusals_in_order() {
        let now = Utc::now();
        let past = Some(now - Duration::seconds(1));
        let future = Some(now + Duration::hours(1));
        assert_eq!(policy().check_usable(now), Ok(()));
        assert_eq!(
            KeyPolicy {
                expires_at: future,
                ..policy()
            }
            .check_usable(now),
            Ok(())
        );
        assert_eq!(
            KeyPolicy {
                expires_at: past,
                ..policy()
            }
            .check_usable(now),
            Err(KeyRefusal::Expired)
        );
        assert_eq!(
            KeyPolicy {
                revoked_at: past,
                expires_at: past,
                ..policy()
            }
            .check_usable(now),
            Err(KeyRefusal::Revoked)
        );
        assert_eq!(
            KeyPolicy {
                experiment_ends_at: past,
                ..policy()
            }
            .check_usable(now),
            Err(KeyRefusal::ExperimentEnded)
        );
    }

    #[test]
    fn a_previous_secret_works_until_its_grace_ends() {
        let now = Utc::now();
        let in_grace = KeyPolicy {
            grace_until: Some(now + Duration::seconds(1)),
            ..policy()
        };
        assert_eq!(in_grace.check_usable(now), Ok(()));
        assert_eq!(
            in_grace.check_usable(now + Duration::seconds(1)),
            Err(KeyRefusal::Expired)
        );
        // The grace never outlives the key itself, and revocation still comes first.
        assert_eq!(
            KeyPolicy {
                expires_at: Some(now - Duration::seconds(1)),
                ..in_grace.clone()
            }
            .check_usable(now),
            Err(KeyRefusal::Expired)
        );
        assert_eq!(
            KeyPolicy {
                revoked_at: Some(now - Duration::seconds(1)),
                grace_until: Some(now - Duration::seconds(1)),
                ..policy()
            }
            .check_usable(now),
            Err(KeyRefusal::Revoked)
        );
    }

    #[test]
    fn model_allow_list() {
        let open = policy();
        let closed = KeyPolicy {
            allowed_models: Some(["a".to_string()].into()),
            ..policy()
        };
        assert!(open.allows_model("anything"));
        assert!(closed.allows_model("a"));
        assert!(!closed.allows_model("b"));
    }
}
