//! Alert rules, the alerts they fired and their delivery (the outbox).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::Store;
use super::audit::Tx;
use crate::config::Secret;
use crate::ids::TeamId;

/// A rule as stored. The signing secret and the webhook URL (which often carries a token of
/// its own, as Slack's do) are secrets: they leave only to sign and to send.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub id: Uuid,
    pub team_id: TeamId,
    pub team_name: String,
    /// `team`, `experiment` or `key`.
    pub scope_kind: String,
    /// `None`: every campaign of the team.
    pub scope_id: Option<Uuid>,
    /// The team's or experiment's name, the key's name or else its prefix; `None` for
    /// every campaign.
    pub scope_name: Option<String>,
    pub thresholds: Vec<i16>,
    pub projection_window_secs: Option<i32>,
    pub expiry_hours: Option<i32>,
    pub refusal_percent: Option<i16>,
    pub refusal_window_secs: Option<i32>,
    pub refusal_min_requests: Option<i32>,
    pub webhook_url: Secret<String>,
    pub format: String,
    pub signing_secret: Secret<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One scope a rule watches now: a rule on every campaign watches each open one.
#[derive(Debug, Clone)]
pub struct AlertTarget {
    pub rule_id: Uuid,
    pub team_id: TeamId,
    pub team_name: String,
    pub scope_kind: String,
    pub scope_id: Uuid,
    pub scope_name: String,
    /// The campaign's end (an experiment) or the key's expiry.
    pub ends_at: Option<DateTime<Utc>>,
}

/// What a scope did since an instant, from the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    pub spent: Decimal,
    pub requests: i64,
    /// Requests answered 402, 429 or 5xx.
    pub refusals: i64,
    /// When the window's first request was made (none: no request in the window).
    pub first_at: Option<DateTime<Utc>>,
}

/// An alert due for delivery, with where and how it goes.
pub struct DueAlert {
    pub id: Uuid,
    pub kind: String,
    pub payload: Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub webhook_url: Secret<String>,
    pub format: String,
    pub signing_secret: Secret<String>,
}

/// A fired alert as `tollctl alerts history` shows it.
#[derive(Debug, Clone)]
pub struct AlertEventRow {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub team_id: TeamId,
    pub kind: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

struct RuleRow {
    id: Uuid,
    team_id: TeamId,
    team_name: String,
    scope_kind: String,
    scope_id: Option<Uuid>,
    scope_name: Option<String>,
    thresholds: Vec<i16>,
    projection_window_secs: Option<i32>,
    expiry_hours: Option<i32>,
    refusal_percent: Option<i16>,
    refusal_window_secs: Option<i32>,
    refusal_min_requests: Option<i32>,
    webhook_url: String,
    format: String,
    signing_secret: String,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl From<RuleRow> for AlertRule {
    fn from(r: RuleRow) -> AlertRule {
        AlertRule {
            id: r.id,
            team_id: r.team_id,
            team_name: r.team_name,
            scope_kind: r.scope_kind,
            scope_id: r.scope_id,
            scope_name: r.scope_name,
            thresholds: r.thresholds,
            projection_window_secs: r.projection_window_secs,
            expiry_hours: r.expiry_hours,
            refusal_percent: r.refusal_percent,
            refusal_window_secs: r.refusal_window_secs,
            refusal_min_requests: r.refusal_min_requests,
            webhook_url: Secret::new(r.webhook_url),
            format: r.format,
            signing_secret: Secret::new(r.signing_secret),
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

impl Store {
    /// Every rule, or one team's, oldest first, with the names of what they watch.
    pub async fn alert_rules(&self, team: Option<TeamId>) -> Result<Vec<AlertRule>, sqlx::Error> {
        let rows = sqlx::query_as!(
            RuleRow,
            r#"SELECT r.id, r.team_id AS "team_id: TeamId", t.name AS team_name, r.scope_kind,
                      r.scope_id,
                      CASE r.scope_kind WHEN 'team' THEN t.name WHEN 'experiment' THEN e.name
                           ELSE COALESCE(k.name, k.key_prefix) END AS scope_name,
                      r.thresholds, r.projection_window_secs, r.expiry_hours, r.refusal_percent,
                      r.refusal_window_secs, r.refusal_min_requests, r.webhook_url, r.format,
                      r.signing_secret, r.created_by, r.created_at
               FROM alert_rules r
               JOIN teams t ON t.id = r.team_id
               LEFT JOIN experiments e ON r.scope_kind = 'experiment' AND e.id = r.scope_id
               LEFT JOIN virtual_keys k ON r.scope_kind = 'key' AND k.id = r.scope_id
               WHERE $1::uuid IS NULL OR r.team_id = $1
               ORDER BY r.created_at, r.id"#,
            team.map(|t| t.0),
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(AlertRule::from).collect())
    }

    pub async fn alert_rule(&self, id: Uuid) -> Result<Option<AlertRule>, sqlx::Error> {
        Ok(self
            .alert_rules(None)
            .await?
            .into_iter()
            .find(|rule| rule.id == id))
    }

    /// Every scope the rules watch now. A rule on every campaign of a team watches each of
    /// its experiments that is not closed.
    pub async fn alert_targets(&self) -> Result<Vec<AlertTarget>, sqlx::Error> {
        sqlx::query_as!(
            AlertTarget,
            r#"SELECT r.id AS rule_id, r.team_id AS "team_id: TeamId", t.name AS team_name,
                      r.scope_kind,
                      COALESCE(r.scope_id, e.id) AS "scope_id!",
                      CASE r.scope_kind WHEN 'team' THEN t.name WHEN 'experiment' THEN e.name
                           ELSE COALESCE(k.name, k.key_prefix) END AS "scope_name!",
                      CASE r.scope_kind WHEN 'experiment' THEN e.ends_at
                           WHEN 'key' THEN k.expires_at END AS ends_at
               FROM alert_rules r
               JOIN teams t ON t.id = r.team_id
               LEFT JOIN experiments e ON r.scope_kind = 'experiment'
                    AND (e.id = r.scope_id
                         OR (r.scope_id IS NULL AND e.team_id = r.team_id AND e.closed_at IS NULL))
               LEFT JOIN virtual_keys k ON r.scope_kind = 'key' AND k.id = r.scope_id
               WHERE (r.scope_kind = 'team')
                  OR (r.scope_kind = 'experiment' AND e.id IS NOT NULL)
                  OR (r.scope_kind = 'key' AND k.id IS NOT NULL)
               ORDER BY r.id"#,
        )
        .fetch_all(self.pool())
        .await
    }

    /// What one scope of `team` spent, and how many of its requests were refused, since
    /// `since` (the request log, so windows need not be whole hours). With `model`, only its
    /// requests for that model or group (a trailing `*` is a prefix).
    pub async fn window_stats(
        &self,
        team: TeamId,
        scope_kind: &str,
        scope_id: Uuid,
        model: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<WindowStats, sqlx::Error> {
        let row = sqlx::query!(
            r#"SELECT COALESCE(sum(cost_usd), 0) AS "spent!",
                      count(*) AS "requests!",
                      count(*) FILTER (WHERE status IN (402, 429) OR status >= 500) AS "refusals!",
                      min(created_at) AS first_at
               FROM request_log
               WHERE team_id = $1 AND created_at >= $4
                 AND CASE $2::text WHEN 'team' THEN true
                                   WHEN 'experiment' THEN experiment_id = $3
                                   ELSE key_id = $3 END
                 AND tollgate_model_matches(model, $5::text)"#,
            team.0,
            scope_kind,
            scope_id,
            since,
            model,
        )
        .fetch_one(self.pool())
        .await?;
        Ok(WindowStats {
            spent: row.spent,
            requests: row.requests,
            refusals: row.refusals,
            first_at: row.first_at,
        })
    }

    /// Records an alert unless its rule already fired for `dedupe_key`: `true` if this call
    /// recorded it. However many instances try at once, one row is written.
    pub async fn fire_alert(
        &self,
        id: Uuid,
        rule_id: Uuid,
        team: TeamId,
        kind: &str,
        dedupe_key: &str,
        payload: &Value,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query_scalar!(
            r#"INSERT INTO alert_events (id, rule_id, team_id, kind, dedupe_key, payload)
               VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
               ON CONFLICT (rule_id, dedupe_key) DO NOTHING
               RETURNING id"#,
            id,
            rule_id,
            team.0,
            kind,
            dedupe_key,
            payload.to_string(),
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(inserted.is_some())
    }

    /// Takes up to `limit` alerts due for delivery, each held for `lease` so no other
    /// instance sends it meanwhile; one whose holder died is due again when the lease ends.
    pub async fn claim_due_alerts(
        &self,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<DueAlert>, sqlx::Error> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query!(
            r#"UPDATE alert_events e
               SET leased_until = now() + make_interval(secs => $1::bigint / 1000.0),
                   attempts = e.attempts + 1
               FROM alert_rules r
               WHERE r.id = e.rule_id AND e.id IN (
                   SELECT id FROM alert_events
                   WHERE status = 'pending' AND next_attempt_at <= now()
                     AND (leased_until IS NULL OR leased_until < now())
                   ORDER BY next_attempt_at
                   LIMIT $2
                   FOR UPDATE SKIP LOCKED)
               RETURNING e.id, e.kind, e.payload::text AS "payload!", e.attempts, e.created_at, r.webhook_url,
                         r.format, r.signing_secret"#,
            lease_ms,
            limit,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DueAlert {
                id: r.id,
                kind: r.kind,
                payload: parse_payload(&r.payload),
                attempts: r.attempts,
                created_at: r.created_at,
                webhook_url: Secret::new(r.webhook_url),
                format: r.format,
                signing_secret: Secret::new(r.signing_secret),
            })
            .collect())
    }

    pub async fn alert_delivered(&self, id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query!(
            r#"UPDATE alert_events
               SET status = 'delivered', delivered_at = now(), leased_until = NULL, last_error = NULL
               WHERE id = $1"#,
            id,
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A failed attempt: tried again at `next_attempt_at`, or given up (`failed`) when that
    /// is `None`.
    pub async fn alert_attempt_failed(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            r#"UPDATE alert_events
               SET status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                   next_attempt_at = COALESCE($3, next_attempt_at),
                   leased_until = NULL, last_error = $2
               WHERE id = $1"#,
            id,
            error,
            next_attempt_at,
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Fired alerts, newest first: every team's or one's, of one rule or all.
    pub async fn alert_history(
        &self,
        team: Option<TeamId>,
        rule: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AlertEventRow>, sqlx::Error> {
        let rows = sqlx::query!(
            r#"SELECT id, rule_id, team_id AS "team_id: TeamId", kind, payload::text AS "payload!", created_at,
                      status, attempts, next_attempt_at, last_error, delivered_at
               FROM alert_events
               WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::uuid IS NULL OR rule_id = $2)
               ORDER BY created_at DESC, id DESC
               LIMIT $3"#,
            team.map(|t| t.0),
            rule,
            limit,
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AlertEventRow {
                id: r.id,
                rule_id: r.rule_id,
                team_id: r.team_id,
                kind: r.kind,
                payload: parse_payload(&r.payload),
                created_at: r.created_at,
                status: r.status,
                attempts: r.attempts,
                next_attempt_at: r.next_attempt_at,
                last_error: r.last_error,
                delivered_at: r.delivered_at,
            })
            .collect())
    }
}

/// The payload as written by [`Store::fire_alert`] (always an object; `null` if the column
/// was changed by hand into something that is not JSON).
fn parse_payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl Tx {
    /// Stores a rule (its names are not stored: they are read from what it watches).
    pub async fn insert_alert_rule(&mut self, rule: &AlertRule) -> Result<(), sqlx::Error> {
        sqlx::query!(
            r#"INSERT INTO alert_rules (id, team_id, scope_kind, scope_id, thresholds,
                   projection_window_secs, expiry_hours, refusal_percent, refusal_window_secs,
                   refusal_min_requests, webhook_url, format, signing_secret, created_by,
                   created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"#,
            rule.id,
            rule.team_id.0,
            rule.scope_kind,
            rule.scope_id,
            &rule.thresholds,
            rule.projection_window_secs,
            rule.expiry_hours,
            rule.refusal_percent,
            rule.refusal_window_secs,
            rule.refusal_min_requests,
            rule.webhook_url.expose(),
            rule.format,
            rule.signing_secret.expose(),
            rule.created_by,
            rule.created_at,
        )
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Removes a rule and the alerts it fired (pending deliveries stop): `false` if there
    /// was none.
    pub async fn delete_alert_rule(&mut self, id: Uuid) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query!("DELETE FROM alert_rules WHERE id = $1", id)
            .execute(self.conn())
            .await?;
        Ok(deleted.rows_affected() > 0)
    }
}
