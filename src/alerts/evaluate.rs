//! The evaluator: each interval, every scope a rule watches is read once — its budgets' use
//! from Redis, its recent spend and refusals from the request log, as the rules need — and
//! what [`checks`] finds is recorded.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::checks::{self, Fired};
use super::{Alerts, SEEN_CAPACITY};
use crate::governance::{ScopeKind, ScopeLimits, ScopeUsage};
use crate::store::{AlertRule, AlertTarget, WindowStats};

pub(super) async fn run(alerts: Arc<Alerts>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(alerts.config.evaluate_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = evaluate_once(&alerts).await {
            tracing::warn!(error = %e, "alert rules could not be evaluated; trying again at the next interval");
        }
    }
}

/// What one pass read, so a scope watched by several rules is read once.
#[derive(Default)]
struct Reads {
    usage: HashMap<(ScopeKind, Uuid), Option<ScopeUsage>>,
    windows: HashMap<(ScopeKind, Uuid, i64), WindowStats>,
}

async fn evaluate_once(alerts: &Alerts) -> Result<(), String> {
    let store = &alerts.store;
    let rules: HashMap<Uuid, AlertRule> = store
        .alert_rules(None)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|rule| (rule.id, rule))
        .collect();
    alerts.any_rules.store(!rules.is_empty(), Ordering::Relaxed);
    if rules.is_empty() {
        return Ok(());
    }
    let targets = store.alert_targets().await.map_err(|e| e.to_string())?;
    let mut scopes: Vec<(ScopeKind, Uuid)> = targets
        .iter()
        .filter_map(|t| Some((ScopeKind::parse(&t.scope_kind)?, t.scope_id)))
        .collect();
    scopes.sort_by_key(|(kind, id)| (kind.as_str(), *id));
    scopes.dedup();
    let limits: HashMap<(ScopeKind, Uuid), ScopeLimits> = store
        .limits_of(&scopes)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|scope| ((scope.kind, scope.id), scope))
        .collect();
    let now = alerts.clock.now();
    let mut reads = Reads::default();
    for target in &targets {
        let (Some(rule), Some(kind)) = (
            rules.get(&target.rule_id),
            ScopeKind::parse(&target.scope_kind),
        ) else {
            continue;
        };
        let fired = check(
            alerts,
            rule,
            target,
            kind,
            limits.get(&(kind, target.scope_id)),
            &mut reads,
            now,
        )
        .await?;
        for alert in fired {
            record(alerts, rule, target, alert, now).await?;
        }
    }
    Ok(())
}

async fn check(
    alerts: &Alerts,
    rule: &AlertRule,
    target: &AlertTarget,
    kind: ScopeKind,
    limits: Option<&ScopeLimits>,
    reads: &mut Reads,
    now: DateTime<Utc>,
) -> Result<Vec<Fired>, String> {
    let mut fired = Vec::new();
    let watches_budgets = !rule.thresholds.is_empty() || rule.projection_window_secs.is_some();
    if let Some(scope) = limits.filter(|s| watches_budgets && !s.limits.budgets.is_empty()) {
        // Out of the map while the window reads below borrow it; put back after. A failed
        // read is kept as `None`, so other rules on the scope do not retry it this pass.
        let usage = match reads.usage.remove(&(kind, scope.id)) {
            Some(read) => read,
            None => match alerts.governor.usage(target.team_id, scope).await {
                Ok(usage) => Some(usage),
                Err(e) => {
                    // Unread now, read at the next interval: an alert is late, never lost.
                    tracing::warn!(error = %e, scope = kind.as_str(), id = %scope.id, "budget use could not be read for alerts");
                    None
                }
            },
        };
        let budgets = usage
            .as_ref()
            .map(|u| u.budgets.as_slice())
            .unwrap_or_default();
        for budget in budgets {
            fired.extend(checks::thresholds(target, budget, &rule.thresholds));
            if let Some(window) = rule.projection_window_secs {
                let window = Duration::seconds(i64::from(window));
                let recent = window_stats(alerts, reads, target, kind, window).await?;
                fired.extend(checks::projection(target, budget, window, &recent, now));
            }
        }
        reads.usage.insert((kind, scope.id), usage);
    }
    if let Some(hours) = rule.expiry_hours {
        fired.extend(checks::expiry(target, hours, now));
    }
    if let (Some(percent), Some(window), Some(min)) = (
        rule.refusal_percent,
        rule.refusal_window_secs,
        rule.refusal_min_requests,
    ) {
        let window = Duration::seconds(i64::from(window));
        let recent = window_stats(alerts, reads, target, kind, window).await?;
        fired.extend(checks::refusals(target, percent, window, min, &recent, now));
    }
    Ok(fired)
}

/// The scope's spend and refusals over the last `window` of the request log (which is
/// stamped with the wall clock, whatever clock decides budget periods).
async fn window_stats(
    alerts: &Alerts,
    reads: &mut Reads,
    target: &AlertTarget,
    kind: ScopeKind,
    window: Duration,
) -> Result<WindowStats, String> {
    let key = (kind, target.scope_id, window.num_seconds());
    if let Some(stats) = reads.windows.get(&key) {
        return Ok(*stats);
    }
    let stats = alerts
        .store
        .window_stats(
            target.team_id,
            &target.scope_kind,
            target.scope_id,
            None,
            Utc::now() - window,
        )
        .await
        .map_err(|e| e.to_string())?;
    reads.windows.insert(key, stats);
    Ok(stats)
}

/// Records an alert unless it is recorded already (here or by another instance).
async fn record(
    alerts: &Alerts,
    rule: &AlertRule,
    target: &AlertTarget,
    alert: Fired,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let seen_key = (rule.id, alert.dedupe_key.clone());
    if lock(alerts).contains(&seen_key) {
        return Ok(());
    }
    let id = Uuid::now_v7();
    let payload = body(id, rule, target, &alert, now);
    let recorded = alerts
        .store
        .fire_alert(
            id,
            rule.id,
            target.team_id,
            alert.kind,
            &alert.dedupe_key,
            &payload,
        )
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut seen = lock(alerts);
        if seen.len() >= SEEN_CAPACITY {
            seen.clear();
        }
        seen.insert(seen_key);
    }
    if recorded {
        crate::metrics::observe_alert_fired(alert.kind);
        tracing::info!(kind = alert.kind, event = %id, rule = %rule.id, summary = %alert.summary, "alert fired");
        alerts.fired.notify_one();
    }
    Ok(())
}

fn lock(alerts: &Alerts) -> std::sync::MutexGuard<'_, std::collections::HashSet<(Uuid, String)>> {
    alerts
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The webhook body: what every alert carries, then its kind's details.
pub(super) fn body(
    id: Uuid,
    rule: &AlertRule,
    target: &AlertTarget,
    alert: &Fired,
    now: DateTime<Utc>,
) -> Value {
    let mut body = json!({
        "id": id,
        "type": alert.kind,
        "created_at": now,
        "summary": alert.summary,
        "rule_id": rule.id,
        "team": { "id": target.team_id, "name": target.team_name },
        "scope": { "kind": target.scope_kind, "id": target.scope_id, "name": target.scope_name },
    });
    if let (Some(body), Value::Object(details)) = (body.as_object_mut(), &alert.details) {
        for (field, value) in details {
            body.insert(field.clone(), value.clone());
        }
    }
    body
}
