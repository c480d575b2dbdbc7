//! One price file: TOML text to validated [`ModelPrice`] entries.
//!
//! Prices are read as raw TOML values and converted by hand, so that a float is refused before
//! anything turns it into a number, and every message can name the model entry and the field.

use std::collections::HashSet;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use toml::{Table, Value};

use super::{ModelMode, ModelPrice, PricingError, Rates, Tier};

/// Most decimal places a price may have. Together with the 28 significant digits of `Decimal`
/// this keeps every cost exact (see `docs/pricing.md`).
pub(super) const MAX_PRICE_PLACES: u32 = 12;

/// Highest price a price file may give, in USD per 1M tokens (0.10 USD a token): hundreds of
/// times any model's list price, so only a mistake gets there (a price per token written
/// where the file wants one per 1M tokens is 10^6 times too high). It also keeps every part of
/// a cost, even for `u64::MAX` tokens, far inside what a `Decimal` holds (see docs/pricing.md).
pub const MAX_PRICE_PER_MILLION: Decimal = Decimal::from_parts(100_000, 0, 0, false, 0);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    provider: String,
    #[serde(default)]
    models: Vec<Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    effective_from: Value,
    #[serde(default)]
    aliases: Vec<String>,
    mode: Option<String>,
    input: Value,
    output: Value,
    cached_input: Option<Value>,
    cache_write: Option<Value>,
    cache_write_1h: Option<Value>,
    reasoning: Option<Value>,
    #[serde(default)]
    tiers: Vec<Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    above_prompt_tokens: u64,
    input: Value,
    output: Value,
    cached_input: Option<Value>,
    cache_write: Option<Value>,
    cache_write_1h: Option<Value>,
    reasoning: Option<Value>,
}

/// The price fields shared by an entry and its tiers, before defaults are applied.
struct RawRates<'a> {
    input: &'a Value,
    output: &'a Value,
    cached_input: Option<&'a Value>,
    cache_write: Option<&'a Value>,
    cache_write_1h: Option<&'a Value>,
    reasoning: Option<&'a Value>,
}

/// Where in which file a value sits, for error messages.
struct Ctx<'a> {
    file: &'a str,
    entry: &'a str,
}

/// Parses one price file. `file` names it in error messages (e.g. `pricing/openai.toml`).
pub(super) fn parse(file: &str, text: &str) -> Result<Vec<ModelPrice>, PricingError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| PricingError::Toml {
        file: file.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    if raw.provider.trim().is_empty() || raw.provider.trim() != raw.provider {
        return Err(PricingError::FileShape {
            file: file.to_owned(),
            message: format!(
                "field `provider`: {:?} must be a non-empty name without surrounding spaces",
                raw.provider
            ),
        });
    }
    raw.models
        .into_iter()
        .enumerate()
        .map(|(index, table)| {
            let entry = match table.get("name") {
                Some(Value::String(name)) => format!("model {name:?}"),
                _ => format!("model #{}", index + 1),
            };
            let ctx = Ctx {
                file,
                entry: &entry,
            };
            let model: RawModel = Value::Table(table).try_into().map_err(|e| ctx.shape(&e))?;
            build_model(&ctx, &raw.provider, model)
        })
        .collect()
}

fn build_model(ctx: &Ctx<'_>, provider: &str, raw: RawModel) -> Result<ModelPrice, PricingError> {
    check_name(ctx, "name", &raw.name)?;
    let mut seen = HashSet::from([raw.name.as_str()]);
    for alias in &raw.aliases {
        check_name(ctx, "aliases", alias)?;
        if !seen.insert(alias.as_str()) {
            return Err(ctx.bad_name(
                "aliases",
                format!(
                    "{alias:?} is listed twice or repeats the name (list each other name once)"
                ),
            ));
        }
    }
    let effective_from = date(ctx, &raw.effective_from)?;
    let mode = match raw.mode.as_deref() {
        None => ModelMode::Chat,
        Some(text) => ModelMode::parse(text).ok_or_else(|| {
            ctx.bad_name(
                "mode",
                format!("{text:?} is not a kind of model (write \"chat\", the default, or \"embedding\")"),
            )
        })?,
    };
    let rates = resolve_rates(
        ctx,
        &RawRates {
            input: &raw.input,
            output: &raw.output,
            cached_input: raw.cached_input.as_ref(),
            cache_write: raw.cache_write.as_ref(),
            cache_write_1h: raw.cache_write_1h.as_ref(),
            reasoning: raw.reasoning.as_ref(),
        },
    )?;
    let mut tiers = Vec::with_capacity(raw.tiers.len());
    for (index, table) in raw.tiers.into_iter().enumerate() {
        let entry = format!("{}: tier #{}", ctx.entry, index + 1);
        let tier_ctx = Ctx {
            file: ctx.file,
            entry: &entry,
        };
        let tier: RawTier = Value::Table(table)
            .try_into()
            .map_err(|e| tier_ctx.shape(&e))?;
        if tiers
            .iter()
            .any(|t: &Tier| t.above_prompt_tokens == tier.above_prompt_tokens)
        {
            return Err(PricingError::DuplicateTier {
                file: ctx.file.to_owned(),
                model: raw.name,
                threshold: tier.above_prompt_tokens,
            });
        }
        let tier_rates = resolve_rates(
            &tier_ctx,
            &RawRates {
                input: &tier.input,
                output: &tier.output,
                cached_input: tier.cached_input.as_ref(),
                cache_write: tier.cache_write.as_ref(),
                cache_write_1h: tier.cache_write_1h.as_ref(),
                reasoning: tier.reasoning.as_ref(),
            },
        )?;
        tiers.push(Tier {
            above_prompt_tokens: tier.above_prompt_tokens,
            rates: tier_rates,
        });
    }
    tiers.sort_by_key(|t| t.above_prompt_tokens);
    Ok(ModelPrice {
        name: raw.name,
        provider: provider.to_owned(),
        effective_from,
        aliases: raw.aliases,
        mode,
        rates,
        tiers,
        source: ctx.file.to_owned(),
    })
}

/// Applies the defaults: cache reads and writes cost the input price, 1-hour writes the
/// (5-minute) write price, reasoning the output price.
fn resolve_rates(ctx: &Ctx<'_>, raw: &RawRates<'_>) -> Result<Rates, PricingError> {
    let input = price(ctx, "input", raw.input)?;
    let output = price(ctx, "output", raw.output)?;
    let optional = |field, value: Option<&Value>, default| match value {
        Some(value) => price(ctx, field, value),
        None => Ok(default),
    };
    let cached_input = optional("cached_input", raw.cached_input, input)?;
    let cache_write = optional("cache_write", raw.cache_write, input)?;
    let cache_write_1h = optional("cache_write_1h", raw.cache_write_1h, cache_write)?;
    let reasoning = optional("reasoning", raw.reasoning, output)?;
    Ok(Rates {
        input,
        cached_input,
        cache_write,
        cache_write_1h,
        output,
        reasoning,
    })
}

fn price(ctx: &Ctx<'_>, field: &'static str, value: &Value) -> Result<Decimal, PricingError> {
    let text = match value {
        Value::String(text) => text,
        Value::Integer(_) | Value::Float(_) => {
            return Err(PricingError::UnquotedNumber {
                file: ctx.file.to_owned(),
                entry: ctx.entry.to_owned(),
                field,
                literal: value.to_string(),
            });
        }
        other => return Err(ctx.not_a_decimal(field, other.to_string())),
    };
    let parsed = match Decimal::from_str_exact(text) {
        Ok(parsed) => parsed,
        Err(_) => return Err(ctx.unrepresentable(field, text)),
    };
    if parsed.is_sign_negative() && !parsed.is_zero() {
        return Err(ctx.negative(field, text));
    }
    if parsed > MAX_PRICE_PER_MILLION {
        return Err(ctx.too_high(field, text));
    }
    if parsed.scale() > MAX_PRICE_PLACES {
        return Err(PricingError::TooPrecise {
            file: ctx.file.to_owned(),
            entry: ctx.entry.to_owned(),
            field,
            value: text.clone(),
            max_places: MAX_PRICE_PLACES,
        });
    }
    Ok(if parsed.is_zero() {
        Decimal::ZERO
    } else {
        parsed
    })
}

/// Accepts `"YYYY-MM-DD"` strings and, equally unambiguous, bare TOML dates.
fn date(ctx: &Ctx<'_>, value: &Value) -> Result<NaiveDate, PricingError> {
    let parsed = match value {
        Value::String(text) => parse_ymd(text),
        Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt
            .date
            .and_then(|d| NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())),
        _ => None,
    };
    parsed.ok_or_else(|| PricingError::BadDate {
        file: ctx.file.to_owned(),
        entry: ctx.entry.to_owned(),
        value: match value {
            Value::String(text) => format!("{text:?}"),
            other => other.to_string(),
        },
    })
}

fn parse_ymd(text: &str) -> Option<NaiveDate> {
    let well_formed = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !well_formed {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn check_name(ctx: &Ctx<'_>, field: &'static str, name: &str) -> Result<(), PricingError> {
    if name.is_empty() || name.trim() != name {
        return Err(ctx.bad_name(
            field,
            format!("{name:?} must be a non-empty model name without surrounding spaces"),
        ));
    }
    Ok(())
}

impl Ctx<'_> {
    fn shape(&self, error: &toml::de::Error) -> PricingError {
        PricingError::EntryShape {
            file: self.file.to_owned(),
            entry: self.entry.to_owned(),
            // toml puts the key on a line of its own ("...\nin `above_prompt_tokens`").
            message: error
                .to_string()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    fn not_a_decimal(&self, field: &'static str, value: String) -> PricingError {
        PricingError::NotADecimal {
            file: self.file.to_owned(),
            entry: self.entry.to_owned(),
            field,
            value,
        }
    }

    fn negative(&self, field: &'static str, text: &str) -> PricingError {
        PricingError::NegativePrice {
            file: self.file.to_owned(),
            entry: self.entry.to_owned(),
            field,
            value: text.to_owned(),
        }
    }

    fn too_high(&self, field: &'static str, text: &str) -> PricingError {
        PricingError::PriceTooHigh {
            file: self.file.to_owned(),
            entry: self.entry.to_owned(),
            field,
            value: text.to_owned(),
            max: MAX_PRICE_PER_MILLION,
        }
    }

    /// A string `Decimal` cannot hold: a plain decimal number with too many digits is named
    /// for what is wrong with it (too large, negative, too precise); anything else is not a
    /// decimal number at all.
    fn unrepresentable(&self, field: &'static str, text: &str) -> PricingError {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
        if whole.is_empty() || !digits(whole) || !digits(fraction) {
            return self.not_a_decimal(field, format!("{text:?}"));
        }
        if text.starts_with('-') && (nonzero(whole) || nonzero(fraction)) {
            return self.negative(field, text);
        }
        if nonzero(whole) {
            return self.too_high(field, text);
        }
        PricingError::TooPrecise {
            file: self.file.to_owned(),
            entry: self.entry.to_owned(),
            field,
            value: text.to_owned(),
            max_places: MAX_PRICE_PLACES,
        }
    }

    fn bad_name(&self, field: &'static str, problem: String) -> PricingError {
        PricingError::BadName {
            file: self.file.to_owned(),
            entry: self.entry.to_owned(),
            field,
            problem,
        }
    }
}
