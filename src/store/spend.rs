//! Spend reports, read from the hourly rollups (`spend_hourly`) only: the request log can hold
//! billions of rows, while a report over any period touches at most one row per hour and scope.
//!
//! The SQL is assembled with `QueryBuilder`: column names and expressions come from the closed
//! [`SpendDimension`] and [`SpendMetric`] enums, and every value a client sends is a bound
//! parameter.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use super::Store;
use super::filters::{push_owner_and_model, push_time_range};
use crate::ids::{ExperimentId, KeyId, TeamId};
use crate::tags::{self, Tags};

/// What a report can be grouped (and filtered) by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendDimension {
    Team,
    Experiment,
    Key,
    Model,
    Provider,
    Day,
    Hour,
}

impl SpendDimension {
    pub const ALL: [SpendDimension; 7] = [
        SpendDimension::Team,
        SpendDimension::Experiment,
        SpendDimension::Key,
        SpendDimension::Model,
        SpendDimension::Provider,
        SpendDimension::Day,
        SpendDimension::Hour,
    ];

    /// The name clients use in `group_by`, `by` and `order`.
    pub fn name(self) -> &'static str {
        match self {
            SpendDimension::Team => "team",
            SpendDimension::Experiment => "experiment",
            SpendDimension::Key => "key",
            SpendDimension::Model => "model",
            SpendDimension::Provider => "provider",
            SpendDimension::Day => "day",
            SpendDimension::Hour => "hour",
        }
    }

    pub fn parse(name: &str) -> Option<SpendDimension> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The grouped expression over `spend_hourly s`, and the column it is exposed as.
    fn expression(self) -> (&'static str, &'static str) {
        match self {
            SpendDimension::Team => ("s.team_id", "team_id"),
            SpendDimension::Experiment => ("s.experiment_id", "experiment_id"),
            SpendDimension::Key => ("s.key_id", "key_id"),
            SpendDimension::Model => ("s.model", "model"),
            SpendDimension::Provider => ("s.provider", "provider"),
            SpendDimension::Day => ("date_trunc('day', s.hour, 'UTC')", "day"),
            SpendDimension::Hour => ("s.hour", "hour"),
        }
    }

    /// The typed NULL selected in the column's place when the report is not grouped by it.
    fn null_column(self) -> &'static str {
        match self {
            SpendDimension::Team => "NULL::uuid AS team_id, NULL::text AS team_name",
            SpendDimension::Experiment => {
                "NULL::uuid AS experiment_id, NULL::text AS experiment_name"
            }
            SpendDimension::Key => "NULL::uuid AS key_id, NULL::text AS key_prefix",
            SpendDimension::Model => "NULL::text AS model",
            SpendDimension::Provider => "NULL::text AS provider",
            SpendDimension::Day => "NULL::timestamptz AS day",
            SpendDimension::Hour => "NULL::timestamptz AS hour",
        }
    }

    /// The grouped column(s) in the outer query, with the joined label where there is one.
    fn grouped_column(self) -> &'static str {
        match self {
            SpendDimension::Team => "agg.team_id, t.name AS team_name",
            SpendDimension::Experiment => "agg.experiment_id, e.name AS experiment_name",
            SpendDimension::Key => "agg.key_id, k.key_prefix",
            SpendDimension::Model => "agg.model",
            SpendDimension::Provider => "agg.provider",
            SpendDimension::Day => "agg.day",
            SpendDimension::Hour => "agg.hour",
        }
    }

    fn join(self) -> Option<&'static str> {
        match self {
            SpendDimension::Team => Some(" LEFT JOIN teams t ON t.id = agg.team_id"),
            SpendDimension::Experiment => {
                Some(" LEFT JOIN experiments e ON e.id = agg.experiment_id")
            }
            SpendDimension::Key => Some(" LEFT JOIN virtual_keys k ON k.id = agg.key_id"),
            _ => None,
        }
    }

    /// What sorting by the dimension means: by the label people read, then by id.
    fn sort_key(self) -> &'static str {
        match self {
            SpendDimension::Team => "t.name",
            SpendDimension::Experiment => "e.name",
            SpendDimension::Key => "k.key_prefix",
            _ => self.expression().1,
        }
    }

    fn tie_break(self) -> &'static str {
        match self {
            SpendDimension::Team => "agg.team_id",
            SpendDimension::Experiment => "agg.experiment_id",
            SpendDimension::Key => "agg.key_id",
            SpendDimension::Model => "agg.model",
            SpendDimension::Provider => "agg.provider",
            SpendDimension::Day => "agg.day",
            SpendDimension::Hour => "agg.hour",
        }
    }
}

/// The totals a report carries, and that it can be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendMetric {
    Cost,
    Requests,
    Errors,
    InputTokens,
    CachedInputTokens,
    CacheWriteTokens,
    OutputTokens,
    ReasoningTokens,
}

impl SpendMetric {
    pub const ALL: [SpendMetric; 8] = [
        SpendMetric::Cost,
        SpendMetric::Requests,
        SpendMetric::Errors,
        SpendMetric::InputTokens,
        SpendMetric::CachedInputTokens,
        SpendMetric::CacheWriteTokens,
        SpendMetric::OutputTokens,
        SpendMetric::ReasoningTokens,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SpendMetric::Cost => "cost",
            SpendMetric::Requests => "requests",
            SpendMetric::Errors => "errors",
            SpendMetric::InputTokens => "input_tokens",
            SpendMetric::CachedInputTokens => "cached_input_tokens",
            SpendMetric::CacheWriteTokens => "cache_write_tokens",
            SpendMetric::OutputTokens => "output_tokens",
            SpendMetric::ReasoningTokens => "reasoning_tokens",
        }
    }

    pub fn parse(name: &str) -> Option<SpendMetric> {
        if name == "cost_usd" {
            return Some(SpendMetric::Cost);
        }
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    fn column(self) -> &'static str {
        match self {
            SpendMetric::Cost => "agg.cost_usd",
            SpendMetric::Requests => "agg.requests",
            SpendMetric::Errors => "agg.errors",
            SpendMetric::InputTokens => "agg.input_tokens",
            SpendMetric::CachedInputTokens => "agg.cached_input_tokens",
            SpendMetric::CacheWriteTokens => "agg.cache_write_tokens",
            SpendMetric::OutputTokens => "agg.output_tokens",
            SpendMetric::ReasoningTokens => "agg.reasoning_tokens",
        }
    }
}

/// What a report is sorted by first; ties are broken by every grouped column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendOrderKey {
    Metric(SpendMetric),
    Dimension(SpendDimension),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpendOrder {
    pub key: SpendOrderKey,
    pub descending: bool,
}

impl Default for SpendOrder {
    fn default() -> SpendOrder {
        SpendOrder {
            key: SpendOrderKey::Metric(SpendMetric::Cost),
            descending: true,
        }
    }
}

/// Which rollup rows a report covers. `from` is inclusive and `to` exclusive; both are whole
/// hours, since the rollups are hourly (the API refuses anything else).
#[derive(Clone, Debug, Default)]
pub struct SpendFilter {
    pub team: Option<TeamId>,
    pub experiment: Option<ExperimentId>,
    pub key: Option<KeyId>,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// Rollups of requests carrying every one of these tags (none: all).
    pub tags: Tags,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default)]
pub struct SpendQuery {
    /// Distinct dimensions, in the order the client gave them.
    pub group_by: Vec<SpendDimension>,
    /// Tag names to group by too (after `group_by`), each valid by [`crate::tags`]' rules.
    pub group_by_tags: Vec<String>,
    pub filter: SpendFilter,
    pub order: SpendOrder,
    pub limit: Option<i64>,
}

/// Summed usage and cost. `cache_write_tokens` counts 5-minute and 1-hour cache writes
/// together; `cache_write_1h_tokens` is the 1-hour part of it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema,
)]
pub struct SpendTotals {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_usd: Decimal,
}

impl SpendTotals {
    /// Adds another set of totals. Exact for the cost; token counts saturate (they are sums of
    /// `bigint` columns, so only an absurd ledger could reach the limit).
    pub fn add(&mut self, other: &SpendTotals) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(other.cached_input_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
        self.cache_write_1h_tokens = self
            .cache_write_1h_tokens
            .saturating_add(other.cache_write_1h_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.cost_usd = self.cost_usd.saturating_add(other.cost_usd).normalize();
    }
}

/// One report row: the grouped columns (NULL where the report is not grouped by them, and
/// `experiment_id` also NULL for keys without an experiment) and the totals.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SpendRow {
    pub team_id: Option<TeamId>,
    pub team_name: Option<String>,
    pub experiment_id: Option<ExperimentId>,
    pub experiment_name: Option<String>,
    pub key_id: Option<KeyId>,
    pub key_prefix: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub day: Option<DateTime<Utc>>,
    pub hour: Option<DateTime<Utc>>,
    /// With `group_by_tags`: each grouped tag's value (`null` for requests without it).
    pub tags: Option<serde_json::Value>,
    #[sqlx(flatten)]
    pub totals: SpendTotals,
}

impl SpendRow {
    /// The UTC day of a row grouped by `day`.
    pub fn day(&self) -> Option<NaiveDate> {
        self.day.map(|d| d.date_naive())
    }
}

/// The sums over `spend_hourly s`; `bigint` sums are `numeric` in PostgreSQL, cast back.
/// Token sums saturate at the bigint maximum (rows of absurd usage hold 2^63 - 1 tokens), so
/// a report over them answers instead of failing with "bigint out of range".
const SUMS: &str = "COALESCE(sum(s.requests), 0)::int8 AS requests, \
     COALESCE(sum(s.errors), 0)::int8 AS errors, \
     LEAST(COALESCE(sum(s.input_tokens), 0), 9223372036854775807)::int8 AS input_tokens, \
     LEAST(COALESCE(sum(s.cached_input_tokens), 0), 9223372036854775807)::int8 AS cached_input_tokens, \
     LEAST(COALESCE(sum(s.cache_write_tokens::numeric + s.cache_write_1h_tokens), 0), 9223372036854775807)::int8 AS cache_write_tokens, \
     LEAST(COALESCE(sum(s.cache_write_1h_tokens), 0), 9223372036854775807)::int8 AS cache_write_1h_tokens, \
     LEAST(COALESCE(sum(s.output_tokens), 0), 9223372036854775807)::int8 AS output_tokens, \
     LEAST(COALESCE(sum(s.reasoning_tokens), 0), 9223372036854775807)::int8 AS reasoning_tokens, \
     COALESCE(sum(s.cost_usd), 0) AS cost_usd";

const TOTAL_COLUMNS: &str = "agg.requests, agg.errors, agg.input_tokens, agg.cached_input_tokens, \
     agg.cache_write_tokens, agg.cache_write_1h_tokens, agg.output_tokens, agg.reasoning_tokens, \
     agg.cost_usd";

impl Store {
    /// The report's rows, sorted and (with `limit`) cut. With no `group_by` it is one row: the
    /// total of everything the filter selects.
    pub async fn spend_report(&self, query: &SpendQuery) -> Result<Vec<SpendRow>, sqlx::Error> {
        let grouped = |d: SpendDimension| query.group_by.contains(&d);
        // Tag names go into the SQL as literals (a bound parameter in the select list is not
        // the same expression as one in GROUP BY); names are letters, digits, `_`, `-` and
        // `.` only, and any other is dropped here rather than quoted.
        let tag_names: Vec<&str> = query
            .group_by_tags
            .iter()
            .map(String::as_str)
            .filter(|n| tags::is_name(n))
            .collect();
        let tag_value = |name: &str| format!("s.tags ->> '{name}'");
        let mut sql = QueryBuilder::<Postgres>::new("WITH agg AS (SELECT ");
        for dim in &query.group_by {
            let (expression, column) = dim.expression();
            sql.push(expression).push(" AS ").push(column).push(", ");
        }
        for (i, name) in tag_names.iter().enumerate() {
            sql.push(tag_value(name)).push(format!(" AS tag_{i}, "));
        }
        sql.push(SUMS).push(" FROM spend_hourly s");
        push_filter(&mut sql, &query.filter);
        if !query.group_by.is_empty() || !tag_names.is_empty() {
            sql.push(" GROUP BY ");
            let mut columns = sql.separated(", ");
            for dim in &query.group_by {
                columns.push(dim.expression().0);
            }
            for name in &tag_names {
                columns.push(tag_value(name));
            }
        }
        sql.push(") SELECT ");
        for dim in SpendDimension::ALL {
            sql.push(if grouped(dim) {
                dim.grouped_column()
            } else {
                dim.null_column()
            })
            .push(", ");
        }
        if tag_names.is_empty() {
            sql.push("NULL::jsonb AS tags, ");
        } else {
            sql.push("jsonb_build_object(");
            let mut pairs = sql.separated(", ");
            for (i, name) in tag_names.iter().enumerate() {
                pairs.push(format!("'{name}', agg.tag_{i}"));
            }
            sql.push(") AS tags, ");
        }
        sql.push(TOTAL_COLUMNS).push(" FROM agg");
        for dim in &query.group_by {
            if let Some(join) = dim.join() {
                sql.push(join);
            }
        }
        sql.push(" ORDER BY ");
        let direction = if query.order.descending {
            " DESC NULLS LAST"
        } else {
            " ASC NULLS LAST"
        };
        let mut order = sql.separated(", ");
        match query.order.key {
            SpendOrderKey::Metric(metric) => order.push(metric.column()),
            SpendOrderKey::Dimension(dim) => order.push(dim.sort_key()),
        };
        order.push_unseparated(direction);
        for dim in &query.group_by {
            order.push(dim.tie_break());
        }
        for i in 0..tag_names.len() {
            order.push(format!("agg.tag_{i}"));
        }
        if let Some(limit) = query.limit {
            sql.push(" LIMIT ").push_bind(limit);
        }
        let mut tx = self.begin_report().await?;
        // Enough memory for a report over many rollup rows to group in a hash table rather
        // than by sorting them all (several times faster on a quarter of hourly rows). Set for
        // the report's transaction only; reports are rare admin calls, so the memory is not
        // held elsewhere.
        sqlx::query!("SET LOCAL work_mem = '64MB'")
            .execute(&mut *tx)
            .await?;
        let mut rows: Vec<SpendRow> = sql.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        for row in &mut rows {
            row.totals.cost_usd = row.totals.cost_usd.normalize();
        }
        Ok(rows)
    }

    /// The total of everything `filter` selects.
    pub async fn spend_total(&self, filter: &SpendFilter) -> Result<SpendTotals, sqlx::Error> {
        let mut sql = QueryBuilder::<Postgres>::new("SELECT ");
        sql.push(SUMS).push(" FROM spend_hourly s");
        push_filter(&mut sql, filter);
        let mut tx = self.begin_report().await?;
        let mut total: SpendTotals = sql.build_query_as().fetch_one(&mut *tx).await?;
        tx.commit().await?;
        total.cost_usd = total.cost_usd.normalize();
        Ok(total)
    }
}

fn push_filter(sql: &mut QueryBuilder<'_, Postgres>, filter: &SpendFilter) {
    sql.push(" WHERE TRUE");
    push_owner_and_model(
        sql,
        "s",
        filter.team,
        filter.experiment,
        filter.key,
        filter.model.as_deref(),
    );
    if let Some(provider) = &filter.provider {
        sql.push(" AND s.provider = ").push_bind(provider.clone());
    }
    if !filter.tags.is_empty() {
        sql.push(" AND s.tags @> ")
            .push_bind(sqlx::types::Json(filter.tags.clone()));
    }
    push_time_range(sql, "s.hour", filter.from, filter.to);
}
