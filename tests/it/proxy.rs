//! The data plane end to end: real gateway, real PostgreSQL, the mock upstream, real sockets.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, dec};

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "ping"}]})
}

/// What the mock answers when called directly with `body`.
async fn direct(app: &TestApp, body: &Value) -> Vec<u8> {
    app.http
        .post(format!("{}/chat/completions", app.mock.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn non_streaming_round_trip_is_byte_for_byte_and_priced() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let body = chat_body("test-model");
    let response = app.chat(&key, body.clone()).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let cost = response.headers()["x-tollgate-cost-usd"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.to_vec(), direct(&app, &body).await);
    // Default mock usage: 10 prompt, 20 completion at $2.50 / $10 per 1M.
    assert_eq!(dec(&cost), dec("0.000225"));
    let rows = app.ledger_rows(1).await;
    assert_eq!(rows[0].request_id, request_id);
    assert_eq!(rows[0].cost_usd, dec("0.000225"));
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (10, 20));
    assert!(!rows[0].streamed && !rows[0].usage_estimated);
    assert_eq!(rows[0].status, 200);
}

#[tokio::test]
async fn exact_cost_for_every_kind_of_token() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["mock"] = json!({"usage": {"prompt_tokens": 1_000_003, "cached_tokens": 400_001,
        "completion_tokens": 300_007, "reasoning_tokens": 100_003}});
    let response = app.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    // (600002 × 2.50 + 400001 × 1.25 + 200004 × 10 + 100003 × 15) / 1e6
    let expected = dec("1.500005") + dec("0.50000125") + dec("2.00004") + dec("1.500045");
    assert_eq!(
        dec(response.headers()["x-tollgate-cost-usd"].to_str().unwrap()),
        expected
    );
    let row = &app.ledger_rows(1).await[0];
    assert_eq!(row.cost_usd, expected);
    assert_eq!(
        (row.cached_input_tokens, row.reasoning_tokens),
        (400_001, 100_003)
    );
}

#[tokio::test]
async fn renamed_model_is_rewritten_for_the_upstream_only() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let response = app
        .chat(
            &key,
            json!({"model": "renamed", "messages": [], "temperature": 0.5}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let sent: Value = serde_json::from_slice(&app.mock.last_body().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"model": "upstream-name", "messages": [], "temperature": 0.5})
    );
    let row = &app.ledger_rows(1).await[0];
    assert_eq!(
        (row.model.as_str(), row.upstream_model.as_str()),
        ("renamed", "upstream-name")
    );
}

async fn read_stream(response: reqwest::Response) -> Vec<u8> {
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn streaming_hides_the_usage_chunk_the_gateway_asked_for() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["stream"] = json!(true);
    let response = app.chat(&key, body.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let received = read_stream(response).await;
    let sent: Value = serde_json::from_slice(&app.mock.last_body().unwrap()).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    // Byte for byte what the upstream streams to a client that did not ask for usage.
    assert_eq!(received, direct(&app, &body).await);
    assert!(!String::from_utf8_lossy(&received).contains("\"usage\""));
    let row = &app.ledger_rows(1).await[0];
    assert!(row.streamed && !row.usage_estimated);
    assert_eq!((row.input_tokens, row.output_tokens), (10, 20));
    assert_eq!(row.cost_usd, dec("0.000225"));
}

#[tokio::test]
async fn streaming_passes_usage_through_when_the_client_asks() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let received = read_stream(app.chat(&key, body.clone()).await).await;
    assert_eq!(received, direct(&app, &body).await);
    assert!(String::from_utf8_lossy(&received).contains("\"usage\""));
    assert_eq!(app.ledger_rows(1).await[0].output_tokens, 20);
}

#[tokio::test]
async fn stream_chunks_arrive_as_they_are_produced() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["stream"] = json!(true);
    body["mock"] = json!({"chunks": 4, "chunk_delay_ms": 150});
    let response = app.chat(&key, body).await;
    let started = tokio::time::Instant::now();
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    let mut rest = Vec::new();
    while let Some(piece) = stream.next().await {
        rest.extend_from_slice(&piece.unwrap());
    }
    let all_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    // Six events 150 ms apart: a buffering proxy would deliver the first with the last.
    assert!(
        all_at - first_at >= Duration::from_millis(500),
        "first {first_at:?}, all {all_at:?}"
    );
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_still_recorded() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["stream"] = json!(true);
    body["mock"] = json!({"chunks": 20, "chunk_delay_ms": 100});
    let response = app.chat(&key, body).await;
    let mut stream = response.bytes_stream();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("\"content\":\"") || seen.len() < 200 {
        seen.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    drop(stream);
    let row = &app.ledger_rows(1).await[0];
    assert_eq!(row.status, 499);
    assert_eq!(row.error_type.as_deref(), Some("client_disconnected"));
    assert!(row.usage_estimated);
    assert!(row.output_tokens >= 1 && row.output_tokens < 20, "{row:?}");
    assert!(row.input_tokens > 0);
    assert!(row.cost_usd > dec("0"));
}

#[tokio::test]
async fn upstream_cut_mid_stream_is_recorded_and_the_client_sees_an_error() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["stream"] = json!(true);
    body["mock"] = json!({"chunks": 5, "cut_after": 2});
    let response = app.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "an interrupted stream must not look complete"
    );
    let row = &app.ledger_rows(1).await[0];
    assert_eq!(row.status, 502);
    assert_eq!(row.error_type.as_deref(), Some("upstream_interrupted"));
    assert!(row.usage_estimated);
    assert_eq!(row.output_tokens, 2);
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].is_string() && body["error"]["type"].is_string(),
        "{body}"
    );
    (status, body["error"].clone())
}

#[tokio::test]
async fn keys_that_may_not_call() {
    let app = TestApp::spawn().await;
    let body = chat_body("test-model");

    let missing = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(missing).await.0, 401);
    let (status, error) = error_of(app.chat("tg-not-a-real-key", body.clone()).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (401, Some("invalid_api_key"))
    );

    let (key, record) = app.issue_key(json!({})).await;
    assert_eq!(app.chat(&key, body.clone()).await.status(), 200);
    let (status, _) = app
        .admin(
            reqwest::Method::POST,
            &format!("/keys/{}/revoke", record["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, error) = error_of(app.chat(&key, body.clone()).await).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("key_revoked")));

    let (expired, _) = app
        .issue_key(json!({"expires_at": "2020-01-01T00:00:00Z"}))
        .await;
    let (status, error) = error_of(app.chat(&expired, body.clone()).await).await;
    assert_eq!((status, error["code"].as_str()), (403, Some("key_expired")));

    let (limited, _) = app
        .issue_key(json!({"allowed_models": ["gpt-4o-mini"]}))
        .await;
    let (status, error) = error_of(app.chat(&limited, body.clone()).await).await;
    assert_eq!(
        (status, error["code"].as_str(), error["param"].as_str()),
        (403, Some("model_not_allowed"), Some("model"))
    );
    assert_eq!(
        app.chat(&limited, chat_body("gpt-4o-mini")).await.status(),
        200
    );

    // The x-api-key header works too.
    let response = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .header("x-api-key", &limited)
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let app = TestApp::spawn_with(Options {
        extra: "max_body_bytes = 2048".into(),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    let raw = |body: &'static str| {
        app.http
            .post(format!("{}/v1/chat/completions", app.data_url))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, error) = error_of(raw("{\"model\": \"test-model\", ").await.unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_request_body"))
    );
    let (status, error) = error_of(raw("{\"messages\": []}").await.unwrap()).await;
    assert_eq!((status, error["param"].as_str()), (400, Some("model")));

    let mut big = chat_body("test-model");
    big["messages"][0]["content"] = json!("x".repeat(4096));
    let (status, error) = error_of(app.chat(&key, big).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (413, Some("body_too_large"))
    );

    let (status, error) = error_of(app.chat(&key, chat_body("no-such-model")).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let (status, error) = error_of(app.chat(&key, chat_body("unpriced")).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("model_not_priced"))
    );
    assert_eq!(
        app.mock.requests(),
        0,
        "refused requests never reach the upstream"
    );
    // Refusals of a known key are recorded, at zero cost.
    let rows = app.ledger_rows(5).await;
    assert!(rows.iter().all(|r| r.cost_usd.is_zero() && r.status >= 400));
}

#[tokio::test]
async fn upstream_failures_map_to_gateway_errors() {
    let app = TestApp::spawn_with(Options {
        deployment_extra: "first_byte_timeout_ms = 300".into(),
        ..Options::default()
    })
    .await;
    let key = app.key().await;

    let mut body = chat_body("test-model");
    body["mock"] = json!({"status": 500});
    let (status, error) = error_of(app.chat(&key, body).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (502, Some("upstream_error"))
    );

    let mut body = chat_body("test-model");
    body["mock"] = json!({"delay_ms": 2000});
    let (status, error) = error_of(app.chat(&key, body).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (504, Some("upstream_timeout"))
    );

    // Upstream 4xx bodies pass through unchanged.
    let mut body = chat_body("test-model");
    body["mock"] = json!({"status": 400});
    let response = app.chat(&key, body.clone()).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.bytes().await.unwrap().to_vec(),
        direct(&app, &body).await
    );

    let rows = app.ledger_rows(3).await;
    let mut statuses: Vec<i16> = rows.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![400, 502, 504]);
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = TestApp::spawn_with(Options {
        base_url: Some(format!("http://{closed}/v1")),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    let (status, error) = error_of(app.chat(&key, chat_body("test-model")).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (502, Some("upstream_unreachable"))
    );
    assert!(
        !error["message"]
            .as_str()
            .unwrap()
            .contains(&closed.to_string()),
        "no internals in errors"
    );
}

#[tokio::test]
async fn a_deployments_total_timeout_cuts_a_stream_that_runs_too_long() {
    let app = TestApp::spawn_with(Options {
        deployment_extra: "total_timeout_ms = 600".into(),
        ..Options::default()
    })
    .await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["stream"] = json!(true);
    body["mock"] = json!({"chunks": 10, "chunk_delay_ms": 200});
    let response = app.chat(&key, body).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "the cut stream must not look complete"
    );
    let row = &app.ledger_rows(1).await[0];
    assert_eq!(
        (row.status, row.error_type.as_deref()),
        (504, Some("upstream_timeout"))
    );
    assert!(row.usage_estimated && row.output_tokens >= 1);
}

#[tokio::test]
async fn a_non_streaming_request_whose_client_hangs_up_is_still_completed_and_recorded() {
    let app = TestApp::spawn().await;
    let key = app.key().await;
    let mut body = chat_body("test-model");
    body["mock"] = json!({"delay_ms": 400});
    let impatient = app
        .http
        .post(format!("{}/v1/chat/completions", app.data_url))
        .bearer_auth(&key)
        .json(&body)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(impatient.is_err(), "the client gave up before the answer");
    // The upstream still answered (and will bill for it): the ledger has the real usage.
    let row = &app.ledger_rows(1).await[0];
    assert_eq!(
        (row.status, row.input_tokens, row.output_tokens),
        (200, 10, 20)
    );
    assert!(!row.usage_estimated);
    assert_eq!(row.cost_usd, dec("0.000225"));
}
