//! The optional headroom headers (`governance.headroom_headers`): what is left of the
//! request's tightest budget, so a client can slow down before it is refused with a 402.
//!
//! `x-tollgate-budget-remaining-usd: 12.5` and `x-tollgate-budget-scope:
//! experiment:gsm8k:total` (kind, name, period; the name is the scope's id when it cannot be
//! sent in a header), or `experiment:gsm8k:total:gpt-5` for the scope's budget on a model.
//! Both are read off the admission's reply: no extra Redis call.

use axum::http::{HeaderMap, HeaderValue};
use rust_decimal::Decimal;

use super::exchange::Exchange;
use super::state::ProxyState;
use crate::governance::BudgetHeadroom;

pub const REMAINING_HEADER: &str = "x-tollgate-budget-remaining-usd";
pub const SCOPE_HEADER: &str = "x-tollgate-budget-scope";

/// Adds the headers to a successful response, when they are turned on and the request has a
/// budget (a request admitted without Redis, failing open, has none to report).
pub fn add(state: &ProxyState, exchange: &Exchange, headers: &mut HeaderMap) {
    if !state.governance.headroom_headers {
        return;
    }
    if let Some(headroom) = exchange.ticket.as_ref().and_then(|t| t.headroom) {
        // The name is looked up here, not kept by admission: most deployments leave the
        // headers off, and their requests should not copy it.
        let scope = exchange
            .policy
            .scopes
            .iter()
            .find(|s| s.kind == headroom.kind && s.id == headroom.id);
        let name = scope.map_or("", |s| s.name.as_str());
        let model = scope
            .zip(headroom.model)
            .and_then(|(s, i)| s.limits.models.get(i))
            .map(|m| m.model.as_str());
        insert(headers, &headroom, name, model);
    }
}

fn insert(headers: &mut HeaderMap, headroom: &BudgetHeadroom, name: &str, model: Option<&str>) {
    let remaining = Decimal::new(headroom.remaining_nanos, 9).normalize();
    if let Ok(value) = HeaderValue::try_from(remaining.to_string()) {
        headers.insert(REMAINING_HEADER, value);
    }
    if let Ok(value) = HeaderValue::try_from(scope_text(headroom, name, model)) {
        headers.insert(SCOPE_HEADER, value);
    }
}

fn scope_text(headroom: &BudgetHeadroom, name: &str, model: Option<&str>) -> String {
    // Visible ASCII only: anything else would not survive every client's header parser.
    let sendable = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    let name = if sendable {
        name.to_owned()
    } else {
        headroom.id.to_string()
    };
    let mut text = format!(
        "{}:{}:{}",
        headroom.kind.as_str(),
        name,
        headroom.period.as_str()
    );
    // Model selectors are header-safe by construction (`governance::selector_problem`).
    if let Some(model) = model {
        text.push(':');
        text.push_str(model);
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::governance::{Period, ScopeKind};

    fn headroom(nanos: i64) -> BudgetHeadroom {
        BudgetHeadroom {
            kind: ScopeKind::Experiment,
            id: uuid::Uuid::nil(),
            model: None,
            period: Period::Total,
            remaining_nanos: nanos,
        }
    }

    #[test]
    fn the_amount_is_exact_usd_and_the_scope_is_named() {
        let mut headers = HeaderMap::new();
        insert(&mut headers, &headroom(12_500_000_001), "gsm8k", None);
        assert_eq!(headers[REMAINING_HEADER], "12.500000001");
        assert_eq!(headers[SCOPE_HEADER], "experiment:gsm8k:total");
        insert(&mut headers, &headroom(0), "gsm8k", Some("gpt-5*"));
        assert_eq!(headers[REMAINING_HEADER], "0");
        assert_eq!(headers[SCOPE_HEADER], "experiment:gsm8k:total:gpt-5*");
    }

    #[test]
    fn a_name_that_cannot_be_a_header_is_sent_as_the_id() {
        let mut headers = HeaderMap::new();
        insert(&mut headers, &headroom(1), "évaluation\n", None);
        assert_eq!(
            headers[SCOPE_HEADER],
            "experiment:00000000-0000-0000-0000-000000000000:total"
        );
    }
}
