//! OpenAI's Responses API through the gateway: `client.responses.create` streaming and not,
//! priced from its usage (input, cached, output and reasoning tokens at their own rates),
//! stored responses retrieved and deleted, and Anthropic-only models refused by name.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::dec;
use crate::sdk::gateway;

/// 200 uncached and 1,000 cached input tokens, 180 output and 120 reasoning tokens, at
/// test-model's rates (2.50, 1.25, 10.00 and 15.00 USD per million).
fn expected_cost() -> Decimal {
    (dec("200") * dec("2.50")
        + dec("1000") * dec("1.25")
        + dec("180") * dec("10.00")
        + dec("120") * dec("15.00"))
        / dec("1000000")
}

#[tokio::test]
async fn the_openai_sdk_creates_streams_retrieves_and_deletes_responses_at_exact_cost() {
    let app = gateway().await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_responses.py");
    crate::sdk::run_openai_script(script, &app, key, Some("test-model")).await;
    // Two creates are charged (retrieve and delete use no tokens), each exactly; the refused
    // request is recorded at no cost.
    let rows = app.ledger_rows(3).await;
    let created: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(created.len(), 2);
    for row in &created {
        assert_eq!(row.cost_usd, expected_cost());
        assert!(!row.usage_estimated);
        assert_eq!(
            (
                row.input_tokens,
                row.cached_input_tokens,
                row.output_tokens,
                row.reasoning_tokens
            ),
            (1200, 1000, 300, 120)
        );
    }
    assert!(created.iter().any(|r| r.streamed) && created.iter().any(|r| !r.streamed));
    let refused = rows.iter().find(|r| r.status == 400).unwrap();
    assert_eq!(refused.cost_usd, Decimal::ZERO);
}

#[tokio::test]
async fn a_responses_stream_cut_short_is_recorded_and_a_budget_reserves_max_output_tokens() {
    let app = gateway().await;
    let (key, record) = app.issue_key(json!({})).await;
    let url = format!("{}/v1/responses", app.data_url);
    let cut = app
        .http
        .post(&url)
        .bearer_auth(&key)
        .json(
            &json!({"model": "test-model", "input": "ping", "stream": true,
                      "mock": {"cut_after": 1, "chunks": 4}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cut.status(), 200);
    assert!(
        cut.bytes().await.is_err(),
        "a cut stream must not look complete"
    );
    let rows = app.ledger_rows(1).await;
    assert_eq!(rows[0].status, 502);
    assert!(rows[0].usage_estimated && rows[0].streamed);

    // The most a request can cost is reserved from its max_output_tokens: a budget of less
    // than that refuses it before it is sent.
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    app.put_limits(
        &key_path,
        json!({"budgets": [{"period": "total", "amount_usd": "0.001"}]}),
    )
    .await;
    let refused = app
        .http
        .post(&url)
        .bearer_auth(&key)
        .json(&json!({"model": "test-model", "input": "ping", "max_output_tokens": 100000}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 402);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");
    let small = app
        .http
        .post(&url)
        .bearer_auth(&key)
        .json(&json!({"model": "test-model", "input": "ping", "max_output_tokens": 16}))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn an_unknown_stored_response_is_a_404_and_odd_ids_never_reach_an_upstream() {
    let app = gateway().await;
    let key = app.key().await;
    for id in ["resp_nothere", "..%2Fmodels"] {
        let response = app
            .http
            .get(format!("{}/v1/responses/{id}", app.data_url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    let unauthenticated = app
        .http
        .get(format!("{}/v1/responses/resp_1", app.data_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
