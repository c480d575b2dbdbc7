//! The counters fed from each ledger event.

use metrics::Label;

use super::{ERRORS, REQUESTS, SATURATED, UPSTREAM_LATENCY, exact};
use crate::ledger::LedgerEvent;
use crate::pricing::MAX_COST_USD;

/// Label value for "no such thing here" (no experiment, no routed model, no scope).
pub(super) const NONE: &str = "none";

/// Counts one request from its ledger event: requests, errors, tokens, spend and upstream
/// latency. Called by [`Ledger::record`](crate::ledger::Ledger::record) for every event, so
/// the counters agree with the ledger. `key_labels` adds the key id to the per-request series
/// (`metrics.key_labels`).
pub fn observe_event(event: &LedgerEvent, key_labels: bool) {
    let attribution = Attribution::of(event, key_labels);
    // Built once and cloned per series: label values are shared strings, so a clone is cheap.
    let base = attribution.labels();
    let mut labels = base.clone();
    labels.push(Label::new("status_class", status_class(event.status)));
    metrics::counter!(REQUESTS, labels).increment(1);

    if let Some(kind) = error_kind(event) {
        // The scope (key, experiment, team) whose limit refused the request; "none" for
        // errors that are not governance refusals.
        let scope = event.refused_by.clone().unwrap_or_else(|| NONE.to_string());
        metrics::counter!(ERRORS, "type" => kind, "scope" => scope).increment(1);
    }

    let usage = &event.usage;
    let tokens = [
        ("input", usage.input_tokens),
        ("cached_input", usage.cached_input_tokens),
        (
            "cache_write",
            usage
                .cache_write_tokens
                .saturating_add(usage.cache_write_1h_tokens),
        ),
        ("output", usage.output_tokens),
        ("reasoning", usage.reasoning_tokens),
    ];
    for (kind, count) in tokens {
        exact::add_tokens(&attribution, kind, count);
    }
    note_saturation(event, &attribution);

    exact::add_cost(&attribution, event.cost_usd);

    if let Some(ms) = event.upstream_latency_ms {
        metrics::histogram!(
            UPSTREAM_LATENCY,
            "provider" => attribution.provider.clone(),
            "model" => attribution.model.clone()
        )
        .record(f64::from(ms) / 1000.0);
    }
}

/// Counts and logs a request whose usage or cost reached the most the gateway can represent:
/// a token count of `u64::MAX` (an upstream reported that many, or more) or a cost of
/// [`MAX_COST_USD`]. Such a request is recorded at those maxima, never wrapped or dropped, and
/// the budgets it is charged to refuse everything after it; the warning says which upstream
/// to look at.
fn note_saturation(event: &LedgerEvent, attribution: &Attribution) {
    let usage = &event.usage;
    let usage_saturated = [
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.cache_write_1h_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
    ]
    .contains(&u64::MAX);
    let cost_saturated = event.cost_usd >= MAX_COST_USD;
    for (what, saturated) in [("usage", usage_saturated), ("cost", cost_saturated)] {
        if saturated {
            metrics::counter!(
                SATURATED,
                "what" => what,
                "model" => attribution.model.clone(),
                "provider" => attribution.provider.clone()
            )
            .increment(1);
        }
    }
    if usage_saturated || cost_saturated {
        tracing::warn!(
            request_id = %event.request_id,
            model = %event.model,
            deployment = %event.deployment,
            cost_usd = %event.cost_usd,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            usage_saturated,
            cost_saturated,
            "the upstream reported a usage at or beyond what the gateway can count; \
             recorded at the maximum (see docs/pricing.md, \"Bounds and overflow\")"
        );
    }
}

/// Who a request is attributed to, as label values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Attribution {
    pub team: String,
    pub experiment: String,
    pub model: String,
    pub provider: String,
    pub key: Option<String>,
}

impl Attribution {
    fn of(event: &LedgerEvent, key_labels: bool) -> Attribution {
        // A request refused before routing carries whatever model name the client sent;
        // labelling it would let any client create series, so it is "none".
        let routed = !event.provider.is_empty();
        Attribution {
            team: event.team_id.to_string(),
            experiment: event
                .experiment_id
                .map_or_else(|| NONE.to_string(), |id| id.to_string()),
            model: if routed {
                event.model.clone()
            } else {
                NONE.to_string()
            },
            provider: if routed {
                event.provider.clone()
            } else {
                NONE.to_string()
            },
            key: key_labels.then(|| event.key_id.to_string()),
        }
    }

    /// `team`, `experiment`, `model`, `provider` and, when enabled, `key`.
    pub(super) fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![
            ("team", self.team.as_str()),
            ("experiment", self.experiment.as_str()),
            ("model", self.model.as_str()),
            ("provider", self.provider.as_str()),
        ];
        if let Some(key) = &self.key {
            pairs.push(("key", key.as_str()));
        }
        pairs
    }

    fn labels(&self) -> Vec<Label> {
        self.pairs()
            .into_iter()
            .map(|(name, value)| Label::new(name, value.to_string()))
            .collect()
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The error type of a request that failed: the ledger's `error_type` (an `ApiError` code,
/// `upstream_client_error`, `client_disconnected`, ...), or `http_error` for a failure
/// recorded without one.
fn error_kind(event: &LedgerEvent) -> Option<String> {
    match &event.error_type {
        Some(kind) => Some(kind.clone()),
        None if event.status >= 400 => Some("http_error".to_string()),
        None => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(402), "4xx");
        assert_eq!(status_class(499), "4xx");
        assert_eq!(status_class(504), "5xx");
    }
}
