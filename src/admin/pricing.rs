//! The live price table: `GET /admin/v1/pricing` lists every entry with its history, and
//! `POST /admin/v1/pricing/quote` prices a usage exactly as the gateway would.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::csv::{self, Format};
use super::error::{AdminError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::params::{Params, parse_time};
use super::response::List;
use crate::pricing::{CostBreakdown, ModelPrice, PriceTable, Rates, Usage};

/// One entry as listed: the entry itself plus where it stands in its model's history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PriceEntry {
    #[serde(flatten)]
    price: ModelPrice,
    /// The next entry's `effective_from` (this one applies up to the day before), if any.
    effective_until: Option<NaiveDate>,
    /// `current` (in force now for its name or an alias), `scheduled` (starts later) or
    /// `superseded`.
    status: EntryStatus,
    /// The names (name and aliases) this entry prices right now.
    in_force_for: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    Current,
    Scheduled,
    Superseded,
}

/// Every entry with its place in its model's history, paired with the entry it describes
/// (compared by address to find the one a quote used).
fn entries(table: &PriceTable, now: DateTime<Utc>) -> Vec<(&ModelPrice, PriceEntry)> {
    // Every entry's successor in its name's history. Names are unique per model, so the
    // history of a name is all entries with that name, across files.
    let mut dates: HashMap<&str, Vec<NaiveDate>> = HashMap::new();
    for price in table.models() {
        dates
            .entry(price.name.as_str())
            .or_default()
            .push(price.effective_from);
    }
    dates.values_mut().for_each(|d| d.sort_unstable());
    table
        .models()
        .map(|price| {
            let effective_until = dates
                .get(price.name.as_str())
                .and_then(|d| d.iter().find(|&&day| day > price.effective_from).copied());
            let in_force_for: Vec<String> = std::iter::once(&price.name)
                .chain(&price.aliases)
                .filter(|key| {
                    table
                        .price_at(key, now)
                        .is_some_and(|p| std::ptr::eq(p, price))
                })
                .cloned()
                .collect();
            let status = if !in_force_for.is_empty() {
                EntryStatus::Current
            } else if price.effective_from > now.date_naive() {
                EntryStatus::Scheduled
            } else {
                EntryStatus::Superseded
            };
            let entry = PriceEntry {
                price: price.clone(),
                effective_until,
                status,
                in_force_for,
            };
            (price, entry)
        })
        .collect()
}

/// `?model=` (a name or alias: that model's history) and `?provider=`. The price table is
/// the gateway's, not a team's: every token may read it.
#[utoipa::path(
    get,
    path = "/admin/v1/pricing",
    tag = "pricing",
    params(
        ("model" = Option<String>, Query, description = "a model name or alias: its history"),
        ("provider" = Option<String>, Query),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, body = List<PriceEntry>, description = "JSON, or text/csv with format=csv"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AdminState>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let params = Params::new(pairs, &["model", "provider", "format"])?;
    let format = Format::from_param(params.get("format"))?;
    let table = state.prices.load_full();
    let model = params.get("model");
    if let Some(model) = model
        && !table.contains(model)
    {
        return Err(AdminError::NotFound(format!(
            "no price for model `{model}`"
        )));
    }
    let data: Vec<PriceEntry> = entries(&table, Utc::now())
        .into_iter()
        .map(|(_, entry)| entry)
        .filter(|e| {
            model.is_none_or(|m| e.price.name == m || e.price.aliases.iter().any(|a| a == m))
        })
        .filter(|e| params.get("provider").is_none_or(|p| e.price.provider == p))
        .collect();
    csv::list(format, List::of(data), |l| &l.data)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    cache_write_tokens: u64,
    #[serde(default)]
    cache_write_1h_tokens: u64,
    #[serde(default)]
    reasoning_tokens: u64,
    /// RFC 3339 or `YYYY-MM-DD`; default now.
    at: Option<String>,
}

/// The tokens each part of the breakdown charges (the subsets taken out of the totals).
#[derive(Serialize, utoipa::ToSchema)]
pub struct BilledTokens {
    input: u64,
    cached_input: u64,
    cache_write: u64,
    cache_write_1h: u64,
    output: u64,
    reasoning: u64,
}

/// What a usage costs: the entry and rates that applied and the cost of each part.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Quote {
    model: String,
    /// The time whose prices applied.
    at: DateTime<Utc>,
    usage: Usage,
    entry: PriceEntry,
    /// The tier whose prices applied, or `null` for the base prices.
    tier: Option<TierUsed>,
    rates: Rates,
    billed_tokens: BilledTokens,
    cost: CostBreakdown,
}

/// The long-context tier a quote was priced at.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TierUsed {
    above_prompt_tokens: u64,
}

/// What a usage costs, computed exactly as the gateway charges it.
#[utoipa::path(
    post,
    path = "/admin/v1/pricing/quote",
    tag = "pricing",
    request_body = QuoteRequest,
    responses(
        (status = 200, body = Quote),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn quote(
    State(state): State<AdminState>,
    ApiJson(body): ApiJson<QuoteRequest>,
) -> Result<Json<Quote>, AdminError> {
    let at = match &body.at {
        None => Utc::now(),
        Some(text) => parse_time(text).ok_or_else(|| {
            AdminError::bad(
                "at",
                format!("`at` = {text:?} is not a time: use RFC 3339 or YYYY-MM-DD"),
            )
        })?,
    };
    let table = state.prices.load_full();
    let model = body.model.trim();
    let Some(price) = table.price_at(model, at) else {
        return Err(AdminError::NotFound(if table.contains(model) {
            format!(
                "model `{model}` has no price on {} (before its first entry)",
                at.date_naive()
            )
        } else {
            format!("no price for model `{model}`")
        }));
    };
    let usage = Usage {
        input_tokens: body.input_tokens,
        cached_input_tokens: body.cached_input_tokens,
        cache_write_tokens: body.cache_write_tokens,
        cache_write_1h_tokens: body.cache_write_1h_tokens,
        output_tokens: body.output_tokens,
        reasoning_tokens: body.reasoning_tokens,
    };
    let rates = price.rates_for(usage.input_tokens);
    let tier = price
        .tiers
        .iter()
        .find(|t| std::ptr::eq(&t.rates, rates))
        .map(|t| TierUsed {
            above_prompt_tokens: t.above_prompt_tokens,
        });
    let entry = entries(&table, Utc::now())
        .into_iter()
        .find(|(p, _)| std::ptr::eq(*p, price))
        .map(|(_, entry)| entry)
        .ok_or(AdminError::Internal)?;
    let mut cost = price.cost(&usage);
    cost.total = cost.total.normalize();
    let quote = Quote {
        model: model.to_owned(),
        at,
        usage,
        entry,
        tier,
        rates: *rates,
        billed_tokens: BilledTokens {
            input: usage.uncached_input_tokens(),
            cached_input: usage.cached_input_tokens,
            cache_write: usage.cache_write_tokens,
            cache_write_1h: usage.cache_write_1h_tokens,
            output: usage.non_reasoning_output_tokens(),
            reasoning: usage.reasoning_tokens,
        },
        cost,
    };
    Ok(Json(quote))
}
