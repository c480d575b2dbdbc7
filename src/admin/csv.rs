//! `format=csv` for the API's reports and listings: RFC 4180 quoting, `\n` line ends.
//!
//! Listings are written from their JSON form, so a CSV has exactly the JSON's fields: one
//! column per field in the order the JSON has them, empty for `null`, and nested values
//! (lists, limits, rates) as compact JSON text in their column.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::AdminError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// The `format` query parameter: absent or `json`, or `csv`.
    pub fn from_param(value: Option<&str>) -> Result<Format, AdminError> {
        match value {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some(other) => Err(AdminError::bad(
                "format",
                format!("`format` = {other:?}: use json or csv"),
            )),
        }
    }
}

/// RFC 4180 quoting: names may contain commas, quotes and line breaks.
pub fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

pub fn csv_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

/// The JSON `envelope`, or with `Format::Csv` the CSV of its `rows` (no envelope: a page's
/// `next` cursor is not in the CSV, so ask for up to `limit=1000` rows at once).
pub fn list<E: Serialize, T: Serialize>(
    format: Format,
    envelope: E,
    rows: impl FnOnce(&E) -> &[T],
) -> Result<Response, AdminError> {
    match format {
        Format::Json => Ok(Json(envelope).into_response()),
        Format::Csv => Ok(csv_response(rows_to_csv(rows(&envelope))?)),
    }
}

fn rows_to_csv<T: Serialize>(rows: &[T]) -> Result<String, AdminError> {
    let objects: Vec<Map<String, Value>> = rows
        .iter()
        .map(|row| match serde_json::to_value(row) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(_) | Err(_) => Err(AdminError::Internal),
        })
        .collect::<Result<_, _>>()?;
    // Fields the first row leaves out (skipped when empty) still get a column.
    let mut columns: Vec<&str> = Vec::new();
    for object in &objects {
        for name in object.keys() {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let mut out = columns
        .iter()
        .map(|c| field(c))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for object in &objects {
        let line: Vec<String> = columns
            .iter()
            .map(|c| field(&cell(object.get(*c))))
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    Ok(out)
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(nested) => nested.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        name: String,
        count: u32,
        models: Option<Vec<String>>,
    }

    #[test]
    fn fields_in_order_nulls_empty_nested_values_as_json_and_names_quoted() {
        let rows = [
            Row {
                name: "r&d, \"west\"".into(),
                count: 3,
                models: Some(vec!["a".into(), "b".into()]),
            },
            Row {
                name: "<img src=x>".into(),
                count: 0,
                models: None,
            },
        ];
        assert_eq!(
            rows_to_csv(&rows).unwrap(),
            "name,count,models\n\"r&d, \"\"west\"\"\",3,\"[\"\"a\"\",\"\"b\"\"]\"\n<img src=x>,0,\n"
        );
    }

    #[test]
    fn format_is_json_csv_or_a_clear_refusal() {
        assert_eq!(Format::from_param(None).unwrap(), Format::Json);
        assert_eq!(Format::from_param(Some("csv")).unwrap(), Format::Csv);
        let err = format!("{:?}", Format::from_param(Some("xml")).unwrap_err());
        assert!(err.contains("use json or csv"), "{err}");
    }
}
