//! Loading, validation and history tests. Cost arithmetic is tested next to it, in `cost.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;

const FILE: &str = "pricing/openai.toml";

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).expect("test decimal")
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s)
        .single()
        .expect("valid time")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn load(text: &str) -> PriceTable {
    PriceTable::from_toml_str(FILE, text).unwrap_or_else(|e| panic!("{e}"))
}

fn load_err(text: &str) -> String {
    match PriceTable::from_toml_str(FILE, text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// One `gpt-4o` entry with `field_line` added or substituted.
fn gpt_4o_with(field_line: &str) -> String {
    format!(
        "provider = \"openai\"\n[[models]]\nname = \"gpt-4o\"\neffective_from = \"2024-10-02\"\noutput = \"10.00\"\n{field_line}\n"
    )
}

// --- defaults and aliases -----------------------------------------------------------------------

#[test]
fn optional_prices_default_as_documented() {
    let table = load(
        r#"
provider = "anthropic"

[[models]]
name = "plain"
effective_from = "2025-01-01"
input = "2"
output = "8"

[[models]]
name = "with-write"
effective_from = "2025-01-01"
input = "2"
output = "8"
cache_write = "2.5"

[[models.tiers]]
above_prompt_tokens = 1000
input = "4"
output = "16"
"#,
    );
    let now = at(2025, 6, 1, 0, 0, 0);
    let plain = table.price_at("plain", now).expect("plain").rates;
    assert_eq!(plain.cached_input, dec("2"));
    assert_eq!(plain.cache_write, dec("2"));
    assert_eq!(plain.cache_write_1h, dec("2"));
    assert_eq!(plain.reasoning, dec("8"));

    let with_write = table.price_at("with-write", now).expect("with-write");
    assert_eq!(with_write.rates.cache_write_1h, dec("2.5"));
    // Inside a tier the defaults come from the tier's own prices.
    let tier = &with_write.tiers[0].rates;
    assert_eq!(tier.cached_input, dec("4"));
    assert_eq!(tier.cache_write, dec("4"));
    assert_eq!(tier.cache_write_1h, dec("4"));
    assert_eq!(tier.reasoning, dec("16"));
}

#[test]
fn every_field_is_accepted_and_tiers_are_sorted() {
    let table = load(
        r#"
provider = "anthropic"
[[models]]
name = "full"
aliases = ["full-2025"]
effective_from = 2025-01-01
input = "3"
output = "15"
cached_input = "0.3"
cache_write = "3.75"
cache_write_1h = "6"
reasoning = "20"
[[models.tiers]]
above_prompt_tokens = 200000
input = "6"
output = "22.5"
cached_input = "0.6"
cache_write = "7.5"
cache_write_1h = "12"
reasoning = "30"
[[models.tiers]]
above_prompt_tokens = 100000
input = "4"
output = "20"
"#,
    );
    let price = table
        .price_at("full-2025", at(2025, 1, 1, 0, 0, 0))
        .expect("alias");
    assert_eq!(price.name, "full");
    assert_eq!(price.provider, "anthropic");
    assert_eq!(price.source, FILE);
    assert_eq!(price.effective_from, date(2025, 1, 1));
    assert_eq!(price.rates.reasoning, dec("20"));
    let thresholds: Vec<u64> = price.tiers.iter().map(|t| t.above_prompt_tokens).collect();
    assert_eq!(thresholds, [100_000, 200_000]);
    assert_eq!(price.tiers[1].rates.cache_write_1h, dec("12"));
    assert_eq!(table.len(), 1);
}

// --- effective_from history ---------------------------------------------------------------------

const HISTORY: &str = r#"
provider = "openai"

[[models]]
name = "o3"
aliases = ["o3-2025-04-16"]
effective_from = "2025-04-16"
input = "10.00"
output = "40.00"

[[models]]
name = "o3"
effective_from = "2025-06-10"
input = "2.00"
output = "8.00"
"#;

#[test]
fn a_price_change_applies_only_from_its_utc_date() {
    let table = load(HISTORY);
    assert!(table.price_at("o3", at(2025, 4, 15, 23, 59, 59)).is_none());
    let launch = table
        .price_at("o3", at(2025, 4, 16, 0, 0, 0))
        .expect("launch");
    assert_eq!(launch.rates.input, dec("10"));
    let day_before = table
        .price_at("o3", at(2025, 6, 9, 23, 59, 59))
        .expect("old");
    assert_eq!(day_before.rates.input, dec("10"));
    let from = table.price_at("o3", at(2025, 6, 10, 0, 0, 0)).expect("new");
    assert_eq!(from.rates.input, dec("2"));
    let later = table.price_at("o3", at(2030, 1, 1, 0, 0, 0)).expect("new");
    assert_eq!(later.effective_from, date(2025, 6, 10));

    // The cost follows: 1M input tokens before and after the change.
    let usage = Usage {
        input_tokens: 1_000_000,
        ..Usage::default()
    };
    assert_eq!(day_before.cost(&usage).total, dec("10"));
    assert_eq!(from.cost(&usage).total, dec("2"));
}

#[test]
fn an_alias_belongs_to_its_entry_only() {
    // The snapshot alias was not repeated on the later entry, so it keeps the launch price.
    let table = load(HISTORY);
    let snapshot = table
        .price_at("o3-2025-04-16", at(2026, 1, 1, 0, 0, 0))
        .expect("alias");
    assert_eq!(snapshot.name, "o3");
    assert_eq!(snapshot.rates.input, dec("10"));
    assert!(table.contains("o3-2025-04-16"));
    assert!(!table.contains("o3-mini"));
    assert!(table.price_at("o3-mini", at(2026, 1, 1, 0, 0, 0)).is_none());
}

#[test]
fn models_lists_history_in_order() {
    let table = load(HISTORY);
    let listed: Vec<(&str, NaiveDate)> = table
        .models()
        .map(|p| (p.name.as_str(), p.effective_from))
        .collect();
    assert_eq!(
        listed,
        [("o3", date(2025, 4, 16)), ("o3", date(2025, 6, 10))]
    );
}

// --- validation errors --------------------------------------------------------------------------

#[test]
fn a_malformed_decimal_names_file_model_and_field() {
    assert_eq!(
        load_err(&gpt_4o_with(r#"input = "abc""#)),
        r#"pricing/openai.toml: model "gpt-4o": field `input`: "abc" is not a decimal number (write it as a string like "2.50")"#
    );
    assert!(
        load_err(&gpt_4o_with(r#"input = "1.2.3""#)).contains(r#""1.2.3" is not a decimal number"#)
    );
    assert!(load_err(&gpt_4o_with(r#"input = """#)).contains(r#""" is not a decimal number"#));
    assert!(
        load_err(&gpt_4o_with("input = true")).contains("field `input`: true is not a decimal")
    );
}

#[test]
fn a_toml_float_or_integer_is_refused_with_a_hint_to_quote_it() {
    assert_eq!(
        load_err(&gpt_4o_with("input = 2.5")),
        r#"pricing/openai.toml: model "gpt-4o": field `input`: 2.5 is a TOML number, and TOML floats lose exactness: quote it as "2.5""#
    );
    assert!(load_err(&gpt_4o_with("input = 3")).contains(r#"quote it as "3""#));
}

#[test]
fn negative_and_overly_precise_prices_are_refused() {
    assert_eq!(
        load_err(&gpt_4o_with(r#"input = "-0.01""#)),
        r#"pricing/openai.toml: model "gpt-4o": field `input`: "-0.01" is negative (prices are zero or more)"#
    );
    assert!(
        load_err(&gpt_4o_with(r#"input = "0.0000000000001""#))
            .contains("has more than 12 decimal places")
    );
    // Zero is a valid price, and "-0" is just zero.
    let table = load(&gpt_4o_with(r#"input = "-0""#));
    let price = table
        .price_at("gpt-4o", at(2025, 1, 1, 0, 0, 0))
        .expect("price");
    assert_eq!(price.rates.input, Decimal::ZERO);
    assert!(!price.rates.input.is_sign_negative());
}

#[test]
fn prices_above_the_maximum_are_refused_with_the_field_named() {
    // 10^20 USD per token is 10^26 per 1M tokens: it fits a Decimal and is still refused.
    assert_eq!(
        load_err(&gpt_4o_with(r#"input = "100000000000000000000000000""#)),
        r#"pricing/openai.toml: model "gpt-4o": field `input`: "100000000000000000000000000" is above the maximum of 100000 USD per 1M tokens (prices are USD per 1M tokens, not per token: a price of 0.000003 per token is written "3")"#
    );
    // 10^20 per 1M tokens, in a tier's optional field.
    let tier = load_err(&gpt_4o_with(
        "input = \"1\"\n[[models.tiers]]\nabove_prompt_tokens = 10\ninput = \"1\"\noutput = \"1\"\ncache_write_1h = \"100000000000000000000\"",
    ));
    assert!(
        tier.starts_with(
            r#"pricing/openai.toml: model "gpt-4o": tier #1: field `cache_write_1h`: "100000000000000000000" is above the maximum"#
        ),
        "{tier}"
    );
    // Beyond what a Decimal holds at all: named as too high, not as "not a number".
    let huge = "1".repeat(40);
    assert!(
        load_err(&gpt_4o_with(&format!("input = \"{huge}\""))).contains(&format!(
            "field `input`: \"{huge}\" is above the maximum of 100000 USD per 1M tokens"
        ))
    );
    assert!(load_err(&gpt_4o_with(&format!("input = \"-{huge}\""))).contains("is negative"));
    assert!(
        load_err(&gpt_4o_with(&format!("input = \"0.{huge}\"")))
            .contains("has more than 12 decimal places")
    );
    assert!(load_err(&gpt_4o_with(r#"input = "1e20""#)).contains("is not a decimal number"));
    // The maximum itself is a price.
    let table = load(&gpt_4o_with(r#"input = "100000.000000000000""#));
    let price = table
        .price_at("gpt-4o", at(2025, 1, 1, 0, 0, 0))
        .expect("price");
    assert_eq!(price.rates.input, MAX_PRICE_PER_MILLION);
}

#[test]
fn an_unknown_field_is_refused() {
    let err = load_err(&gpt_4o_with("input = \"2.50\"\ninptu = \"2.50\""));
    assert!(
        err.starts_with(r#"pricing/openai.toml: model "gpt-4o": unknown field `inptu`"#),
        "{err}"
    );
    assert!(err.contains("docs/pricing.md"), "{err}");

    let in_tier = load_err(&gpt_4o_with(
        "input = \"2.50\"\n[[models.tiers]]\nabove_prompt_tokens = 10\ninput = \"1\"\noutput = \"1\"\nthreshold = 5",
    ));
    assert!(
        in_tier.starts_with(
            r#"pricing/openai.toml: model "gpt-4o": tier #1: unknown field `threshold`"#
        ),
        "{in_tier}"
    );

    let negative = load_err(&gpt_4o_with(
        "input = \"2.50\"\n[[models.tiers]]\nabove_prompt_tokens = -1\ninput = \"1\"\noutput = \"1\"",
    ));
    assert_eq!(
        negative,
        "pricing/openai.toml: model \"gpt-4o\": tier #1: invalid value: integer `-1`, expected u64 \
         in `above_prompt_tokens` (see docs/pricing.md for the fields of an entry)"
    );

    let top = load_err("provider = \"openai\"\nmodel = []\n");
    assert!(top.starts_with("pricing/openai.toml: "), "{top}");
    assert!(top.contains("unknown field `model`"), "{top}");
}

#[test]
fn missing_required_fields_are_named() {
    let no_input = load_err(&gpt_4o_with(""));
    assert!(
        no_input.starts_with(r#"pricing/openai.toml: model "gpt-4o": missing field `input`"#),
        "{no_input}"
    );
    let no_name = load_err(
        "provider = \"openai\"\n[[models]]\neffective_from = \"2024-10-02\"\ninput = \"1\"\noutput = \"1\"\n",
    );
    assert!(
        no_name.starts_with("pricing/openai.toml: model #1: missing field `name`"),
        "{no_name}"
    );
    let no_provider = load_err("[[models]]\nname = \"x\"\n");
    assert!(
        no_provider.contains("missing field `provider`"),
        "{no_provider}"
    );
}

#[test]
fn dates_must_be_real_yyyy_mm_dd() {
    for bad in [
        r#""2024-7-18""#,
        r#""2024-02-30""#,
        r#""18/07/2024""#,
        "2024-07-18T00:00:00Z",
    ] {
        let text = format!(
            "provider = \"openai\"\n[[models]]\nname = \"gpt-4o\"\neffective_from = {bad}\ninput = \"1\"\noutput = \"1\"\n"
        );
        let err = load_err(&text);
        assert!(
            err.starts_with(r#"pricing/openai.toml: model "gpt-4o": field `effective_from`: "#),
            "{err}"
        );
        assert!(
            err.ends_with(r#"is not a date (write a UTC date as "YYYY-MM-DD")"#),
            "{err}"
        );
    }
}

#[test]
fn tier_thresholds_must_be_unique() {
    let tier = "[[models.tiers]]\nabove_prompt_tokens = 200000\ninput = \"6\"\noutput = \"22.5\"\n";
    let err = load_err(&gpt_4o_with(&format!("input = \"3\"\n{tier}{tier}")));
    assert_eq!(
        err,
        r#"pricing/openai.toml: model "gpt-4o": two tiers have above_prompt_tokens = 200000 (give each tier a distinct threshold)"#
    );
}

#[test]
fn bad_names_and_aliases_are_refused() {
    let err = load_err(&gpt_4o_with("input = \"1\"\naliases = [\"gpt-4o\"]"));
    assert!(
        err.contains("field `aliases`: \"gpt-4o\" is listed twice"),
        "{err}"
    );
    let err = load_err(&gpt_4o_with("input = \"1\"\naliases = [\" x\"]"));
    assert!(
        err.contains("field `aliases`: \" x\" must be a non-empty model name"),
        "{err}"
    );
}

#[test]
fn the_kind_of_model_defaults_to_chat_and_anything_but_chat_or_embedding_is_refused() {
    let table = load(&gpt_4o_with("input = \"1\""));
    assert_eq!(table.models().next().unwrap().mode, ModelMode::Chat);
    let table = load(&gpt_4o_with("input = \"1\"\nmode = \"embedding\""));
    assert_eq!(table.models().next().unwrap().mode, ModelMode::Embedding);
    let err = load_err(&gpt_4o_with("input = \"1\"\nmode = \"image\""));
    assert!(
        err.contains("field `mode`: \"image\" is not a kind of model (write \"chat\", the default, or \"embedding\")"),
        "{err}"
    );
}

#[test]
fn a_duplicate_entry_is_refused_within_a_file_and_across_files() {
    let entry = "[[models]]\nname = \"gpt-4o\"\neffective_from = \"2024-10-02\"\ninput = \"2.50\"\noutput = \"10\"\n";
    let err = load_err(&format!("provider = \"openai\"\n{entry}{entry}"));
    assert_eq!(
        err,
        r#"pricing/openai.toml: model "gpt-4o": an entry with effective_from = "2024-10-02" is already defined in pricing/openai.toml (to change a price, add a new entry with a later effective_from; history is never rewritten)"#
    );

    let first = load(&format!("provider = \"openai\"\n{entry}"));
    let second = PriceTable::from_toml_str(
        "pricing/extra.toml",
        &format!("provider = \"openai\"\n{entry}"),
    )
    .expect("valid on its own");
    let err = first.merge(second).expect_err("duplicate").to_string();
    assert!(
        err.starts_with(r#"pricing/extra.toml: model "gpt-4o": an entry with effective_from = "2024-10-02" is already defined in pricing/openai.toml"#),
        "{err}"
    );
}

#[test]
fn one_name_cannot_price_two_models() {
    let first = load(&gpt_4o_with("input = \"2.50\"\naliases = [\"chatgpt\"]"));
    let second = PriceTable::from_toml_str(
        "pricing/other.toml",
        "provider = \"other\"\n[[models]]\nname = \"chatgpt\"\neffective_from = \"2025-01-01\"\ninput = \"1\"\noutput = \"1\"\n",
    )
    .expect("valid on its own");
    let err = first.merge(second).expect_err("conflict").to_string();
    assert_eq!(
        err,
        r#"pricing/other.toml: model "chatgpt": the name "chatgpt" already prices model "gpt-4o" in pricing/openai.toml (a name or alias can belong to one model only; rename or remove one of them)"#
    );
}

#[test]
fn merging_disjoint_tables_keeps_everything() {
    let openai = load(HISTORY);
    let other = PriceTable::from_toml_str(
        "pricing/anthropic.toml",
        "provider = \"anthropic\"\n[[models]]\nname = \"claude-x\"\neffective_from = \"2025-01-01\"\ninput = \"1\"\noutput = \"5\"\n",
    )
    .expect("valid");
    let merged = openai.merge(other).expect("disjoint");
    assert_eq!(merged.len(), 3);
    let providers: Vec<&str> = merged.models().map(|p| p.provider.as_str()).collect();
    assert_eq!(providers, ["anthropic", "openai", "openai"]);
}

#[test]
fn toml_syntax_errors_name_the_file() {
    let err = load_err("provider = \"openai\"\n[[models]\n");
    assert!(
        err.starts_with("pricing/openai.toml: TOML parse error"),
        "{err}"
    );
}

// --- loading directories ------------------------------------------------------------------------

fn repo_pricing_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing")
}

#[test]
fn a_missing_or_empty_directory_is_an_error() {
    let missing = repo_pricing_dir().join("does-not-exist");
    let err = PriceTable::load_dir(&missing).expect_err("missing dir");
    assert!(matches!(err, PricingError::ReadDir { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist"), "{err}");

    let empty = std::env::temp_dir().join(format!("tollgate-pricing-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("create temp dir");
    let err = PriceTable::load_dir(&empty).expect_err("empty dir");
    std::fs::remove_dir(&empty).expect("remove temp dir");
    assert!(matches!(err, PricingError::NoFiles { .. }), "{err}");
}

#[test]
fn the_shipped_price_files_load_with_the_expected_prices() {
    let table = PriceTable::load_dir(&repo_pricing_dir()).unwrap_or_else(|e| panic!("{e}"));
    let now = at(2026, 1, 1, 12, 0, 0);
    let price = |model: &str| {
        table
            .price_at(model, now)
            .unwrap_or_else(|| panic!("{model} is not priced"))
    };

    for model in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "claude-opus-4-1",
        "claude-opus-4",
        "claude-sonnet-4",
        "claude-sonnet-4-5",
        "claude-3-7-sonnet",
        "claude-3-5-haiku",
        "claude-haiku-4-5",
        "claude-sonnet-4-20250514",
        "claude-opus-4-1-20250805",
        "claude-haiku-4-5-20251001",
        "gpt-4o-2024-08-06",
    ] {
        let p = price(model);
        assert!(p.rates.input > Decimal::ZERO, "{model}");
    }

    let mini = price("gpt-4o-mini");
    assert_eq!(mini.provider, "openai");
    assert_eq!(
        (mini.rates.input, mini.rates.output),
        (dec("0.15"), dec("0.60"))
    );
    assert_eq!(mini.rates.cached_input, dec("0.075"));
    assert_eq!(price("gpt-4o").rates.input, dec("2.50"));
    assert_eq!(price("gpt-4o-2024-05-13").rates.input, dec("5"));
    assert_eq!(price("o3").rates.output, dec("8"));
    assert_eq!(price("gpt-5").rates.reasoning, dec("10"));

    let sonnet = price("claude-sonnet-4-20250514");
    assert_eq!(sonnet.name, "claude-sonnet-4");
    assert_eq!(sonnet.provider, "anthropic");
    assert_eq!(sonnet.rates.cache_write_1h, dec("6"));
    assert_eq!(sonnet.rates_for(200_000).input, dec("3"));
    assert_eq!(sonnet.rates_for(200_001).input, dec("6"));
    assert_eq!(sonnet.rates_for(200_001).output, dec("22.50"));

    // A realistic Sonnet 4 call: 10,000 prompt tokens of which 8,000 read from cache and 1,000
    // written to the 5-minute cache, 500 completion tokens.
    let usage = Usage {
        input_tokens: 10_000,
        cached_input_tokens: 8_000,
        cache_write_tokens: 1_000,
        output_tokens: 500,
        ..Usage::default()
    };
    let cost = sonnet.cost(&usage);
    assert_eq!(cost.input, dec("0.003")); // 1,000 × 3
    assert_eq!(cost.cached_input, dec("0.0024")); // 8,000 × 0.30
    assert_eq!(cost.cache_write, dec("0.00375")); // 1,000 × 3.75
    assert_eq!(cost.output, dec("0.0075")); // 500 × 15
    assert_eq!(cost.total, dec("0.01665"));

    let opus = price("claude-opus-4-1");
    assert_eq!(opus.rates.cache_write_1h, dec("30"));
    assert_eq!(
        price("claude-3-5-haiku-latest").rates.cached_input,
        dec("0.08")
    );
}
