//! Every endpoint and provider kind: Anthropic native and translated (streaming and not),
//! embeddings, legacy completions, and what each cannot serve. Costs are checked per token
//! kind against the fixture prices.

use futures_util::StreamExt;
use mock_provider::{MockConfig, MockServer, MockUsage};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, dec};

/// A gateway whose `test-claude` model is served by an Anthropic deployment on `mock`, and
/// `test-model` / `test-embed` by an OpenAI one on the default mock.
async fn gateway_with_anthropic(mock: &MockServer) -> TestApp {
    let openai = mock_provider::spawn(MockConfig::default()).await.unwrap();
    TestApp::spawn_with(Options {
        deployments: Some(format!(
            r#"[[deployments]]
name = "claude"
kind = "anthropic"
base_url = "{}"
api_keys = [{{ env = "TEST_KEY_sk-ant-1" }}]
models = {{ "test-claude" = "test-claude" }}

[[deployments]]
name = "openai"
kind = "openai"
base_url = "{}"
models = {{ "test-model" = "test-model", "test-embed" = "test-embed" }}
"#,
            mock.base_url(),
            openai.base_url()
        )),
        ..Options::default()
    })
    .await
}

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.data_url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn direct(mock: &MockServer, path: &str, body: &Value) -> Vec<u8> {
    reqwest::Client::new()
        .post(format!("{}{path}", mock.base_url()))
        .header("x-api-key", "sk-ant-1")
        .json(body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[derive(Debug, PartialEq)]
struct Row {
    deployment: String,
    status: i16,
    usage_estimated: bool,
    tokens: (i64, i64, i64, i64, i64),
    cost: Decimal,
}

async fn rows(app: &TestApp, n: usize) -> Vec<Row> {
    app.ledger_rows(n).await;
    type Columns = (String, i16, bool, i64, i64, i64, i64, i64, Decimal);
    let rows: Vec<Columns> = sqlx::query_as(
        "SELECT deployment, status, usage_estimated, input_tokens, cached_input_tokens, cache_write_tokens, \
         cache_write_1h_tokens, output_tokens, cost_usd FROM request_log ORDER BY created_at",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| Row {
            deployment: r.0,
            status: r.1,
            usage_estimated: r.2,
            tokens: (r.3, r.4, r.5, r.6, r.7),
            cost: r.8,
        })
        .collect()
}

fn anthropic_body(stream: bool) -> Value {
    json!({
        "model": "test-claude",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        "mock": {"usage": {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 3000,
            "cache_creation_5m": 400, "cache_creation_1h": 100}},
    })
}

/// 1000 × $3 + 3000 × $0.30 + 400 × $3.75 + 100 × $6 + 200 × $15, per 1M tokens.
fn anthropic_cost() -> Decimal {
    dec("0.009")
}

#[tokio::test]
async fn anthropic_native_messages_pass_through_and_price_every_cache_kind() {
    let mock = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let body = anthropic_body(false);
    let response = post(&app, "/v1/messages", &key, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        dec(response.headers()["x-tollgate-cost-usd"].to_str().unwrap()),
        anthropic_cost()
    );
    let received = response.bytes().await.unwrap().to_vec();
    // The gateway authenticated upstream with the deployment's key, not the client's.
    assert_eq!(mock.requests_for_key("sk-ant-1"), 1);
    assert_eq!(received, direct(&mock, "/messages", &body).await);
    let row = &rows(&app, 1).await[0];
    assert_eq!(row.tokens, (4500, 3000, 400, 100, 200));
    assert_eq!(row.cost, anthropic_cost());
    assert_eq!(row.deployment, "claude");
}

#[tokio::test]
async fn anthropic_native_stream_passes_through_with_usage_from_its_events() {
    let mock = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let body = anthropic_body(true);
    let response = post(&app, "/v1/messages", &key, &body).await;
    assert_eq!(response.status(), 200);
    let received = response.bytes().await.unwrap().to_vec();
    assert_eq!(received, direct(&mock, "/messages", &body).await);
    assert!(String::from_utf8_lossy(&received).contains("event: message_stop"));
    let row = &rows(&app, 1).await[0];
    assert!(!row.usage_estimated);
    assert_eq!(row.tokens, (4500, 3000, 400, 100, 200));
    assert_eq!(row.cost, anthropic_cost());
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}]})
}

/// The Anthropic mock for translated requests: usage comes from its configuration, since
/// translation drops the test-only `mock` member.
async fn configured_anthropic_mock() -> MockServer {
    mock_provider::spawn(MockConfig {
        usage: MockUsage {
            prompt_tokens: 1000,
            completion_tokens: 50,
            cached_tokens: 400,
            reasoning_tokens: 0,
        },
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn openai_chat_is_translated_to_anthropic_and_back() {
    let mock = configured_anthropic_mock().await;
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let response = app.chat(&key, chat("test-claude", false)).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "test-claude");
    assert_eq!(completion["choices"][0]["message"]["content"], "pong");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["usage"]["prompt_tokens"], 1000);
    assert_eq!(
        completion["usage"]["prompt_tokens_details"]["cached_tokens"],
        400
    );
    // What the upstream received is an Anthropic Messages request.
    let sent: Value = serde_json::from_slice(&mock.last_body().unwrap()).unwrap();
    assert_eq!(sent["system"], "be brief");
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "ping");
    assert!(sent["max_tokens"].as_u64().unwrap() > 0);
    // 600 × $3 + 400 × $0.30 + 50 × $15, per 1M.
    assert_eq!(rows(&app, 1).await[0].cost, dec("0.00267"));
}

#[tokio::test]
async fn openai_chat_streams_translated_from_anthropic_events() {
    let mock = configured_anthropic_mock().await;
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let mut body = chat("test-claude", true);
    body["stream_options"] = json!({"include_usage": true});
    let response = app.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(response.bytes().await.unwrap().to_vec()).unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|ch| ch["delta"]["content"].as_str())
        })
        .collect();
    assert_eq!(content, "pong");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 1000);
    assert!(text.ends_with("data: [DONE]\n\n"));
    let row = &rows(&app, 1).await[0];
    assert!(!row.usage_estimated);
    assert_eq!(row.cost, dec("0.00267"));
}

#[tokio::test]
async fn cancelled_anthropic_streams_are_charged_for_what_was_produced() {
    // A slow stream of 30 chunks, set on the mock itself (translation drops `mock` members).
    let slow = MockConfig {
        chunks: 30,
        chunk_delay_ms: 100,
        ..MockConfig::default()
    };
    let mock = mock_provider::spawn(slow).await.unwrap();
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let mut native = anthropic_body(true);
    native.as_object_mut().unwrap().remove("mock");
    for (path, body) in [
        ("/v1/messages", native),
        ("/v1/chat/completions", chat("test-claude", true)),
    ] {
        let response = post(&app, path, &key, &body).await;
        assert_eq!(response.status(), 200);
        let mut stream = response.bytes_stream();
        let mut seen = Vec::new();
        while String::from_utf8_lossy(&seen).matches("delta").count() < 3 {
            seen.extend_from_slice(&stream.next().await.unwrap().unwrap());
        }
        drop(stream);
    }
    let rows = rows(&app, 2).await;
    for row in &rows {
        assert_eq!(row.status, 499, "{row:?}");
        assert!(row.tokens.0 > 0, "the prompt is charged: {row:?}");
        assert!(
            row.tokens.4 >= 1 && row.tokens.4 < 30,
            "output so far is charged: {row:?}"
        );
        assert!(row.cost > Decimal::ZERO);
    }
}

#[tokio::test]
async fn embeddings_and_legacy_completions_are_priced() {
    let mock = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let response = post(
        &app,
        "/v1/embeddings",
        &key,
        &json!({"model": "test-embed", "input": "hello"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let embedding: Value = response.json().await.unwrap();
    assert_eq!(embedding["data"][0]["object"], "embedding");
    let response = post(
        &app,
        "/v1/completions",
        &key,
        &json!({"model": "test-model", "prompt": "say"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "text_completion");
    let rows = rows(&app, 2).await;
    // Embeddings: 10 input tokens at $0.02 per 1M; completions: 10/20 at $2.50/$10.
    assert_eq!(rows[0].cost, dec("0.0000002"));
    assert_eq!(rows[1].cost, dec("0.000225"));
}

/// A chat model on the embeddings endpoint would be charged at chat prices for what is not a
/// chat request, and an embedding model on chat at an embedding price: both are refused with
/// a 400 that says where the model belongs, and nothing reaches the upstream.
#[tokio::test]
async fn a_model_is_served_only_on_the_endpoints_of_its_kind() {
    let mock = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let cases = [
        (
            "/v1/embeddings",
            json!({"model": "test-model", "input": "x"}),
            "is a chat model",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "test-embed", "messages": [{"role": "user", "content": "x"}]}),
            "is an embedding model",
        ),
        (
            "/v1/completions",
            json!({"model": "test-embed", "prompt": "x"}),
            "is an embedding model",
        ),
    ];
    for (endpoint, body, says) in cases {
        let response = post(&app, endpoint, &key, &body).await;
        assert_eq!(response.status(), 400, "{endpoint}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "wrong_kind_of_model", "{error}");
        assert_eq!(error["error"]["param"], "model");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{endpoint}: {message}");
    }
    assert_eq!(mock.requests(), 0, "nothing was forwarded");
    let rows = rows(&app, 3).await;
    assert!(
        rows.iter().all(|row| row.cost.is_zero()),
        "refusals cost nothing"
    );
}

#[tokio::test]
async fn endpoints_a_model_cannot_serve_are_refused_in_the_callers_dialect() {
    let mock = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let app = gateway_with_anthropic(&mock).await;
    let key = app.key().await;
    let response = post(
        &app,
        "/v1/embeddings",
        &key,
        &json!({"model": "test-claude", "input": "x"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "operation_not_supported");
    let response = post(
        &app,
        "/v1/messages",
        &key,
        &json!({"model": "test-model", "max_tokens": 5, "messages": []}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["type"], "error",
        "Anthropic's error shape on /v1/messages: {error}"
    );
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let response = post(
        &app,
        "/v1/messages",
        &key.replace("tg-", "tg-x"),
        &anthropic_body(false),
    )
    .await;
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "authentication_error");
}
