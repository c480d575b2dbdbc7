//! WHERE conditions shared by the listings and reports that build their SQL from optional
//! filters. Each condition is appended only when its filter is set, so an unset filter adds
//! nothing for the planner to see through.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use crate::ids::{ExperimentId, KeyId, TeamId};

/// Who spent and on which model. The request log and the spend rollups name these columns
/// alike, so `table` (the alias in the query) is the only difference.
pub(super) fn push_owner_and_model(
    sql: &mut QueryBuilder<'_, Postgres>,
    table: &str,
    team: Option<TeamId>,
    experiment: Option<ExperimentId>,
    key: Option<KeyId>,
    model: Option<&str>,
) {
    if let Some(team) = team {
        sql.push(format_args!(" AND {table}.team_id = "))
            .push_bind(team);
    }
    if let Some(experiment) = experiment {
        sql.push(format_args!(" AND {table}.experiment_id = "))
            .push_bind(experiment);
    }
    if let Some(key) = key {
        sql.push(format_args!(" AND {table}.key_id = "))
            .push_bind(key);
    }
    if let Some(model) = model {
        sql.push(format_args!(" AND {table}.model = "))
            .push_bind(model.to_owned());
    }
}

/// A time range on `column`: `from` inclusive, `to` exclusive, either one optional.
pub(super) fn push_time_range(
    sql: &mut QueryBuilder<'_, Postgres>,
    column: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) {
    if let Some(from) = from {
        sql.push(format_args!(" AND {column} >= ")).push_bind(from);
    }
    if let Some(to) = to {
        sql.push(format_args!(" AND {column} < ")).push_bind(to);
    }
}
