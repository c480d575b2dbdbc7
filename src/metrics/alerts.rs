//! Budget alerts: how many fired, were delivered, failed an attempt, or were given up, by
//! rule kind (docs/alerts.md).

use metrics::{counter, describe_counter};

pub const ALERTS_FIRED: &str = "tollgate_alerts_fired_total";
pub const ALERTS_DELIVERED: &str = "tollgate_alerts_delivered_total";
pub const ALERT_DELIVERY_FAILURES: &str = "tollgate_alert_delivery_failures_total";
pub const ALERTS_FAILED: &str = "tollgate_alerts_failed_total";

pub(super) fn describe() {
    describe_counter!(
        ALERTS_FIRED,
        "Alerts recorded (each once, whichever instance saw it first), by rule kind."
    );
    describe_counter!(
        ALERTS_DELIVERED,
        "Alerts a webhook accepted with a 2xx, by rule kind."
    );
    describe_counter!(
        ALERT_DELIVERY_FAILURES,
        "Alert delivery attempts that failed (retried later, or given up), by rule kind."
    );
    describe_counter!(
        ALERTS_FAILED,
        "Alerts marked failed after alerts.retry_for_secs without a delivery, by rule kind."
    );
}

/// The kinds are a fixed few (`alerts::checks::KINDS`), so the label set is bounded.
pub fn observe_alert_fired(kind: &'static str) {
    counter!(ALERTS_FIRED, "kind" => kind).increment(1);
}

/// `kind` as the outbox stored it: one of the same few.
pub fn observe_alert_delivery(kind: &str, outcome: AlertDelivery) {
    let kind = kind.to_string();
    match outcome {
        AlertDelivery::Delivered => counter!(ALERTS_DELIVERED, "kind" => kind).increment(1),
        AlertDelivery::Retrying => counter!(ALERT_DELIVERY_FAILURES, "kind" => kind).increment(1),
        AlertDelivery::GaveUp => {
            counter!(ALERT_DELIVERY_FAILURES, "kind" => kind.clone()).increment(1);
            counter!(ALERTS_FAILED, "kind" => kind).increment(1);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertDelivery {
    Delivered,
    Retrying,
    GaveUp,
}
