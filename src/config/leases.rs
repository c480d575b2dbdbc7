//! `[governance.leases]`: how much of a scope's headroom an instance may hold in process.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Validator};

/// How governance leases are sized and how long they live (docs/governance.md, "Leases").
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Off: every admission is one Redis script call, as without leases.
    pub enabled: bool,
    /// A lease holds this long of the traffic the instance recently sent on a scope.
    pub horizon: Duration,
    /// A lease takes at most 1/`headroom_share` of what is free on a limit.
    pub headroom_share: u32,
    /// No lease while less than this many requests' worth of a limit is free: near the end
    /// of a budget every admission is decided by Redis, one request at a time.
    pub min_headroom_requests: u32,
    /// A lease its instance stopped renewing (it died) returns to the scope this long after
    /// its last renewal.
    pub ttl: Duration,
    /// A lease unused this long is given back.
    pub idle: Duration,
    /// Spend under a lease reaches Redis at most this long after the request settled.
    pub report_interval: Duration,
}

impl Default for LeaseConfig {
    fn default() -> LeaseConfig {
        LeaseConfig {
            enabled: true,
            horizon: Duration::from_millis(1000),
            headroom_share: 8,
            min_headroom_requests: 64,
            ttl: Duration::from_secs(10),
            idle: Duration::from_millis(1000),
            report_interval: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeases {
    pub enabled: Option<bool>,
    pub horizon_ms: Option<u64>,
    pub headroom_share: Option<u32>,
    pub min_headroom_requests: Option<u32>,
    pub ttl_secs: Option<u64>,
    pub idle_ms: Option<u64>,
    pub report_interval_ms: Option<u64>,
}

impl Validator<'_> {
    pub(super) fn leases(&self, raw: RawLeases) -> Result<LeaseConfig, ConfigError> {
        let defaults = LeaseConfig::default();
        let millis = |field: &str, value: Option<u64>, default: Duration, fix: &str| match value
            .map(Duration::from_millis)
        {
            Some(d) if d.is_zero() => Err(self.invalid(
                &format!("governance.leases.{field}"),
                "must be greater than 0",
                fix,
            )),
            Some(d) => Ok(d),
            None => Ok(default),
        };
        let horizon = millis(
            "horizon_ms",
            raw.horizon_ms,
            defaults.horizon,
            "set how many milliseconds of traffic a lease holds (default 1000)",
        )?;
        let idle = millis(
            "idle_ms",
            raw.idle_ms,
            defaults.idle,
            "set after how many milliseconds an unused lease is given back (default 1000)",
        )?;
        let report_interval = millis(
            "report_interval_ms",
            raw.report_interval_ms,
            defaults.report_interval,
            "set how often spend under a lease is reported to Redis (default 250)",
        )?;
        let ttl = match raw.ttl_secs {
            Some(0) => {
                return Err(self.invalid(
                    "governance.leases.ttl_secs",
                    "must be greater than 0",
                    "set how long a lease outlives an instance that died holding it (default 10)",
                ));
            }
            Some(secs) => Duration::from_secs(secs),
            None => defaults.ttl,
        };
        if report_interval.saturating_mul(3) > ttl {
            return Err(self.invalid(
                "governance.leases.report_interval_ms",
                format!(
                    "{} ms is more than a third of ttl_secs ({} s): a lease would expire between renewals",
                    report_interval.as_millis(),
                    ttl.as_secs()
                ),
                "lower report_interval_ms or raise ttl_secs",
            ));
        }
        let headroom_share = raw.headroom_share.unwrap_or(defaults.headroom_share);
        if headroom_share < 2 {
            return Err(self.invalid(
                "governance.leases.headroom_share",
                format!("{headroom_share} would let one instance lease all of a budget"),
                "set 2 or more (default 8: a lease takes at most an eighth of what is free)",
            ));
        }
        Ok(LeaseConfig {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            horizon,
            headroom_share,
            min_headroom_requests: raw
                .min_headroom_requests
                .unwrap_or(defaults.min_headroom_requests)
                .max(1),
            ttl,
            idle,
            report_interval,
        })
    }
}
