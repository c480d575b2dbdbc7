//! `tollctl spend report` and `tollctl spend top`: spend grouped by team, experiment, key,
//! model, provider, day or hour, from `GET /admin/v1/spend` and `/spend/top`.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use rust_decimal::Decimal;
use serde_json::Value;

use super::Ctx;
use crate::numbers;
use crate::output::{self, Format, Style};
use crate::report::{self, Align};

const DIMENSIONS: [&str; 7] = [
    "team",
    "experiment",
    "key",
    "model",
    "provider",
    "day",
    "hour",
];

#[derive(Debug, Subcommand)]
pub enum SpendCmd {
    /// Spend totals for a period, grouped, with a TOTAL row.
    Report {
        /// Group by these, comma-separated (default: one total).
        #[arg(long, visible_alias = "group-by", value_name = "DIM,...", value_delimiter = ',', value_parser = dimension)]
        by: Vec<String>,
        #[command(flatten)]
        filter: SpendFilter,
        /// Sort by a total (cost, requests, errors, input_tokens, ...) or a grouped dimension,
        /// optionally with .asc or .desc (default: cost.desc).
        #[arg(long)]
        order: Option<String>,
    },
    /// The biggest spenders.
    Top {
        /// Rank by these, comma-separated.
        #[arg(long, visible_alias = "group-by", value_name = "DIM,...", value_delimiter = ',', value_parser = dimension, required = true)]
        by: Vec<String>,
        /// How many to show (1 to 1000).
        #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = numbers::count(1, 1000, "rows"))]
        limit: u32,
        #[command(flatten)]
        filter: SpendFilter,
    },
}

#[derive(Debug, Args)]
pub struct SpendFilter {
    /// Start of the period, inclusive: YYYY-MM-DD or RFC 3339 on a whole hour (UTC).
    #[arg(long)]
    from: Option<String>,
    /// End of the period, exclusive: YYYY-MM-DD or RFC 3339 on a whole hour (UTC).
    #[arg(long)]
    to: Option<String>,
    /// Only this team (id or name).
    #[arg(long)]
    team: Option<String>,
    /// Only this experiment (id, or name within --team).
    #[arg(long)]
    experiment: Option<String>,
    /// Only this key (id).
    #[arg(long)]
    key: Option<String>,
    /// Only this model (as clients name it).
    #[arg(long)]
    model: Option<String>,
    /// Only this provider.
    #[arg(long)]
    provider: Option<String>,
    /// Only requests with this tag (`task=gsm8k`); repeat for several, all must match.
    #[arg(long = "tag", value_name = "NAME=VALUE", value_parser = tag_param)]
    tags: Vec<(String, String)>,
}

impl SpendFilter {
    fn query(&self) -> Vec<(&str, Option<&str>)> {
        let mut query = vec![
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("team", self.team.as_deref()),
            ("experiment", self.experiment.as_deref()),
            ("key", self.key.as_deref()),
            ("model", self.model.as_deref()),
            ("provider", self.provider.as_deref()),
        ];
        for (name, value) in &self.tags {
            query.push((name.as_str(), Some(value.as_str())));
        }
        query
    }
}

/// `--tag task=gsm8k` as the API's parameter `tag:task=gsm8k`.
fn tag_param(text: &str) -> std::result::Result<(String, String), String> {
    let (name, value) = super::requests::tag_filter(text)?;
    Ok((format!("tag:{name}"), value))
}

/// A `--by` value: a dimension, or `tag:<name>` (the gateway checks the name).
fn dimension(text: &str) -> std::result::Result<String, String> {
    match text.strip_prefix("tag:") {
        Some(name) if !name.is_empty() => Ok(text.to_owned()),
        _ if DIMENSIONS.contains(&text) => Ok(text.to_owned()),
        _ => Err(format!(
            "{text:?} is not a dimension: use {}, or tag:<name>",
            DIMENSIONS.join(", ")
        )),
    }
}

/// The API's columns for a dimension (JSON keys and CSV headers alike).
fn columns(dim: &str) -> &'static [&'static str] {
    match dim {
        "team" => &["team_id", "team_name"],
        "experiment" => &["experiment_id", "experiment_name"],
        "key" => &["key_id", "key_prefix"],
        "model" => &["model"],
        "provider" => &["provider"],
        "day" => &["day"],
        "hour" => &["hour"],
        _ => &[],
    }
}

const TOTALS: [&str; 9] = [
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

/// The totals a table shows, with their headers (1-hour cache writes are inside CACHE WRITE).
const TABLE_TOTALS: [(&str, &str); 8] = [
    ("requests", "REQUESTS"),
    ("errors", "ERRORS"),
    ("input_tokens", "INPUT TOKENS"),
    ("cached_input_tokens", "CACHED"),
    ("cache_write_tokens", "CACHE WRITE"),
    ("output_tokens", "OUTPUT TOKENS"),
    ("reasoning_tokens", "REASONING"),
    ("cost_usd", "COST USD"),
];

pub async fn run(cmd: SpendCmd, ctx: &Ctx) -> Result<()> {
    let out = match cmd {
        SpendCmd::Report { by, filter, order } => {
            let by = by.join(",");
            let mut query = filter.query();
            query.push(("group_by", Some(&by)));
            query.push(("order", order.as_deref()));
            let body: Value = ctx.client.get(&["spend"], &query).await?;
            render_report(&body, ctx.format)?
        }
        SpendCmd::Top { by, limit, filter } => {
            let by = by.join(",");
            let limit = limit.to_string();
            let mut query = filter.query();
            query.push(("by", Some(&by)));
            query.push(("limit", Some(&limit)));
            let body: Value = ctx.client.get(&["spend", "top"], &query).await?;
            render_top(&body, ctx.format)?
        }
    };
    output::emit(&out)
}

fn group_by(body: &Value) -> Vec<&str> {
    body["group_by"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rows(body: &Value) -> &[Value] {
    body["data"].as_array().map_or(&[], Vec::as_slice)
}

/// A JSON scalar as text: strings verbatim, numbers as written, null as `None`.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// What a person reads for a dimension: the name where there is one, else the id.
fn label(dim: &str, row: &Value) -> String {
    let pick = |name: &str, id: &str| text(&row[name]).or_else(|| text(&row[id]));
    let value = match dim {
        "team" => pick("team_name", "team_id"),
        "experiment" => pick("experiment_name", "experiment_id"),
        "key" => pick("key_prefix", "key_id"),
        "hour" => text(&row["hour"]).map(|h| output::time(Some(&h), Style::Human)),
        other => match other.strip_prefix("tag:") {
            Some(tag) => text(&row["tags"][tag]),
            None => text(&row[other]),
        },
    };
    value.unwrap_or_else(|| "-".to_owned())
}

fn csv(body: &Value) -> String {
    let dims = group_by(body);
    let mut headers: Vec<&str> = Vec::new();
    for dim in &dims {
        match dim.strip_prefix("tag:") {
            Some(_) => headers.push(dim),
            None => headers.extend(columns(dim)),
        }
    }
    headers.extend(TOTALS);
    let rows: Vec<Vec<String>> = rows(body)
        .iter()
        .map(|row| {
            headers
                .iter()
                .map(|h| match h.strip_prefix("tag:") {
                    Some(tag) => text(&row["tags"][tag]).unwrap_or_default(),
                    None => text(&row[*h]).unwrap_or_default(),
                })
                .collect()
        })
        .collect();
    output::csv(&headers, &rows)
}

/// Figures for a table: tokens grouped, costs aligned on the decimal point (set later).
fn figure(row: &Value, column: &str) -> String {
    let value = text(&row[column]).unwrap_or_else(|| "0".to_owned());
    if column == "cost_usd" {
        value
    } else {
        report::group_digits(&value)
    }
}

pub fn render_report(body: &Value, format: Format) -> Result<String> {
    match format {
        Format::Json => return output::json(body),
        Format::Csv => return Ok(csv(body)),
        Format::Env => bail!("{}", output::ENV_ONLY),
        Format::Table => {}
    }
    let dims = group_by(body);
    let data = rows(body);
    if !dims.is_empty() && data.is_empty() {
        return Ok("No spend in this period.\n".to_owned());
    }
    let mut headers: Vec<String> = dims.iter().map(|d| d.to_uppercase()).collect();
    if headers.is_empty() {
        headers.push(String::new());
    }
    let label_columns = headers.len();
    headers.extend(TABLE_TOTALS.iter().map(|(_, h)| (*h).to_owned()));
    let mut table: Vec<Vec<String>> = Vec::new();
    if !dims.is_empty() {
        for row in data {
            let mut cells: Vec<String> = dims.iter().map(|d| label(d, row)).collect();
            cells.extend(TABLE_TOTALS.iter().map(|(c, _)| figure(row, c)));
            table.push(cells);
        }
    }
    let mut total = vec![String::new(); label_columns];
    total[0] = "TOTAL".to_owned();
    total.extend(TABLE_TOTALS.iter().map(|(c, _)| figure(&body["total"], c)));
    table.push(total);
    align_cost(&mut table, label_columns + TABLE_TOTALS.len() - 1);
    let mut align = vec![Align::Left; label_columns];
    align.extend([Align::Right; TABLE_TOTALS.len()]);
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    Ok(report::table(&headers, &align, &table))
}

fn align_cost(table: &mut [Vec<String>], column: usize) {
    let mut costs: Vec<String> = table.iter().map(|r| r[column].clone()).collect();
    report::align_decimals(&mut costs);
    for (row, cost) in table.iter_mut().zip(costs) {
        row[column] = cost;
    }
}

/// `cost / total` as a percentage with one decimal, for reading only.
fn share(cost: &Value, total: &Value) -> String {
    let parse = |v: &Value| v.as_str().and_then(|s| Decimal::from_str_exact(s).ok());
    match (parse(cost), parse(total)) {
        (Some(cost), Some(total)) if !total.is_zero() => cost
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|c| c.checked_div(total))
            .map_or_else(|| "-".to_owned(), |p| format!("{:.1}%", p.round_dp(1))),
        _ => "-".to_owned(),
    }
}

fn render_top(body: &Value, format: Format) -> Result<String> {
    match format {
        Format::Json => return output::json(body),
        Format::Csv => return Ok(csv(body)),
        Format::Env => bail!("{}", output::ENV_ONLY),
        Format::Table => {}
    }
    let dims = group_by(body);
    let data = rows(body);
    if data.is_empty() {
        return Ok("No spend in this period.\n".to_owned());
    }
    let figures = [
        ("requests", "REQUESTS"),
        ("input_tokens", "INPUT TOKENS"),
        ("output_tokens", "OUTPUT TOKENS"),
        ("cost_usd", "COST USD"),
    ];
    let mut headers: Vec<String> = vec!["#".to_owned()];
    headers.extend(dims.iter().map(|d| d.to_uppercase()));
    headers.extend(figures.iter().map(|(_, h)| (*h).to_owned()));
    headers.push("SHARE".to_owned());
    let total = &body["total"];
    let mut table: Vec<Vec<String>> = Vec::new();
    for (rank, row) in data.iter().enumerate() {
        let mut cells = vec![(rank + 1).to_string()];
        cells.extend(dims.iter().map(|d| label(d, row)));
        cells.extend(figures.iter().map(|(c, _)| figure(row, c)));
        cells.push(share(&row["cost_usd"], &total["cost_usd"]));
        table.push(cells);
    }
    let mut last = vec![String::new(); 1 + dims.len()];
    last[1] = "TOTAL (all)".to_owned();
    last.extend(figures.iter().map(|(c, _)| figure(total, c)));
    last.push(String::new());
    table.push(last);
    align_cost(&mut table, dims.len() + figures.len());
    let mut align = vec![Align::Right];
    align.extend(vec![Align::Left; dims.len()]);
    align.extend([Align::Right; 5]);
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    Ok(report::table(&headers, &align, &table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({
            "group_by": ["team", "model"],
            "data": [
                {"team_id": "t1", "team_name": "research", "model": "gpt-4o", "requests": 1200,
                 "errors": 3, "input_tokens": 1234567, "cached_input_tokens": 0,
                 "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "output_tokens": 2000,
                 "reasoning_tokens": 0, "cost_usd": "12.5"},
                {"team_id": "t2", "team_name": null, "model": "o3", "requests": 1,
                 "errors": 0, "input_tokens": 10, "cached_input_tokens": 0,
                 "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "output_tokens": 5,
                 "reasoning_tokens": 2, "cost_usd": "0.000000675"}
            ],
            "total": {"requests": 1201, "errors": 3, "input_tokens": 1234577,
                      "cached_input_tokens": 0, "cache_write_tokens": 0,
                      "cache_write_1h_tokens": 0, "output_tokens": 2005,
                      "reasoning_tokens": 2, "cost_usd": "12.500000675"}
        })
    }

    #[test]
    fn report_table_has_aligned_costs_and_a_total_row() -> Result<()> {
        let t = render_report(&body(), Format::Table)?;
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("TEAM      MODEL   REQUESTS"));
        assert!(lines[1].contains("research  gpt-4o     1,200"));
        assert!(lines[1].ends_with("12.500000000"));
        assert!(
            lines[2].starts_with("t2        o3"),
            "the id stands in for a missing name"
        );
        assert!(lines[2].ends_with(" 0.000000675"));
        assert!(lines[3].starts_with("TOTAL"));
        assert!(lines[3].ends_with("12.500000675"));
        Ok(())
    }

    #[test]
    fn report_csv_has_the_api_columns() -> Result<()> {
        let c = render_report(&body(), Format::Csv)?;
        let mut lines = c.lines();
        assert_eq!(
            lines.next(),
            Some(
                "team_id,team_name,model,requests,errors,input_tokens,cached_input_tokens,\
                 cache_write_tokens,cache_write_1h_tokens,output_tokens,reasoning_tokens,cost_usd"
            )
        );
        assert_eq!(lines.nth(1), Some("t2,,o3,1,0,10,0,0,0,5,2,0.000000675"));
        Ok(())
    }

    #[test]
    fn top_shows_shares() -> Result<()> {
        let t = render_top(&body(), Format::Table)?;
        assert!(t.lines().nth(1).is_some_and(|l| l.ends_with("100.0%")));
        assert!(t.contains("TOTAL (all)"));
        Ok(())
    }
}
