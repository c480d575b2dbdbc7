#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! `/v1/messages` over real sockets.

mod common;

use std::time::{Duration, Instant};

use common::{client, server};
use mock_provider::{MockConfig, MockServer, MockUsage};
use serde_json::{Value, json};

async fn post(server: &MockServer, body: impl Into<reqwest::Body>) -> reqwest::Response {
    client()
        .post(format!("{}/messages", server.base_url()))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_json(server: &MockServer, body: Value) -> reqwest::Response {
    post(server, body.to_string()).await
}

/// Splits an Anthropic SSE body into (event name, data) pairs, checking the framing.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "unterminated event in {text:?}");
    text.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|e| {
            let (name, data) = e
                .strip_prefix("event: ")
                .and_then(|e| e.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not a named event: {e:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "event name and type differ");
            (name.to_owned(), data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn non_streaming_answer_is_exact() {
    let mock = server(MockConfig::default()).await;
    let resp = post_json(
        &mock,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "ping"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"id":"msg_mock","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"pong"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}}}"#
    );
    assert_eq!(mock.requests(), 1);
    assert_eq!(mock.requests_for_key("sk-ant-test"), 1);
}

#[tokio::test]
async fn usage_overrides_and_config_defaults() {
    // The OpenAI-side config maps onto Anthropic's parts: cached tokens are cache reads and are
    // not part of input_tokens.
    let mock = server(MockConfig {
        usage: MockUsage {
            prompt_tokens: 100,
            completion_tokens: 7,
            cached_tokens: 60,
            reasoning_tokens: 0,
        },
        ..MockConfig::default()
    })
    .await;
    let body: Value = post_json(&mock, json!({"model": "m"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 40, "output_tokens": 7, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 60,
               "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}})
    );

    let body: Value = post_json(
        &mock,
        json!({"model": "m", "mock": {"usage": {"input_tokens": 5, "output_tokens": 9,
            "cache_read_input_tokens": 1000, "cache_creation_5m": 30, "cache_creation_1h": 70}}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 5, "output_tokens": 9, "cache_creation_input_tokens": 100,
               "cache_read_input_tokens": 1000,
               "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70}})
    );

    let body: Value = post_json(&mock, json!({"model": "m", "mock": {"no_usage": true}}))
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("usage").is_none(), "{body}");
}

#[tokio::test]
async fn stream_has_anthropic_events_in_order() {
    let mock = server(MockConfig::default()).await;
    let resp = post_json(
        &mock,
        json!({"model": "claude-x", "stream": true, "mock": {"usage": {"cache_creation_1h": 4}}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = sse_events(&resp.text().await.unwrap());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = &events[0].1["message"];
    assert_eq!(message["id"], "msg_mock");
    assert_eq!(message["model"], "claude-x");
    assert_eq!(message["content"], json!([]));
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 4,
               "cache_read_input_tokens": 0,
               "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 4}})
    );
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: Vec<&str> = events[3..6]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            assert_eq!(d["index"], 0);
            d["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, ["po", "n", "g"]);
    assert_eq!(
        events[7].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 20}})
    );
}

#[tokio::test]
async fn stream_without_usage_and_with_content_override() {
    let mock = server(MockConfig::default()).await;
    let text = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"no_usage": true, "content": "héllo \"wörld\"", "chunks": 2}}),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(!text.contains("usage"), "{text}");
    let events = sse_events(&text);
    assert_eq!(events.len(), 8);
    let deltas: Vec<&Value> = events[3..5]
        .iter()
        .map(|(_, d)| &d["delta"]["text"])
        .collect();
    assert_eq!(deltas, [&json!("héllo \""), &json!("wörld\"")]);
}

#[tokio::test]
async fn tool_use_answer_and_stream() {
    let mock = server(MockConfig::default()).await;
    let tool = json!({"name": "get_weather", "input": {"city": "Paris", "units": ["c"]}});
    let body: Value = post_json(&mock, json!({"model": "m", "mock": {"tool_use": tool}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["content"],
        json!([{"type": "tool_use", "id": "toolu_mock", "name": "get_weather",
                "input": {"city": "Paris", "units": ["c"]}}])
    );
    assert_eq!(body["stop_reason"], "tool_use");

    let text = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"tool_use": tool, "chunks": 4}}),
    )
    .await
    .text()
    .await
    .unwrap();
    let events = sse_events(&text);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "tool_use", "id": "toolu_mock", "name": "get_weather", "input": {}})
    );
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, d)| &d["delta"])
        .collect();
    assert_eq!(deltas.len(), 4);
    let json: String = deltas
        .iter()
        .map(|d| {
            assert_eq!(d["type"], "input_json_delta");
            d["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"city": "Paris", "units": ["c"]})
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    // Without input, the tool is called with {}.
    let body: Value = post_json(&mock, json!({"mock": {"tool_use": {"name": "now"}}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"][0]["input"], json!({}));
    assert_eq!(body["model"], "mock-model");
}

#[tokio::test]
async fn errors_have_anthropic_shape() {
    let mock = server(MockConfig::default()).await;
    for (status, kind, retry_after) in [
        (529, "overloaded_error", Some("1")),
        (429, "rate_limit_error", Some("1")),
        (400, "invalid_request_error", None),
        (500, "api_error", None),
    ] {
        let resp = post_json(
            &mock,
            json!({"model": "m", "stream": true, "mock": {"status": status}}),
        )
        .await;
        assert_eq!(resp.status(), status);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{status}"
        );
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"type": "error", "error": {"type": kind, "message": "mock error"}})
        );
    }
    for body in [
        "{not json",
        r#"{"model": 5}"#,
        r#"{"mock": {"usage": {"prompt_tokens": 1}}}"#,
        r#"{"mock": {"tool_use": {"input": {}}}}"#,
        r#"{"mock": {"status": 1000}}"#,
    ] {
        let resp = post(&mock, body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["type"], "error", "{body}");
        assert_eq!(err["error"]["type"], "invalid_request_error", "{body}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("mock: ")
        );
    }
}

#[tokio::test]
async fn cut_after_and_hang_ms() {
    let mock = server(MockConfig::default()).await;
    let mut resp = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"cut_after": 1}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let error = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(None) => panic!("body ended cleanly: {text:?}"),
            Err(e) => break e,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let events = sse_events(&text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta"
        ]
    );

    let mut resp = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"hang_ms": 400}}),
    )
    .await;
    let start = Instant::now();
    let mut text = String::new();
    let mut first_content_at = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if first_content_at.is_none() && text.contains(r#""text":"po""#) {
            first_content_at = Some(start.elapsed());
        }
    }
    assert!(
        first_content_at.unwrap() < Duration::from_millis(200),
        "{first_content_at:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

#[tokio::test]
async fn delays_apply() {
    let mock = server(MockConfig {
        chunk_delay_ms: 50,
        ..MockConfig::default()
    })
    .await;
    let start = Instant::now();
    let text = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"delay_ms": 200}}),
    )
    .await
    .text()
    .await
    .unwrap();
    // Headers after 200 ms, then eight gaps of 50 ms between nine events.
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(sse_events(&text).len(), 9);
}

#[tokio::test]
async fn both_paths_and_last_body() {
    let mock = server(MockConfig::default()).await;
    let raw = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#;
    let resp = client()
        .post(format!("http://{}/v1/messages", mock.addr()))
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(mock.last_body().unwrap(), raw.as_bytes());
    assert_eq!(post(&mock, raw).await.status(), 200); // via base_url(): /v1/messages
    assert_eq!(mock.requests(), 2);
    // Only the second request carried a key.
    assert_eq!(mock.requests_for_key("sk-ant-test"), 1);
}

#[tokio::test]
async fn raw_usage_replaces_usage_everywhere_it_appears() {
    let mock = server(MockConfig::default()).await;
    let raw = r#"{"input_tokens":18446744073709551615,"output_tokens":1e300}"#;
    let body = format!(r#"{{"model":"m","mock":{{"raw_usage":{raw}}}}}"#);
    let text = post(&mock, body).await.text().await.unwrap();
    assert!(text.ends_with(&format!(r#","usage":{raw}}}"#)), "{text}");

    let body = format!(r#"{{"model":"m","stream":true,"mock":{{"raw_usage":{raw}}}}}"#);
    let text = post(&mock, body).await.text().await.unwrap();
    let events = sse_events(&text);
    let with_usage: Vec<&str> = events
        .iter()
        .filter(|(_, data)| data["usage"].is_object() || data["message"]["usage"].is_object())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(with_usage, ["message_start", "message_delta"]);
    assert_eq!(
        text.matches(&format!(r#""usage":{raw}"#)).count(),
        2,
        "{text}"
    );

    // `no_usage` still wins.
    let body = format!(r#"{{"model":"m","mock":{{"raw_usage":{raw},"no_usage":true}}}}"#);
    let text = post(&mock, body).await.text().await.unwrap();
    assert!(!text.contains("usage"), "{text}");
}
