//! Closing a campaign: every key of an experiment revoked and the experiment ended, in the
//! change's transaction, so a campaign is never half-closed. (A launch is written with the
//! experiment, limits and key writes of a [`Tx`], all in one transaction too.)

use super::audit::Tx;
use super::teams::{Experiment, ExperimentState};
use crate::ids::TeamId;
use crate::ids::{ExperimentId, KeyId};
use crate::tags::Tags;

/// What [`Tx::close_campaign`] did.
pub struct ClosedCampaign {
    pub experiment: Experiment,
    /// Keys this call revoked (keys revoked earlier are not counted again).
    pub revoked: Vec<KeyId>,
}

impl Tx {
    /// The experiment as it is, locked until the change commits, so two closes of one
    /// campaign run one after the other.
    pub async fn lock_experiment(
        &mut self,
        id: ExperimentId,
    ) -> Result<Option<Experiment>, sqlx::Error> {
        sqlx::query_as!(
            Experiment,
            r#"SELECT id AS "id: ExperimentId", team_id AS "team_id: TeamId", name, tags,
                      ends_at, created_at, closed_at, default_tags::text AS "default_tags!: Tags",
                      CASE WHEN closed_at IS NOT NULL THEN 'closed'
                           WHEN ends_at <= now() THEN 'ended'
                           ELSE 'running' END AS "state!: ExperimentState"
               FROM experiments WHERE id = $1 FOR UPDATE"#,
            id.0
        )
        .fetch_optional(self.conn())
        .await
    }

    /// Revokes every key of the experiment, ends it now unless it already ended, and marks it
    /// closed (the first close's time stays). Call [`Tx::lock_experiment`] first.
    pub async fn close_campaign(
        &mut self,
        id: ExperimentId,
    ) -> Result<ClosedCampaign, sqlx::Error> {
        let revoked = sqlx::query_scalar!(
            r#"UPDATE virtual_keys SET revoked_at = now()
               WHERE experiment_id = $1 AND revoked_at IS NULL RETURNING id AS "id: KeyId""#,
            id.0
        )
        .fetch_all(self.conn())
        .await?;
        let experiment = sqlx::query_as!(
            Experiment,
            r#"UPDATE experiments SET ends_at = LEAST(COALESCE(ends_at, now()), now()),
                                      closed_at = COALESCE(closed_at, now())
               WHERE id = $1
               RETURNING id AS "id: ExperimentId", team_id AS "team_id: TeamId", name, tags,
                         ends_at, created_at, closed_at, default_tags::text AS "default_tags!: Tags",
                         CASE WHEN closed_at IS NOT NULL THEN 'closed'
                              WHEN ends_at <= now() THEN 'ended'
                              ELSE 'running' END AS "state!: ExperimentState""#,
            id.0
        )
        .fetch_one(self.conn())
        .await?;
        Ok(ClosedCampaign {
            experiment,
            revoked,
        })
    }
}
