//! `GET /admin/v1/requests`: the per-request log, newest first, paged with an opaque cursor.

use axum::extract::State;
use axum::response::Response;
use chrono::DateTime;

use super::AdminState;
use super::caller::Caller;
use super::csv::{self, Format};
use super::error::{AdminError, ErrorBody};
use super::extract::ApiQuery;
use super::params::{Params, cut_page};
use super::response::Page;
use crate::ids::RequestId;
use crate::store::{RequestCursor, RequestFilter, RequestPage, RequestRow, StatusFilter};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

const PARAMS: [&str; 12] = [
    "format",
    "team",
    "experiment",
    "key",
    "model",
    "status",
    "from",
    "to",
    "limit",
    "before",
    "after",
    "order",
];

/// The request log, newest first (or oldest first with `order=asc` / `after`). Team tokens:
/// their team's requests only.
#[utoipa::path(
    get,
    path = "/admin/v1/requests",
    tag = "requests",
    params(
        ("limit" = Option<i64>, Query, description = "1..=1000, default 50"),
        ("before" = Option<String>, Query, description = "the `next` of a newest-first page"),
        ("after" = Option<String>, Query, description = "the `next` of an oldest-first page"),
        ("order" = Option<String>, Query, description = "desc (default) or asc"),
        ("team" = Option<String>, Query, description = "team id or name"),
        ("experiment" = Option<String>, Query, description = "experiment id, or a name within `team`"),
        ("key" = Option<String>, Query, description = "key id"),
        ("model" = Option<String>, Query),
        ("status" = Option<String>, Query, description = "a code, a class (4xx), error or ok"),
        ("from" = Option<String>, Query, description = "inclusive: RFC 3339 or YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "exclusive"),
        ("tag:<name>" = Option<String>, Query, description = "rows with this tag value, e.g. `tag:task=gsm8k` (repeat for several tags)"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, body = Page<RequestRow>, description = "JSON, or text/csv with format=csv"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let (tags, pairs) = super::params::split_tag_filters(pairs)?;
    let params = Params::new(pairs, &PARAMS)?;
    let format = Format::from_param(params.get("format"))?;
    let limit = params.number("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?;
    let before = params
        .get("before")
        .map(|c| cursor("before", c))
        .transpose()?;
    let after = params
        .get("after")
        .map(|c| cursor("after", c))
        .transpose()?;
    let ascending = match (params.get("order"), before, after) {
        (_, Some(_), Some(_)) => {
            return Err(AdminError::bad(
                "after",
                "give `before` (to page back) or `after` (to page forward), not both",
            ));
        }
        (Some("asc"), Some(_), None) => {
            return Err(AdminError::bad(
                "before",
                "`before` pages a newest-first listing; use `after` with order=asc",
            ));
        }
        (Some("desc"), None, Some(_)) => {
            return Err(AdminError::bad(
                "after",
                "`after` pages an oldest-first listing; use `before` with order=desc",
            ));
        }
        (Some("asc"), ..) | (None, None, Some(_)) => true,
        (Some("desc") | None, ..) => false,
        (Some(other), ..) => {
            return Err(AdminError::bad(
                "order",
                format!("`order` = {other:?}: use desc (newest first, the default) or asc"),
            ));
        }
    };
    let status = params.get("status").map(status).transpose()?;
    let (from, to) = params.range()?;
    let scope = params.scope(&state, &caller).await?;
    let page = RequestPage {
        filter: RequestFilter {
            team: scope.team,
            experiment: scope.experiment,
            key: scope.key,
            model: params.get("model").map(str::to_owned),
            status,
            tags,
            from,
            to,
        },
        ascending,
        cursor: before.or(after),
        // One more than asked, to know whether there is a next page.
        limit: limit + 1,
    };
    let mut rows = state.store.list_requests(&page).await?;
    let next = cut_page(&mut rows, limit, |row| encode_cursor(&row.cursor()));
    csv::list(format, Page { data: rows, next }, |p| &p.data)
}

fn status(text: &str) -> Result<StatusFilter, AdminError> {
    let bad = || {
        AdminError::bad(
            "status",
            format!(
                "`status` = {text:?}: use a status code (429), a class (4xx, 5xx), error (400 and above) or ok"
            ),
        )
    };
    match text {
        "error" | "errors" => return Ok(StatusFilter::Errors),
        "ok" => return Ok(StatusFilter::Ok),
        _ => {}
    }
    if let Some(class) = text.strip_suffix("xx") {
        return match class.parse::<i16>() {
            Ok(class @ 1..=5) => Ok(StatusFilter::Class(class)),
            _ => Err(bad()),
        };
    }
    match text.parse::<i16>() {
        Ok(code @ 100..=599) => Ok(StatusFilter::Exact(code)),
        _ => Err(bad()),
    }
}

/// A cursor is the last row's position: its `created_at` in microseconds and its request id,
/// hex-encoded. Clients treat it as opaque.
pub fn encode_cursor(cursor: &RequestCursor) -> String {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&cursor.created_at.timestamp_micros().to_be_bytes());
    bytes.extend_from_slice(cursor.request_id.0.as_bytes());
    hex::encode(bytes)
}

fn cursor(param: &'static str, text: &str) -> Result<RequestCursor, AdminError> {
    let bad = || {
        AdminError::bad(
            param,
            format!("`{param}` is not a cursor (pass the `next` of a previous page unchanged)"),
        )
    };
    let bytes = hex::decode(text).map_err(|_| bad())?;
    let (micros, id) = bytes.split_at_checked(8).ok_or_else(bad)?;
    let micros = i64::from_be_bytes(micros.try_into().map_err(|_| bad())?);
    let id = uuid::Uuid::from_slice(id).map_err(|_| bad())?;
    let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(RequestCursor {
        created_at,
        request_id: RequestId(id),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let original = RequestCursor {
            created_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            request_id: RequestId::new(),
        };
        let text = encode_cursor(&original);
        assert_eq!(text.len(), 48);
        assert_eq!(cursor("before", &text).unwrap(), original);
        for bad in ["", "zz", &text[..46], &format!("{text}00")] {
            assert!(cursor("before", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_filters() {
        assert_eq!(status("429").unwrap(), StatusFilter::Exact(429));
        assert_eq!(status("5xx").unwrap(), StatusFilter::Class(5));
        assert_eq!(status("error").unwrap(), StatusFilter::Errors);
        assert_eq!(status("ok").unwrap(), StatusFilter::Ok);
        for bad in ["", "9xx", "42", "abc", "600"] {
            assert!(status(bad).is_err(), "{bad}");
        }
    }
}
