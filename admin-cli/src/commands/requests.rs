//! `tollctl requests tail`: the latest requests from `GET /admin/v1/requests`, and with
//! `--follow` new ones as they finish.
//!
//! The log orders requests by when they started but a request is logged when it ends, so a
//! long one lands behind shorter ones started after it. `--follow` therefore prints requests
//! in the order they *ended* (start plus latency), each once it has been over for
//! [`SETTLE`], by which time every request that ended before it has been logged too: the
//! ENDED column never goes back. Its table has fixed column widths (long text is cut with
//! `…`), so rows printed minutes apart still line up.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Ctx;
use crate::duration;
use crate::numbers;
use crate::output::{self, Format};
use crate::report::{self, Align};

const POLL_EVERY: Duration = Duration::from_secs(2);
const PAGE: &str = "1000";
/// How long after a request ended `--follow` waits before printing it: more than a poll plus
/// the ledger's batching delay, so requests that ended earlier are printed first.
const SETTLE: TimeDelta = TimeDelta::seconds(5);

#[derive(Debug, Subcommand)]
pub enum RequestsCmd {
    /// The latest requests, oldest first; --follow keeps printing new ones as they finish, in
    /// the order they finished (Ctrl-C stops).
    Tail {
        /// Only this team (id or name).
        #[arg(long)]
        team: Option<String>,
        /// Only this experiment (id, or name within --team).
        #[arg(long)]
        experiment: Option<String>,
        /// Only this key (id).
        #[arg(long)]
        key: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only these statuses: a code (429), a class (5xx), `error` or `ok`.
        #[arg(long)]
        status: Option<String>,
        /// Only requests with this tag (`task=gsm8k`); repeat for several, all must match.
        #[arg(long = "tag", value_name = "NAME=VALUE", value_parser = tag_filter)]
        tags: Vec<(String, String)>,
        /// How many of the latest requests to show first (1 to 1000).
        #[arg(long, default_value_t = 20, allow_negative_numbers = true, value_parser = numbers::count(1, 1000, "requests"))]
        limit: u32,
        /// Keep polling every 2 s for new requests.
        #[arg(long)]
        follow: bool,
        /// With --follow: how far back each poll looks for requests logged late. A request is
        /// logged when it ends but ordered by when it started, so a long one appears behind
        /// shorter ones; one that takes longer than this to finish is not shown.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration::parse)]
        lookback: TimeDelta,
    },
}

/// One request; everything else the API sends is kept for `--format json`.
#[derive(Debug, Deserialize, serde::Serialize)]
struct Row {
    request_id: String,
    created_at: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Page {
    data: Vec<Row>,
    next: Option<String>,
}

const COLUMNS: [&str; 18] = [
    "request_id",
    "created_at",
    "key_id",
    "key_prefix",
    "team_id",
    "team_name",
    "experiment_id",
    "experiment_name",
    "model",
    "deployment",
    "status",
    "error_type",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "tags",
];

/// (field, header, alignment, width with --follow). Numbers are never cut: their widths fit
/// any realistic value, and a larger one only pushes its row right.
const TABLE: [(&str, &str, Align, usize); 10] = [
    ("created_at", "TIME", Align::Left, 23),
    ("key_prefix", "KEY", Align::Left, 11),
    ("team_name", "TEAM", Align::Left, 16),
    ("experiment_name", "EXPERIMENT", Align::Left, 16),
    ("model", "MODEL", Align::Left, 22),
    ("status", "STATUS", Align::Left, 24),
    ("input_tokens", "IN", Align::Right, 11),
    ("output_tokens", "OUT", Align::Right, 11),
    ("cost_usd", "COST USD", Align::Right, 14),
    ("latency_ms", "MS", Align::Right, 9),
];

/// The text columns --follow may cut to their width.
const CUT: [&str; 5] = [
    "key_prefix",
    "team_name",
    "experiment_name",
    "model",
    "status",
];

impl Row {
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "request_id" => Some(self.request_id.clone()),
            "created_at" => Some(self.created_at.clone()),
            _ => match self.rest.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            },
        }
    }

    fn cell(&self, name: &str, follow: bool) -> String {
        let value = self.field(name);
        let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
        match name {
            "created_at" if follow => self.ended().map(time).or(value),
            "created_at" => self.created().map(time).or(value),
            "team_name" => value.or_else(|| self.field("team_id")),
            "key_prefix" => value.or_else(|| self.field("key_id")),
            "status" => value.map(|s| match self.field("error_type") {
                Some(e) => format!("{s} {e}"),
                None => s,
            }),
            "input_tokens" | "output_tokens" | "latency_ms" => {
                value.map(|v| report::group_digits(&v))
            }
            _ => value,
        }
        .unwrap_or_else(|| "-".to_owned())
    }

    fn created(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.created_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// When the request finished: its start plus its latency.
    fn ended(&self) -> Option<DateTime<Utc>> {
        let latency = self
            .rest
            .get("latency_ms")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        self.created()?
            .checked_add_signed(TimeDelta::try_milliseconds(latency)?)
    }
}

/// `text` cut to `width` characters, the last one `…` when something was cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Prints rows as they come: a table whose column widths are fixed by the first batch.
struct Printer {
    format: Format,
    widths: Option<Vec<usize>>,
    follow: bool,
}

impl Printer {
    fn print(&mut self, rows: &[Row]) -> Result<()> {
        let out = match self.format {
            Format::Json if self.follow => {
                // JSON Lines, so each request can be processed as it arrives.
                let mut out = String::new();
                for row in rows {
                    out.push_str(&serde_json::to_string(row)?);
                    out.push('\n');
                }
                out
            }
            Format::Json => output::json(rows)?,
            Format::Csv => {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        COLUMNS
                            .iter()
                            .map(|c| r.field(c).unwrap_or_default())
                            .collect()
                    })
                    .collect();
                let text = output::csv(&COLUMNS, &cells);
                if self.widths.is_some() {
                    // The header went out with the first batch.
                    text.split_once('\n')
                        .map(|(_, rest)| rest.to_owned())
                        .unwrap_or_default()
                } else {
                    self.widths = Some(Vec::new());
                    text
                }
            }
            Format::Env => bail!("{}", output::ENV_ONLY),
            Format::Table => self.table(rows),
        };
        output::emit(&out)
    }

    /// With --follow the widths are fixed up front; otherwise they fit this one batch.
    fn table(&mut self, rows: &[Row]) -> String {
        let align: Vec<Align> = TABLE.iter().map(|(_, _, a, _)| *a).collect();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                TABLE
                    .iter()
                    .map(|(c, _, _, width)| {
                        let clean: String = r
                            .cell(c, self.follow)
                            .chars()
                            .map(|ch| if ch.is_control() { ' ' } else { ch })
                            .collect();
                        if self.follow && CUT.contains(c) {
                            cut(&clean, *width)
                        } else {
                            clean
                        }
                    })
                    .collect()
            })
            .collect();
        let mut out = String::new();
        if self.widths.is_none() {
            let widths: Vec<usize> = if self.follow {
                TABLE.iter().map(|(_, _, _, w)| *w).collect()
            } else {
                let mut widths: Vec<usize> = TABLE.iter().map(|(_, h, _, _)| h.len()).collect();
                for row in &cells {
                    for (w, cell) in widths.iter_mut().zip(row) {
                        *w = (*w).max(cell.chars().count());
                    }
                }
                widths
            };
            let headers: Vec<String> = TABLE
                .iter()
                .map(|(c, h, _, _)| match (*c, self.follow) {
                    ("created_at", true) => "ENDED".to_owned(),
                    _ => (*h).to_owned(),
                })
                .collect();
            out.push_str(&report::line(&headers, &widths, &align));
            out.push('\n');
            self.widths = Some(widths);
        }
        let widths = self.widths.clone().unwrap_or_default();
        for row in &cells {
            out.push_str(&report::line(row, &widths, &align));
            out.push('\n');
        }
        out
    }
}

/// Rows fetched but not printed yet, released in the order they ended once [`SETTLE`] has
/// passed since.
#[derive(Default)]
struct Pending {
    rows: Vec<Row>,
}

impl Pending {
    fn add(&mut self, rows: impl IntoIterator<Item = Row>) {
        self.rows.extend(rows);
    }

    /// The rows that ended at or before `horizon`, in the order they ended (ties by id).
    fn release(&mut self, horizon: DateTime<Utc>) -> Vec<Row> {
        let (mut ready, waiting): (Vec<Row>, Vec<Row>) = std::mem::take(&mut self.rows)
            .into_iter()
            .partition(|r| r.ended().is_none_or(|e| e <= horizon));
        self.rows = waiting;
        ready.sort_by(|a, b| (a.ended(), &a.request_id).cmp(&(b.ended(), &b.request_id)));
        ready
    }
}

pub async fn run(cmd: RequestsCmd, ctx: &Ctx) -> Result<()> {
    let RequestsCmd::Tail {
        team,
        experiment,
        key,
        model,
        status,
        tags,
        limit,
        follow,
        lookback,
    } = cmd;
    let tag_params: Vec<(String, String)> = tags
        .into_iter()
        .map(|(name, value)| (format!("tag:{name}"), value))
        .collect();
    let filters = [
        ("team", team.as_deref()),
        ("experiment", experiment.as_deref()),
        ("key", key.as_deref()),
        ("model", model.as_deref()),
        ("status", status.as_deref()),
    ];
    let limit = limit.to_string();
    let mut filters = filters.to_vec();
    for (name, value) in &tag_params {
        filters.push((name.as_str(), Some(value.as_str())));
    }
    let mut query = filters.clone();
    query.push(("limit", Some(&limit)));
    let latest: Page = ctx.client.get(&["requests"], &query).await?;
    let mut rows = latest.data;
    rows.reverse();
    let mut printer = Printer {
        format: ctx.format,
        widths: None,
        follow,
    };
    if !follow {
        if rows.is_empty() && ctx.format == Format::Table {
            return output::emit("No requests.\n");
        }
        return printer.print(&rows);
    }
    let mut seen: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut newest = back(Utc::now(), lookback);
    remember(&mut seen, &mut newest, &rows);
    let mut pending = Pending::default();
    pending.add(rows);
    if ctx.format == Format::Table {
        // The header at once, so the command shows it is running.
        printer.print(&[])?;
    }
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let ready = pending.release(back(Utc::now(), SETTLE));
        if !ready.is_empty() {
            printer.print(&ready)?;
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        // Re-read the last `lookback` and keep what was not seen yet: rows are ordered by
        // when requests started but logged when they end, so new rows can land behind old ones.
        let since = back(newest, lookback).to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut after: Option<String> = None;
        let mut fresh = Vec::new();
        loop {
            let mut query = filters.to_vec();
            query.extend([
                ("order", Some("asc")),
                ("from", Some(since.as_str())),
                ("limit", Some(PAGE)),
                ("after", after.as_deref()),
            ]);
            let page: Page = ctx.client.get(&["requests"], &query).await?;
            fresh.extend(
                page.data
                    .into_iter()
                    .filter(|r| !seen.contains_key(&r.request_id)),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        remember(&mut seen, &mut newest, &fresh);
        pending.add(fresh);
        let horizon = back(newest, lookback);
        seen.retain(|_, at| *at >= horizon);
    }
}
/// `at - d`, or the epoch for an absurd `d`.
fn back(at: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    at.checked_sub_signed(d).unwrap_or(DateTime::UNIX_EPOCH)
}

fn remember(seen: &mut HashMap<String, DateTime<Utc>>, newest: &mut DateTime<Utc>, rows: &[Row]) {
    for row in rows {
        let at = row.created().unwrap_or(*newest);
        *newest = (*newest).max(at);
        seen.insert(row.request_id.clone(), at);
    }
}

/// `--tag task=gsm8k`: the gateway checks the name and value; this only splits them.
pub(super) fn tag_filter(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?} is not NAME=VALUE, like task=gsm8k")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row() -> Row {
        serde_json::from_value(json!({
            "request_id": "r1", "created_at": "2026-11-01T12:00:01.250Z", "key_prefix": "tg-Ab",
            "team_name": "research", "experiment_name": null, "model": "gpt-4o", "status": 429,
            "error_type": "rate_limited", "input_tokens": 1200, "output_tokens": 0,
            "cost_usd": "0", "latency_ms": 3, "extra": true
        }))
        .unwrap()
    }

    #[test]
    fn table_cells_are_readable() {
        let r = row();
        assert_eq!(r.cell("created_at", false), "2026-11-01 12:00:01.250");
        assert_eq!(r.cell("created_at", true), "2026-11-01 12:00:01.253");
        assert_eq!(r.cell("status", false), "429 rate_limited");
        assert_eq!(r.cell("experiment_name", false), "-");
        assert_eq!(r.cell("input_tokens", false), "1,200");
    }

    fn at(id: &str, created_at: &str, latency_ms: i64) -> Row {
        serde_json::from_value(json!({
            "request_id": id, "created_at": created_at, "latency_ms": latency_ms,
            "team_name": "a-team-with-a-rather-long-name", "model": "m", "status": 200
        }))
        .unwrap()
    }

    #[test]
    fn follow_releases_rows_in_the_order_they_ended_once_settled() {
        let mut pending = Pending::default();
        // A long request started first but ended last; a short one is still settling.
        pending.add([
            at("long", "2026-11-01T12:00:00Z", 9_000),
            at("short", "2026-11-01T12:00:05Z", 100),
            at("late", "2026-11-01T12:00:20Z", 100),
        ]);
        let horizon = DateTime::parse_from_rfc3339("2026-11-01T12:00:10Z")
            .unwrap()
            .with_timezone(&Utc);
        let ids: Vec<String> = pending
            .release(horizon)
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids, ["short", "long"]);
        assert_eq!(pending.rows.len(), 1);
    }

    #[test]
    fn follow_columns_keep_their_width_whatever_the_rows_hold() {
        let mut p = Printer {
            format: Format::Table,
            widths: None,
            follow: true,
        };
        let header = p.table(&[]);
        let short = p.table(&[at("a", "2026-11-01T12:00:00Z", 5)]);
        let mut long = at("b", "2026-11-01T12:00:01Z", 5);
        long.rest.insert(
            "model".into(),
            json!("a-model-name-far-longer-than-its-column"),
        );
        let long = p.table(&[long]);
        // In characters, not bytes: `…` is three bytes.
        let column = |line: &str, text: &str| line.find(text).map(|b| line[..b].chars().count());
        let header = header.lines().next().unwrap();
        assert!(header.starts_with("ENDED"), "{header}");
        for line in [short.lines().next().unwrap(), long.lines().next().unwrap()] {
            assert_eq!(
                column(line, "200"),
                column(header, "STATUS"),
                "{line}\n{header}"
            );
            assert!(line.contains("a-team-with-a-r…  "), "{line}");
        }
    }

    #[test]
    fn follow_tables_print_the_header_once() -> Result<()> {
        let mut p = Printer {
            format: Format::Table,
            widths: None,
            follow: true,
        };
        let first = p.table(&[row()]);
        let second = p.table(&[row()]);
        assert!(first.starts_with("ENDED"));
        assert_eq!(first.lines().count(), 2);
        assert_eq!(second.lines().count(), 1);
        assert_eq!(first.lines().nth(1), second.lines().next());
        Ok(())
    }

    #[test]
    fn json_keeps_unknown_fields() -> Result<()> {
        let v = serde_json::to_value(row())?;
        assert_eq!(v["extra"], true);
        assert_eq!(v["request_id"], "r1");
        Ok(())
    }
}
