//! Azure OpenAI deployments: addressed by resource, deployment name and `api-version` (or
//! the `/openai/v1/` API), authenticated with `api-key` or an Entra ID bearer token, priced as
//! the model the configuration names; chat, streams, the Responses API and fallback from
//! OpenAI, over real sockets to the mock.

use mock_provider::{MockConfig, MockServer};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::requests::exact_request;
use crate::common::{Options, TestApp};

struct Setup {
    app: TestApp,
    classic: MockServer,
    v1: MockServer,
}

/// The mock's root: Azure's base URL is the resource endpoint, without `/v1`.
fn root(mock: &MockServer) -> String {
    format!("http://{}", mock.addr())
}

async fn setup() -> Setup {
    let classic = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let v1 = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let failing = mock_provider::spawn(MockConfig {
        error_every: 1,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let route = r#"{ upstream = "my-4o-mini", price = "gpt-4o-mini" }"#;
    let deployments = format!(
        r#"[[deployments]]
name = "azure-classic"
kind = "azure"
base_url = "{classic}"
api_version = "2024-10-21"
api_keys = [{{ env = "TEST_KEY_az-key" }}]
priority = 1
retries = 0
models = {{ "gpt-4o-mini" = {route}, "test-model" = {route} }}

[[deployments]]
name = "azure-v1"
kind = "azure"
base_url = "{v1}"
auth = "entra-id"
api_keys = [{{ env = "TEST_KEY_entra-token" }}]
models = {{ "mini-v1" = {route} }}

[[deployments]]
name = "openai"
kind = "openai"
base_url = "{failing}"
retries = 0
models = {{ "test-model" = "test-model" }}
"#,
        classic = root(&classic),
        v1 = root(&v1),
        failing = failing.base_url(),
    );
    let app = TestApp::spawn_with(Options {
        deployments: Some(deployments),
        ..Options::default()
    })
    .await;
    Setup { app, classic, v1 }
}

#[tokio::test]
async fn deployment_urls_carry_the_api_version_and_the_api_key_and_cost_exactly() {
    let Setup { app, classic, .. } = setup().await;
    let key = app.key().await;
    for stream in [false, true] {
        let (body, cost) = exact_request(stream);
        let response = app.chat(&key, body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        if stream {
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        }
        assert_eq!(
            classic.last_path().as_deref(),
            Some("/openai/deployments/my-4o-mini/chat/completions?api-version=2024-10-21")
        );
        let rows = app.ledger_rows(if stream { 2 } else { 1 }).await;
        let row = rows.last().unwrap();
        assert_eq!(
            row.cost_usd, cost,
            "priced as gpt-4o-mini, the configured model"
        );
        assert_eq!(row.upstream_model, "my-4o-mini");
    }
    assert_eq!(classic.requests_for_key("az-key"), 2);

    // The Responses API: Azure's /openai/responses with the api-version, the deployment in
    // the body; a stored response is read back the same way.
    let created: Value = app
        .http
        .post(format!("{}/v1/responses", app.data_url))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-4o-mini", "input": "ping"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        classic.last_path().as_deref(),
        Some("/openai/responses?api-version=2024-10-21")
    );
    let sent: Value = serde_json::from_slice(&classic.last_body().unwrap()).unwrap();
    assert_eq!(sent["model"], "my-4o-mini");
    let id = created["id"].as_str().unwrap();
    let stored = app
        .http
        .get(format!("{}/v1/responses/{id}", app.data_url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    assert_eq!(
        classic.last_path().unwrap(),
        format!("/openai/responses/{id}?api-version=2024-10-21")
    );
}

#[tokio::test]
async fn the_v1_api_takes_an_entra_id_token_and_the_deployment_in_the_body() {
    let Setup { app, v1, .. } = setup().await;
    let key = app.key().await;
    let (mut body, _) = exact_request(false);
    body["model"] = json!("mini-v1");
    let response = app.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        v1.last_path().as_deref(),
        Some("/openai/v1/chat/completions")
    );
    let sent: Value = serde_json::from_slice(&v1.last_body().unwrap()).unwrap();
    assert_eq!(sent["model"], "my-4o-mini");
    // Sent as `Authorization: Bearer`, which the mock counts under the token.
    assert_eq!(v1.requests_for_key("entra-token"), 1);
    let row = &app.ledger_rows(1).await[0];
    assert_eq!(row.cost_usd, gpt_4o_mini_cost(row));
}

/// What a row's tokens cost at gpt-4o-mini's prices (0.15 and 0.60 USD per million).
fn gpt_4o_mini_cost(row: &crate::common::LedgerRow) -> Decimal {
    (Decimal::from(row.input_tokens) * crate::common::dec("0.15")
        + Decimal::from(row.output_tokens) * crate::common::dec("0.60"))
        / Decimal::from(1_000_000)
}

#[tokio::test]
async fn a_failing_openai_deployment_falls_back_to_azure_at_azures_price() {
    let Setup { app, classic, .. } = setup().await;
    let key = app.key().await;
    let (mut body, _) = exact_request(false);
    body["model"] = json!("test-model");
    let response = app.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(classic.requests_for_key("az-key"), 1);
    let row = &app.ledger_rows(1).await[0];
    // Priced as gpt-4o-mini (Azure's configured model), not test-model.
    assert_eq!(row.upstream_model, "my-4o-mini");
    assert!(row.input_tokens > 0 && row.output_tokens > 0);
    assert_eq!(row.cost_usd, gpt_4o_mini_cost(row));
}

#[tokio::test]
async fn the_openai_sdk_works_unchanged_against_azure_deployments() {
    let mock = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let app = TestApp::spawn_with(Options {
        deployments: Some(format!(
            r#"[[deployments]]
name = "azure"
kind = "azure"
base_url = "{}"
api_version = "2024-10-21"
api_keys = [{{ env = "TEST_KEY_az-key" }}]
models = {{ "test-model" = {{ upstream = "chat-deployment", price = "test-model" }}, "test-embed" = {{ upstream = "embed-deployment", price = "test-embed" }} }}
"#,
            root(&mock)
        )),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py");
    crate::sdk::run_openai_script(script, &app, key, None).await;
    // The embeddings went to the embedding deployment's URL, with the api-key.
    assert_eq!(
        mock.last_path().as_deref(),
        Some("/openai/deployments/embed-deployment/embeddings?api-version=2024-10-21")
    );
    // Three chats and the embedding.
    assert_eq!(mock.requests_for_key("az-key"), 4);
}
