//! The deliverer: takes due alerts from the outbox under a lease, posts each signed, and
//! marks it delivered, due again later, or failed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Alerts;
use super::sign::{EVENT_ID_HEADER, SIGNATURE_HEADER, signature};
use crate::config::Secret;
use crate::metrics::{AlertDelivery, observe_alert_delivery};
use crate::store::{AlertRule, DueAlert};

/// Alerts taken at once; they are posted concurrently.
const BATCH: i64 = 16;
/// How often the outbox is looked at when nothing woke the deliverer: retries falling due,
/// alerts fired by other instances.
const POLL: Duration = Duration::from_secs(1);
/// How much of a receiver's answer is kept as the attempt's error.
const MAX_ERROR_CHARS: usize = 300;

pub(super) async fn run(alerts: Arc<Alerts>, stop: CancellationToken) {
    loop {
        let due = if alerts.any_rules.load(Ordering::Relaxed) {
            match alerts.store.claim_due_alerts(alerts.lease(), BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "the alert outbox could not be read; trying again");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let busy = !due.is_empty();
        futures_util::future::join_all(due.into_iter().map(|alert| deliver(&alerts, alert))).await;
        if busy && !stop.is_cancelled() {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = alerts.fired.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn deliver(alerts: &Alerts, alert: DueAlert) {
    let body = wire_body(&alert.format, &alert.payload);
    let outcome = post(
        alerts,
        &alert.webhook_url,
        &alert.signing_secret,
        alert.id,
        &body,
    )
    .await;
    let result = match outcome {
        Ok(_) => {
            observe_alert_delivery(&alert.kind, AlertDelivery::Delivered);
            alerts.store.alert_delivered(alert.id).await
        }
        Err(error) => {
            let next = next_attempt(alerts, &alert);
            if next.is_none() {
                observe_alert_delivery(&alert.kind, AlertDelivery::GaveUp);
                tracing::warn!(event = %alert.id, attempts = alert.attempts, error = %error, "alert not delivered within alerts.retry_for_secs; marked failed");
            } else {
                observe_alert_delivery(&alert.kind, AlertDelivery::Retrying);
                tracing::info!(event = %alert.id, attempts = alert.attempts, error = %error, "alert delivery failed; will retry");
            }
            alerts
                .store
                .alert_attempt_failed(alert.id, &error, next)
                .await
        }
    };
    if let Err(e) = result {
        // The lease runs out and the alert is taken again: sent twice, never lost.
        tracing::warn!(error = %e, event = %alert.id, "the outcome of an alert delivery could not be recorded");
    }
}

/// When to try again after `alert.attempts` failed attempts: the first pause doubled per
/// attempt up to the largest; `None` once the alert is older than `retry_for`.
fn next_attempt(alerts: &Alerts, alert: &DueAlert) -> Option<chrono::DateTime<Utc>> {
    let config = &alerts.config;
    let doublings = u32::try_from(alert.attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let pause = config
        .first_retry
        .saturating_mul(1u32 << doublings)
        .min(config.max_retry_interval);
    let next = Utc::now() + chrono::Duration::from_std(pause).ok()?;
    let give_up_at = alert.created_at + chrono::Duration::from_std(config.retry_for).ok()?;
    (next <= give_up_at).then_some(next)
}

/// What goes on the wire: the event itself, or for `slack` a Slack-compatible `text`.
fn wire_body(format: &str, payload: &Value) -> Vec<u8> {
    let value = match format {
        "slack" => json!({ "text": payload.get("summary").cloned().unwrap_or(Value::Null) }),
        _ => payload.clone(),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Posts one signed body. The error names what went wrong but never the URL (which may
/// carry a token).
async fn post(
    alerts: &Alerts,
    url: &Secret<String>,
    secret: &Secret<String>,
    id: uuid::Uuid,
    body: &[u8],
) -> Result<u16, String> {
    let timestamp = Utc::now().timestamp();
    let response = alerts
        .http
        .post(url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, id.to_string())
        .header(SIGNATURE_HEADER, signature(secret, timestamp, body))
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(MAX_ERROR_CHARS).collect();
    Err(format!("the webhook answered {status}: {text}"))
}

/// The outcome of `POST /admin/v1/alerts/{id}/test`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestDelivery {
    pub delivered: bool,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// The event sent (`type` `test`), as the receiver got it.
    pub event: Value,
}

impl Alerts {
    /// Sends a `test` event to the rule's webhook now, signed like every alert, and says what
    /// the receiver answered. Not recorded in the outbox.
    pub async fn send_test(&self, rule: &AlertRule) -> TestDelivery {
        let id = uuid::Uuid::now_v7();
        let event = json!({
            "id": id,
            "type": super::checks::TEST,
            "created_at": Utc::now(),
            "summary": format!(
                "A test of alert rule {} on {} {:?} of team {:?}: deliveries arrive like this one.",
                rule.id,
                rule.scope_kind,
                rule.scope_name.as_deref().unwrap_or("every campaign"),
                rule.team_name,
            ),
            "rule_id": rule.id,
            "team": { "id": rule.team_id, "name": rule.team_name },
        });
        let body = wire_body(&rule.format, &event);
        match post(self, &rule.webhook_url, &rule.signing_secret, id, &body).await {
            Ok(status) => TestDelivery {
                delivered: true,
                status: Some(status),
                error: None,
                event,
            },
            Err(error) => TestDelivery {
                delivered: false,
                status: None,
                error: Some(error),
                event,
            },
        }
    }
}
