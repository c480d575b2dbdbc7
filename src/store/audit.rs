//! The audit log of admin changes, newest first, with keyset pagination on (`at`, `id`), and
//! [`Tx`], the transaction every admin change is made in: it commits only together with the
//! change's audit entries, so a change is never recorded without them nor they without it.
//!
//! `before` and `after` are JSON documents; they cross the driver as text and are cast in SQL.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::Store;
use super::filters::push_time_range;
use crate::ids::TeamId;

/// One change to record.
#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    /// The token's `sub`.
    pub actor: String,
    /// `admin` or `team`.
    pub role: &'static str,
    /// The team the change belongs to (`None` for global changes such as a price reload).
    pub team_id: Option<TeamId>,
    pub action: &'static str,
    pub target_kind: &'static str,
    pub target_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// One recorded change, as the admin API lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    pub team_id: Option<TeamId>,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    /// The object before the change (`null` for a creation).
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The object after the change (`null` for a removal).
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    role: String,
    team_id: Option<TeamId>,
    action: String,
    target_kind: String,
    target_id: String,
    before: Option<String>,
    after: Option<String>,
}

/// A position in the log: the last entry of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditCursor {
    pub at: DateTime<Utc>,
    pub id: i64,
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub team: Option<TeamId>,
    pub actor: Option<String>,
    /// An exact action, or every action starting with `prefix` when this is `Prefix`.
    pub action: Option<ActionFilter>,
    pub target_id: Option<String>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionFilter {
    Exact(String),
    Prefix(String),
}

/// One admin change in progress: the writes of the `Tx` methods (in this module's siblings)
/// are seen by no one until [`Tx::commit_audited`] commits them with their audit entries.
/// Dropped without that, everything it wrote is rolled back.
pub struct Tx {
    tx: sqlx::Transaction<'static, Postgres>,
}

impl Tx {
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Writes the entries and commits: the change and its entries are written together or not
    /// at all. With no entries (a call that changed nothing) it just commits.
    pub async fn commit_audited(mut self, entries: &[NewAuditEntry]) -> Result<(), sqlx::Error> {
        if !entries.is_empty() {
            insert_audit(&mut self.tx, entries).await?;
        }
        self.tx.commit().await
    }
}

async fn insert_audit(db: &mut PgConnection, entries: &[NewAuditEntry]) -> Result<(), sqlx::Error> {
    let text = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let actors: Vec<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
    let roles: Vec<&str> = entries.iter().map(|e| e.role).collect();
    let teams: Vec<Option<uuid::Uuid>> = entries.iter().map(|e| e.team_id.map(|t| t.0)).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e.action).collect();
    let target_kinds: Vec<&str> = entries.iter().map(|e| e.target_kind).collect();
    let target_ids: Vec<&str> = entries.iter().map(|e| e.target_id.as_str()).collect();
    let befores: Vec<Option<String>> = entries.iter().map(|e| text(&e.before)).collect();
    let afters: Vec<Option<String>> = entries.iter().map(|e| text(&e.after)).collect();
    // Arrays of borrowed or nullable elements skip the macro's check of the bind (it only
    // knows arrays of owned, non-null ones); the casts in the statement fix their types.
    sqlx::query!(
        "INSERT INTO audit_log (actor, role, team_id, action, target_kind, target_id, before, after)
         SELECT actor, role, team_id, action, target_kind, target_id, before::jsonb, after::jsonb
         FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[])
           AS t(actor, role, team_id, action, target_kind, target_id, before, after)",
        &actors as _,
        &roles as _,
        &teams as _,
        &actions as _,
        &target_kinds as _,
        &target_ids as _,
        &befores as _,
        &afters as _
    )
    .execute(db)
    .await
    .map(|_| ())
}

impl Store {
    /// Starts an admin change; see [`Tx`].
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(Tx {
            tx: self.pool().begin().await?,
        })
    }

    /// Up to `limit` entries, newest first, strictly older than `before` when given.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<AuditCursor>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT id, at, actor, role, team_id, action, target_kind, target_id, \
             before::text AS before, after::text AS after FROM audit_log WHERE TRUE",
        );
        if let Some(team) = filter.team {
            sql.push(" AND team_id = ").push_bind(team);
        }
        if let Some(actor) = &filter.actor {
            sql.push(" AND actor = ").push_bind(actor.clone());
        }
        match &filter.action {
            None => {}
            Some(ActionFilter::Exact(action)) => {
                sql.push(" AND action = ").push_bind(action.clone());
            }
            Some(ActionFilter::Prefix(prefix)) => {
                sql.push(" AND starts_with(action, ")
                    .push_bind(prefix.clone())
                    .push(")");
            }
        }
        if let Some(target) = &filter.target_id {
            sql.push(" AND target_id = ").push_bind(target.clone());
        }
        push_time_range(&mut sql, "at", filter.from, filter.to);
        if let Some(cursor) = before {
            sql.push(" AND (at, id) < (")
                .push_bind(cursor.at)
                .push(", ")
                .push_bind(cursor.id)
                .push(")");
        }
        sql.push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_bind(limit);
        let mut tx = self.begin_report().await?;
        let rows: Vec<AuditRow> = sql.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: r.at,
                actor: r.actor,
                role: r.role,
                team_id: r.team_id,
                action: r.action,
                target_kind: r.target_kind,
                target_id: r.target_id,
                before: json(r.before),
                after: json(r.after),
            })
            .collect())
    }
}
