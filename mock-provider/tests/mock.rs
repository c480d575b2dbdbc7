#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{client, server};
use mock_provider::{MockConfig, MockServer, MockUsage};
use serde_json::{Value, json};

async fn post(server: &MockServer, body: impl Into<reqwest::Body>) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", server.base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_json(server: &MockServer, body: Value) -> reqwest::Response {
    post(server, body.to_string()).await
}

/// Splits an SSE body into its `data:` payloads, checking the framing on the way.
fn sse_events(text: &str) -> Vec<String> {
    assert!(text.ends_with("\n\n"), "unterminated event in {text:?}");
    text.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_owned()
        })
        .collect()
}

fn parse(event: &str) -> Value {
    serde_json::from_str(event).unwrap()
}

fn deltas(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| parse(e))
        .collect()
}

#[tokio::test]
async fn non_streaming_answer_is_exact() {
    let mock = server(MockConfig::default()).await;
    let resp = post_json(
        &mock,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}"#
    );
}

#[tokio::test]
async fn usage_details_appear_when_non_zero() {
    let usage = MockUsage {
        prompt_tokens: 100,
        completion_tokens: 50,
        cached_tokens: 40,
        reasoning_tokens: 0,
    };
    let mock = server(MockConfig {
        usage,
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
        json!({"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
               "prompt_tokens_details": {"cached_tokens": 40},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    let body: Value = post_json(
        &mock,
        json!({"model": "m", "mock": {"usage": {"cached_tokens": 0, "reasoning_tokens": 9, "completion_tokens": 1}}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        body["usage"]["completion_tokens_details"],
        json!({"reasoning_tokens": 9})
    );
    assert_eq!(body["usage"]["total_tokens"], 101);
}

#[tokio::test]
async fn model_is_echoed_with_escapes() {
    let mock = server(MockConfig::default()).await;
    let model = "we\"ird\\mo\ndel ü";
    let body: Value = post_json(&mock, json!({"model": model}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["model"], model);
    let body: Value = post_json(&mock, json!({"messages": []}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["model"], "mock-model");
}

#[tokio::test]
async fn stream_without_include_usage() {
    let mock = server(MockConfig::default()).await;
    let resp = post_json(&mock, json!({"model": "m", "stream": true})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = sse_events(&resp.text().await.unwrap());
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events.iter().all(|e| !e.contains("usage")), "{events:?}");

    let chunks = deltas(&events);
    for c in &chunks {
        assert_eq!(c["id"], "chatcmpl-mock");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["created"], 1_700_000_000);
        assert_eq!(c["model"], "m");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: Vec<&str> = chunks[1..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, ["po", "n", "g"]);
    assert!(
        chunks[..4]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn stream_with_include_usage() {
    let mock = server(MockConfig::default()).await;
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}});
    let events = sse_events(&post_json(&mock, body).await.text().await.unwrap());
    assert_eq!(events.len(), 7, "{events:?}");
    assert_eq!(events[6], "[DONE]");
    let usage = parse(&events[5]);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30})
    );
    assert_eq!(parse(&events[4])["choices"][0]["finish_reason"], "stop");
    assert!(events[..5].iter().all(|e| !e.contains("usage")));

    // no_usage wins over include_usage, and over the non-streaming usage object.
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "mock": {"no_usage": true}});
    let events = sse_events(&post_json(&mock, body).await.text().await.unwrap());
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| !e.contains("usage")));
    let body: Value = post_json(&mock, json!({"model": "m", "mock": {"no_usage": true}}))
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("usage").is_none(), "{body}");
}

#[tokio::test]
async fn content_and_chunks_overrides() {
    let mock = server(MockConfig::default()).await;
    let body =
        json!({"model": "m", "stream": true, "mock": {"content": "héllo wörld", "chunks": 2}});
    let events = sse_events(&post_json(&mock, body).await.text().await.unwrap());
    let chunks = deltas(&events);
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "héllo ");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "wörld");
    let body: Value = post_json(&mock, json!({"model": "m", "mock": {"content": "x\"y"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "x\"y");
}

#[tokio::test]
async fn stream_events_arrive_over_time() {
    let mock = server(MockConfig {
        chunk_delay_ms: 100,
        ..MockConfig::default()
    })
    .await;
    let start = Instant::now();
    let mut resp = post_json(&mock, json!({"model": "m", "stream": true})).await;
    let first = resp.chunk().await.unwrap().unwrap();
    let first_at = start.elapsed();
    assert!(String::from_utf8_lossy(&first).contains(r#""role":"assistant""#));
    let mut text = String::from_utf8(first.to_vec()).unwrap();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let total = start.elapsed();
    assert_eq!(sse_events(&text).len(), 6);
    // Five gaps of 100 ms between six events.
    assert!(total >= Duration::from_millis(500), "{total:?}");
    assert!(
        first_at < Duration::from_millis(250),
        "first event came at {first_at:?}"
    );
}

#[tokio::test]
async fn hang_ms_pauses_after_first_content_chunk() {
    let mock = server(MockConfig::default()).await;
    // From before the request: the pause may begin before the client has the headers.
    let start = Instant::now();
    let mut resp = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"hang_ms": 400}}),
    )
    .await;
    let mut text = String::new();
    let mut first_content_at = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if first_content_at.is_none() && text.contains(r#""content":"po""#) {
            first_content_at = Some(start.elapsed());
        }
    }
    assert!(
        first_content_at.unwrap() < Duration::from_millis(200),
        "{first_content_at:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn delay_ms_holds_the_headers() {
    let mock = server(MockConfig {
        delay_ms: 300,
        ..MockConfig::default()
    })
    .await;
    let start = Instant::now();
    assert_eq!(post_json(&mock, json!({"model": "m"})).await.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(
        post_json(&mock, json!({"model": "m", "mock": {"delay_ms": 0}}))
            .await
            .status(),
        200
    );
    assert!(start.elapsed() < Duration::from_millis(250));
}

#[tokio::test]
async fn cut_after_breaks_the_body_before_done() {
    let mock = server(MockConfig::default()).await;
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "mock": {"cut_after": 1}});
    let mut resp = post_json(&mock, body).await;
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
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(parse(&events[1])["choices"][0]["delta"]["content"], "po");
    assert!(!text.contains("[DONE]") && !text.contains("stop") && !text.contains("usage"));
}

#[tokio::test]
async fn cut_after_zero_sends_only_the_role_chunk() {
    let mock = server(MockConfig::default()).await;
    let resp = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"cut_after": 0}}),
    )
    .await;
    assert!(resp.text().await.is_err());
}

#[tokio::test]
async fn status_override() {
    let mock = server(MockConfig::default()).await;
    let resp = post_json(
        &mock,
        json!({"model": "m", "stream": true, "mock": {"status": 500}}),
    )
    .await;
    assert_eq!(resp.status(), 500);
    assert!(resp.headers().get("retry-after").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "mock error", "type": "server_error", "code": null, "param": null}})
    );

    let resp = post_json(&mock, json!({"model": "m", "mock": {"status": 429}})).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );

    let resp = post_json(
        &mock,
        json!({"model": "m", "mock": {"status": 429, "retry_after": 7}}),
    )
    .await;
    assert_eq!(resp.headers()["retry-after"], "7");

    let resp = post_json(&mock, json!({"model": "m", "mock": {"status": 400}})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
}

#[tokio::test]
async fn error_every_and_rate_limit_every() {
    let mock = server(MockConfig {
        error_every: 3,
        ..MockConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            post_json(&mock, json!({"model": "m"}))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 500, 200, 200, 500]);
    assert_eq!(mock.requests(), 6);

    let mock = server(MockConfig {
        rate_limit_every: 2,
        ..MockConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = post_json(&mock, json!({"model": "m"})).await;
        if resp.status() == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 429, 200, 429]);
}

#[tokio::test]
async fn last_body_is_exact_and_requests_are_counted() {
    let mock = server(MockConfig::default()).await;
    assert_eq!(mock.requests(), 0);
    assert!(mock.last_body().is_none());
    let raw = "{ \"model\" : \"m\",\n  \"messages\": [ {\"role\":\"user\",\"content\":\"caf\\u00e9\"} ] , \"extra\": 1 }";
    assert_eq!(post(&mock, raw).await.status(), 200);
    assert_eq!(mock.last_body().unwrap(), raw.as_bytes());
    assert_eq!(post(&mock, "{not json").await.status(), 400);
    assert_eq!(mock.last_body().unwrap(), "{not json".as_bytes());
    assert_eq!(mock.requests(), 2);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let mock = server(MockConfig::default()).await;
    for body in [
        "{not json",
        r#"{"model": 5}"#,
        r#"{"model": "m", "mock": {"stauts": 500}}"#,
    ] {
        let resp = post(&mock, body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error", "{body}");
        assert!(err["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn models_health_and_both_paths() {
    let mock = server(MockConfig::default()).await;
    let client = client();
    let base = format!("http://{}", mock.addr());
    for path in ["/v1/models", "/models"] {
        let body: Value = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body,
            json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 1_700_000_000, "owned_by": "mock"}]})
        );
    }
    assert_eq!(
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let resp = client
        .post(format!("{base}/chat/completions"))
        .body(r#"{"model":"m"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(post_json(&mock, json!({"model": "m"})).await.status(), 200); // via base_url(): /v1/...
    assert_eq!(mock.requests(), 2);
}

#[tokio::test]
async fn raw_usage_is_written_verbatim_and_huge_counts_do_not_overflow() {
    let mock = server(MockConfig::default()).await;
    let raw = r#"{"prompt_tokens":18446744073709551616,"completion_tokens":-3,"x":1.5e300}"#;
    let body = format!(r#"{{"model":"m","mock":{{"raw_usage":{raw}}}}}"#);
    let text = post(&mock, body).await.text().await.unwrap();
    assert!(text.ends_with(&format!(r#","usage":{raw}}}"#)), "{text}");

    let body = format!(
        r#"{{"model":"m","stream":true,"stream_options":{{"include_usage":true}},"mock":{{"raw_usage":{raw}}}}}"#
    );
    let text = post(&mock, body).await.text().await.unwrap();
    assert!(
        text.contains(&format!(r#""choices":[],"usage":{raw}}}"#)),
        "{text}"
    );

    // Counts at u64::MAX through the typed override: the total saturates instead of wrapping.
    let max = u64::MAX;
    let body: Value = post_json(
        &mock,
        json!({"model": "m", "mock": {"usage": {"prompt_tokens": max, "completion_tokens": max}}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["usage"]["total_tokens"], max);

    let refused = client()
        .post(format!("{}/embeddings", mock.base_url()))
        .header("content-type", "application/json")
        .body(format!(r#"{{"model":"m","mock":{{"raw_usage":{raw}}}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("mock.raw_usage"));
}

#[tokio::test]
async fn server_wide_raw_usage_yields_to_a_requests_own_usage() {
    let raw = r#"{"prompt_tokens":1e300}"#;
    let mock = server(MockConfig {
        raw_usage: Some(raw.to_owned()),
        ..MockConfig::default()
    })
    .await;
    let text = post_json(&mock, json!({"model": "m"}))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with(&format!(r#","usage":{raw}}}"#)), "{text}");
    let body: Value = post_json(
        &mock,
        json!({"model": "m", "mock": {"usage": {"prompt_tokens": 3}}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let text = post_json(&mock, json!({"model": "m", "mock": {"content": "x"}}))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with(&format!(r#","usage":{raw}}}"#)), "{text}");
}
