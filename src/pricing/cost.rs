use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Usage;

/// Prices are quoted per this many tokens.
const TOKENS_PER_QUOTE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// USD per 1M tokens for each kind of token, with the price file's defaults already applied
/// (an absent `cached_input` is stored as the input price, and so on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rates {
    pub input: Decimal,
    pub cached_input: Decimal,
    pub cache_write: Decimal,
    pub cache_write_1h: Decimal,
    pub output: Decimal,
    pub reasoning: Decimal,
}

/// Prices that replace the base rates for a whole request whose prompt is longer than
/// `above_prompt_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tier {
    pub above_prompt_tokens: u64,
    pub rates: Rates,
}

/// What kind of model a price entry is for: the endpoints it is served on follow from it, so
/// an embedding request is never charged at a chat model's prices, nor the other way round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelMode {
    /// Chat, legacy completions and Anthropic messages.
    #[default]
    Chat,
    /// `/v1/embeddings` only.
    Embedding,
}

impl ModelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelMode::Chat => "chat",
            ModelMode::Embedding => "embedding",
        }
    }

    pub fn parse(text: &str) -> Option<ModelMode> {
        [ModelMode::Chat, ModelMode::Embedding]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
}

/// One dated price entry of one model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelPrice {
    /// The model name as clients send it.
    pub name: String,
    /// The `provider` of the file the entry came from.
    pub provider: String,
    /// First UTC day this entry applies; it applies until the next entry of the same name.
    pub effective_from: NaiveDate,
    /// Other names clients send for the same model at the same price (e.g. dated snapshots).
    pub aliases: Vec<String>,
    /// `chat` (the default) or `embedding`.
    pub mode: ModelMode,
    /// Prices for requests that fall in no tier.
    pub rates: Rates,
    /// Long-context tiers, sorted by `above_prompt_tokens`, thresholds unique.
    pub tiers: Vec<Tier>,
    /// Where the entry was read from (e.g. `pricing/openai.toml`), for messages and listings.
    pub source: String,
}

/// The most one request can cost: 2^63 − 1 nano-USD, i.e. 9,223,372,036.854775807 USD, the
/// largest amount the budget counters hold. A part or a total above it (only absurd usages or
/// prices get there: see `docs/pricing.md`) is charged as exactly this and the breakdown is
/// marked `saturated`, so a cost that cannot be represented is never recorded as less.
pub const MAX_COST_USD: Decimal = Decimal::from_parts(u32::MAX, 0x7FFF_FFFF, 0, false, 9);

/// The cost of one request in USD, split by kind of token. Exact: nothing is rounded, unless
/// `saturated`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CostBreakdown {
    /// Prompt tokens neither read from nor written to the cache.
    pub input: Decimal,
    /// Prompt tokens read from the cache.
    pub cached_input: Decimal,
    /// Prompt tokens written to the cache, 5-minute and 1-hour writes together.
    pub cache_write: Decimal,
    /// Completion tokens that are not reasoning tokens.
    pub output: Decimal,
    /// Reasoning tokens.
    pub reasoning: Decimal,
    /// Sum of the parts above, or [`MAX_COST_USD`] when `saturated`.
    pub total: Decimal,
    /// A part or the total exceeded [`MAX_COST_USD`] and was capped at it: the cost is at
    /// least what is shown, and the request is refused by every budget from then on.
    #[serde(default)]
    pub saturated: bool,
}

impl ModelPrice {
    /// The rates a request with `input_tokens` prompt tokens pays: those of the tier with the
    /// highest threshold strictly below `input_tokens`, else the base rates. A prompt of exactly
    /// the threshold pays the base rates, and a tier applies to every token of the request, as
    /// Anthropic and Google price long context.
    pub fn rates_for(&self, input_tokens: u64) -> &Rates {
        self.tiers
            .iter()
            .filter(|tier| tier.above_prompt_tokens < input_tokens)
            .max_by_key(|tier| tier.above_prompt_tokens)
            .map_or(&self.rates, |tier| &tier.rates)
    }

    /// The exact cost of `usage` at this entry's prices, capped at [`MAX_COST_USD`]. Never
    /// panics, whatever the counts and rates.
    #[must_use]
    pub fn cost(&self, usage: &Usage) -> CostBreakdown {
        let rates = self.rates_for(usage.input_tokens);
        let mut cap = Cap::default();
        let input = cap.at_most(charge(usage.uncached_input_tokens(), rates.input));
        let cached_input = cap.at_most(charge(usage.cached_input_tokens, rates.cached_input));
        let cache_write = cap.at_most(sum([
            charge(usage.cache_write_tokens, rates.cache_write),
            charge(usage.cache_write_1h_tokens, rates.cache_write_1h),
        ]));
        let output = cap.at_most(charge(usage.non_reasoning_output_tokens(), rates.output));
        let reasoning = cap.at_most(charge(usage.reasoning_tokens, rates.reasoning));
        let total = cap.at_most(sum(
            [input, cached_input, cache_write, output, reasoning].map(Some)
        ));
        CostBreakdown {
            input,
            cached_input,
            cache_write,
            output,
            reasoning,
            total,
            saturated: cap.hit,
        }
    }
}

/// Caps amounts at [`MAX_COST_USD`] and remembers whether it had to.
#[derive(Default)]
struct Cap {
    hit: bool,
}

impl Cap {
    /// `exact` if it is representable and at most the maximum; `None` means it overflowed.
    fn at_most(&mut self, exact: Option<Decimal>) -> Decimal {
        match exact {
            Some(amount) if amount <= MAX_COST_USD => amount,
            _ => {
                self.hit = true;
                MAX_COST_USD
            }
        }
    }
}

/// `tokens × per_million / 1,000,000`, or `None` if it does not fit a `Decimal`. Exact whenever
/// the result is at most [`MAX_COST_USD`] and the price has at most 12 decimal places, which the
/// price files guarantee (see `docs/pricing.md`).
fn charge(tokens: u64, per_million: Decimal) -> Option<Decimal> {
    Decimal::from(tokens)
        .checked_mul(per_million)?
        .checked_div(TOKENS_PER_QUOTE)
        .map(|cost| cost.normalize())
}

/// The sum of `parts`, or `None` if one of them or the sum does not fit.
fn sum<const N: usize>(parts: [Option<Decimal>; N]) -> Option<Decimal> {
    parts
        .into_iter()
        .try_fold(Decimal::ZERO, |total, part| total.checked_add(part?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test decimal")
    }

    fn rates(
        input: &str,
        cached: &str,
        write: &str,
        write_1h: &str,
        out: &str,
        reas: &str,
    ) -> Rates {
        Rates {
            input: dec(input),
            cached_input: dec(cached),
            cache_write: dec(write),
            cache_write_1h: dec(write_1h),
            output: dec(out),
            reasoning: dec(reas),
        }
    }

    fn model(base: Rates, tiers: Vec<Tier>) -> ModelPrice {
        ModelPrice {
            name: "m".into(),
            provider: "test".into(),
            effective_from: NaiveDate::from_ymd_opt(2025, 1, 1).expect("date"),
            aliases: Vec::new(),
            mode: ModelMode::Chat,
            rates: base,
            tiers,
            source: "test.toml".into(),
        }
    }

    /// Distinct prices per kind, so a token charged at the wrong rate changes the result.
    fn distinct() -> ModelPrice {
        model(rates("3", "0.30", "3.75", "6", "15", "20"), Vec::new())
    }

    #[test]
    fn uncached_input_tokens_pay_the_input_price() {
        let usage = Usage {
            input_tokens: 1_234_567,
            ..Usage::default()
        };
        let cost = distinct().cost(&usage);
        // 1,234,567 × 3 / 1e6
        assert_eq!(cost.input, dec("3.703701"));
        assert_eq!(cost.total, dec("3.703701"));
        assert_eq!(
            cost.cached_input + cost.cache_write + cost.output,
            Decimal::ZERO
        );
    }

    #[test]
    fn cached_tokens_pay_the_cache_read_price_and_leave_the_input_part() {
        let usage = Usage {
            input_tokens: 1_000,
            cached_input_tokens: 999,
            ..Usage::default()
        };
        let cost = distinct().cost(&usage);
        assert_eq!(cost.input, dec("0.000003")); // 1 × 3 / 1e6
        assert_eq!(cost.cached_input, dec("0.0002997")); // 999 × 0.30 / 1e6
        assert_eq!(cost.total, dec("0.0003027"));
    }

    #[test]
    fn cache_writes_pay_their_own_prices_for_5m_and_1h() {
        let usage = Usage {
            input_tokens: 3_000,
            cache_write_tokens: 1_001,
            cache_write_1h_tokens: 1_999,
            ..Usage::default()
        };
        let cost = distinct().cost(&usage);
        assert_eq!(cost.input, Decimal::ZERO);
        // 1,001 × 3.75 / 1e6 + 1,999 × 6 / 1e6 = 0.00375375 + 0.011994
        assert_eq!(cost.cache_write, dec("0.01574775"));
        assert_eq!(cost.total, dec("0.01574775"));
    }

    #[test]
    fn output_and_reasoning_tokens_pay_their_own_prices() {
        let usage = Usage {
            output_tokens: 10_001,
            reasoning_tokens: 4_000,
            ..Usage::default()
        };
        let cost = distinct().cost(&usage);
        assert_eq!(cost.output, dec("0.090015")); // 6,001 × 15 / 1e6
        assert_eq!(cost.reasoning, dec("0.08")); // 4,000 × 20 / 1e6
        assert_eq!(cost.total, dec("0.170015"));
    }

    #[test]
    fn every_kind_at_once_sums_exactly() {
        let usage = Usage {
            input_tokens: 1_234_567,
            cached_input_tokens: 200_000,
            cache_write_tokens: 100_000,
            cache_write_1h_tokens: 50_000,
            output_tokens: 10_001,
            reasoning_tokens: 4_000,
        };
        let cost = distinct().cost(&usage);
        assert_eq!(cost.input, dec("2.653701")); // 884,567 × 3 / 1e6
        assert_eq!(cost.cached_input, dec("0.06"));
        assert_eq!(cost.cache_write, dec("0.675")); // 0.375 + 0.3
        assert_eq!(cost.output, dec("0.090015"));
        assert_eq!(cost.reasoning, dec("0.08"));
        assert_eq!(cost.total, dec("3.558716"));
    }

    #[test]
    fn tiny_costs_are_not_rounded() {
        let price = model(
            rates("0.15", "0.075", "0.15", "0.15", "0.60", "0.60"),
            Vec::new(),
        );
        let usage = Usage {
            input_tokens: 1,
            cached_input_tokens: 1,
            output_tokens: 1,
            ..Usage::default()
        };
        let cost = price.cost(&usage);
        assert_eq!(cost.cached_input, dec("0.000000075"));
        assert_eq!(cost.output, dec("0.0000006"));
        assert_eq!(cost.total, dec("0.000000675"));
        // The serialised form is the exact decimal string, without trailing zeros.
        let json = serde_json::to_value(cost).expect("serialise");
        assert_eq!(json["total"], "0.000000675");
    }

    #[test]
    fn huge_counts_stay_exact_below_the_maximum() {
        let price = model(rates("0.0001", "0", "0", "0", "0.0001", "0"), Vec::new());
        let usage = Usage {
            output_tokens: u64::MAX,
            ..Usage::default()
        };
        // 18,446,744,073,709,551,615 × 0.0001 / 1e6
        let cost = price.cost(&usage);
        assert_eq!(cost.total, dec("1844674407.3709551615"));
        assert!(!cost.saturated);
    }

    #[test]
    fn the_maximum_is_the_largest_nano_usd_counter() {
        assert_eq!(MAX_COST_USD, dec("9223372036.854775807"));
        assert_eq!(
            (MAX_COST_USD * Decimal::from(1_000_000_000))
                .normalize()
                .to_string(),
            i64::MAX.to_string()
        );
    }

    #[test]
    fn costs_above_the_maximum_saturate_and_say_so() {
        // 18,446,744,073,709,551,615 × 75 / 1e6 ≈ 1.4e15 USD per part.
        let price = model(rates("75", "75", "75", "75", "75", "75"), Vec::new());
        let usage = Usage {
            output_tokens: u64::MAX,
            ..Usage::default()
        };
        let cost = price.cost(&usage);
        assert_eq!(cost.output, MAX_COST_USD);
        assert_eq!(cost.total, MAX_COST_USD);
        assert!(cost.saturated);

        // Every kind at u64::MAX at the largest price a `Decimal` holds: no overflow panics.
        let max = Rates {
            input: Decimal::MAX,
            cached_input: Decimal::MAX,
            cache_write: Decimal::MAX,
            cache_write_1h: Decimal::MAX,
            output: Decimal::MAX,
            reasoning: Decimal::MAX,
        };
        let all = Usage {
            input_tokens: u64::MAX,
            cached_input_tokens: u64::MAX,
            cache_write_tokens: u64::MAX,
            cache_write_1h_tokens: u64::MAX,
            output_tokens: u64::MAX,
            reasoning_tokens: u64::MAX,
        };
        let cost = model(max, Vec::new()).cost(&all);
        assert_eq!(cost.total, MAX_COST_USD);
        assert_eq!(cost.cache_write, MAX_COST_USD);
        assert!(cost.saturated);

        // Parts below the maximum whose sum is above it: the total saturates, the parts stay.
        let price = model(rates("5000", "5000", "0", "0", "5000", "0"), Vec::new());
        let usage = Usage {
            input_tokens: 1_500_000_000_000,
            output_tokens: 1_500_000_000_000,
            ..Usage::default()
        };
        let cost = price.cost(&usage);
        assert_eq!(cost.input, dec("7500000000"));
        assert_eq!(cost.output, dec("7500000000"));
        assert_eq!(cost.total, MAX_COST_USD);
        assert!(cost.saturated);
    }

    #[test]
    fn oversized_subsets_charge_the_subsets_as_reported() {
        let usage = Usage {
            input_tokens: 10,
            cached_input_tokens: 30,
            output_tokens: 1,
            reasoning_tokens: 2,
            ..Usage::default()
        };
        let cost = distinct().cost(&usage);
        assert_eq!(cost.input, Decimal::ZERO);
        assert_eq!(cost.cached_input, dec("0.000009")); // 30 × 0.30 / 1e6
        assert_eq!(cost.output, Decimal::ZERO);
        assert_eq!(cost.reasoning, dec("0.00004")); // 2 × 20 / 1e6
    }

    fn tiered() -> ModelPrice {
        model(
            rates("3", "0.30", "3.75", "6", "15", "15"),
            vec![
                Tier {
                    above_prompt_tokens: 200_000,
                    rates: rates("6", "0.60", "7.50", "12", "22.50", "22.50"),
                },
                Tier {
                    above_prompt_tokens: 100_000,
                    rates: rates("4", "0.40", "5", "8", "20", "20"),
                },
            ],
        )
    }

    #[test]
    fn a_prompt_of_exactly_the_threshold_pays_the_lower_prices() {
        let price = tiered();
        assert_eq!(price.rates_for(0).input, dec("3"));
        assert_eq!(price.rates_for(100_000).input, dec("3"));
        assert_eq!(price.rates_for(100_001).input, dec("4"));
        assert_eq!(price.rates_for(200_000).input, dec("4"));
        assert_eq!(price.rates_for(200_001).input, dec("6"));
        assert_eq!(price.rates_for(u64::MAX).input, dec("6"));
    }

    #[test]
    fn a_tier_applies_to_the_whole_request() {
        let price = tiered();
        let at_threshold = Usage {
            input_tokens: 200_000,
            cached_input_tokens: 100_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        let cost = price.cost(&at_threshold);
        assert_eq!(cost.input, dec("0.4")); // 100,000 × 4 / 1e6
        assert_eq!(cost.cached_input, dec("0.04")); // 100,000 × 0.40 / 1e6
        assert_eq!(cost.output, dec("0.02")); // 1,000 × 20 / 1e6

        let above = Usage {
            input_tokens: 200_001,
            ..at_threshold
        };
        let cost = price.cost(&above);
        assert_eq!(cost.input, dec("0.600006")); // 100,001 × 6 / 1e6
        assert_eq!(cost.cached_input, dec("0.06")); // 100,000 × 0.60 / 1e6
        assert_eq!(cost.output, dec("0.0225")); // 1,000 × 22.50 / 1e6
        assert_eq!(cost.total, dec("0.682506"));
    }
}
