use std::path::PathBuf;

use chrono::NaiveDate;

/// Why price files could not be loaded. Every message names the file, the model entry and the
/// field where there is one, and says how to fix it.
///
/// `entry` reads like `model "gpt-4o"` or `model "claude-sonnet-4": tier #1`.
#[derive(thiserror::Error, Debug)]
pub enum PricingError {
    #[error("{}: cannot read the pricing directory: {source} (check the configured path)", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: cannot read the price file: {source}", file.display())]
    ReadFile {
        file: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{}: no *.toml price files found (point the pricing directory at a folder like the repository's pricing/)",
        dir.display()
    )]
    NoFiles { dir: PathBuf },

    /// TOML syntax errors and a wrong top-level shape; toml's message carries line and column.
    #[error("{file}: {message}")]
    Toml { file: String, message: String },

    #[error(
        "{file}: {message} (a price file has `provider = \"...\"` and [[models]] entries; see docs/pricing.md)"
    )]
    FileShape { file: String, message: String },

    #[error("{file}: {entry}: {message} (see docs/pricing.md for the fields of an entry)")]
    EntryShape {
        file: String,
        entry: String,
        message: String,
    },

    #[error(
        "{file}: {entry}: field `{field}`: {value} is not a decimal number (write it as a string like \"2.50\")"
    )]
    NotADecimal {
        file: String,
        entry: String,
        field: &'static str,
        /// The offending value as written, quoted if it was a string.
        value: String,
    },

    #[error(
        "{file}: {entry}: field `{field}`: {literal} is a TOML number, and TOML floats lose exactness: quote it as \"{literal}\""
    )]
    UnquotedNumber {
        file: String,
        entry: String,
        field: &'static str,
        literal: String,
    },

    #[error("{file}: {entry}: field `{field}`: \"{value}\" is negative (prices are zero or more)")]
    NegativePrice {
        file: String,
        entry: String,
        field: &'static str,
        value: String,
    },

    #[error(
        "{file}: {entry}: field `{field}`: \"{value}\" is above the maximum of {max} USD per 1M tokens (prices are USD per 1M tokens, not per token: a price of 0.000003 per token is written \"3\")"
    )]
    PriceTooHigh {
        file: String,
        entry: String,
        field: &'static str,
        value: String,
        max: rust_decimal::Decimal,
    },

    #[error(
        "{file}: {entry}: field `{field}`: \"{value}\" has more than {max_places} decimal places (USD per 1M tokens never needs that many)"
    )]
    TooPrecise {
        file: String,
        entry: String,
        field: &'static str,
        value: String,
        max_places: u32,
    },

    #[error(
        "{file}: {entry}: field `effective_from`: {value} is not a date (write a UTC date as \"YYYY-MM-DD\")"
    )]
    BadDate {
        file: String,
        entry: String,
        value: String,
    },

    #[error("{file}: {entry}: field `{field}`: {problem}")]
    BadName {
        file: String,
        entry: String,
        field: &'static str,
        problem: String,
    },

    #[error(
        "{file}: model \"{model}\": two tiers have above_prompt_tokens = {threshold} (give each tier a distinct threshold)"
    )]
    DuplicateTier {
        file: String,
        model: String,
        threshold: u64,
    },

    #[error(
        "{file}: model \"{model}\": an entry with effective_from = \"{effective_from}\" is already defined in {first_file} (to change a price, add a new entry with a later effective_from; history is never rewritten)"
    )]
    DuplicateEntry {
        file: String,
        model: String,
        effective_from: NaiveDate,
        first_file: String,
    },

    #[error(
        "{file}: model \"{model}\": the name \"{key}\" already prices model \"{other_model}\" in {other_file} (a name or alias can belong to one model only; rename or remove one of them)"
    )]
    NameConflict {
        file: String,
        model: String,
        key: String,
        other_model: String,
        other_file: String,
    },
}
