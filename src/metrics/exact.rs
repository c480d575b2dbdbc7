//! Counters kept exactly and rendered as text, for the series where the `metrics` crate could
//! lose or wrap what it is given: spend (its counters are `u64` and its gauges `f64`, and money
//! never passes through a float) and tokens (its counters add with a wrapping `fetch_add`, and
//! an upstream may report `u64::MAX` tokens). Every sum here saturates instead.
//!
//! Both maps are keyed by a request's [`Attribution`], whose label values are bounded by the
//! teams, experiments and routed models (see `metrics/mod.rs`), not by what clients send.

use std::sync::LazyLock;

use dashmap::DashMap;
use rust_decimal::Decimal;

use super::events::Attribution;
use super::text::Family;
use super::{COST_NANOUSD, COST_USD, TOKENS};

/// Exact spend in USD since the process started, per label set.
static SPEND: LazyLock<DashMap<Attribution, Decimal>> = LazyLock::new(DashMap::new);

/// Tokens since the process started, per label set and kind of token.
static TOKEN_COUNTS: LazyLock<DashMap<(Attribution, &'static str), u64>> =
    LazyLock::new(DashMap::new);

const NANOS_PER_USD: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

pub(super) fn add_cost(attribution: &Attribution, cost_usd: Decimal) {
    if cost_usd.is_zero() {
        return;
    }
    let mut spent = SPEND.entry(attribution.clone()).or_default();
    *spent = spent.saturating_add(cost_usd);
}

/// Adds `count` tokens of `kind`; the sum stays at `u64::MAX` once it gets there.
pub(super) fn add_tokens(attribution: &Attribution, kind: &'static str, count: u64) {
    if count == 0 {
        return;
    }
    let mut total = TOKEN_COUNTS.entry((attribution.clone(), kind)).or_default();
    *total = total.saturating_add(count);
}

/// Whole nano-USD in `usd`, rounded down: the counter only ever shows spend that has fully
/// happened, and it equals the ledger's sum × 10⁹ whenever that is a whole number. A sum too
/// large to scale (beyond about 7.9 × 10^19 USD) shows as the largest `Decimal`.
fn whole_nanos(usd: Decimal) -> Decimal {
    usd.checked_mul(NANOS_PER_USD)
        .map_or(Decimal::MAX, |nanos| nanos.floor().normalize())
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
    render_tokens(out);
}

fn render_tokens(out: &mut String) {
    let counts: Vec<((Attribution, &'static str), u64)> = TOKEN_COUNTS
        .iter()
        .map(|entry| (entry.key().clone(), *entry.value()))
        .collect();
    let mut tokens = Family::new(
        out,
        TOKENS,
        "counter",
        "Tokens by kind; cached_input and cache_write are parts of input, reasoning is part of output.",
    );
    for ((attribution, kind), count) in &counts {
        let mut labels = attribution.pairs();
        labels.push(("kind", kind));
        tokens.sample(&labels, count);
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

    fn attribution(team: &str) -> Attribution {
        Attribution {
            team: team.to_owned(),
            experiment: "none".to_owned(),
            model: "m".to_owned(),
            provider: "p".to_owned(),
            key: None,
        }
    }

    #[test]
    fn sums_saturate_instead_of_wrapping_or_panicking() {
        let who = attribution("exact-saturation-test");
        add_cost(&who, Decimal::MAX);
        add_cost(&who, Decimal::MAX);
        assert_eq!(*SPEND.get(&who).unwrap(), Decimal::MAX);
        assert_eq!(whole_nanos(Decimal::MAX), Decimal::MAX);

        add_tokens(&who, "output", u64::MAX);
        add_tokens(&who, "output", 5);
        assert_eq!(
            *TOKEN_COUNTS.get(&(who.clone(), "output")).unwrap(),
            u64::MAX
        );

        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains("team=\"exact-saturation-test\",experiment=\"none\",model=\"m\",provider=\"p\",kind=\"output\"} 18446744073709551615\n"),
            "{out}"
        );
    }
}
