//! `[alerts]`: how often rules are evaluated, how deliveries are retried, and the default rule
//! set (what a rule gets for each kind of alert its request leaves out).

use std::time::Duration;

use super::raw::RawAlerts;
use super::{ConfigError, Validator};

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Evaluate rules and deliver alerts on this instance.
    pub enabled: bool,
    /// How often each instance looks at the scopes rules watch.
    pub evaluate_interval: Duration,
    /// An alert not delivered this long after it fired is marked failed.
    pub retry_for: Duration,
    /// The pause after the first failed delivery, doubled after each further one...
    pub first_retry: Duration,
    /// ...up to this.
    pub max_retry_interval: Duration,
    /// How long one delivery may take (connect to answer).
    pub request_timeout: Duration,
    pub defaults: AlertDefaults,
}

/// The default rule set: `tollctl alerts add` without any of `--at`, `--projection`,
/// `--expiry`, `--refusals` gets all of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDefaults {
    pub thresholds: Vec<u16>,
    pub projection_window_secs: u32,
    pub expiry_hours: u32,
    pub refusal_percent: u16,
    pub refusal_window_secs: u32,
    pub refusal_min_requests: u32,
}

/// The largest threshold, in percent of a budget: a budget can be overshot only in estimate
/// mode, and never tenfold.
pub const MAX_THRESHOLD_PERCENT: u16 = 1000;

impl Validator<'_> {
    pub(super) fn alerts(&self, raw: RawAlerts) -> Result<AlertsConfig, ConfigError> {
        let positive = |field: &str, value: Option<u64>, default: u64| {
            let value = value.unwrap_or(default);
            if value == 0 {
                return Err(self.invalid(
                    &format!("alerts.{field}"),
                    "must be greater than 0",
                    format!("remove it to use {default}"),
                ));
            }
            Ok(value)
        };
        let thresholds = raw.default_thresholds.unwrap_or_else(|| vec![50, 80, 100]);
        if let Some(bad) = thresholds
            .iter()
            .find(|t| **t == 0 || **t > MAX_THRESHOLD_PERCENT)
        {
            return Err(self.invalid(
                "alerts.default_thresholds",
                format!(
                    "{bad} is not a percentage of a budget between 1 and {MAX_THRESHOLD_PERCENT}"
                ),
                "give percentages such as [50, 80, 100]",
            ));
        }
        let refusal_percent = raw.default_refusal_percent.unwrap_or(25);
        if refusal_percent == 0 || refusal_percent > 100 {
            return Err(self.invalid(
                "alerts.default_refusal_percent",
                format!("{refusal_percent} is not a share between 1 and 100"),
                "remove it to use 25",
            ));
        }
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(AlertsConfig {
            enabled: raw.enabled.unwrap_or(true),
            evaluate_interval: Duration::from_millis(positive(
                "evaluate_interval_ms",
                raw.evaluate_interval_ms,
                5000,
            )?),
            retry_for: Duration::from_secs(positive("retry_for_secs", raw.retry_for_secs, 86_400)?),
            first_retry: Duration::from_millis(positive(
                "first_retry_ms",
                raw.first_retry_ms,
                1000,
            )?),
            max_retry_interval: Duration::from_secs(positive(
                "max_retry_interval_secs",
                raw.max_retry_interval_secs,
                300,
            )?),
            request_timeout: Duration::from_millis(positive(
                "request_timeout_ms",
                raw.request_timeout_ms,
                10_000,
            )?),
            defaults: AlertDefaults {
                thresholds,
                projection_window_secs: small(positive(
                    "default_projection_window_secs",
                    raw.default_projection_window_secs.map(u64::from),
                    3600,
                )?),
                expiry_hours: small(positive(
                    "default_expiry_hours",
                    raw.default_expiry_hours.map(u64::from),
                    24,
                )?),
                refusal_percent,
                refusal_window_secs: small(positive(
                    "default_refusal_window_secs",
                    raw.default_refusal_window_secs.map(u64::from),
                    300,
                )?),
                refusal_min_requests: small(positive(
                    "default_refusal_min_requests",
                    raw.default_refusal_min_requests.map(u64::from),
                    20,
                )?),
            },
        })
    }
}
