//! Query-string parameters of the reporting routes: parsed by hand so that every mistake (an
//! unknown or repeated parameter, a bad date, a team that does not exist) is a 400 or 404 in
//! the API's error shape that names the parameter.

use crate::tags::Tags;
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::AdminState;
use super::caller::{Caller, key_id};
use super::error::AdminError;
use crate::ids::{ExperimentId, KeyId, TeamId};

/// The parameters of one request, each allowed once.
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Checks every parameter against `allowed`.
    pub fn new(
        pairs: Vec<(String, String)>,
        allowed: &[&'static str],
    ) -> Result<Params, AdminError> {
        let mut values = HashMap::new();
        for (name, value) in pairs {
            let Some(param) = allowed.iter().copied().find(|a| *a == name) else {
                return Err(AdminError::BadRequest {
                    message: format!(
                        "unknown parameter `{name}` (this route takes: {})",
                        allowed.join(", ")
                    ),
                    param: Some(name.into()),
                });
            };
            if values.insert(name, value).is_some() {
                return Err(AdminError::bad(
                    param,
                    format!("`{param}` is given more than once"),
                ));
            }
        }
        Ok(Params { values })
    }

    /// The trimmed value; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A time: RFC 3339 (any offset, converted to UTC) or a UTC date `YYYY-MM-DD` (midnight).
    pub fn time(&self, param: &'static str) -> Result<Option<DateTime<Utc>>, AdminError> {
        let Some(text) = self.get(param) else {
            return Ok(None);
        };
        parse_time(text).map(Some).ok_or_else(|| {
            AdminError::bad(
                param,
                format!(
                    "`{param}` = {text:?} is not a time: use RFC 3339 (2026-11-01T00:00:00Z) or a UTC date (2026-11-01)"
                ),
            )
        })
    }

    /// A whole number within `range`, or `default`.
    pub fn number(
        &self,
        param: &'static str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, AdminError> {
        let Some(text) = self.get(param) else {
            return Ok(default);
        };
        text.parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                AdminError::bad(
                    param,
                    format!(
                        "`{param}` must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    /// Both bounds of a `from` (inclusive) / `to` (exclusive) range, checked for order.
    pub fn range(&self) -> Result<TimeRange, AdminError> {
        let from = self.time("from")?;
        let to = self.time("to")?;
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            return Err(AdminError::bad(
                "to",
                format!("`to` ({to}) must be after `from` ({from}); `to` is exclusive"),
            ));
        }
        Ok((from, to))
    }

    /// The team, experiment and key filters, resolved to ids. A team is an id or a name; an
    /// experiment an id, or a name within `team`; a key an id. Naming something that does not
    /// exist is a 404 rather than an empty report, so a typo is not mistaken for "no spend".
    /// A team token's own team is always the team filter, and naming anything of another
    /// team is the same 404 as naming nothing that exists.
    pub async fn scope(&self, state: &AdminState, caller: &Caller) -> Result<Scope, AdminError> {
        let team = match self.get("team") {
            Some(t) => Some(caller.team_named(state, t).await?.id),
            None => caller.team_filter(),
        };
        let experiment = match self.get("experiment") {
            None => None,
            Some(e) => Some(
                caller
                    .experiment_named(state, e, self.get("team"))
                    .await?
                    .id,
            ),
        };
        let key = match self.get("key") {
            None => None,
            Some(k) => {
                let id = key_id(k)?;
                state
                    .store
                    .get_key(id)
                    .await?
                    .filter(|x| caller.can_see_team(x.team_id))
                    .ok_or_else(|| caller.not_found("key", k))?;
                Some(id)
            }
        };
        Ok(Scope {
            team,
            experiment,
            key,
        })
    }
}

/// Cuts rows fetched with one more than `limit` (the extra one tells whether another page
/// follows) back to `limit`, and returns the cursor of the last row kept when one does.
pub fn cut_page<T>(
    rows: &mut Vec<T>,
    limit: i64,
    cursor: impl FnOnce(&T) -> String,
) -> Option<String> {
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > page;
    rows.truncate(page);
    if more { rows.last().map(cursor) } else { None }
}

/// `from` (inclusive) and `to` (exclusive), each optional.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

pub struct Scope {
    pub team: Option<TeamId>,
    pub experiment: Option<ExperimentId>,
    pub key: Option<KeyId>,
}

/// RFC 3339 or `YYYY-MM-DD` (UTC midnight). A `+` offset that arrived unencoded in a query
/// string reads as a space; it is put back.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Some((date, offset)) = text.rsplit_once(' ')
        && let Ok(t) = DateTime::parse_from_rfc3339(&format!("{date}+{offset}"))
    {
        return Some(t.with_timezone(&Utc));
    }
    if text.len() == 10 {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(NaiveTime::MIN).and_utc());
    }
    None
}

/// Splits `tag:<name>=<value>` parameters off the others: the tags every row must carry.
pub fn split_tag_filters(
    pairs: Vec<(String, String)>,
) -> Result<(Tags, Vec<(String, String)>), AdminError> {
    let (tag_pairs, rest): (Vec<_>, Vec<_>) =
        pairs.into_iter().partition(|(k, _)| k.starts_with("tag:"));
    let mut wanted = std::collections::BTreeMap::new();
    for (name, value) in tag_pairs {
        let tag = name.trim_start_matches("tag:").to_owned();
        if wanted.insert(tag, value).is_some() {
            return Err(AdminError::bad(
                "tag",
                format!("`{name}` is given twice: a row has one value per tag"),
            ));
        }
    }
    let tags = Tags::from_map("the tag: filters", &wanted)
        .map_err(|e| AdminError::bad("tag", e.to_string()))?;
    Ok((tags, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates_in_utc() {
        let at = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-11-01").as_deref(),
            Some("2026-11-01T00:00:00+00:00")
        );
        assert_eq!(
            at("2026-11-01T02:00:00+02:00").as_deref(),
            Some("2026-11-01T00:00:00+00:00")
        );
        assert_eq!(
            at("2026-11-01T02:00:00 02:00").as_deref(),
            Some("2026-11-01T00:00:00+00:00")
        );
        assert_eq!(
            at("2026-11-01T00:00:00Z").as_deref(),
            at("2026-11-01").as_deref()
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-1",
            "2026-11-01T00:00",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_page_is_cut_to_its_limit_with_a_cursor_only_when_more_follow() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(
            cut_page(&mut rows, 2, |r| r.to_string()).as_deref(),
            Some("2")
        );
        assert_eq!(rows, [1, 2]);
        assert_eq!(cut_page(&mut rows, 2, |r| r.to_string()), None);
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(Params::new(pairs(&[("team", "a")]), &["team"]).is_ok());
        assert!(Params::new(pairs(&[("grup_by", "a")]), &["group_by"]).is_err());
        assert!(Params::new(pairs(&[("team", "a"), ("team", "b")]), &["team"]).is_err());
        let p = Params::new(
            pairs(&[("limit", " 7 "), ("model", " ")]),
            &["limit", "model"],
        )
        .expect("valid");
        assert_eq!(p.number("limit", 50, 1..=1000).ok(), Some(7));
        assert_eq!(p.get("model"), None);
    }
}
