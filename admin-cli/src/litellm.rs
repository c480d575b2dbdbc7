//! Converts LiteLLM's community price map (`model_prices_and_context_window.json`) into
//! Tollgate price files, without floating point.
//!
//! LiteLLM writes prices as JSON numbers in USD per token (`2.5e-06`). Every number is read
//! from its JSON *text* (`serde_json::value::RawValue`) and converted digit by digit into a
//! `Decimal` times 1,000,000, so `2.5e-06` becomes exactly `2.5` USD per 1M tokens. A figure
//! that does not fit Tollgate's rules (negative, more than 12 decimal places per 1M tokens —
//! which in this map means floating-point noise such as `2.9999900000000002e-06`) is never
//! rounded: the entry is reported as not mapped instead.
//!
//! What maps, per entry (Tollgate names on the right):
//!
//! | LiteLLM field                                   | Tollgate                     |
//! |-------------------------------------------------|------------------------------|
//! | `input_cost_per_token`                          | `input`                      |
//! | `output_cost_per_token`                         | `output`                     |
//! | `cache_read_input_token_cost`                   | `cached_input`               |
//! | `cache_creation_input_token_cost`               | `cache_write`                |
//! | `cache_creation_input_token_cost_above_1hr`     | `cache_write_1h`             |
//! | `output_cost_per_reasoning_token`               | `reasoning`                  |
//! | any of the first five + `_above_<N>k_tokens`    | a tier above N×1000 tokens   |
//!
//! Prices of other service tiers (`_batches`, `_priority`, `_flex`, ...) are left out:
//! Tollgate prices the standard tier. Other prices (audio or image tokens, per image, per
//! second, per query) cannot be charged from token usage; they are listed in the report.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;

/// Most decimal places a Tollgate price may have (USD per 1M tokens).
const MAX_PLACES: u32 = 12;

/// Highest price the gateway's loader accepts, in USD per 1M tokens (its
/// `pricing::MAX_PRICE_PER_MILLION`; tollctl does not link the gateway, so the figure is
/// repeated here, and tests/it/pricing_import.rs checks that the gateway loads what this writes).
const MAX_PER_MILLION: Decimal = Decimal::from_parts(100_000, 0, 0, false, 0);

/// Suffixes of prices for service tiers other than the standard one.
const OTHER_SERVICE_TIERS: [&str; 6] = [
    "_batches",
    "_priority",
    "_flex",
    "_ultrafast",
    "_balanced",
    "_decisions",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Input,
    Output,
    CachedInput,
    CacheWrite,
    CacheWrite1h,
    Reasoning,
}

impl Kind {
    fn from_field(base: &str) -> Option<Kind> {
        Some(match base {
            "input_cost_per_token" => Kind::Input,
            "output_cost_per_token" => Kind::Output,
            "cache_read_input_token_cost" => Kind::CachedInput,
            "cache_creation_input_token_cost" => Kind::CacheWrite,
            "cache_creation_input_token_cost_above_1hr" => Kind::CacheWrite1h,
            "output_cost_per_reasoning_token" => Kind::Reasoning,
            _ => return None,
        })
    }
}

/// A set of prices in USD per 1M tokens; absent fields take Tollgate's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Prices {
    pub input: Decimal,
    pub output: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tier {
    pub above_prompt_tokens: u64,
    #[serde(flatten)]
    pub prices: Prices,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Model {
    pub name: String,
    pub mode: Option<String>,
    #[serde(flatten)]
    pub prices: Prices,
    pub tiers: Vec<Tier>,
}

/// An entry that was not converted, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub model: String,
    pub provider: Option<String>,
    pub reason: String,
}

/// The result of a conversion: entries per provider (sorted by name), and what was left out.
#[derive(Debug, Default, Serialize)]
pub struct Conversion {
    pub providers: BTreeMap<String, Vec<Model>>,
    pub skipped: Vec<Skipped>,
    /// Non-token prices of converted entries that Tollgate cannot charge: field → models.
    pub ignored_fields: BTreeMap<String, Vec<String>>,
    /// Converted entries that also carry batch/priority/flex prices (left out).
    pub other_service_tier_entries: usize,
    /// Entries of providers not asked for with `--provider`.
    pub other_provider_entries: usize,
}

/// Converts the map's text. `providers` keeps only those LiteLLM providers (`litellm_provider`).
///
/// # Errors
/// Text that is not a JSON object of objects-or-values.
pub fn convert(text: &str, providers: Option<&[String]>) -> Result<Conversion> {
    let map: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text)
        .map_err(|e| anyhow!("not a LiteLLM price map (a JSON object of models): {e}"))?;
    let mut out = Conversion::default();
    for (name, raw) in map {
        let skip = |provider: Option<&str>, reason: String| Skipped {
            model: name.clone(),
            provider: provider.map(str::to_owned),
            reason,
        };
        let Ok(fields) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()) else {
            out.skipped
                .push(skip(None, "unknown shape: not a JSON object".into()));
            continue;
        };
        let provider = fields
            .get("litellm_provider")
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
        let Some(provider) = provider.filter(|p| !p.trim().is_empty() && p.trim() == p) else {
            out.skipped.push(skip(
                None,
                "no usable `litellm_provider` (a non-empty name)".into(),
            ));
            continue;
        };
        if providers.is_some_and(|wanted| !wanted.contains(&provider)) {
            out.other_provider_entries += 1;
            continue;
        }
        if name == "sample_spec" {
            out.skipped.push(skip(
                None,
                "LiteLLM's documentation of the format, not a model".into(),
            ));
            continue;
        }
        if name.is_empty() || name.trim() != name {
            out.skipped.push(skip(
                Some(&provider),
                "the name is empty or has surrounding spaces".into(),
            ));
            continue;
        }
        match convert_entry(&name, &fields) {
            Ok(entry) => {
                for field in entry.ignored {
                    out.ignored_fields
                        .entry(field)
                        .or_default()
                        .push(name.clone());
                }
                out.other_service_tier_entries += usize::from(entry.other_service_tiers);
                out.providers.entry(provider).or_default().push(entry.model);
            }
            Err(reason) => out.skipped.push(skip(Some(&provider), reason)),
        }
    }
    Ok(out)
}

struct Converted {
    model: Model,
    ignored: Vec<String>,
    other_service_tiers: bool,
}

fn convert_entry(
    name: &str,
    fields: &BTreeMap<String, Box<RawValue>>,
) -> Result<Converted, String> {
    let mode = fields
        .get("mode")
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
    if fields.contains_key("tiered_pricing") {
        // Price ranges by prompt size; their boundaries' meaning is not pinned down well
        // enough to convert into thresholds, and dropping them would undercharge long prompts.
        return Err(
            "unknown shape: priced by `tiered_pricing` ranges, which this import does not convert (write its tiers by hand)"
                .into(),
        );
    }
    let mut base: BTreeMap<Kind, Decimal> = BTreeMap::new();
    let mut tiers: BTreeMap<u64, BTreeMap<Kind, Decimal>> = BTreeMap::new();
    let mut ignored = Vec::new();
    let mut other_service_tiers = false;
    for (field, value) in fields {
        let price_like = ["cost", "pricing", "multiplier"]
            .iter()
            .any(|word| field.contains(word));
        if !price_like {
            continue; // max_tokens, supports_*, source, deprecation_date, ...
        }
        if OTHER_SERVICE_TIERS.iter().any(|s| field.ends_with(s)) {
            other_service_tiers = true;
            continue;
        }
        let (base_field, threshold) = split_threshold(field);
        let kind = Kind::from_field(base_field).filter(|k| {
            // Reasoning has no long-context variant in Tollgate's format.
            threshold.is_none() || *k != Kind::Reasoning
        });
        let Some(kind) = kind else {
            if !is_zero(value.get()) {
                ignored.push(field.clone());
            }
            continue;
        };
        let price = per_million(value.get())
            .map_err(|problem| format!("`{field}` = {}: {problem}", value.get()))?;
        match threshold {
            None => base.insert(kind, price),
            Some(t) => tiers.entry(t).or_default().insert(kind, price),
        };
    }
    let input = base.get(&Kind::Input).copied();
    let output = base.get(&Kind::Output).copied();
    let (input, output) = match (input, output) {
        (Some(input), Some(output)) => (input, output),
        // Embeddings have no output; Tollgate wants an explicit zero.
        (Some(input), None) if mode.as_deref() == Some("embedding") => (input, Decimal::ZERO),
        (Some(_), None) => {
            return Err(format!(
                "has input_cost_per_token but no output_cost_per_token{}",
                priced_by(mode.as_deref(), &ignored)
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "has output_cost_per_token but no input_cost_per_token{}",
                priced_by(mode.as_deref(), &ignored)
            ));
        }
        (None, None) if ignored.is_empty() && tiers.is_empty() => {
            return Err(format!(
                "no prices{}",
                mode.as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ));
        }
        (None, None) => {
            return Err(format!(
                "no per-token prices{}",
                priced_by(mode.as_deref(), &ignored)
            ));
        }
    };
    let prices = Prices {
        input,
        output,
        cached_input: base.get(&Kind::CachedInput).copied(),
        cache_write: base.get(&Kind::CacheWrite).copied(),
        cache_write_1h: base.get(&Kind::CacheWrite1h).copied(),
        reasoning: base.get(&Kind::Reasoning).copied(),
    };
    // A tier replaces every price in Tollgate; a price LiteLLM does not give for the tier is
    // its base price, as LiteLLM itself falls back.
    let tiers = tiers
        .into_iter()
        .map(|(above_prompt_tokens, t)| Tier {
            above_prompt_tokens,
            prices: Prices {
                input: t.get(&Kind::Input).copied().unwrap_or(prices.input),
                output: t.get(&Kind::Output).copied().unwrap_or(prices.output),
                cached_input: t.get(&Kind::CachedInput).copied().or(prices.cached_input),
                cache_write: t.get(&Kind::CacheWrite).copied().or(prices.cache_write),
                cache_write_1h: t
                    .get(&Kind::CacheWrite1h)
                    .copied()
                    .or(prices.cache_write_1h),
                reasoning: prices.reasoning,
            },
        })
        .collect();
    Ok(Converted {
        model: Model {
            name: name.to_owned(),
            mode,
            prices,
            tiers,
        },
        ignored,
        other_service_tiers,
    })
}

fn priced_by(mode: Option<&str>, fields: &[String]) -> String {
    let mode = mode.map(|m| format!("{m}; ")).unwrap_or_default();
    if fields.is_empty() {
        return mode
            .strip_suffix("; ")
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
    }
    let shown: Vec<&str> = fields.iter().take(3).map(String::as_str).collect();
    let more = if fields.len() > 3 { ", ..." } else { "" };
    format!(" ({mode}priced by {}{more})", shown.join(", "))
}

/// `input_cost_per_token_above_200k_tokens` → (`input_cost_per_token`, Some(200000)).
fn split_threshold(field: &str) -> (&str, Option<u64>) {
    let Some(rest) = field.strip_suffix("k_tokens") else {
        return (field, None);
    };
    let Some((base, number)) = rest.rsplit_once("_above_") else {
        return (field, None);
    };
    match number.parse::<u64>() {
        Ok(n) if !number.starts_with('+') => match n.checked_mul(1000) {
            Some(tokens) => (base, Some(tokens)),
            None => (field, None),
        },
        _ => (field, None),
    }
}

fn is_zero(raw: &str) -> bool {
    per_million(raw).is_ok_and(|d| d.is_zero())
}

/// A JSON number's text, in USD per token, as an exact `Decimal` in USD per 1M tokens.
///
/// # Errors
/// A description of the problem: not a number, negative, too precise, or too large.
pub fn per_million(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    let not_a_number = || "not a number".to_string();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = frac_part.is_empty() && !mantissa.contains('.') || digits_ok(frac_part);
    if !digits_ok(int_part) || !frac_ok || (int_part.len() > 1 && int_part.starts_with('0')) {
        return Err(not_a_number());
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !digits_ok(unsigned) || unsigned.len() > 6 {
                return Err(not_a_number());
            }
            e.parse().map_err(|_| not_a_number())?
        }
    };
    // value = digits × 10^power, times 10^6 for per-token → per-1M.
    let mut digits: String = format!("{int_part}{frac_part}")
        .trim_start_matches('0')
        .to_owned();
    let too_large =
        || format!("above the maximum of {MAX_PER_MILLION} USD per 1M tokens (0.1 USD per token)");
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| not_a_number())?;
    let mut power = exponent
        .checked_sub(frac_len)
        .and_then(|p| p.checked_add(6))
        .ok_or_else(not_a_number)?;
    if digits.is_empty() {
        return Ok(Decimal::ZERO);
    }
    if negative {
        return Err("negative (prices are zero or more)".into());
    }
    while digits.ends_with('0') {
        digits.pop();
        power = power.checked_add(1).ok_or_else(too_large)?;
    }
    if power > 0 {
        let zeros = usize::try_from(power).map_err(|_| too_large())?;
        if digits.len().saturating_add(zeros) > 28 {
            return Err(too_large());
        }
        digits.extend(std::iter::repeat_n('0', zeros));
        power = 0;
    }
    let scale = u32::try_from(-power).map_err(|_| too_large())?;
    if scale > MAX_PLACES {
        return Err(format!(
            "more than {MAX_PLACES} decimal places per 1M tokens (floating-point noise in the map? \
             write the intended price by hand)"
        ));
    }
    if digits.len() > 28 {
        return Err(too_large());
    }
    let mantissa: i128 = digits.parse().map_err(|_| too_large())?;
    let price = Decimal::try_from_i128_with_scale(mantissa, scale)
        .map(|d| d.normalize())
        .map_err(|_| too_large())?;
    if price > MAX_PER_MILLION {
        return Err(too_large());
    }
    Ok(price)
}

/// The file name for a provider's prices: its name with anything unusual replaced.
pub fn file_name(provider: &str) -> String {
    let clean: String = provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() {
        "provider.toml".to_owned()
    } else {
        format!("{clean}.toml")
    }
}

/// One provider's Tollgate price file.
pub fn render(provider: &str, models: &[Model], effective_from: NaiveDate, source: &str) -> String {
    let mut out = format!(
        "# Imported from LiteLLM's price map ({}) by `tollctl pricing import-litellm`.\n\
         # USD per 1M tokens, standard service tier. The map is community-maintained: check the\n\
         # figures against the provider's price list before relying on them. To change a price\n\
         # later, add an entry with a later effective_from; never edit this one.\n\n\
         provider = {}\n",
        one_line(source),
        toml_string(provider)
    );
    let price = |out: &mut String, key: &str, value: Option<Decimal>| {
        if let Some(value) = value {
            out.push_str(&format!("{key} = \"{}\"\n", value.normalize()));
        }
    };
    let prices = |out: &mut String, p: &Prices| {
        price(out, "input", Some(p.input));
        price(out, "output", Some(p.output));
        price(out, "cached_input", p.cached_input);
        price(out, "cache_write", p.cache_write);
        price(out, "cache_write_1h", p.cache_write_1h);
        price(out, "reasoning", p.reasoning);
    };
    for model in models {
        out.push_str("\n[[models]]\n");
        out.push_str(&format!("name = {}\n", toml_string(&model.name)));
        out.push_str(&format!("effective_from = \"{effective_from}\"\n"));
        // Served on /v1/embeddings only; every other converted mode is chat-like.
        if model.mode.as_deref() == Some("embedding") {
            out.push_str("mode = \"embedding\"\n");
        }
        prices(&mut out, &model.prices);
        for tier in &model.tiers {
            out.push_str("[[models.tiers]]\n");
            out.push_str(&format!(
                "above_prompt_tokens = {}\n",
                tier.above_prompt_tokens
            ));
            prices(&mut out, &tier.prices);
        }
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Ignored fields, most common first, for the report.
pub fn ignored_summary(conversion: &Conversion) -> Vec<(String, usize, Vec<String>)> {
    let mut rows: Vec<(String, usize, Vec<String>)> = conversion
        .ignored_fields
        .iter()
        .map(|(field, models)| {
            let examples: BTreeSet<&String> = models.iter().collect();
            (
                field.clone(),
                models.len(),
                examples.into_iter().take(3).cloned().collect(),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("decimal")
    }

    #[test]
    fn numbers_convert_exactly_from_their_text() {
        for (text, want) in [
            ("2.5e-06", "2.5"),
            ("1e-05", "10"),
            ("1.25E-06", "1.25"),
            ("3e-07", "0.3"),
            ("7.5e-08", "0.075"),
            ("0.0", "0"),
            ("0", "0"),
            ("-0.0", "0"),
            ("0.000015", "15"),
            ("0.1", "100000"),
            ("1.5e-02", "15000"),
            ("1.23456789012e-06", "1.23456789012"),
            ("1.234567890123e-12", "0.000001234567890123"),
        ] {
            match per_million(text) {
                Ok(d) if want.len() <= 14 => assert_eq!(d, dec(want), "{text}"),
                Ok(d) => panic!("{text} gave {d}, want it refused"),
                Err(e) => assert!(
                    want.len() > 14 && e.contains("decimal places"),
                    "{text}: {e}"
                ),
            }
        }
        // More than 12 places per 1M tokens is refused, never rounded.
        for text in ["2.384185791015625e-08", "9.9999999999999999e-13"] {
            let e = per_million(text).unwrap_err();
            assert!(e.contains("decimal places"), "{text}: {e}");
        }
    }

    #[test]
    fn noise_negative_and_garbage_are_refused() {
        assert!(
            per_million("2.9999900000000002e-06")
                .unwrap_err()
                .contains("decimal places")
        );
        assert!(per_million("-1e-06").unwrap_err().contains("negative"));
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "01",
            "1e",
            "1e+",
            "abc",
            "\"1\"",
            "null",
            "1e9999999",
        ] {
            assert!(per_million(bad).is_err(), "{bad:?}");
        }
        assert!(
            per_million("1e40")
                .unwrap_err()
                .contains("above the maximum")
        );
    }

    #[test]
    fn prices_above_the_gateways_maximum_are_refused_and_absurd_ones_do_not_panic() {
        assert_eq!(per_million("0.1"), Ok(dec("100000")));
        for text in ["0.1000001", "1", "1e14", "1e20", "100000000000000000000"] {
            let e = per_million(text).unwrap_err();
            assert!(
                e.contains("above the maximum of 100000 USD per 1M tokens"),
                "{text}: {e}"
            );
        }
        let long_fraction = format!("0.{}1", "0".repeat(100_000));
        let long_integer = format!("1{}", "0".repeat(100_000));
        for text in [
            "1e999999",
            "1e-999999",
            "-1e999999",
            "9".repeat(10_000).as_str(),
            long_fraction.as_str(),
            long_integer.as_str(),
            "1.5e-999999",
        ] {
            // Refused or zero, never a panic and never a price above the maximum.
            if let Ok(price) = per_million(text) {
                assert!(price <= MAX_PER_MILLION, "{text}");
            }
        }
        let text = r#"{"absurd": {"litellm_provider": "p", "input_cost_per_token": 1e20, "output_cost_per_token": 1e-06}}"#;
        let c = convert(text, None).unwrap();
        assert!(c.providers.is_empty());
        assert_eq!(c.skipped.len(), 1);
        assert_eq!(
            c.skipped[0].reason,
            "`input_cost_per_token` = 1e20: above the maximum of 100000 USD per 1M tokens (0.1 USD per token)"
        );
    }

    /// `cases` cases, unless `PROPTEST_CASES` is set.
    fn cases(cases: u32) -> proptest::test_runner::Config {
        let mut config = proptest::test_runner::Config::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            config.cases = cases;
        }
        config
    }

    proptest::proptest! {
        #![proptest_config(cases(1024))]

        #[test]
        fn no_text_panics_the_conversion(text in "[-+0-9.eE]{0,24}|\\PC{0,24}") {
            if let Ok(price) = per_million(&text) {
                proptest::prop_assert!(price >= Decimal::ZERO && price <= MAX_PER_MILLION, "{text}: {price}");
            }
        }

        #[test]
        fn every_way_of_writing_a_price_converts_exactly(
            // The price in 10^-18 USD per token (10^-12 per 1M tokens), at most 0.1 USD.
            units in 0u64..=100_000_000_000_000_000,
            shift in 0u32..6,
            upper in proptest::prelude::any::<bool>(),
        ) {
            let want = Decimal::from_i128_with_scale(i128::from(units), 12).normalize();
            let plain = Decimal::from_i128_with_scale(i128::from(units), 18).normalize().to_string();
            let e = if upper { 'E' } else { 'e' };
            // m × 10^-(18 - shift) with the mantissa padded by `shift` zeros.
            let scientific = format!("{}{e}-{}", u128::from(units) * 10u128.pow(shift), 18 + shift);
            for text in [plain.as_str(), scientific.as_str()] {
                proptest::prop_assert_eq!(per_million(text), Ok(want), "{}", text);
            }
        }
    }

    #[test]
    fn thresholds_are_split_off_field_names() {
        assert_eq!(
            split_threshold("input_cost_per_token_above_200k_tokens"),
            ("input_cost_per_token", Some(200_000))
        );
        assert_eq!(
            split_threshold("cache_creation_input_token_cost_above_1hr_above_128k_tokens"),
            ("cache_creation_input_token_cost_above_1hr", Some(128_000))
        );
        assert_eq!(
            split_threshold("cache_creation_input_token_cost_above_1hr"),
            ("cache_creation_input_token_cost_above_1hr", None)
        );
    }

    #[test]
    fn entries_map_tiers_and_report_what_they_cannot() -> Result<()> {
        let text = r#"{
            "sample_spec": {"litellm_provider": "one of ...", "input_cost_per_token": 0.0},
            "m-tiered": {"litellm_provider": "p", "mode": "chat",
                "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
                "cache_read_input_token_cost": 1.25e-07,
                "input_cost_per_token_above_200k_tokens": 2.5e-06,
                "output_cost_per_token_above_200k_tokens": 1.5e-05,
                "input_cost_per_token_batches": 6.25e-07,
                "input_cost_per_audio_token": 1e-05},
            "embed": {"litellm_provider": "p", "mode": "embedding", "input_cost_per_token": 2e-08},
            "image": {"litellm_provider": "p", "mode": "image_generation", "output_cost_per_image": 0.04},
            "noisy": {"litellm_provider": "p", "input_cost_per_token": 2.9999900000000002e-06, "output_cost_per_token": 1e-06},
            "ranges": {"litellm_provider": "p", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
                "tiered_pricing": [{"range": [0, 1000], "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}]},
            "elsewhere": {"litellm_provider": "q", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}
        }"#;
        let c = convert(text, Some(&["p".to_string()]))?;
        let models = &c.providers["p"];
        assert_eq!(
            models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["embed", "m-tiered"]
        );
        assert_eq!(models[0].prices.output, Decimal::ZERO);
        let tiered = &models[1];
        assert_eq!(tiered.prices.input, dec("1.25"));
        assert_eq!(tiered.tiers.len(), 1);
        assert_eq!(tiered.tiers[0].above_prompt_tokens, 200_000);
        assert_eq!(tiered.tiers[0].prices.output, dec("15"));
        // Not given for the tier: the base cache-read price.
        assert_eq!(tiered.tiers[0].prices.cached_input, Some(dec("0.125")));
        // `elsewhere` and the format's documentation entry belong to no provider asked for.
        assert_eq!(c.other_provider_entries, 2);
        assert_eq!(c.other_service_tier_entries, 1);
        assert_eq!(c.ignored_fields["input_cost_per_audio_token"], ["m-tiered"]);
        let reasons: BTreeMap<&str, &str> = c
            .skipped
            .iter()
            .map(|s| (s.model.as_str(), s.reason.as_str()))
            .collect();
        assert!(reasons["image"].contains("no per-token prices"));
        assert!(reasons["image"].contains("output_cost_per_image"));
        assert!(reasons["noisy"].contains("decimal places"));
        assert!(!reasons.contains_key("sample_spec"));
        let all = convert(text, None)?;
        assert!(all.skipped.iter().any(|s| s.model == "sample_spec"));
        assert_eq!(all.providers["q"].len(), 1);
        assert!(reasons["ranges"].contains("tiered_pricing"));
        let file = render("p", models, NaiveDate::MIN, "x.json");
        assert!(file.contains("provider = \"p\"\n"));
        assert!(file.contains(
            "[[models.tiers]]\nabove_prompt_tokens = 200000\ninput = \"2.5\"\noutput = \"15\"\ncached_input = \"0.125\"\n"
        ));
        Ok(())
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
        assert_eq!(file_name("vertex_ai/x"), "vertex_ai_x.toml");
        assert_eq!(file_name(".."), "provider.toml");
    }
}
