//! Who is calling the admin API, as the auth layer established it, and what they may see.
//!
//! An `admin` token sees everything. A `team` token sees only its own team: every lookup of a
//! team, experiment or key goes through the functions here, which answer a resource of
//! another team exactly as one that does not exist (404, and a message that does not echo
//! what was asked for), so ids and names of other teams cannot be probed.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AdminState;
use super::error::AdminError;
use crate::ids::{ExperimentId, KeyId, TeamId};
use crate::store::{Experiment, KeyRecord, Team};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Access {
    Admin,
    Team(TeamId),
}

/// The verified caller. Handlers take it as an extractor; the auth layer inserts it.
#[derive(Clone, Debug)]
pub struct Caller {
    subject: String,
    access: Access,
}

impl Caller {
    pub fn admin(subject: String) -> Caller {
        Caller {
            subject,
            access: Access::Admin,
        }
    }

    pub fn team(subject: String, team: TeamId) -> Caller {
        Caller {
            subject,
            access: Access::Team(team),
        }
    }

    /// The token's `sub`: who made a change, in the audit log.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `admin` or `team`.
    pub fn role(&self) -> &'static str {
        match self.access {
            Access::Admin => "admin",
            Access::Team(_) => "team",
        }
    }

    pub fn is_admin(&self) -> bool {
        self.access == Access::Admin
    }

    pub fn can_see_team(&self, team: TeamId) -> bool {
        match self.access {
            Access::Admin => true,
            Access::Team(own) => own == team,
        }
    }

    /// The team every listing must be restricted to (`None` for an admin: no restriction).
    pub fn team_filter(&self) -> Option<TeamId> {
        match self.access {
            Access::Admin => None,
            Access::Team(own) => Some(own),
        }
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), AdminError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AdminError::Forbidden(
                "this needs a token with role `admin`",
            ))
        }
    }

    /// The 404 for a `kind` named `input` that is missing or not visible. Admins get the name
    /// back; team tokens get the same words whether it exists elsewhere or not at all.
    pub fn not_found(&self, kind: &str, input: &str) -> AdminError {
        AdminError::NotFound(match self.access {
            Access::Admin => format!("no {kind} `{input}`"),
            Access::Team(_) => format!("no such {kind} in this token's team"),
        })
    }

    /// A team by id or name.
    pub async fn team_named(&self, state: &AdminState, input: &str) -> Result<Team, AdminError> {
        state
            .store
            .find_team(input)
            .await?
            .filter(|t| self.can_see_team(t.id))
            .ok_or_else(|| self.not_found("team", input))
    }

    /// An experiment named the way every route takes one: by id, or by name within `team`
    /// (an id or name; a team token's own team when not given). A name without a team is the
    /// same 400 wherever it happens, naming what to add.
    pub async fn experiment_named(
        &self,
        state: &AdminState,
        input: &str,
        team: Option<&str>,
    ) -> Result<Experiment, AdminError> {
        let own = self.team_filter().map(|t| t.to_string());
        match (team.or(own.as_deref()), uuid::Uuid::parse_str(input)) {
            (Some(team), _) => {
                let team = self.team_named(state, team).await?;
                self.experiment_in(state, &team, input).await
            }
            (None, Ok(id)) => state
                .store
                .get_experiment(ExperimentId(id))
                .await?
                .filter(|e| self.can_see_team(e.team_id))
                .ok_or_else(|| self.not_found("experiment", input)),
            (None, Err(_)) => Err(experiment_needs_team(input)),
        }
    }

    /// An experiment by id or by name within `team` (a team the caller can see).
    pub async fn experiment_in(
        &self,
        state: &AdminState,
        team: &Team,
        input: &str,
    ) -> Result<Experiment, AdminError> {
        state
            .store
            .find_experiment(team.id, input)
            .await?
            .filter(|e| self.can_see_team(e.team_id))
            .ok_or_else(|| match self.access {
                Access::Admin => AdminError::NotFound(format!(
                    "team `{}` has no experiment `{input}`",
                    team.name
                )),
                Access::Team(_) => self.not_found("experiment", input),
            })
    }

    /// A key by id.
    pub async fn key(&self, state: &AdminState, input: &str) -> Result<KeyRecord, AdminError> {
        let id = key_id(input)?;
        state
            .store
            .get_key(id)
            .await?
            .filter(|k| self.can_see_team(k.team_id))
            .ok_or_else(|| self.not_found("key", input))
    }
}

/// The one answer to an experiment named by name without its team: names are unique only
/// within a team.
pub fn experiment_needs_team(input: &str) -> AdminError {
    AdminError::TeamRequired(format!(
        "`{input}` is not an experiment id, and experiment names are unique only within a team: \
         give its team too (`team=<id or name>`), or the experiment's id"
    ))
}

/// A key is named by its id only (names and prefixes are not unique).
pub fn key_id(input: &str) -> Result<KeyId, AdminError> {
    uuid::Uuid::parse_str(input.trim()).map(KeyId).map_err(|_| {
        AdminError::NotAKeyId(format!(
            "`{input}` is not a key id: keys are named by their id (`GET /admin/v1/keys` lists them)"
        ))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, AdminError> {
        // Only reachable without the auth layer, i.e. a routing mistake: refuse.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| AdminError::unauthorized("send `Authorization: Bearer <admin JWT>`"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn team_callers_see_only_their_team_and_get_opaque_404s() {
        let own = TeamId::new();
        let caller = Caller::team("ci".into(), own);
        assert!(caller.can_see_team(own));
        assert!(!caller.can_see_team(TeamId::new()));
        assert_eq!(caller.team_filter(), Some(own));
        assert!(caller.require_admin().is_err());
        let AdminError::NotFound(message) = caller.not_found("team", "research") else {
            panic!("not a 404");
        };
        assert!(!message.contains("research"), "{message}");

        let admin = Caller::admin("ops".into());
        assert!(admin.can_see_team(own));
        assert_eq!(admin.team_filter(), None);
        assert!(admin.require_admin().is_ok());
        assert_eq!(admin.role(), "admin");
    }
}
