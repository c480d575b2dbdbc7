//! Teams and experiments.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Store;
use super::audit::Tx;
use crate::ids::{ExperimentId, TeamId};
use crate::tags::Tags;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Read by every query that returns one with the same columns, the state computed as of the
/// statement's time (queries are checked at compile time, so the list is written out in each).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Experiment {
    pub id: ExperimentId,
    pub team_id: TeamId,
    pub name: String,
    pub tags: Vec<String>,
    /// From then on its keys are refused (`403 experiment_ended`); `null`: no end.
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When it was closed as a campaign (every key revoked); `null` if it never was.
    pub closed_at: Option<DateTime<Utc>>,
    /// Where it stands as of the answer.
    pub state: ExperimentState,
    /// Tags every request of its keys carries unless the request (or the key) sets its own.
    pub default_tags: Tags,
}

/// `running` until `ends_at`, `ended` after it, `closed` once closed as a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ExperimentState {
    Running,
    Ended,
    Closed,
}

pub struct NewExperiment {
    pub team_id: TeamId,
    pub name: String,
    pub tags: Vec<String>,
    pub ends_at: Option<DateTime<Utc>>,
    pub default_tags: Tags,
}

impl Store {
    pub async fn list_teams(&self) -> Result<Vec<Team>, sqlx::Error> {
        sqlx::query_as!(
            Team,
            r#"SELECT id AS "id: TeamId", name, created_at FROM teams ORDER BY name"#
        )
        .fetch_all(self.pool())
        .await
    }

    /// Finds a team by id or, failing that, by name.
    pub async fn find_team(&self, id_or_name: &str) -> Result<Option<Team>, sqlx::Error> {
        let id = Uuid::parse_str(id_or_name).ok();
        sqlx::query_as!(
            Team,
            r#"SELECT id AS "id: TeamId", name, created_at FROM teams
               WHERE id = $1 OR ($1 IS NULL AND name = $2)"#,
            id,
            id_or_name
        )
        .fetch_optional(self.pool())
        .await
    }

    pub async fn list_experiments(
        &self,
        team: Option<TeamId>,
    ) -> Result<Vec<Experiment>, sqlx::Error> {
        sqlx::query_as!(
            Experiment,
            r#"SELECT id AS "id: ExperimentId", team_id AS "team_id: TeamId", name, tags,
                      ends_at, created_at, closed_at, default_tags::text AS "default_tags!: Tags",
                      CASE WHEN closed_at IS NOT NULL THEN 'closed'
                           WHEN ends_at <= now() THEN 'ended'
                           ELSE 'running' END AS "state!: ExperimentState"
               FROM experiments WHERE $1::uuid IS NULL OR team_id = $1 ORDER BY created_at"#,
            team.map(|t| t.0)
        )
        .fetch_all(self.pool())
        .await
    }

    pub async fn get_experiment(
        &self,
        id: ExperimentId,
    ) -> Result<Option<Experiment>, sqlx::Error> {
        sqlx::query_as!(
            Experiment,
            r#"SELECT id AS "id: ExperimentId", team_id AS "team_id: TeamId", name, tags,
                      ends_at, created_at, closed_at, default_tags::text AS "default_tags!: Tags",
                      CASE WHEN closed_at IS NOT NULL THEN 'closed'
                           WHEN ends_at <= now() THEN 'ended'
                           ELSE 'running' END AS "state!: ExperimentState"
               FROM experiments WHERE id = $1"#,
            id.0
        )
        .fetch_optional(self.pool())
        .await
    }

    /// Finds an experiment of `team` by id or by name.
    pub async fn find_experiment(
        &self,
        team: TeamId,
        id_or_name: &str,
    ) -> Result<Option<Experiment>, sqlx::Error> {
        let id = Uuid::parse_str(id_or_name).ok();
        sqlx::query_as!(
            Experiment,
            r#"SELECT id AS "id: ExperimentId", team_id AS "team_id: TeamId", name, tags,
                      ends_at, created_at, closed_at, default_tags::text AS "default_tags!: Tags",
                      CASE WHEN closed_at IS NOT NULL THEN 'closed'
                           WHEN ends_at <= now() THEN 'ended'
                           ELSE 'running' END AS "state!: ExperimentState"
               FROM experiments WHERE team_id = $1 AND (id = $2 OR ($2 IS NULL AND name = $3))"#,
            team.0,
            id,
            id_or_name
        )
        .fetch_optional(self.pool())
        .await
    }

    /// The end time of each of these experiments that has one, in one query.
    pub async fn experiment_ends(
        &self,
        ids: &[ExperimentId],
    ) -> Result<HashMap<ExperimentId, DateTime<Utc>>, sqlx::Error> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let rows = sqlx::query!(
            r#"SELECT id AS "id: ExperimentId", ends_at AS "ends_at!"
               FROM experiments WHERE id = ANY($1) AND ends_at IS NOT NULL"#,
            &ids
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| (r.id, r.ends_at)).collect())
    }
}

impl Tx {
    pub async fn create_team(&mut self, name: &str) -> Result<Team, sqlx::Error> {
        sqlx::query_as!(
            Team,
            r#"INSERT INTO teams (id, name) VALUES ($1, $2)
               RETURNING id AS "id: TeamId", name, created_at"#,
            TeamId::new().0,
            name
        )
        .fetch_one(self.conn())
        .await
    }

    pub async fn create_experiment(
        &mut self,
        new: NewExperiment,
    ) -> Result<Experiment, sqlx::Error> {
        let default_tags = new.default_tags.to_json_text();
        sqlx::query_as!(
            Experiment,
            r#"INSERT INTO experiments (id, team_id, name, tags, ends_at, default_tags)
               VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
               RETURNING id AS "id: ExperimentId", team_id AS "team_id: TeamId", name, tags,
                         ends_at, created_at, closed_at, default_tags::text AS "default_tags!: Tags",
                         CASE WHEN closed_at IS NOT NULL THEN 'closed'
                              WHEN ends_at <= now() THEN 'ended'
                              ELSE 'running' END AS "state!: ExperimentState""#,
            ExperimentId::new().0,
            new.team_id.0,
            new.name,
            &new.tags,
            new.ends_at,
            default_tags
        )
        .fetch_one(self.conn())
        .await
    }
}
