//! Spend reports: `GET /admin/v1/spend` (grouped totals) and `GET /admin/v1/spend/top`
//! (biggest spenders), as JSON or CSV, from the hourly rollups.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, SecondsFormat, Timelike, Utc};
use serde::Serialize;

use super::AdminState;
use super::caller::Caller;
use super::csv::{self, Format};
use super::error::{AdminError, ErrorBody};
use super::extract::ApiQuery;
use super::params::{Params, split_tag_filters};
use crate::ids::{ExperimentId, KeyId, TeamId};
use crate::store::{
    SpendDimension, SpendFilter, SpendMetric, SpendOrder, SpendOrderKey, SpendQuery, SpendRow,
    SpendTotals,
};
use crate::tags::Tags;

/// A spend report: one row per group, then the totals of everything the filters select.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendReport {
    /// The dimensions rows are grouped by, in order, then `tag:<name>` for each grouped tag.
    group_by: Vec<String>,
    /// Start, inclusive; `null`: from the beginning.
    from: Option<DateTime<Utc>>,
    /// End, exclusive; `null`: up to now.
    to: Option<DateTime<Utc>>,
    data: Vec<ReportRow>,
    total: SpendTotals,
    /// `spend/top` only: how many rows were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
}

/// One group: the columns of the dimensions grouped by (absent otherwise; `null` where the
/// group has no value, e.g. keys without an experiment), then the totals.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ReportRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TeamId>)]
    team_id: Option<Option<TeamId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    team_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ExperimentId>)]
    experiment_id: Option<Option<ExperimentId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    experiment_name: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<KeyId>)]
    key_id: Option<Option<KeyId>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    key_prefix: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    model: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    provider: Option<Option<String>>,
    /// The UTC date, `2026-11-01`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<NaiveDate>)]
    day: Option<Option<NaiveDate>>,
    /// The hour's start, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    hour: Option<Option<DateTime<Utc>>>,
    /// Grouped by tags: each one's value (`null` for requests without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    tags: Option<serde_json::Value>,
    #[serde(flatten)]
    totals: SpendTotals,
}

impl ReportRow {
    fn of(group_by: &[SpendDimension], row: &SpendRow) -> ReportRow {
        let mut out = ReportRow {
            totals: row.totals,
            tags: row.tags.clone(),
            ..ReportRow::default()
        };
        for dim in group_by {
            match dim {
                SpendDimension::Team => {
                    out.team_id = Some(row.team_id);
                    out.team_name = Some(row.team_name.clone());
                }
                SpendDimension::Experiment => {
                    out.experiment_id = Some(row.experiment_id);
                    out.experiment_name = Some(row.experiment_name.clone());
                }
                SpendDimension::Key => {
                    out.key_id = Some(row.key_id);
                    out.key_prefix = Some(row.key_prefix.clone());
                }
                SpendDimension::Model => out.model = Some(row.model.clone()),
                SpendDimension::Provider => out.provider = Some(row.provider.clone()),
                SpendDimension::Day => out.day = Some(row.day()),
                SpendDimension::Hour => out.hour = Some(row.hour),
            }
        }
        out
    }
}

/// The report of `rows` for `query`. `total` is given when the rows are not every group (a
/// `top` report); otherwise it is their sum, which is exact (costs are decimals).
pub(super) fn report_of(
    query: &SpendQuery,
    rows: Vec<SpendRow>,
    total: Option<SpendTotals>,
    limit: Option<i64>,
) -> SpendReport {
    let total = total.unwrap_or_else(|| {
        let mut total = SpendTotals::default();
        rows.iter().for_each(|row| total.add(&row.totals));
        total
    });
    SpendReport {
        group_by: query
            .group_by
            .iter()
            .map(|d| d.name().to_owned())
            .chain(query.group_by_tags.iter().map(|t| format!("tag:{t}")))
            .collect(),
        from: query.filter.from,
        to: query.filter.to,
        data: rows
            .iter()
            .map(|row| ReportRow::of(&query.group_by, row))
            .collect(),
        total,
        limit,
    }
}

const FILTERS: [&str; 7] = [
    "team",
    "experiment",
    "key",
    "model",
    "provider",
    "from",
    "to",
];
const MAX_TOP: i64 = 1000;

/// Grouped totals from the hourly rollups. Team tokens: their team only.
#[utoipa::path(
    get,
    path = "/admin/v1/spend",
    tag = "spend",
    params(
        ("group_by" = Option<String>, Query, description = "comma-separated: team, experiment, key, model, provider, day, hour, tag:<name>"),
        ("tag:<name>" = Option<String>, Query, description = "only requests with this tag value, e.g. `tag:task=gsm8k`"),
        ("team" = Option<String>, Query, description = "team id or name"),
        ("experiment" = Option<String>, Query, description = "experiment id, or a name within `team`"),
        ("key" = Option<String>, Query, description = "key id"),
        ("model" = Option<String>, Query),
        ("provider" = Option<String>, Query),
        ("from" = Option<String>, Query, description = "inclusive, a whole hour: RFC 3339 or YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "exclusive, a whole hour"),
        ("order" = Option<String>, Query, description = "a total or a grouped dimension, optionally .asc/.desc"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, body = SpendReport, description = "JSON, or text/csv with format=csv"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let (tags, pairs) = split_tag_filters(pairs)?;
    let params = Params::new(
        pairs,
        &[&FILTERS[..], &["group_by", "order", "format"]].concat(),
    )?;
    let group_by = dimensions(&params, "group_by")?;
    run(&state, &caller, &params, group_by, tags, None).await
}

/// The biggest spenders by `by`; `total` covers everything the filters select.
#[utoipa::path(
    get,
    path = "/admin/v1/spend/top",
    tag = "spend",
    params(
        ("by" = String, Query, description = "comma-separated dimensions, as group_by"),
        ("tag:<name>" = Option<String>, Query, description = "only requests with this tag value"),
        ("limit" = Option<i64>, Query, description = "1..=1000, default 10"),
        ("team" = Option<String>, Query, description = "team id or name"),
        ("experiment" = Option<String>, Query, description = "experiment id, or a name within `team`"),
        ("key" = Option<String>, Query, description = "key id"),
        ("model" = Option<String>, Query),
        ("provider" = Option<String>, Query),
        ("from" = Option<String>, Query, description = "inclusive, a whole hour"),
        ("to" = Option<String>, Query, description = "exclusive, a whole hour"),
        ("order" = Option<String>, Query),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, body = SpendReport, description = "JSON, or text/csv with format=csv"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn top(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let (tags, pairs) = split_tag_filters(pairs)?;
    let params = Params::new(
        pairs,
        &[&FILTERS[..], &["by", "limit", "order", "format"]].concat(),
    )?;
    let by = dimensions(&params, "by")?;
    if by.0.is_empty() && by.1.is_empty() {
        return Err(AdminError::bad(
            "by",
            format!("`by` is required: one or more of {}", dimension_names()),
        ));
    }
    let limit = params.number("limit", 10, 1..=MAX_TOP)?;
    run(&state, &caller, &params, by, tags, Some(limit)).await
}

async fn run(
    state: &AdminState,
    caller: &Caller,
    params: &Params,
    (group_by, group_by_tags): (Vec<SpendDimension>, Vec<String>),
    tags: Tags,
    limit: Option<i64>,
) -> Result<Response, AdminError> {
    let format = Format::from_param(params.get("format"))?;
    let order = order(params, &group_by)?;
    let (from, to) = params.range()?;
    for (param, time) in [("from", from), ("to", to)] {
        if let Some(time) = time {
            whole_hour(param, time)?;
        }
    }
    let scope = params.scope(state, caller).await?;
    let filter = SpendFilter {
        team: scope.team,
        experiment: scope.experiment,
        key: scope.key,
        model: params.get("model").map(str::to_owned),
        provider: params.get("provider").map(str::to_owned),
        tags,
        from,
        to,
    };
    let query = SpendQuery {
        group_by,
        group_by_tags,
        filter,
        order,
        limit,
    };
    let rows = state.store.spend_report(&query).await?;
    if format == Format::Csv {
        return Ok(csv::csv_response(to_csv(&query, &rows)));
    }
    let total = match limit {
        Some(_) => Some(state.store.spend_total(&query.filter).await?),
        None => None,
    };
    Ok(Json(report_of(&query, rows, total, limit)).into_response())
}

fn dimension_names() -> String {
    let mut names: Vec<&str> = SpendDimension::ALL.iter().map(|d| d.name()).collect();
    names.push("tag:<name>");
    names.join(", ")
}

/// A comma-separated list of dimensions and `tag:<name>`s; repeats are dropped, order is
/// kept (tags come after the other dimensions in the report).
fn dimensions(
    params: &Params,
    param: &'static str,
) -> Result<(Vec<SpendDimension>, Vec<String>), AdminError> {
    let mut dims = Vec::new();
    let mut tags = Vec::new();
    for name in params.get(param).unwrap_or_default().split(',') {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        if let Some(tag) = name.strip_prefix("tag:") {
            if !crate::tags::is_name(tag) {
                return Err(AdminError::bad(
                    param,
                    format!(
                        "`{param}`: {name:?} is not a tag to group by: tag names are 1 to {} {}",
                        crate::tags::MAX_NAME_LEN,
                        crate::tags::NAME_CHARS
                    ),
                ));
            }
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
            continue;
        }
        let dim = SpendDimension::parse(name).ok_or_else(|| {
            AdminError::bad(
                param,
                format!(
                    "`{param}`: unknown dimension {name:?} (use {})",
                    dimension_names()
                ),
            )
        })?;
        if !dims.contains(&dim) {
            dims.push(dim);
        }
    }
    Ok((dims, tags))
}

/// `order=<total or grouped dimension>[.asc|.desc]`. Totals sort descending and dimensions
/// ascending unless told otherwise.
fn order(params: &Params, group_by: &[SpendDimension]) -> Result<SpendOrder, AdminError> {
    let Some(text) = params.get("order") else {
        return Ok(SpendOrder::default());
    };
    let (name, direction) = match text.rsplit_once('.') {
        Some((name, "asc")) => (name, Some(false)),
        Some((name, "desc")) => (name, Some(true)),
        _ => (text, None),
    };
    let metrics = SpendMetric::ALL.map(|m| m.name()).join(", ");
    if let Some(metric) = SpendMetric::parse(name) {
        return Ok(SpendOrder {
            key: SpendOrderKey::Metric(metric),
            descending: direction.unwrap_or(true),
        });
    }
    match SpendDimension::parse(name) {
        Some(dim) if group_by.contains(&dim) => Ok(SpendOrder {
            key: SpendOrderKey::Dimension(dim),
            descending: direction.unwrap_or(false),
        }),
        Some(dim) => Err(AdminError::bad(
            "order",
            format!(
                "`order`: the report is not grouped by {}; order by a total ({metrics}) or a grouped dimension",
                dim.name()
            ),
        )),
        None => Err(AdminError::bad(
            "order",
            format!(
                "`order` = {text:?}: use a total ({metrics}) or a grouped dimension, optionally followed by .asc or .desc"
            ),
        )),
    }
}

fn whole_hour(param: &'static str, time: DateTime<Utc>) -> Result<(), AdminError> {
    if time.minute() == 0 && time.second() == 0 && time.nanosecond() == 0 {
        return Ok(());
    }
    let hour = time
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(time);
    Err(AdminError::bad(
        param,
        format!(
            "`{param}` must be on a whole hour (reports are built from hourly rollups), e.g. {}",
            rfc3339(hour)
        ),
    ))
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The columns each dimension contributes, in JSON and CSV alike.
fn columns(dim: SpendDimension) -> &'static [&'static str] {
    match dim {
        SpendDimension::Team => &["team_id", "team_name"],
        SpendDimension::Experiment => &["experiment_id", "experiment_name"],
        SpendDimension::Key => &["key_id", "key_prefix"],
        SpendDimension::Model => &["model"],
        SpendDimension::Provider => &["provider"],
        SpendDimension::Day => &["day"],
        SpendDimension::Hour => &["hour"],
    }
}

const TOTAL_COLUMNS: [&str; 9] = [
    "requests",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
];

/// The values of a dimension's columns; `None` is JSON null / an empty CSV field.
fn dimension_values(dim: SpendDimension, row: &SpendRow) -> Vec<Option<String>> {
    let id = |id: Option<uuid::Uuid>| id.map(|id| id.to_string());
    match dim {
        SpendDimension::Team => vec![id(row.team_id.map(|t| t.0)), row.team_name.clone()],
        SpendDimension::Experiment => vec![
            id(row.experiment_id.map(|e| e.0)),
            row.experiment_name.clone(),
        ],
        SpendDimension::Key => vec![id(row.key_id.map(|k| k.0)), row.key_prefix.clone()],
        SpendDimension::Model => vec![row.model.clone()],
        SpendDimension::Provider => vec![row.provider.clone()],
        SpendDimension::Day => vec![row.day().map(|d| d.to_string())],
        SpendDimension::Hour => vec![row.hour.map(rfc3339)],
    }
}

fn total_values(totals: &SpendTotals) -> [String; 9] {
    [
        totals.requests.to_string(),
        totals.errors.to_string(),
        totals.input_tokens.to_string(),
        totals.cached_input_tokens.to_string(),
        totals.cache_write_tokens.to_string(),
        totals.cache_write_1h_tokens.to_string(),
        totals.output_tokens.to_string(),
        totals.reasoning_tokens.to_string(),
        totals.cost_usd.normalize().to_string(),
    ]
}

fn to_csv(query: &SpendQuery, rows: &[SpendRow]) -> String {
    let mut header: Vec<String> = query
        .group_by
        .iter()
        .flat_map(|d| columns(*d))
        .map(|c| (*c).to_owned())
        .collect();
    header.extend(query.group_by_tags.iter().map(|t| format!("tag:{t}")));
    header.extend(TOTAL_COLUMNS.iter().map(|c| (*c).to_owned()));
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        let mut fields: Vec<String> = query
            .group_by
            .iter()
            .flat_map(|d| dimension_values(*d, row))
            .map(|v| csv::field(&v.unwrap_or_default()))
            .collect();
        for tag in &query.group_by_tags {
            let value = row.tags.as_ref().and_then(|t| t[tag.as_str()].as_str());
            fields.push(csv::field(value.unwrap_or_default()));
        }
        fields.extend(total_values(&row.totals));
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn row() -> SpendRow {
        SpendRow {
            team_id: Some(crate::ids::TeamId(uuid::Uuid::nil())),
            team_name: Some("r&d, \"west\"".into()),
            experiment_id: None,
            experiment_name: None,
            key_id: None,
            key_prefix: None,
            model: Some("gpt-4o".into()),
            provider: None,
            day: None,
            hour: None,
            tags: Some(serde_json::json!({"task": "gsm8k"})),
            totals: SpendTotals {
                requests: 2,
                cost_usd: "0.000000675".parse().unwrap(),
                ..SpendTotals::default()
            },
        }
    }

    #[test]
    fn csv_has_the_grouped_columns_then_the_totals() {
        let query = SpendQuery {
            group_by: vec![
                SpendDimension::Team,
                SpendDimension::Experiment,
                SpendDimension::Model,
            ],
            group_by_tags: vec!["task".into()],
            ..SpendQuery::default()
        };
        let csv = to_csv(&query, &[row()]);
        assert_eq!(
            csv,
            "team_id,team_name,experiment_id,experiment_name,model,tag:task,requests,errors,input_tokens,\
             cached_input_tokens,cache_write_tokens,cache_write_1h_tokens,output_tokens,\
             reasoning_tokens,cost_usd\n\
             00000000-0000-0000-0000-000000000000,\"r&d, \"\"west\"\"\",,,gpt-4o,gsm8k,2,0,0,0,0,0,0,0,0.000000675\n"
        );
    }

    #[test]
    fn json_rows_carry_only_grouped_columns_and_money_as_strings() {
        let object =
            serde_json::to_value(ReportRow::of(&[SpendDimension::Experiment], &row())).unwrap();
        assert_eq!(object["experiment_id"], serde_json::Value::Null);
        assert!(object.get("team_id").is_none());
        assert_eq!(object["cost_usd"], "0.000000675");
        assert_eq!(object["requests"], 2);
    }
}
