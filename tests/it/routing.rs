//! Routing: key pools with cool-downs, fallbacks to other deployments (and providers),
//! weighted choice, and the ledger naming what answered at its price.

use std::collections::HashMap;
use std::time::Duration;

use mock_provider::{MockConfig, MockServer};
use serde_json::json;

use crate::common::{Options, TestApp, dec};

async fn gateway(deployments: String) -> TestApp {
    TestApp::spawn_with(Options {
        deployments: Some(deployments),
        ..Options::default()
    })
    .await
}

fn body() -> serde_json::Value {
    json!({"model": "test-model", "messages": [{"role": "user", "content": "ping"}]})
}

async fn ledger(app: &TestApp, n: usize) -> Vec<(String, i16, i16, rust_decimal::Decimal)> {
    app.ledger_rows(n).await;
    sqlx::query_as(
        "SELECT deployment, status, attempts, cost_usd FROM request_log ORDER BY created_at",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rate_limited_key_cools_down_and_traffic_returns_after() {
    // Key "a" answers its first request with 429 (Retry-After: 1), then recovers.
    let mock = mock_provider::spawn(MockConfig {
        key_failures: HashMap::from([("a".to_string(), vec![429])]),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let app = gateway(format!(
        r#"[[deployments]]
name = "pool"
kind = "openai"
base_url = "{}"
api_keys = [{{ env = "TEST_KEY_a" }}, {{ env = "TEST_KEY_b" }}]
models = {{ "test-model" = "test-model" }}
"#,
        mock.base_url()
    ))
    .await;
    let key = app.key().await;
    // Until "a" has been tried once (and refused), requests may go to either key.
    while mock.requests_for_key("a") == 0 {
        assert_eq!(app.chat(&key, body()).await.status(), 200);
    }
    let (a, b) = (mock.requests_for_key("a"), mock.requests_for_key("b"));
    for _ in 0..10 {
        assert_eq!(
            app.chat(&key, body()).await.status(),
            200,
            "the other key answers"
        );
    }
    assert_eq!(
        mock.requests_for_key("a"),
        a,
        "the refused key is left alone while it cools down"
    );
    assert_eq!(mock.requests_for_key("b"), b + 10);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..30 {
        assert_eq!(app.chat(&key, body()).await.status(), 200);
    }
    assert!(
        mock.requests_for_key("a") > a,
        "traffic returns to the recovered key"
    );
}

#[tokio::test]
async fn primary_down_falls_back_and_is_charged_at_the_fallbacks_price() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let fallback = mock_provider::spawn(MockConfig::default()).await.unwrap();
    let app = gateway(format!(
        r#"[[deployments]]
name = "primary"
kind = "openai"
base_url = "http://{closed}/v1"
retries = 0
models = {{ "test-model" = "test-model" }}

[[deployments]]
name = "fallback"
kind = "anthropic"
base_url = "{}"
priority = 1
retries = 0
models = {{ "test-model" = {{ upstream = "claude-x", price = "test-claude" }} }}
"#,
        fallback.base_url()
    ))
    .await;
    let key = app.key().await;
    for stream in [false, true] {
        let mut request = body();
        request["stream"] = json!(stream);
        let response = app.chat(&key, request).await;
        assert_eq!(response.status(), 200);
        let text = String::from_utf8(response.bytes().await.unwrap().to_vec()).unwrap();
        let answered = if stream {
            text.contains("\"po\"") && text.ends_with("[DONE]\n\n")
        } else {
            text.contains("pong")
        };
        assert!(answered, "{text}");
    }
    let rows = ledger(&app, 2).await;
    // The first request tried the primary first; by the second the primary was cooling down,
    // so the fallback was tried first.
    let attempts: Vec<i16> = rows.iter().map(|r| r.2).collect();
    assert_eq!(attempts, vec![2, 1]);
    for (deployment, status, _, cost) in &rows {
        assert_eq!((deployment.as_str(), *status), ("fallback", 200));
        // The mock's default usage (10 in, 20 out) at test-claude's $3 / $15, not test-model's.
        assert_eq!(*cost, dec("0.00033"));
    }
    let sent: serde_json::Value = serde_json::from_slice(&fallback.last_body().unwrap()).unwrap();
    assert_eq!(sent["model"], "claude-x");
}

#[tokio::test]
async fn a_failing_primary_falls_back_and_the_last_429_reaches_the_client() {
    let primary = mock_provider::spawn(MockConfig {
        error_every: 1,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let limited = mock_provider::spawn(MockConfig {
        rate_limit_every: 1,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let app = gateway(format!(
        r#"[[deployments]]
name = "primary"
kind = "openai"
base_url = "{}"
retries = 0
models = {{ "test-model" = "test-model" }}

[[deployments]]
name = "limited"
kind = "openai"
base_url = "{}"
priority = 1
retries = 0
models = {{ "test-model" = "test-model" }}
"#,
        primary.base_url(),
        limited.base_url()
    ))
    .await;
    let key = app.key().await;
    let response = app.chat(&key, body()).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_rate_limited");
    assert_eq!((primary.requests(), limited.requests()), (1, 1));
    let rows = ledger(&app, 1).await;
    assert_eq!((rows[0].1, rows[0].2, rows[0].3), (429, 2, dec("0")));
}

async fn spawn_mock() -> MockServer {
    mock_provider::spawn(MockConfig::default()).await.unwrap()
}

#[tokio::test]
async fn weighted_choice_holds_within_a_few_percent_over_ten_thousand_requests() {
    let (heavy, light) = (spawn_mock().await, spawn_mock().await);
    let app = gateway(format!(
        r#"[[deployments]]
name = "heavy"
kind = "openai"
base_url = "{}"
weight = 3
models = {{ "test-model" = "test-model" }}

[[deployments]]
name = "light"
kind = "openai"
base_url = "{}"
weight = 1
models = {{ "test-model" = "test-model" }}
"#,
        heavy.base_url(),
        light.base_url()
    ))
    .await;
    let key = app.key().await;
    let url = format!("{}/v1/chat/completions", app.data_url);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (http, url, key) = (app.http.clone(), url.clone(), key.clone());
        workers.spawn(async move {
            for _ in 0..(10_000 / 32 + 1) {
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&body())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    let (h, l) = (heavy.requests() as f64, light.requests() as f64);
    let share = h / (h + l);
    assert!(h + l >= 10_000.0);
    assert!(
        (share - 0.75).abs() < 0.02,
        "heavy got {share:.3} of {} requests",
        h + l
    );
}
