//! The limits a scope (team, experiment or key) may carry, as the data plane enforces them.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::period::Period;

/// Nano-USD per USD: Redis keeps money as integers in this unit (never floats).
pub const NANOS_PER_USD: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    Key,
    Experiment,
    Team,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Key => "key",
            ScopeKind::Experiment => "experiment",
            ScopeKind::Team => "team",
        }
    }

    pub fn parse(text: &str) -> Option<ScopeKind> {
        [ScopeKind::Key, ScopeKind::Experiment, ScopeKind::Team]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetMode {
    /// Reserve the most a request can cost: spend never exceeds the budget.
    #[default]
    Strict,
    /// Reserve a smaller estimate (for clients that always send huge `max_tokens`); the
    /// possible overshoot is bounded (docs/governance.md).
    Estimate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Redis unreachable: refuse with 503.
    #[default]
    Closed,
    /// Redis unreachable: admit under the in-process limiter and record spend in the ledger.
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub period: Period,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_usd: Decimal,
}

impl Budget {
    /// The budget in nano-USD, rounded down so the cap is never raised by rounding.
    pub fn limit_nanos(&self) -> i64 {
        to_nanos_floor(self.amount_usd)
    }
}

/// Everything one scope may limit. `None` means no limit of that kind.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u32>,
    #[serde(default)]
    pub budgets: Vec<Budget>,
    #[serde(default)]
    pub budget_mode: BudgetMode,
    #[serde(default)]
    pub on_redis_failure: FailurePolicy,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none()
            && self.tpm.is_none()
            && self.max_concurrent.is_none()
            && self.budgets.is_empty()
    }
}

/// One scope a request belongs to, with its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeLimits {
    pub kind: ScopeKind,
    pub id: Uuid,
    /// What messages call the scope: the team's or experiment's name, the key's name or else
    /// its visible prefix.
    pub name: String,
    pub limits: Limits,
}

/// Rounds a cost up to whole nano-USD: a charge is never rounded in the caller's favour.
pub fn to_nanos_ceil(usd: Decimal) -> i64 {
    let nanos = (usd * Decimal::from(NANOS_PER_USD)).ceil();
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

pub fn to_nanos_floor(usd: Decimal) -> i64 {
    let nanos = (usd * Decimal::from(NANOS_PER_USD)).floor();
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

pub fn nanos_to_usd(nanos: i64) -> Decimal {
    Decimal::from(nanos) / Decimal::from(NANOS_PER_USD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_conversions_round_against_the_spender() {
        let cost: Decimal = "0.0000001234".parse().unwrap();
        assert_eq!(to_nanos_ceil(cost), 124);
        assert_eq!(to_nanos_floor(cost), 123);
        assert_eq!(to_nanos_ceil("1.5".parse().unwrap()), 1_500_000_000);
        assert_eq!(
            nanos_to_usd(1_500_000_000),
            "1.5".parse::<Decimal>().unwrap()
        );
    }
}
