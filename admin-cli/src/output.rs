//! Rendering records as an aligned table (people), JSON or CSV (scripts).

use std::io::{ErrorKind, Write};

use anyhow::{Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// Pretty JSON, exactly the API's objects (lists as an array; `requests tail --follow`:
    /// one object per line).
    Json,
    /// CSV with a header row, all fields.
    Csv,
    /// `OPENAI_API_KEY=...` lines, for `keys issue`, `keys rotate` and `campaigns launch`.
    Env,
}

/// The one refusal of `--format env` elsewhere.
pub const ENV_ONLY: &str = "--format env is only for `keys issue`, `keys rotate` and `campaigns launch`; use table, json or csv";

/// How a value is written: for reading in a table, or verbatim for CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Human,
    Raw,
}

/// A resource the CLI can print.
pub trait Record: Serialize {
    /// Every column, in order: CSV headers and the labels of the detail view.
    const COLUMNS: &'static [&'static str];
    /// The subset of [`Self::COLUMNS`] that fits in a list table (shown in `COLUMNS` order).
    const TABLE_COLUMNS: &'static [&'static str] = Self::COLUMNS;
    /// One value per entry of [`Self::COLUMNS`].
    fn values(&self, style: Style) -> Vec<String>;
}

/// Renders a list of records; `noun` (plural) names them when the list is empty.
pub fn list<T: Record>(items: &[T], format: Format, noun: &str) -> Result<String> {
    match format {
        Format::Table if items.is_empty() => Ok(format!("No {noun}.\n")),
        Format::Table => {
            let keep: Vec<bool> = T::COLUMNS
                .iter()
                .map(|c| T::TABLE_COLUMNS.contains(c))
                .collect();
            let pick = |row: Vec<String>| -> Vec<String> {
                row.into_iter()
                    .zip(&keep)
                    .filter(|(_, k)| **k)
                    .map(|(v, _)| v)
                    .collect()
            };
            let headers: Vec<String> = T::COLUMNS
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| header(c))
                .collect();
            let rows: Vec<Vec<String>> =
                items.iter().map(|i| pick(i.values(Style::Human))).collect();
            Ok(table(&headers, &rows))
        }
        Format::Json => json(&items),
        Format::Csv => {
            let rows: Vec<Vec<String>> = items.iter().map(|i| i.values(Style::Raw)).collect();
            Ok(csv(T::COLUMNS, &rows))
        }
        Format::Env => bail!("{ENV_ONLY}"),
    }
}

/// Renders one record: a two-column field/value view in table mode.
pub fn one<T: Record>(item: &T, format: Format) -> Result<String> {
    match format {
        Format::Table => {
            let rows: Vec<Vec<String>> = T::COLUMNS
                .iter()
                .zip(item.values(Style::Human))
                .map(|(c, v)| vec![header(c), v])
                .collect();
            Ok(table::<&str>(&[], &rows))
        }
        Format::Json => json(item),
        Format::Csv => Ok(csv(T::COLUMNS, &[item.values(Style::Raw)])),
        Format::Env => bail!("{ENV_ONLY}"),
    }
}

pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}

/// Left-aligned columns separated by two spaces, no trailing whitespace. An empty `headers`
/// renders rows only.
pub fn table<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>]) -> String {
    let clean_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let header_row: Vec<String> = headers.iter().map(|h| h.as_ref().to_string()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header_row)
        .filter(|h| !h.is_empty())
        .chain(clean_rows.iter())
        .collect();
    let ncols = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0; ncols];
    for row in &all {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// RFC 4180 CSV (but `\n` line ends, as Unix tools expect): fields with commas, quotes or line
/// breaks are quoted, quotes doubled.
pub fn csv<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let fields: Vec<String> = cells.map(csv_field).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    };
    line(&mut headers.iter().map(AsRef::as_ref));
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `created_at` → `CREATED AT`.
fn header(column: &str) -> String {
    column.replace('_', " ").to_uppercase()
}

/// Server data is shown verbatim except control characters, which would break alignment or
/// be interpreted by the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// An optional value: `-` when absent in a table, empty in CSV.
pub fn opt(v: Option<&str>, style: Style) -> String {
    match (v, style) {
        (Some(v), _) => v.to_string(),
        (None, Style::Human) => "-".to_string(),
        (None, Style::Raw) => String::new(),
    }
}

/// A timestamp: `2025-06-01 12:00 UTC` in a table, the API's RFC 3339 in CSV.
pub fn time(v: Option<&str>, style: Style) -> String {
    match (v, style) {
        (Some(v), Style::Human) => DateTime::parse_from_rfc3339(v)
            .map(|t| {
                t.with_timezone(&Utc)
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()
            })
            .unwrap_or_else(|_| v.to_string()),
        (v, style) => opt(v, style),
    }
}

/// A list: `a, b` in a table (`-` when empty), `a,b` in CSV.
pub fn join(items: &[String], style: Style) -> String {
    match style {
        Style::Human if items.is_empty() => "-".to_string(),
        Style::Human => items.join(", "),
        Style::Raw => items.join(","),
    }
}

/// Normalizes a user-supplied RFC 3339 time to UTC, so the request is unambiguous.
pub fn parse_time(flag: &str, v: &str) -> Result<String> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .map_err(|e| {
            anyhow::anyhow!("{flag} {v:?} is not an RFC 3339 time ({e}); e.g. 2025-12-31T23:59:00Z")
        })
}

/// Writes to stdout; a closed pipe (`tollctl keys list | head`) is not an error.
pub fn emit(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        id: &'static str,
        name: &'static str,
        note: Option<&'static str>,
    }

    impl Record for Row {
        const COLUMNS: &'static [&'static str] = &["id", "name", "note"];
        const TABLE_COLUMNS: &'static [&'static str] = &["id", "name"];
        fn values(&self, style: Style) -> Vec<String> {
            vec![self.id.into(), self.name.into(), opt(self.note, style)]
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            Row {
                id: "1",
                name: "research",
                note: None,
            },
            Row {
                id: "22",
                name: "a, \"b\"",
                note: Some("x"),
            },
        ]
    }

    #[test]
    fn table_aligns_columns_without_trailing_space() {
        let t = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "research".into()],
                vec!["22".into(), "ml".into()],
            ],
        );
        assert_eq!(t, "ID  NAME\n1   research\n22  ml\n");
    }

    #[test]
    fn table_replaces_control_characters() {
        let t = table(&["A", "B"], &[vec!["x\ny".into(), "\u{1b}[31m".into()]]);
        assert_eq!(t, "A    B\nx y   [31m\n");
    }

    #[test]
    fn list_table_shows_only_table_columns() -> Result<()> {
        let t = list(&rows(), Format::Table, "rows")?;
        assert_eq!(t, "ID  NAME\n1   research\n22  a, \"b\"\n");
        assert_eq!(list::<Row>(&[], Format::Table, "rows")?, "No rows.\n");
        Ok(())
    }

    #[test]
    fn csv_has_all_columns_and_quotes() -> Result<()> {
        let c = list(&rows(), Format::Csv, "rows")?;
        assert_eq!(c, "id,name,note\n1,research,\n22,\"a, \"\"b\"\"\",x\n");
        assert_eq!(list::<Row>(&[], Format::Csv, "rows")?, "id,name,note\n");
        Ok(())
    }

    #[test]
    fn one_renders_a_field_value_view() -> Result<()> {
        let r = Row {
            id: "1",
            name: "research",
            note: None,
        };
        assert_eq!(
            one(&r, Format::Table)?,
            "ID    1\nNAME  research\nNOTE  -\n"
        );
        assert_eq!(one(&r, Format::Csv)?, "id,name,note\n1,research,\n");
        let v: serde_json::Value = serde_json::from_str(&one(&r, Format::Json)?)?;
        assert_eq!(v["name"], "research");
        Ok(())
    }

    #[test]
    fn json_list_is_an_array_and_env_is_refused() -> Result<()> {
        let v: serde_json::Value = serde_json::from_str(&list(&rows(), Format::Json, "rows")?)?;
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        assert!(list(&rows(), Format::Env, "rows").is_err());
        Ok(())
    }

    #[test]
    fn times_and_lists() -> Result<()> {
        let t = "2025-06-01T14:30:15+02:00";
        assert_eq!(time(Some(t), Style::Human), "2025-06-01 12:30 UTC");
        assert_eq!(time(Some(t), Style::Raw), t);
        assert_eq!(time(None, Style::Human), "-");
        assert_eq!(time(Some("soon"), Style::Human), "soon");
        let l = vec!["a".to_string(), "b".to_string()];
        assert_eq!(join(&l, Style::Human), "a, b");
        assert_eq!(join(&l, Style::Raw), "a,b");
        assert_eq!(join(&[], Style::Human), "-");
        assert_eq!(
            parse_time("--ends-at", "2025-06-01T14:30:15+02:00")?,
            "2025-06-01T12:30:15Z"
        );
        assert!(parse_time("--ends-at", "tomorrow").is_err());
        Ok(())
    }
}
