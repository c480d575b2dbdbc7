//! Amazon Bedrock deployments: OpenAI chat translated to Converse and back over real sockets
//! to the mock's Bedrock mode, which checks every request's SigV4 signature by signing it
//! again with the known secret; streams in AWS event-stream framing; usage with cache reads
//! priced exactly; Bedrock errors in OpenAI's shape.

use mock_provider::{MockConfig, MockServer, MockUsage};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, dec};

const ACCESS_KEY: &str = "AKIDTOLLGATETEST";
const SECRET: &str = "tollgate-test-secret/0123456789";

async fn bedrock_mock() -> MockServer {
    mock_provider::spawn(MockConfig {
        // Converse counts cache reads apart from inputTokens.
        usage: MockUsage {
            prompt_tokens: 1000,
            completion_tokens: 200,
            cached_tokens: 3000,
            reasoning_tokens: 0,
        },
        chunks: 2,
        aws_credentials: Some((ACCESS_KEY.into(), SECRET.into())),
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

async fn gateway(mock: &MockServer, secret: &str) -> TestApp {
    TestApp::spawn_with(Options {
        deployments: Some(format!(
            r#"[[deployments]]
name = "bedrock"
kind = "bedrock"
base_url = "http://{}"
region = "us-east-1"
retries = 0
models = {{ "claude-bedrock" = {{ upstream = "anthropic.claude-sonnet-4-5-20250929-v1:0", price = "test-claude" }} }}
"#,
            mock.addr()
        )),
        env: vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ],
        ..Options::default()
    })
    .await
}

/// 1,000 input tokens at 3.00, 3,000 cache reads at 0.30 and 200 output tokens at 15.00 USD per
/// million (test-claude's prices).
fn expected_cost() -> Decimal {
    (dec("1000") * dec("3.00") + dec("3000") * dec("0.30") + dec("200") * dec("15.00"))
        / dec("1000000")
}

#[tokio::test]
async fn the_openai_sdk_reaches_bedrock_with_signed_requests_at_exact_cost() {
    let mock = bedrock_mock().await;
    let app = gateway(&mock, SECRET).await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_bedrock.py");
    crate::sdk::run_openai_script(script, &app, key, Some("claude-bedrock")).await;
    // Every request was signed with the access key (the mock checked each signature), and
    // the model id's colon encoded. The last one was the streamed tool call.
    assert_eq!(mock.requests_for_key(ACCESS_KEY), 4);
    assert_eq!(
        mock.last_path().as_deref(),
        Some("/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream")
    );
    let sent: Value = serde_json::from_slice(&mock.last_body().unwrap()).unwrap();
    assert_eq!(sent["system"], json!([{"text": "Answer in one word."}]));
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 50);
    let rows = app.ledger_rows(4).await;
    for row in &rows {
        assert_eq!(row.status, 200);
        assert_eq!(row.cost_usd, expected_cost(), "{row:?}");
        assert_eq!((row.input_tokens, row.cached_input_tokens), (4000, 3000));
        assert!(!row.usage_estimated);
    }
    assert_eq!(rows.iter().filter(|r| r.streamed).count(), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_bedrock_and_answered_in_openais_shape() {
    let mock = bedrock_mock().await;
    let app = gateway(&mock, "not-the-secret").await;
    let key = app.key().await;
    let response = app
        .chat(
            &key,
            json!({"model": "claude-bedrock", "messages": [{"role": "user", "content": "ping"}]}),
        )
        .await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidSignatureException", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature we calculated does not match"),
        "{body}"
    );
    // What Converse cannot take is refused before it is sent.
    let image = app
        .chat(
            &key,
            json!({"model": "claude-bedrock", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        )
        .await;
    assert_eq!(image.status(), 400);
    let body: Value = image.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Converse takes image bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn anthropic_messages_reach_claude_on_bedrock_through_invoke_model() {
    // InvokeModel answers in Anthropic's usage terms: input without the 3,000 cache reads.
    let mock = mock_provider::spawn(MockConfig {
        usage: MockUsage {
            prompt_tokens: 4000,
            completion_tokens: 200,
            cached_tokens: 3000,
            reasoning_tokens: 0,
        },
        chunks: 2,
        aws_credentials: Some((ACCESS_KEY.into(), SECRET.into())),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let app = gateway(&mock, SECRET).await;
    let key = app.key().await;
    let messages = |stream: bool| {
        app.http
            .post(format!("{}/v1/messages", app.data_url))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .json(
                &json!({"model": "claude-bedrock", "max_tokens": 64, "stream": stream,
                          "messages": [{"role": "user", "content": "ping"}]}),
            )
            .send()
    };
    let answer = messages(false).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["type"], "message", "{body}");
    assert_eq!(body["content"][0]["text"], "pong");
    assert_eq!(
        mock.last_path().as_deref(),
        Some("/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke")
    );
    let sent: Value = serde_json::from_slice(&mock.last_body().unwrap()).unwrap();
    assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");
    assert!(
        sent.get("model").is_none() && sent.get("stream").is_none(),
        "{sent}"
    );

    // The stream comes back as Anthropic's own SSE events, unwrapped from the frames.
    let streamed = messages(true).await.unwrap();
    assert_eq!(streamed.status(), 200);
    assert_eq!(
        streamed.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = streamed.text().await.unwrap();
    assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
    assert!(text.contains("event: content_block_delta"), "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    assert_eq!(
        mock.last_path().as_deref(),
        Some("/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream")
    );
    let rows = app.ledger_rows(2).await;
    for row in &rows {
        assert_eq!(row.status, 200);
        assert_eq!(row.cost_usd, expected_cost(), "{row:?}");
        assert!(!row.usage_estimated);
    }
}

#[tokio::test]
async fn a_failing_anthropic_deployment_falls_back_to_bedrock_at_its_price_within_a_budget() {
    let mock = bedrock_mock().await;
    let failing = mock_provider::spawn(MockConfig {
        error_every: 1,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let app = TestApp::spawn_with(Options {
        deployments: Some(format!(
            r#"[[deployments]]
name = "claude"
kind = "anthropic"
base_url = "{}"
retries = 0
models = {{ "claude-ha" = {{ upstream = "claude-x", price = "test-claude" }} }}

[[deployments]]
name = "bedrock"
kind = "bedrock"
base_url = "http://{}"
region = "us-east-1"
priority = 1
retries = 0
models = {{ "claude-ha" = {{ upstream = "anthropic.claude-x-v1:0", price = "test-model" }} }}
"#,
            failing.base_url(),
            mock.addr()
        )),
        env: vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ],
        ..Options::default()
    })
    .await;
    let (key, record) = app.issue_key(json!({})).await;
    // Bedrock's answer at test-model's prices: 4,000 input (3,000 of them cache reads, which
    // test-model prices at its cached rate) and 200 output tokens.
    let one = (dec("1000") * dec("2.50") + dec("3000") * dec("1.25") + dec("200") * dec("10.00"))
        / dec("1000000");
    app.put_limits(
        &format!("/keys/{}", record["id"].as_str().unwrap()),
        json!({"budget_mode": "estimate",
               "budgets": [{"period": "total", "amount_usd": (one * Decimal::from(2)).to_string()}]}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = app
            .chat(
                &key,
                json!({"model": "claude-ha", "max_tokens": 200,
                       "messages": [{"role": "user", "content": "ping"}]}),
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 402, 402]);
    let rows = app.ledger_rows(4).await;
    let answered: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(answered.len(), 2);
    for row in &answered {
        assert_eq!(
            row.cost_usd, one,
            "charged at the answering (Bedrock) route's price"
        );
    }
    assert_eq!(mock.requests_for_key(ACCESS_KEY), 2);
}

#[tokio::test]
async fn a_bedrock_stream_the_client_leaves_is_recorded_and_charged_for_what_arrived() {
    let mock = mock_provider::spawn(MockConfig {
        chunks: 4,
        chunk_delay_ms: 400,
        aws_credentials: Some((ACCESS_KEY.into(), SECRET.into())),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let app = gateway(&mock, SECRET).await;
    let key = app.key().await;
    let row = app
        .leave_after_first_chunk(
            &key,
            json!({"model": "claude-bedrock", "stream": true,
                   "messages": [{"role": "user", "content": "ping"}]}),
        )
        .await;
    assert!(row.streamed && row.usage_estimated);
    assert!(row.cost_usd > Decimal::ZERO, "what arrived is charged");
}
