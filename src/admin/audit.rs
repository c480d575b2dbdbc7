//! The audit log of admin changes: every handler that changes something makes the change in
//! a [`Tx`] and ends with [`commit`], which writes the change's entries in the same
//! transaction, so a change and its entries are committed together or not at all (a
//! [`Tx`] cannot be committed any other way). `GET /admin/v1/audit` lists the entries,
//! newest first.
//!
//! Entries carry the objects as the API shows them, which never include a secret: keys
//! appear by id and prefix.

use axum::extract::State;
use axum::response::Response;
use chrono::DateTime;
use serde::Serialize;
use serde_json::Value;

use super::AdminState;
use super::caller::Caller;
use super::csv::{self, Format};
use super::error::{AdminError, ErrorBody};
use super::extract::ApiQuery;
use super::params::{Params, cut_page};
use super::response::Page;
use crate::ids::TeamId;
use crate::store::{ActionFilter, AuditCursor, AuditEntry, AuditFilter, NewAuditEntry, Tx};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// One change, built by the handler that made it.
pub struct Change {
    action: &'static str,
    target_kind: &'static str,
    target_id: String,
    team: Option<TeamId>,
    before: Option<Value>,
    after: Option<Value>,
}

impl Change {
    /// `action` is `<object>.<verb>`, e.g. `key.revoke`; the target is what changed.
    pub fn new(
        action: &'static str,
        target_kind: &'static str,
        target_id: impl ToString,
    ) -> Change {
        Change {
            action,
            target_kind,
            target_id: target_id.to_string(),
            team: None,
            before: None,
            after: None,
        }
    }

    /// The team the change belongs to: its team tokens see the entry.
    pub fn team(mut self, team: TeamId) -> Change {
        self.team = Some(team);
        self
    }

    pub fn before(mut self, before: &impl Serialize) -> Change {
        self.before = serde_json::to_value(before).ok().filter(|v| !v.is_null());
        self
    }

    pub fn after(mut self, after: &impl Serialize) -> Change {
        self.after = serde_json::to_value(after).ok().filter(|v| !v.is_null());
        self
    }
}

/// Commits the change `tx` holds with the audit entries of `changes`: both or neither. If
/// writing the entries (or the commit) fails, nothing of the change is kept and the caller
/// answers 500.
pub async fn commit(tx: Tx, caller: &Caller, changes: Vec<Change>) -> Result<(), AdminError> {
    let entries: Vec<NewAuditEntry> = changes
        .into_iter()
        .map(|c| NewAuditEntry {
            actor: caller.subject().to_owned(),
            role: caller.role(),
            team_id: c.team,
            action: c.action,
            target_kind: c.target_kind,
            target_id: c.target_id,
            before: c.before,
            after: c.after,
        })
        .collect();
    tx.commit_audited(&entries).await.map_err(|e| {
        tracing::error!(error = %e, "admin change rolled back: it or its audit entries could not be written");
        AdminError::Internal
    })
}

const PARAMS: [&str; 9] = [
    "team", "actor", "action", "target", "from", "to", "limit", "before", "format",
];

/// `GET /admin/v1/audit`: newest first; `before` continues from a previous page's `next`.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "audit",
    params(
        ("limit" = Option<i64>, Query, description = "entries per page, 1..=1000, default 50"),
        ("before" = Option<String>, Query, description = "the `next` of the previous page"),
        ("team" = Option<String>, Query, description = "team id or name (team tokens: always their own)"),
        ("actor" = Option<String>, Query, description = "the token `sub` that made the change"),
        ("action" = Option<String>, Query, description = "an action (`key.revoke`) or a prefix ending in `.*` (`key.*`)"),
        ("target" = Option<String>, Query, description = "the changed object's id"),
        ("from" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD, inclusive"),
        ("to" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD, exclusive"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, body = Page<AuditEntry>, description = "JSON, or text/csv with format=csv"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let params = Params::new(pairs, &PARAMS)?;
    let format = Format::from_param(params.get("format"))?;
    let limit = params.number("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?;
    let before = params.get("before").map(cursor).transpose()?;
    let (from, to) = params.range()?;
    let team = match params.get("team") {
        Some(t) => Some(caller.team_named(&state, t).await?.id),
        None => caller.team_filter(),
    };
    let action = params.get("action").map(|a| match a.strip_suffix('*') {
        Some(prefix) => ActionFilter::Prefix(prefix.to_owned()),
        None => ActionFilter::Exact(a.to_owned()),
    });
    let filter = AuditFilter {
        team,
        actor: params.get("actor").map(str::to_owned),
        action,
        target_id: params.get("target").map(str::to_owned),
        from,
        to,
    };
    // One more than asked, to know whether there is a next page.
    let mut entries = state.store.list_audit(&filter, before, limit + 1).await?;
    let next = cut_page(&mut entries, limit, |e| {
        encode_cursor(&AuditCursor { at: e.at, id: e.id })
    });
    let page = Page {
        data: entries,
        next,
    };
    csv::list(format, page, |p| &p.data)
}

/// The last entry's time in microseconds and its id, hex-encoded. Clients treat it as opaque.
fn encode_cursor(cursor: &AuditCursor) -> String {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&cursor.at.timestamp_micros().to_be_bytes());
    bytes.extend_from_slice(&cursor.id.to_be_bytes());
    hex::encode(bytes)
}

fn cursor(text: &str) -> Result<AuditCursor, AdminError> {
    let bad = || {
        AdminError::bad(
            "before",
            "`before` is not a cursor (pass the `next` of a previous page unchanged)",
        )
    };
    let bytes = hex::decode(text).map_err(|_| bad())?;
    if bytes.len() != 16 {
        return Err(bad());
    }
    let (micros, id) = bytes.split_at(8);
    let micros = i64::from_be_bytes(micros.try_into().map_err(|_| bad())?);
    let id = i64::from_be_bytes(id.try_into().map_err(|_| bad())?);
    Ok(AuditCursor {
        at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let original = AuditCursor {
            at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            id: 42,
        };
        let text = encode_cursor(&original);
        assert_eq!(cursor(&text).unwrap(), original);
        for bad in ["", "zz", &text[..30], &format!("{text}00")] {
            assert!(cursor(bad).is_err(), "{bad}");
        }
    }
}
