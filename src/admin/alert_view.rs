//! How alert rules and their alerts are shown: never the signing secret (shown once, when the
//! rule is made), and the webhook only as its scheme and host, since its path often carries a
//! token of its own (Slack's incoming webhooks do).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::ids::TeamId;
use crate::store::{AlertEventRow, AlertRule};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertRuleView {
    pub id: Uuid,
    pub team_id: TeamId,
    pub team: String,
    pub scope: AlertScopeView,
    /// Percentages of each of the scope's budgets; empty: no threshold alerts.
    pub thresholds: Vec<i16>,
    /// The window whose burn rate is projected; `null`: no projection alert.
    pub projection_window_secs: Option<i32>,
    /// Alert this long before the campaign ends or the key expires; `null`: none.
    pub expiry_hours: Option<i32>,
    pub refusals: Option<RefusalsView>,
    /// `scheme://host/…`: the rest is not shown.
    pub webhook: String,
    /// `json` (the event) or `slack` (`{"text": summary}`).
    pub format: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertScopeView {
    /// `team`, `experiment` or `key`.
    pub kind: String,
    /// `null`: every campaign (experiment) of the team, those made later included.
    pub id: Option<Uuid>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefusalsView {
    pub percent: i16,
    pub window_secs: i32,
    pub min_requests: i32,
}

/// `POST /admin/v1/alerts`: the rule, and the secret its deliveries are signed with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedAlertRule {
    #[serde(flatten)]
    pub rule: AlertRuleView,
    /// Shown this once: verify `x-tollgate-signature` with it (docs/alerts.md).
    pub signing_secret: String,
}

/// One alert a rule fired, with where its delivery stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertEventView {
    /// The event id receivers dedupe by (also the `x-tollgate-event-id` header).
    pub id: Uuid,
    pub rule_id: Uuid,
    pub team_id: TeamId,
    #[serde(rename = "type")]
    pub kind: String,
    pub summary: Option<String>,
    /// `pending` (being delivered or retried), `delivered` or `failed` (gave up after
    /// `alerts.retry_for_secs`).
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// For a pending alert: when it is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The body as delivered.
    pub event: Value,
}

pub fn rule(rule: &AlertRule) -> AlertRuleView {
    let refusals = match (
        rule.refusal_percent,
        rule.refusal_window_secs,
        rule.refusal_min_requests,
    ) {
        (Some(percent), Some(window_secs), Some(min_requests)) => Some(RefusalsView {
            percent,
            window_secs,
            min_requests,
        }),
        _ => None,
    };
    AlertRuleView {
        id: rule.id,
        team_id: rule.team_id,
        team: rule.team_name.clone(),
        scope: AlertScopeView {
            kind: rule.scope_kind.clone(),
            id: rule.scope_id,
            name: rule.scope_name.clone(),
        },
        thresholds: rule.thresholds.clone(),
        projection_window_secs: rule.projection_window_secs,
        expiry_hours: rule.expiry_hours,
        refusals,
        webhook: redacted_url(rule.webhook_url.expose()),
        format: rule.format.clone(),
        created_by: rule.created_by.clone(),
        created_at: rule.created_at,
    }
}

pub fn event(row: AlertEventRow) -> AlertEventView {
    AlertEventView {
        id: row.id,
        rule_id: row.rule_id,
        team_id: row.team_id,
        summary: row
            .payload
            .get("summary")
            .and_then(Value::as_str)
            .map(str::to_owned),
        next_attempt_at: (row.status == "pending").then_some(row.next_attempt_at),
        kind: row.kind,
        status: row.status,
        attempts: row.attempts,
        created_at: row.created_at,
        delivered_at: row.delivered_at,
        last_error: row.last_error,
        event: row.payload,
    }
}

/// `https://hooks.slack.com/…`: the scheme, host and port of a URL, never its user, path or
/// query.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            match parsed.port() {
                Some(port) => format!("{}://{host}:{port}/…", parsed.scheme()),
                None => format!("{}://{host}/…", parsed.scheme()),
            }
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_shown_without_credentials_path_or_query() {
        assert_eq!(
            redacted_url("https://hooks.slack.com/services/T000/B000/XXXX?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redacted_url("http://user:pw@127.0.0.1:9000/hook/secret-token"),
            "http://127.0.0.1:9000/…"
        );
        assert_eq!(redacted_url("::"), "(not a URL)");
    }
}
