use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};

/// Normalised token usage of one request, the input to [`ModelPrice::cost`].
///
/// Totals follow OpenAI's `prompt_tokens` / `completion_tokens` semantics: `input_tokens` counts
/// *every* prompt token and `output_tokens` every completion token; the other fields are subsets
/// of those totals. Providers that report the parts separately (Anthropic's `input_tokens`
/// excludes `cache_read_input_tokens` and `cache_creation_input_tokens`) must be summed into
/// `input_tokens` when usage is normalised.
///
/// When an upstream reports subsets larger than their total, the subsets are taken as the
/// upstream's accounting: each is charged as reported and the remainder counts as zero, never
/// negative (see [`Usage::uncached_input_tokens`]).
///
/// [`ModelPrice::cost`]: super::ModelPrice::cost
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Usage {
    /// All prompt tokens, including cache reads and cache writes.
    pub input_tokens: u64,
    /// Subset of `input_tokens` read from the prompt cache.
    pub cached_input_tokens: u64,
    /// Subset of `input_tokens` written to the prompt cache (5-minute / default lifetime).
    pub cache_write_tokens: u64,
    /// Subset of `input_tokens` written to the 1-hour prompt cache (Anthropic).
    pub cache_write_1h_tokens: u64,
    /// All completion tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Subset of `output_tokens` spent on reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Prompt tokens that were neither read from nor written to the cache, charged at the plain
    /// input price. Saturates at zero when the reported subsets exceed `input_tokens`.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_write_tokens)
            .saturating_sub(self.cache_write_1h_tokens)
    }

    /// Completion tokens that are not reasoning tokens, charged at the plain output price.
    /// Saturates at zero when `reasoning_tokens` exceeds `output_tokens`.
    pub fn non_reasoning_output_tokens(&self) -> u64 {
        self.output_tokens.saturating_sub(self.reasoning_tokens)
    }
}

/// Reads an upstream's token count leniently but never in its favour, for
/// `#[serde(default, deserialize_with = "crate::pricing::token_count")]` on an `Option<u64>`:
///
/// - a non-negative integer is the count; one beyond `u64` (which JSON parsers hand over as a
///   float) saturates at `u64::MAX`, so an absurd report is charged as the most it can be,
///   never wrapped or dropped;
/// - a non-negative fractional number rounds up (`12.5` is 13);
/// - `null` is no count;
/// - a negative number, a string or anything else is an error: the report cannot be read, and
///   the caller falls back to its own estimate (marked as estimated in the ledger).
///
/// # Errors
/// The value is not a non-negative number.
pub fn token_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    deserializer.deserialize_option(TokenCount)
}

struct TokenCount;

impl<'de> Visitor<'de> for TokenCount {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a token count (a number, zero or more)")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_any(TokenCount)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
        Ok(Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u64>, E> {
        u64::try_from(v)
            .map(Some)
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Option<u64>, E> {
        Ok(Some(u64::try_from(v).unwrap_or(u64::MAX)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Option<u64>, E> {
        match u128::try_from(v) {
            Ok(v) => self.visit_u128(v),
            Err(_) => Err(E::invalid_value(
                Unexpected::Other("a negative number"),
                &self,
            )),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<u64>, E> {
        // `u64::MAX as f64` rounds up to 2^64, so `>=` catches everything that does not fit.
        const BEYOND_U64: f64 = 18_446_744_073_709_551_616.0;
        if v.is_nan() || v < 0.0 {
            return Err(E::invalid_value(Unexpected::Float(v), &self));
        }
        let whole = v.ceil();
        if whole >= BEYOND_U64 {
            return Ok(Some(u64::MAX));
        }
        // In range and whole: the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Some(whole as u64))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_taken_out_of_the_totals() {
        let usage = Usage {
            input_tokens: 1000,
            cached_input_tokens: 300,
            cache_write_tokens: 200,
            cache_write_1h_tokens: 100,
            output_tokens: 50,
            reasoning_tokens: 20,
        };
        assert_eq!(usage.uncached_input_tokens(), 400);
        assert_eq!(usage.non_reasoning_output_tokens(), 30);
    }

    #[test]
    fn oversized_subsets_saturate_at_zero() {
        let usage = Usage {
            input_tokens: 10,
            cached_input_tokens: 8,
            cache_write_tokens: 8,
            output_tokens: 5,
            reasoning_tokens: 9,
            ..Usage::default()
        };
        assert_eq!(usage.uncached_input_tokens(), 0);
        assert_eq!(usage.non_reasoning_output_tokens(), 0);
    }

    #[test]
    fn missing_json_fields_default_to_zero() {
        let usage: Usage = serde_json::from_str(r#"{"input_tokens": 7, "output_tokens": 3}"#)
            .expect("valid usage JSON");
        assert_eq!(
            usage,
            Usage {
                input_tokens: 7,
                output_tokens: 3,
                ..Usage::default()
            }
        );
    }
}
