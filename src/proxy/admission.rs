//! Turning a request into an admission (what it may use and cost at most) and a refusal
//! into the client's answer.

use rust_decimal::Decimal;

use super::body::ChatPeek;
use super::error::ApiError;
use super::exchange::Exchange;
use super::refusal::{BudgetRefusal, ScopeLabel};
use super::state::ProxyState;
use super::usage::estimate_prompt_tokens;
use crate::governance::{Admission, BudgetMode, Refusal, Ticket, nanos_to_usd, to_nanos_ceil};
use crate::pricing::{ModelPrice, Usage};

/// The largest output cap a request may ask for: far above any model's output limit, and
/// small enough that every sum and product governance makes with it stays in range.
pub const MAX_OUTPUT_TOKENS: u64 = u32::MAX as u64;

/// What the request body says about its output.
pub struct OutputCap {
    /// `max_completion_tokens` or `max_tokens`, if the client set one.
    pub max_tokens: Option<u64>,
}

impl OutputCap {
    /// The cap the body asks for, refused when it is beyond [`MAX_OUTPUT_TOKENS`].
    pub fn of(peek: &ChatPeek<'_>) -> Result<OutputCap, ApiError> {
        let (param, max_tokens) = match (peek.max_completion_tokens, peek.max_output_tokens) {
            (Some(n), _) => ("max_completion_tokens", Some(n)),
            (None, Some(n)) if peek.max_tokens.is_none() => ("max_output_tokens", Some(n)),
            _ => ("max_tokens", peek.max_tokens),
        };
        if let Some(n) = max_tokens
            && n > MAX_OUTPUT_TOKENS
        {
            return Err(ApiError::MalformedBody {
                message: format!(
                    "`{param}` is {n}, more than any model can produce; send at most {MAX_OUTPUT_TOKENS}, or leave it out"
                ),
                param: Some(param),
            });
        }
        Ok(OutputCap { max_tokens })
    }
}

/// Admits the request on all its scopes. `prices` are the prices of every deployment the
/// request may end up on: the reservation covers the dearest.
pub async fn admit(
    state: &ProxyState,
    exchange: &Exchange,
    cap: &OutputCap,
    prices: &[&ModelPrice],
) -> Result<Option<Ticket>, ApiError> {
    let policy = &exchange.policy;
    if !state.governor.local().check(policy.key_id) {
        return Err(ApiError::InstanceLimited);
    }
    if policy.scopes.iter().all(|s| s.limits.is_empty()) {
        return Ok(None);
    }
    let config = &state.governance;
    let output_cap = cap.max_tokens.unwrap_or(config.default_max_output_tokens);
    let prompt_estimate = estimate_prompt_tokens(exchange.body_len);
    let estimate_output = cap
        .max_tokens
        .unwrap_or(u64::MAX)
        .min(config.estimate_output_tokens);
    let estimated_usage = Usage {
        input_tokens: prompt_estimate,
        output_tokens: estimate_output,
        ..Usage::default()
    };
    let dearest = |cost: &dyn Fn(&ModelPrice) -> Decimal| {
        prices
            .iter()
            .map(|p| to_nanos_ceil(cost(p)))
            .max()
            .unwrap_or(0)
    };
    let admission = Admission {
        request_id: exchange.request_id,
        team: policy.team_id,
        scopes: &policy.scopes,
        model: &exchange.model,
        tokens_estimate: prompt_estimate
            .saturating_add(cap.max_tokens.unwrap_or(config.estimate_output_tokens)),
        // A prompt has at most one token per byte of the body: an upper bound.
        max_cost_nanos: dearest(&|p| max_cost(p, exchange.body_len as u64, output_cap)),
        estimated_cost_nanos: dearest(&|p| p.cost(&estimated_usage).total),
    };
    state
        .governor
        .admit(&admission)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Budget {
                kind,
                id,
                model,
                period,
                limit_nanos,
                committed_nanos,
                reserve_nanos,
            } => {
                let strict = policy
                    .scopes
                    .iter()
                    .find(|s| s.kind == kind && s.id == id)
                    .is_some_and(|s| s.limits.budget_mode == BudgetMode::Strict);
                ApiError::BudgetExceeded(Box::new(BudgetRefusal {
                    scope: ScopeLabel::of(policy, kind, id, model),
                    period,
                    limit_usd: nanos_to_usd(limit_nanos),
                    committed_usd: nanos_to_usd(committed_nanos),
                    request_usd: nanos_to_usd(reserve_nanos),
                    default_output_reserved: (strict && cap.max_tokens.is_none())
                        .then_some(config.default_max_output_tokens),
                }))
            }
            Refusal::Rate {
                kind,
                id,
                model,
                rate,
                limit,
                remaining,
                retry_after,
            } => ApiError::RateLimited {
                scope: Box::new(ScopeLabel::of(policy, kind, id, model)),
                rate,
                limit,
                remaining,
                retry_after,
            },
            Refusal::Concurrency { kind, id, limit } => ApiError::ConcurrencyLimited {
                scope: Box::new(ScopeLabel::of(policy, kind, id, None)),
                limit,
            },
            Refusal::Unavailable => ApiError::BackendUnavailable,
        })
}

/// The most `input` prompt tokens and `output` completion tokens can cost: every token at
/// the dearest rate of its side (cache writes can cost more than plain input, reasoning more
/// than plain output). Saturates rather than overflowing: a request that could cost more
/// than a `Decimal` holds is refused by any budget.
fn max_cost(price: &ModelPrice, input: u64, output: u64) -> Decimal {
    let rates = price.rates_for(input);
    let input_rate = [
        rates.input,
        rates.cached_input,
        rates.cache_write,
        rates.cache_write_1h,
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    let output_rate = rates.output.max(rates.reasoning);
    Decimal::from(input)
        .checked_mul(input_rate)
        .zip(Decimal::from(output).checked_mul(output_rate))
        .and_then(|(input, output)| input.checked_add(output))
        .and_then(|total| total.checked_div(Decimal::from(1_000_000)))
        .unwrap_or(Decimal::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceTable;

    #[test]
    fn max_cost_uses_the_dearest_rate_of_each_side() {
        let table = PriceTable::from_toml_str(
            "t.toml",
            "provider = \"t\"\n[[models]]\nname = \"m\"\neffective_from = \"2020-01-01\"\ninput = \"2\"\noutput = \"10\"\ncache_write = \"2.5\"\nreasoning = \"15\"\n",
        )
        .unwrap();
        let price = table.price_at("m", chrono::Utc::now()).unwrap();
        // 1000 × 2.5 + 100 × 15 per 1M.
        assert_eq!(
            max_cost(price, 1000, 100),
            "0.004".parse::<Decimal>().unwrap()
        );
    }
}
