//! Model prices and exact request costs.
//!
//! Prices live in TOML files under `pricing/` (one per provider), in USD per 1M tokens, written
//! as decimal strings. They are loaded once into a [`PriceTable`], which the hot path reads from
//! an in-process snapshot: [`PriceTable::price_at`] is a hash lookup plus a binary search over
//! a model's dated history, and [`ModelPrice::cost`] is a handful of `Decimal` multiplications.
//!
//! Money never touches floating point here: prices are parsed from strings with
//! `Decimal::from_str_exact`, TOML floats are refused, and costs are exact `Decimal` sums that
//! are never rounded. Prices are at most [`MAX_PRICE_PER_MILLION`] and a request's cost at most
//! [`MAX_COST_USD`] (a larger one saturates at it and says so), so no usage, however absurd,
//! makes the arithmetic overflow or panic. The file format and the meaning of every rule are in
//! `docs/pricing.md`.

mod cost;
mod error;
mod file;
mod reload;
mod table;
mod usage;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use cost::{CostBreakdown, MAX_COST_USD, ModelMode, ModelPrice, Rates, Tier};
pub use error::PricingError;
pub use file::MAX_PRICE_PER_MILLION;
pub use reload::reload;
pub use table::PriceTable;
pub use usage::{Usage, token_count};
