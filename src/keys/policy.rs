//! What the data plane needs to know about a virtual key, and the checks made on it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::governance::ScopeLimits;
use crate::ids::{ExperimentId, KeyId, TeamId};
use crate::tags::Tags;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    pub key_id: KeyId,
    pub team_id: TeamId,
    /// Names for messages, as they were when the policy was read.
    pub team_name: String,
    pub experiment_id: Option<ExperimentId>,
    pub experiment_name: Option<String>,
    /// The key's own label, if it has one.
    pub name: Option<String>,
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
    /// The experiment's default tags with the key's on top: under each request's own.
    pub default_tags: Tags,
}

/// Why a known key may not be used right now (all answered with 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    Revoked,
    Expired,
    /// The campaign's `ends_at` has passed (or it was closed).
    ExperimentEnded {
        experiment: String,
        team: String,
        ended_at: DateTime<Utc>,
    },
}

impl std::fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRefusal::Revoked => f.write_str("this virtual key has been revoked"),
            KeyRefusal::Expired => f.write_str("this virtual key has expired"),
            KeyRefusal::ExperimentEnded {
                experiment,
                team,
                ended_at,
            } => write!(
                f,
                "experiment \"{experiment}\" of team \"{team}\" ended at {}; its keys no longer work (more requests need a new campaign: `tollctl campaigns launch`)",
                ended_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

impl KeyPolicy {
    pub fn check_usable(&self, now: DateTime<Utc>) -> Result<(), KeyRefusal> {
        if self.revoked_at.is_some_and(|t| t <= now) {
            return Err(KeyRefusal::Revoked);
        }
        if self.expires_at.is_some_and(|t| t <= now) || self.grace_until.is_some_and(|t| t <= now) {
            return Err(KeyRefusal::Expired);
        }
        if let Some(ended_at) = self.experiment_ends_at.filter(|t| *t <= now) {
            return Err(KeyRefusal::ExperimentEnded {
                experiment: self.experiment_name.clone().unwrap_or_default(),
                team: self.team_name.clone(),
                ended_at,
            });
        }
        Ok(())
    }

    /// What messages call this key: its name, or else its visible prefix.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.prefix)
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
            team_name: "research".into(),
            experiment_id: None,
            experiment_name: None,
            name: None,
            prefix: "tg-abc".into(),
            allowed_models: None,
            expires_at: None,
            revoked_at: None,
            experiment_ends_at: None,
            grace_until: None,
            scopes: Vec::new(),
            default_tags: Tags::default(),
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
        let ended = KeyPolicy {
            experiment_id: Some(ExperimentId::new()),
            experiment_name: Some("gsm8k".into()),
            experiment_ends_at: past,
            ..policy()
        };
        assert_eq!(
            ended.check_usable(now),
            Err(KeyRefusal::ExperimentEnded {
                experiment: "gsm8k".into(),
                team: "research".into(),
                ended_at: now - Duration::seconds(1),
            })
        );
    }

    #[test]
    fn an_ended_experiment_is_named_with_its_team_and_end() {
        let ended_at = "2025-03-01T12:00:00Z".parse().unwrap();
        let refusal = KeyRefusal::ExperimentEnded {
            experiment: "gsm8k".into(),
            team: "research".into(),
            ended_at,
        };
        assert_eq!(
            refusal.to_string(),
            "experiment \"gsm8k\" of team \"research\" ended at 2025-03-01T12:00:00Z; its keys no longer work (more requests need a new campaign: `tollctl campaigns launch`)"
        );
    }

    #[test]
    fn a_key_is_called_by_its_name_or_else_its_prefix() {
        assert_eq!(policy().display_name(), "tg-abc");
        let named = KeyPolicy {
            name: Some("worker-1".into()),
            ..policy()
        };
        assert_eq!(named.display_name(), "worker-1");
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
