//! The limits a scope (team, experiment or key) may carry, as the data plane enforces them.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model_limits::ModelLimits;
use super::period::Period;

/// Nano-USD per USD: Redis keeps money as integers in this unit (never floats).
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// `NANOS_PER_USD` as a `Decimal`, for the conversions.
const NANOS_PER_USD_DECIMAL: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// The largest budget a scope may carry: one billion USD. Far above any real budget, and far
/// below the most a single request can be charged (`pricing::MAX_COST_USD`, 2^63 − 1 nano-USD),
/// so a request whose cost saturates is refused by every budget.
pub const MAX_BUDGET_USD: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// [`MAX_BUDGET_USD`] in nano-USD.
pub const MAX_BUDGET_NANOS: i64 = 1_000_000_000 * NANOS_PER_USD;

/// Where a budget's spent counter in Redis saturates: 2^62 nano-USD (about 4.6 billion USD).
/// The admission script's numbers are doubles, and one at or beyond 2^63 would wrap when
/// written back; 2^62 leaves room for the reservations a reply adds to it and is still far
/// above [`MAX_BUDGET_NANOS`], so a saturated counter refuses everything. `lua/govern.lua`
/// carries the same number.
pub const MAX_SPENT_NANOS: i64 = 1 << 62;

// A saturated counter must still refuse every budget, and a reply's spent + reserved (at most
// a budget's worth of reservations) must not reach 2^63.
const _: () = assert!(MAX_SPENT_NANOS > MAX_BUDGET_NANOS);
const _: () = assert!(MAX_SPENT_NANOS.checked_add(MAX_BUDGET_NANOS).is_some());

/// The largest tokens-per-minute limit: 10^11. The admission script counts tokens in
/// 1/60000-token units in floating point, which stays exact only below 2^53 units.
pub const MAX_TPM: u64 = 100_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetMode {
    /// Reserve the most a request can cost: spend never exceeds the budget.
    #[default]
    Strict,
    /// Reserve a smaller estimate (for clients that always send huge `max_tokens`); the
    /// possible overshoot is bounded (docs/governance.md).
    Estimate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Redis unreachable: refuse with 503.
    #[default]
    Closed,
    /// Redis unreachable: admit under the in-process limiter and record spend in the ledger.
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Budget {
    pub period: Period,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_usd: Decimal,
}

impl Budget {
    /// The budget in nano-USD, rounded down so the cap is never raised by rounding. An amount
    /// above [`MAX_BUDGET_USD`] (stored before that bound existed) is enforced as the bound.
    pub fn limit_nanos(&self) -> i64 {
        to_nanos_floor(self.amount_usd).clamp(0, MAX_BUDGET_NANOS)
    }
}

/// Why a budget amount cannot be a budget, as a sentence naming `field`; `None` if it can.
/// Shared by every place budgets come from, so they all refuse the same amounts.
pub fn budget_amount_problem(field: &str, amount: Decimal) -> Option<String> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Some(format!(
            "`{field}` {} is negative: a budget is an amount in USD, zero or more",
            amount.normalize()
        ));
    }
    if amount > MAX_BUDGET_USD {
        return Some(format!(
            "`{field}` {} is above the largest budget, {} USD (omit the budget for no limit)",
            amount.normalize(),
            MAX_BUDGET_USD
        ));
    }
    None
}

/// Why a tokens-per-minute limit cannot be one, naming `field`; `None` if it can.
pub fn tpm_problem(field: &str, tpm: u64) -> Option<String> {
    (tpm > MAX_TPM).then(|| {
        format!("`{field}` {tpm} is above the largest tokens-per-minute limit, {MAX_TPM} (omit it for no limit)")
    })
}

/// Everything one scope may limit. `None` means no limit of that kind.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Limits on one model or group of models, inside these (`model_limits.rs`).
    #[serde(default)]
    pub models: Vec<ModelLimits>,
}

impl Limits {
    /// No limit at all, the scope's own or on a model.
    pub fn is_empty(&self) -> bool {
        self.own_is_empty() && self.models.iter().all(ModelLimits::is_empty)
    }

    /// No limit on the scope's requests as a whole (it may still limit some models).
    pub fn own_is_empty(&self) -> bool {
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
/// Saturates at `i64::MAX` (and `i64::MIN`): a cost that large is above every budget, so the
/// request it belongs to is refused by any budget rather than wrapped into a small one.
pub fn to_nanos_ceil(usd: Decimal) -> i64 {
    to_nanos(usd, Decimal::ceil)
}

/// Rounds down to whole nano-USD (budgets: the cap is never raised by rounding). Saturates
/// like [`to_nanos_ceil`].
pub fn to_nanos_floor(usd: Decimal) -> i64 {
    to_nanos(usd, Decimal::floor)
}

fn to_nanos(usd: Decimal, round: fn(&Decimal) -> Decimal) -> i64 {
    let saturated = if usd.is_sign_negative() {
        i64::MIN
    } else {
        i64::MAX
    };
    usd.checked_mul(NANOS_PER_USD_DECIMAL)
        .and_then(|nanos| i64::try_from(round(&nanos)).ok())
        .unwrap_or(saturated)
}

/// Nano-USD as USD, exactly (a nano-USD count always fits a `Decimal`).
pub fn nanos_to_usd(nanos: i64) -> Decimal {
    Decimal::new(nanos, 9).normalize()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::pricing::MAX_COST_USD;

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

    #[test]
    fn nano_conversions_saturate_instead_of_panicking() {
        assert_eq!(to_nanos_ceil(MAX_COST_USD), i64::MAX);
        assert_eq!(to_nanos_floor(MAX_COST_USD), i64::MAX);
        for huge in [
            Decimal::MAX,
            MAX_COST_USD + Decimal::new(1, 9),
            Decimal::from(u64::MAX),
        ] {
            assert_eq!(to_nanos_ceil(huge), i64::MAX, "{huge}");
            assert_eq!(to_nanos_floor(huge), i64::MAX, "{huge}");
        }
        assert_eq!(to_nanos_ceil(Decimal::MIN), i64::MIN);
        assert_eq!(to_nanos_floor(Decimal::MIN), i64::MIN);
        // The smallest Decimal fraction still rounds against the spender.
        assert_eq!(to_nanos_ceil(Decimal::new(1, 28)), 1);
        assert_eq!(to_nanos_floor(Decimal::new(1, 28)), 0);
        assert_eq!(nanos_to_usd(i64::MAX), MAX_COST_USD);
        assert_eq!(nanos_to_usd(i64::MIN), -MAX_COST_USD - Decimal::new(1, 9));
        assert_eq!(nanos_to_usd(0), Decimal::ZERO);
    }

    /// `usd` × 10^9 rounded down and up, computed in `i128` from the `Decimal`'s parts, then
    /// saturated to `i64`.
    fn nanos_i128(usd: Decimal) -> (i64, i64) {
        let scaled = usd.mantissa() * 1_000_000_000;
        let divisor = 10i128.pow(usd.scale());
        let floor = scaled.div_euclid(divisor);
        let ceil = if scaled.rem_euclid(divisor) == 0 {
            floor
        } else {
            floor + 1
        };
        let saturate =
            |n: i128| i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX });
        (saturate(floor), saturate(ceil))
    }

    proptest! {
        #![proptest_config(crate::test_support::cases(2048))]

        #[test]
        fn nano_conversions_equal_integer_arithmetic(
            lo in any::<u32>(),
            // Mostly amounts of a realistic size, some up to the largest Decimal.
            mid in prop_oneof![2 => Just(0u32), 1 => 0u32..16, 1 => any::<u32>()],
            hi in prop_oneof![3 => Just(0u32), 1 => any::<u32>()],
            negative in any::<bool>(),
            scale in 0u32..=28,
        ) {
            let usd = Decimal::from_parts(lo, mid, hi, negative, scale);
            let (floor, ceil) = nanos_i128(usd);
            prop_assert_eq!(to_nanos_floor(usd), floor, "{}", usd);
            prop_assert_eq!(to_nanos_ceil(usd), ceil, "{}", usd);
            let nanos = to_nanos_ceil(usd);
            if nanos != i64::MAX && nanos != i64::MIN {
                // Back to USD exactly, and never below what was charged.
                prop_assert!(nanos_to_usd(nanos) >= usd);
                prop_assert_eq!(to_nanos_ceil(nanos_to_usd(nanos)), nanos);
            }
        }
    }

    #[test]
    fn a_saturated_cost_is_above_every_budget() {
        assert!(to_nanos_ceil(MAX_COST_USD) > MAX_BUDGET_NANOS);
        assert!(
            include_str!("lua/govern.lua")
                .contains(&format!("local SATURATED = {MAX_SPENT_NANOS}\n"))
        );
        assert_eq!(to_nanos_floor(MAX_BUDGET_USD), MAX_BUDGET_NANOS);
        let stored_before_the_bound = Budget {
            period: Period::Total,
            amount_usd: Decimal::MAX,
        };
        assert_eq!(stored_before_the_bound.limit_nanos(), MAX_BUDGET_NANOS);
    }

    #[test]
    fn budget_amounts_and_tpm_are_bounded_with_the_field_named() {
        assert_eq!(budget_amount_problem("amount_usd", MAX_BUDGET_USD), None);
        assert_eq!(budget_amount_problem("amount_usd", Decimal::ZERO), None);
        let over = budget_amount_problem("amount_usd", MAX_BUDGET_USD + Decimal::ONE).unwrap();
        assert_eq!(
            over,
            "`amount_usd` 1000000001 is above the largest budget, 1000000000 USD (omit the budget for no limit)"
        );
        let negative = budget_amount_problem("amount_usd", Decimal::NEGATIVE_ONE).unwrap();
        assert!(
            negative.starts_with("`amount_usd` -1 is negative"),
            "{negative}"
        );
        assert_eq!(tpm_problem("tpm", MAX_TPM), None);
        assert!(
            tpm_problem("tpm", u64::MAX)
                .unwrap()
                .starts_with("`tpm` 18446744073709551615 is above")
        );
    }
}
