//! Gemini deployments behind the OpenAI chat format: translated both ways over real sockets
//! to the mock's Gemini mode, priced from `usageMetadata` (cached and thinking tokens at their
//! own rates, the long-context tier above its threshold), errors in OpenAI's shape, cancelled
//! streams recorded, and fallback from an OpenAI deployment charged at Gemini's price.

use mock_provider::{MockConfig, MockServer, MockUsage};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::tls::TempDir;
use crate::common::{Options, TestApp, dec};

/// Prices with a distinct rate for every kind of token, and a long-context tier above 1,000
/// prompt tokens (Gemini's is at 200k; a small threshold keeps the test's numbers small).
const PRICES: &str = r#"provider = "test"

[[models]]
name = "test-gemini"
effective_from = "2020-01-01"
input = "1.25"
cached_input = "0.125"
output = "10.00"
reasoning = "12.00"
[[models.tiers]]
above_prompt_tokens = 1000
input = "2.50"
cached_input = "0.25"
output = "15.00"
reasoning = "18.00"

[[models]]
name = "test-model"
effective_from = "2020-01-01"
input = "2.50"
output = "10.00"
"#;

fn usage(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> MockUsage {
    MockUsage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        reasoning_tokens: reasoning,
    }
}

async fn gemini_mock(usage: MockUsage, chunk_delay_ms: u64) -> MockServer {
    mock_provider::spawn(MockConfig {
        usage,
        chunks: 2,
        chunk_delay_ms,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

struct Setup {
    app: TestApp,
    short: MockServer,
    _pricing: TempDir,
}

/// `gemini-short` (800 prompt tokens: base rates), `gemini-long` (1,200: the tier),
/// `gemini-slow` (a slow stream) and `test-model`, which an OpenAI deployment that always
/// fails serves first and Gemini second.
async fn setup() -> Setup {
    let short = gemini_mock(usage(800, 0, 50, 50), 0).await;
    let long = gemini_mock(usage(1200, 1000, 180, 120), 0).await;
    let slow = gemini_mock(usage(800, 0, 50, 50), 400).await;
    let failing = mock_provider::spawn(MockConfig {
        error_every: 1,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let pricing = TempDir::new("gemini-pricing");
    std::fs::write(pricing.path().join("test.toml"), PRICES).unwrap();
    let gemini = |name: &str, mock: &MockServer, models: &str| {
        format!(
            "[[deployments]]\nname = \"{name}\"\nkind = \"gemini\"\nbase_url = \"{}\"\n\
             api_keys = [{{ env = \"TEST_KEY_g-{name}\" }}]\npriority = 1\nretries = 0\nmodels = {{ {models} }}\n\n",
            mock.base_url()
        )
    };
    let price =
        |upstream: &str| format!("{{ upstream = \"{upstream}\", price = \"test-gemini\" }}");
    let mut deployments = String::new();
    deployments.push_str(&gemini(
        "short",
        &short,
        &format!(
            "\"gemini-short\" = {}, \"test-model\" = {}",
            price("gemini-2.5-pro"),
            price("gemini-2.5-pro")
        ),
    ));
    deployments.push_str(&gemini(
        "long",
        &long,
        &format!("\"gemini-long\" = {}", price("gemini-2.5-pro")),
    ));
    deployments.push_str(&gemini(
        "slow",
        &slow,
        &format!("\"gemini-slow\" = {}", price("gemini-2.5-flash")),
    ));
    deployments.push_str(&format!(
        "[[deployments]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"{}\"\nretries = 0\nmodels = {{ \"test-model\" = \"test-model\" }}\n",
        failing.base_url()
    ));
    let app = TestApp::spawn_with(Options {
        deployments: Some(deployments),
        pricing_dir: Some(pricing.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    Setup {
        app,
        short,
        _pricing: pricing,
    }
}

/// (prompt − cached) × input + cached × cached rate + (output − reasoning) × output +
/// reasoning × reasoning rate, per million, at the base rates or the tier's.
fn cost(tokens: (u64, u64, u64, u64), tier: bool) -> Decimal {
    let (prompt, cached, candidates, thoughts) = tokens;
    let rates = if tier {
        ["2.50", "0.25", "15.00", "18.00"]
    } else {
        ["1.25", "0.125", "10.00", "12.00"]
    };
    (Decimal::from(prompt - cached) * dec(rates[0])
        + Decimal::from(cached) * dec(rates[1])
        + Decimal::from(candidates) * dec(rates[2])
        + Decimal::from(thoughts) * dec(rates[3]))
        / Decimal::from(1_000_000)
}

#[tokio::test]
async fn the_openai_sdk_chats_streams_and_calls_tools_through_gemini_at_exact_cost() {
    let Setup { app, short, .. } = setup().await;
    let key = app.key().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_gemini.py");
    crate::sdk::run_openai_script(script, &app, key, Some("gemini-short")).await;
    // The gateway authenticated with the deployment's key, in Gemini's header.
    assert_eq!(short.requests_for_key("g-short"), 4);
    // What Gemini received for the tool result.
    let sent: Value = serde_json::from_slice(&short.last_body().unwrap()).unwrap();
    assert_eq!(
        sent["contents"][1]["parts"][0]["functionCall"]["name"],
        "lookup"
    );
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "lookup", "response": {"found": true}})
    );
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "Answer in one word."}]})
    );
    // Four answers, each at the base rates: 800 prompt, 50 candidates and 50 thinking tokens.
    let rows = app.ledger_rows(5).await;
    let answered: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(answered.len(), 4);
    for row in answered {
        assert_eq!(
            (
                row.input_tokens,
                row.cached_input_tokens,
                row.output_tokens,
                row.reasoning_tokens
            ),
            (800, 0, 100, 50)
        );
        assert_eq!(row.cost_usd, cost((800, 0, 50, 50), false));
        assert!(!row.usage_estimated);
    }
}

#[tokio::test]
async fn a_long_prompt_is_priced_at_the_tier_streams_too() {
    let Setup { app, .. } = setup().await;
    let key = app.key().await;
    for stream in [false, true] {
        let response = app
            .chat(
                &key,
                json!({"model": "gemini-long", "stream": stream,
                       "messages": [{"role": "user", "content": "ping"}]}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        if stream {
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            // The client did not ask for usage: no usage chunk.
            assert!(!text.contains("\"usage\""), "{text}");
        }
    }
    let rows = app.ledger_rows(2).await;
    for row in &rows {
        assert_eq!(row.cost_usd, cost((1200, 1000, 180, 120), true), "{row:?}");
        assert_eq!(row.output_tokens, 300);
    }
}

#[tokio::test]
async fn gemini_errors_take_openais_shape_and_a_cancelled_stream_is_recorded() {
    let Setup { app, .. } = setup().await;
    let (key, _) = app.issue_key(json!({})).await;
    // A model Gemini does not know: the mock answers 404 in Gemini's shape.
    let bad = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .bearer_auth(&key)
        .json(&json!({"model": "gemini-short", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contents"),
        "{body}"
    );

    // The client leaves after the first chunk of a slow stream.
    let cancelled = app
        .leave_after_first_chunk(
            &key,
            json!({"model": "gemini-slow", "stream": true,
                   "messages": [{"role": "user", "content": "ping"}]}),
        )
        .await;
    assert!(cancelled.streamed);
    assert!(
        cancelled.cost_usd > Decimal::ZERO,
        "what arrived is charged"
    );
}

#[tokio::test]
async fn a_failing_openai_deployment_falls_back_to_gemini_within_a_budget() {
    let Setup { app, .. } = setup().await;
    let (key, record) = app.issue_key(json!({})).await;
    let one = cost((800, 0, 50, 50), false);
    // Room for exactly three answers at Gemini's price (requests reserve their exact cost:
    // max_tokens 100 covers the 100 output tokens, and the prompt estimate its body).
    let key_path = format!("/keys/{}", record["id"].as_str().unwrap());
    app.put_limits(
        &key_path,
        json!({"budget_mode": "estimate", "budgets": [{"period": "total", "amount_usd": (one * Decimal::from(3)).to_string()}]}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = app
            .chat(
                &key,
                json!({"model": "test-model", "max_tokens": 100,
                       "messages": [{"role": "user", "content": "ping"}]}),
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    // Three answers within the budget, then refusals: nothing overshoots.
    assert_eq!(statuses, [200, 200, 200, 402, 402]);
    let rows = app.ledger_rows(5).await;
    let answered: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(answered.len(), 3);
    for row in &answered {
        assert_eq!(row.cost_usd, one, "charged at the answering (Gemini) price");
        assert_eq!(row.upstream_model, "gemini-2.5-pro");
    }
    let spent: Decimal = answered.iter().map(|r| r.cost_usd).sum();
    assert_eq!(spent, one * Decimal::from(3));
}
