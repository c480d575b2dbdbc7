//! Requests whose cost is known before they are sent, for budget tests that must fit an exact
//! number of requests.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::dec;

/// A gpt-4o-mini request whose budget reservation equals its actual cost ($0.15 input,
/// $0.60 output per 1M): the mock reports as many prompt tokens as the body has bytes (the
/// reservation's upper bound) and exactly `max_tokens` completion tokens.
pub fn exact_request(stream: bool) -> (Value, Decimal) {
    exact_request_with(stream, json!({}))
}

/// [`exact_request`] with more `mock` directives (e.g. a delay).
pub fn exact_request_with(stream: bool, mock: Value) -> (Value, Decimal) {
    let make = |prompt: usize| {
        let mut body = json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "count the sheep"}],
            "max_tokens": 20,
            "mock": {"usage": {"prompt_tokens": prompt, "completion_tokens": 20}},
        });
        for (k, v) in mock.as_object().cloned().unwrap_or_default() {
            body["mock"][k] = v;
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    };
    // The prompt count has three digits either way, so the body length is a fixed point.
    let len = serde_json::to_vec(&make(100)).unwrap().len();
    let body = make(len);
    assert_eq!(serde_json::to_vec(&body).unwrap().len(), len);
    let cost = (Decimal::from(len) * dec("0.15") + Decimal::from(20) * dec("0.60"))
        / Decimal::from(1_000_000);
    (body, cost)
}
