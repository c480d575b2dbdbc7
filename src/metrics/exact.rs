//! Spend counters kept as exact `Decimal` sums and rendered as decimal text, so money never
//! passes through a float: the `metrics` crate only has `u64` counters and `f64` gauges.

use std::sync::LazyLock;

use dashmap::DashMap;
use rust_decimal::Decimal;

use super::events::Attribution;
use super::text::Family;
use super::{COST_NANOUSD, COST_USD};

/// Exact spend in USD since the process started, per label set.
static SPEND: LazyLock<DashMap<Attribution, Decimal>> = LazyLock::new(DashMap::new);

const NANOS_PER_USD: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

pub(super) fn add_cost(attribution: &Attribution, cost_usd: Decimal) {
    if cost_usd.is_zero() {
        return;
    }
    *SPEND.entry(attribution.clone()).or_default() += cost_usd;
}

/// Whole nano-USD in `usd`, rounded down: the counter only ever shows spend that has fully
/// happened, and it equals the ledger's sum × 10⁹ whenever that is a whole number.
fn whole_nanos(usd: Decimal) -> Decimal {
    (usd * NANOS_PER_USD).floor().normalize()
}

/// The USD value for dashboards, written as exact decimal text (Prometheus parses it as a
/// float on its side). The exact figure to reconcile with the ledger is the nano-USD counter.
fn usd_for_dashboards(usd: Decimal) -> Decimal {
    usd.normalize()
}

pub(super) fn render(out: &mut String) {
    let spend: Vec<(Attribution, Decimal)> = SPEND
        .iter()
        .map(|entry| (entry.key().clone(), *entry.value()))
        .collect();
    let mut nanos = Family::new(
        out,
        COST_NANOUSD,
        "counter",
        "Spend in nano-USD (exact: the floor of the exact decimal sum of ledger costs).",
    );
    for (attribution, usd) in &spend {
        nanos.sample(&attribution.pairs(), whole_nanos(*usd));
    }
    let mut usd = Family::new(
        out,
        COST_USD,
        "counter",
        "Spend in USD, for dashboards (reconcile with tollgate_cost_nanousd_total, which is exact).",
    );
    for (attribution, total) in &spend {
        usd.sample(&attribution.pairs(), usd_for_dashboards(*total));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn nanos_are_the_floor_of_the_exact_sum() {
        let sum: Decimal = ["0.0000000375", "0.0000000375", "0.000225"]
            .iter()
            .map(|s| s.parse::<Decimal>().unwrap())
            .sum();
        // 37.5 + 37.5 + 225000 nano-USD: the halves add up exactly, not rounded per request.
        assert_eq!(whole_nanos(sum).to_string(), "225075");
        assert_eq!(
            whole_nanos("0.0000000015".parse().unwrap()).to_string(),
            "1"
        );
        assert_eq!(whole_nanos(Decimal::ZERO).to_string(), "0");
        assert_eq!(usd_for_dashboards(sum).to_string(), "0.000225075");
    }
}
