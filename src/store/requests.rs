//! The per-request log as the admin API pages through it, newest first (or oldest first from a
//! point), with keyset pagination on (`created_at`, `request_id`) so a page costs the same at
//! any depth.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use super::Store;
use super::filters::{push_owner_and_model, push_time_range};
use crate::ids::{ExperimentId, KeyId, RequestId, TeamId};
use crate::tags::Tags;

/// Which HTTP statuses to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this status.
    Exact(i16),
    /// `100 * n ..= 100 * n + 99`, e.g. `4xx`.
    Class(i16),
    /// Every status of 400 or more (what the rollups count as errors).
    Errors,
    /// Every status below 400.
    Ok,
}

#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    pub team: Option<TeamId>,
    pub experiment: Option<ExperimentId>,
    pub key: Option<KeyId>,
    pub model: Option<String>,
    pub status: Option<StatusFilter>,
    /// Rows carrying every one of these tags (none: every row).
    pub tags: Tags,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

/// A position in the log: the last row of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestCursor {
    pub created_at: DateTime<Utc>,
    pub request_id: RequestId,
}

#[derive(Clone, Debug)]
pub struct RequestPage {
    pub filter: RequestFilter,
    /// Oldest first when true, newest first otherwise.
    pub ascending: bool,
    /// Rows strictly after this position in the page's direction.
    pub cursor: Option<RequestCursor>,
    pub limit: i64,
}

/// One request as the admin API shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RequestRow {
    pub request_id: RequestId,
    pub created_at: DateTime<Utc>,
    pub key_id: KeyId,
    /// The key's visible prefix when the request was made (a rotation since does not change
    /// it). Rows written before the ledger recorded it show the key's current prefix.
    pub key_prefix: Option<String>,
    pub team_id: TeamId,
    pub team_name: Option<String>,
    pub experiment_id: Option<ExperimentId>,
    pub experiment_name: Option<String>,
    pub model: String,
    pub upstream_model: String,
    pub deployment: String,
    pub provider: String,
    pub status: i16,
    pub error_type: Option<String>,
    pub streamed: bool,
    pub usage_estimated: bool,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_usd: Decimal,
    pub latency_ms: i32,
    pub upstream_latency_ms: Option<i32>,
    /// The request's tags (`x-tollgate-tags`, its `metadata`); `null` when it had none.
    #[schema(value_type = Option<Object>)]
    pub tags: Option<sqlx::types::Json<Tags>>,
}

impl RequestRow {
    pub fn cursor(&self) -> RequestCursor {
        RequestCursor {
            created_at: self.created_at,
            request_id: self.request_id,
        }
    }
}

impl Store {
    /// Up to `page.limit` rows of the request log.
    pub async fn list_requests(&self, page: &RequestPage) -> Result<Vec<RequestRow>, sqlx::Error> {
        let direction = if page.ascending { "ASC" } else { "DESC" };
        // The page is cut from request_log alone (using its time index), then labelled.
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT r.request_id, r.created_at, r.key_id, \
             COALESCE(r.key_prefix, k.key_prefix) AS key_prefix, r.team_id, \
             t.name AS team_name, r.experiment_id, e.name AS experiment_name, r.model, \
             r.upstream_model, r.deployment, r.provider, r.status, r.error_type, r.streamed, \
             r.usage_estimated, r.input_tokens, r.cached_input_tokens, r.cache_write_tokens, \
             r.cache_write_1h_tokens, r.output_tokens, r.reasoning_tokens, r.cost_usd, \
             r.latency_ms, r.upstream_latency_ms, r.tags \
             FROM (SELECT * FROM request_log l WHERE TRUE",
        );
        let filter = &page.filter;
        push_owner_and_model(
            &mut sql,
            "l",
            filter.team,
            filter.experiment,
            filter.key,
            filter.model.as_deref(),
        );
        match filter.status {
            None => {}
            Some(StatusFilter::Exact(status)) => {
                sql.push(" AND l.status = ").push_bind(status);
            }
            Some(StatusFilter::Class(class)) => {
                sql.push(" AND l.status / 100 = ").push_bind(class);
            }
            Some(StatusFilter::Errors) => {
                sql.push(" AND l.status >= 400");
            }
            Some(StatusFilter::Ok) => {
                sql.push(" AND l.status < 400");
            }
        }
        if !filter.tags.is_empty() {
            sql.push(" AND l.tags @> ")
                .push_bind(sqlx::types::Json(filter.tags.clone()));
        }
        push_time_range(&mut sql, "l.created_at", filter.from, filter.to);
        if let Some(cursor) = page.cursor {
            sql.push(if page.ascending {
                " AND (l.created_at, l.request_id) > ("
            } else {
                " AND (l.created_at, l.request_id) < ("
            })
            .push_bind(cursor.created_at)
            .push(", ")
            .push_bind(cursor.request_id)
            .push(")");
        }
        sql.push(" ORDER BY l.created_at ")
            .push(direction)
            .push(", l.request_id ")
            .push(direction)
            .push(" LIMIT ")
            .push_bind(page.limit)
            .push(
                ") r LEFT JOIN virtual_keys k ON k.id = r.key_id \
                 LEFT JOIN teams t ON t.id = r.team_id \
                 LEFT JOIN experiments e ON e.id = r.experiment_id \
                 ORDER BY r.created_at ",
            )
            .push(direction)
            .push(", r.request_id ")
            .push(direction);
        let mut tx = self.begin_report().await?;
        let rows = sql.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
