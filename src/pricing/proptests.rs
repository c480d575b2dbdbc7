//! Property tests of the price table: no TOML text panics the loader, and random valid price
//! files load into costs that equal an independent computation in 128-bit integers, for any
//! usage up to `u64::MAX` tokens of every kind, saturation included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::{MAX_COST_USD, PriceTable, Usage};
use crate::test_support::cases;

/// Units of the independent computation: 10^-12 USD per 1M tokens for prices (their most
/// decimal places), so a token count times a price is in 10^-18 USD.
const PRICE_PLACES: u32 = 12;
const COST_PLACES: u32 = 18;

/// A price in 10^-12 USD per 1M tokens, at most 100,000 USD.
fn price_units() -> impl Strategy<Value = u128> {
    let max = 100_000u128 * 10u128.pow(PRICE_PLACES);
    prop_oneof![
        Just(0),
        Just(max),
        (0..=max),
        (0u128..=100).prop_map(|usd| usd * 10u128.pow(PRICE_PLACES)),
        (0u128..=10_000).prop_map(|cents| cents * 10u128.pow(PRICE_PLACES - 2)),
    ]
}

/// The price written as a price file writes it: a decimal string, sometimes with trailing
/// zeros or a leading zero.
fn written(units: u128, pad: bool) -> String {
    let scale = 10u128.pow(PRICE_PLACES);
    let fraction = format!("{:012}", units % scale);
    let fraction = if pad {
        fraction.as_str()
    } else {
        fraction.trim_end_matches('0')
    };
    if fraction.is_empty() {
        format!("{}", units / scale)
    } else {
        format!("{}.{fraction}", units / scale)
    }
}

#[derive(Debug, Clone)]
struct RawRates {
    input: u128,
    output: u128,
    cached_input: Option<u128>,
    cache_write: Option<u128>,
    cache_write_1h: Option<u128>,
    reasoning: Option<u128>,
    pad: bool,
}

fn raw_rates() -> impl Strategy<Value = RawRates> {
    (
        price_units(),
        price_units(),
        proptest::option::of(price_units()),
        proptest::option::of(price_units()),
        proptest::option::of(price_units()),
        proptest::option::of(price_units()),
        any::<bool>(),
    )
        .prop_map(
            |(input, output, cached_input, cache_write, cache_write_1h, reasoning, pad)| RawRates {
                input,
                output,
                cached_input,
                cache_write,
                cache_write_1h,
                reasoning,
                pad,
            },
        )
}

impl RawRates {
    fn toml(&self) -> String {
        let line = |name: &str, units: Option<u128>| {
            units.map_or(String::new(), |u| {
                format!("{name} = \"{}\"\n", written(u, self.pad))
            })
        };
        [
            line("input", Some(self.input)),
            line("output", Some(self.output)),
            line("cached_input", self.cached_input),
            line("cache_write", self.cache_write),
            line("cache_write_1h", self.cache_write_1h),
            line("reasoning", self.reasoning),
        ]
        .concat()
    }

    /// [input, cached_input, cache_write, cache_write_1h, output, reasoning] with the
    /// documented defaults.
    fn resolved(&self) -> [u128; 6] {
        let cache_write = self.cache_write.unwrap_or(self.input);
        [
            self.input,
            self.cached_input.unwrap_or(self.input),
            cache_write,
            self.cache_write_1h.unwrap_or(cache_write),
            self.output,
            self.reasoning.unwrap_or(self.output),
        ]
    }
}

#[derive(Debug, Clone)]
struct RawModel {
    base: RawRates,
    tiers: Vec<(u64, RawRates)>,
}

fn raw_model() -> impl Strategy<Value = RawModel> {
    (
        raw_rates(),
        // TOML integers are i64, so that is as high as a threshold can be written.
        prop::collection::btree_map(
            prop_oneof![0u64..1_000_000, 0..=i64::MAX as u64],
            raw_rates(),
            0..3,
        ),
    )
        .prop_map(|(base, tiers)| RawModel {
            base,
            tiers: tiers.into_iter().collect(),
        })
}

fn token_count() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        0u64..10_000_000,
        Just(u64::MAX),
        any::<u64>(),
        (1u64 << 40)..(1u64 << 50),
    ]
}

fn usage() -> impl Strategy<Value = Usage> {
    (
        token_count(),
        token_count(),
        token_count(),
        token_count(),
        token_count(),
        token_count(),
    )
        .prop_map(
            |(
                input_tokens,
                cached_input_tokens,
                cache_write_tokens,
                cache_write_1h_tokens,
                output_tokens,
                reasoning_tokens,
            )| Usage {
                input_tokens,
                cached_input_tokens,
                cache_write_tokens,
                cache_write_1h_tokens,
                output_tokens,
                reasoning_tokens,
            },
        )
}

fn render(models: &[RawModel]) -> String {
    let mut text = "provider = \"prop\"\n".to_owned();
    for (i, model) in models.iter().enumerate() {
        text.push_str(&format!(
            "\n[[models]]\nname = \"m{i}\"\neffective_from = \"2020-01-01\"\n"
        ));
        text.push_str(&model.base.toml());
        for (threshold, rates) in &model.tiers {
            text.push_str(&format!(
                "[[models.tiers]]\nabove_prompt_tokens = {threshold}\n"
            ));
            text.push_str(&rates.toml());
        }
    }
    text
}

/// A `Decimal` cost in 10^-18 USD; every part of a cost has at most 18 decimal places.
fn units(cost: Decimal) -> u128 {
    assert!(!cost.is_sign_negative(), "{cost}");
    assert!(cost.scale() <= COST_PLACES, "{cost}");
    u128::try_from(cost.mantissa()).unwrap() * 10u128.pow(COST_PLACES - cost.scale())
}

/// The cost of `usage` at `model`'s prices, computed independently in 10^-18 USD: the parts,
/// each capped at the maximum, the total, and whether anything was capped.
fn expected(model: &RawModel, usage: &Usage) -> ([u128; 5], u128, bool) {
    let rates = model
        .tiers
        .iter()
        .filter(|(threshold, _)| *threshold < usage.input_tokens)
        .max_by_key(|(threshold, _)| *threshold)
        .map_or(&model.base, |(_, rates)| rates)
        .resolved();
    let max = units(MAX_COST_USD);
    let tokens = |n: u64| u128::from(n);
    let uncached = tokens(usage.input_tokens).saturating_sub(
        tokens(usage.cached_input_tokens)
            + tokens(usage.cache_write_tokens)
            + tokens(usage.cache_write_1h_tokens),
    );
    let non_reasoning = tokens(usage.output_tokens).saturating_sub(tokens(usage.reasoning_tokens));
    let exact = [
        uncached * rates[0],
        tokens(usage.cached_input_tokens) * rates[1],
        tokens(usage.cache_write_tokens) * rates[2]
            + tokens(usage.cache_write_1h_tokens) * rates[3],
        non_reasoning * rates[4],
        tokens(usage.reasoning_tokens) * rates[5],
    ];
    let parts = exact.map(|part| part.min(max));
    let sum: u128 = parts.iter().sum();
    let saturated = exact.iter().any(|part| *part > max) || sum > max;
    (parts, sum.min(max), saturated)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn no_toml_text_panics_the_loader(text in any::<String>()) {
        let _ = PriceTable::from_toml_str("prop.toml", &text);
    }

    #[test]
    fn no_near_valid_price_file_panics_the_loader(
        fields in prop::collection::vec((
            prop::sample::select(vec!["name", "effective_from", "aliases", "input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning", "tiers", "above_prompt_tokens", "extra"]),
            prop_oneof![
                "\"-?[0-9]{0,40}(\\.[0-9]{0,40})?\"",
                "-?[0-9]{1,30}(\\.[0-9]{1,5})?",
                Just("\"2025-02-30\"".to_owned()),
                Just("2025-01-01".to_owned()),
                Just("[\"a\", \"a\"]".to_owned()),
                Just("{ input = \"1\" }".to_owned()),
                Just("18446744073709551616".to_owned()),
                Just("nan".to_owned()),
                Just("inf".to_owned()),
                Just("\"1e20\"".to_owned()),
            ],
        ), 0..12),
        tiers in 0..3usize,
    ) {
        let mut text = "provider = \"p\"\n[[models]]\n".to_owned();
        for (name, value) in &fields {
            text.push_str(&format!("{name} = {value}\n"));
        }
        for _ in 0..tiers {
            text.push_str("[[models.tiers]]\n");
            for (name, value) in fields.iter().rev().take(3) {
                text.push_str(&format!("{name} = {value}\n"));
            }
        }
        let _ = PriceTable::from_toml_str("prop.toml", &text);
    }

    #[test]
    fn valid_price_files_cost_what_an_independent_computation_says(
        models in prop::collection::vec(raw_model(), 1..4),
        usages in prop::collection::vec(usage(), 1..8),
    ) {
        let text = render(&models);
        let table = PriceTable::from_toml_str("prop.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for (i, model) in models.iter().enumerate() {
            let price = table.price_at(&format!("m{i}"), at).unwrap();
            for usage in &usages {
                let cost = price.cost(usage);
                let (parts, total, saturated) = expected(model, usage);
                let got = [cost.input, cost.cached_input, cost.cache_write, cost.output, cost.reasoning].map(units);
                prop_assert_eq!(got, parts, "{:?}", usage);
                prop_assert_eq!(units(cost.total), total, "{:?}", usage);
                prop_assert_eq!(cost.saturated, saturated, "{:?}", usage);
                if !saturated {
                    prop_assert_eq!(cost.total, cost.input + cost.cached_input + cost.cache_write + cost.output + cost.reasoning);
                }
            }
        }
    }
}
