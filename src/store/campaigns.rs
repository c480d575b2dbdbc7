//! Campaigns: an experiment, its limits and its keys created together, and closed together.
//! Each is one transaction, so a campaign never exists half-made or half-closed.

use super::Store;
use super::keys::{KeyRecord, NewKeyRecord, insert_keys_in};
use super::limits::write_limits;
use super::teams::{Experiment, NewExperiment, create_experiment_in};
use crate::governance::{Limits, ScopeKind};
use crate::ids::{ExperimentId, KeyId};

/// Everything a campaign launch creates.
pub struct NewCampaign {
    pub experiment: NewExperiment,
    /// The experiment's limits and budgets; `None` leaves it unlimited.
    pub limits: Option<Limits>,
    /// Models every key may call; `None` means any.
    pub allowed_models: Option<Vec<String>>,
    /// The label stored on every key.
    pub key_name: Option<String>,
    pub keys: Vec<NewKeyRecord>,
}

/// What [`Store::close_campaign`] did.
pub struct ClosedCampaign {
    pub experiment: Experiment,
    /// Keys this call revoked (keys revoked earlier are not counted again).
    pub revoked: Vec<KeyId>,
}

impl Store {
    /// Creates the experiment, its limits and its keys in one transaction: if any part fails
    /// (the name is taken, a constraint is violated) nothing is created.
    pub async fn launch_campaign(
        &self,
        new: NewCampaign,
    ) -> Result<(Experiment, Vec<KeyRecord>), sqlx::Error> {
        let team = new.experiment.team_id;
        let mut tx = self.pool().begin().await?;
        let experiment = create_experiment_in(&mut *tx, new.experiment).await?;
        if let Some(limits) = &new.limits {
            write_limits(
                &mut tx,
                ScopeKind::Experiment,
                experiment.id.0,
                team,
                limits,
            )
            .await?;
        }
        let keys = insert_keys_in(
            &mut *tx,
            team,
            Some(experiment.id),
            new.key_name.as_deref(),
            new.allowed_models.as_deref(),
            None,
            &new.keys,
        )
        .await?;
        tx.commit().await?;
        Ok((experiment, keys))
    }

    /// Revokes every key of the experiment and ends it now (unless it already ended), in one
    /// transaction. `None` if there is no such experiment.
    pub async fn close_campaign(
        &self,
        id: ExperimentId,
    ) -> Result<Option<ClosedCampaign>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        // Locks the experiment row, so two closes of one campaign run one after the other.
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM experiments WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Ok(None);
        }
        let revoked: Vec<KeyId> = sqlx::query_scalar(
            "UPDATE virtual_keys SET revoked_at = now() \
             WHERE experiment_id = $1 AND revoked_at IS NULL RETURNING id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let experiment: Experiment = sqlx::query_as(
            "UPDATE experiments SET ends_at = LEAST(COALESCE(ends_at, now()), now()) WHERE id = $1 \
             RETURNING id, team_id, name, tags, ends_at, created_at",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ClosedCampaign {
            experiment,
            revoked,
        }))
    }
}
