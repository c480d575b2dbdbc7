//! Teams and experiments.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Store;
use crate::ids::{ExperimentId, TeamId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Experiment {
    pub id: ExperimentId,
    pub team_id: TeamId,
    pub name: String,
    pub tags: Vec<String>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub struct NewExperiment {
    pub team_id: TeamId,
    pub name: String,
    pub tags: Vec<String>,
    pub ends_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn create_team(&self, name: &str) -> Result<Team, sqlx::Error> {
        sqlx::query_as(
            "INSERT INTO teams (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(TeamId::new())
        .bind(name)
        .fetch_one(self.pool())
        .await
    }

    pub async fn list_teams(&self) -> Result<Vec<Team>, sqlx::Error> {
        sqlx::query_as("SELECT id, name, created_at FROM teams ORDER BY name")
            .fetch_all(self.pool())
            .await
    }

    /// Finds a team by id or, failing that, by name.
    pub async fn find_team(&self, id_or_name: &str) -> Result<Option<Team>, sqlx::Error> {
        let id = Uuid::parse_str(id_or_name).ok();
        sqlx::query_as(
            "SELECT id, name, created_at FROM teams WHERE id = $1 OR ($1 IS NULL AND name = $2)",
        )
        .bind(id)
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await
    }

    pub async fn create_experiment(&self, new: NewExperiment) -> Result<Experiment, sqlx::Error> {
        create_experiment_in(self.pool(), new).await
    }

    pub async fn list_experiments(
        &self,
        team: Option<TeamId>,
    ) -> Result<Vec<Experiment>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, team_id, name, tags, ends_at, created_at FROM experiments \
             WHERE $1::uuid IS NULL OR team_id = $1 ORDER BY created_at",
        )
        .bind(team)
        .fetch_all(self.pool())
        .await
    }

    pub async fn get_experiment(
        &self,
        id: ExperimentId,
    ) -> Result<Option<Experiment>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, team_id, name, tags, ends_at, created_at FROM experiments WHERE id = $1",
        )
        .bind(id)
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
        sqlx::query_as(
            "SELECT id, team_id, name, tags, ends_at, created_at FROM experiments \
             WHERE team_id = $1 AND (id = $2 OR ($2 IS NULL AND name = $3))",
        )
        .bind(team)
        .bind(id)
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await
    }
}

/// [`Store::create_experiment`] on any executor, so it can be part of a larger transaction.
pub(super) async fn create_experiment_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    new: NewExperiment,
) -> Result<Experiment, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO experiments (id, team_id, name, tags, ends_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, team_id, name, tags, ends_at, created_at",
    )
    .bind(ExperimentId::new())
    .bind(new.team_id)
    .bind(new.name)
    .bind(new.tags)
    .bind(new.ends_at)
    .fetch_one(db)
    .await
}
