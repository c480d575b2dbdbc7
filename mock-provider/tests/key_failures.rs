#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Per-key scripted failures and per-key counts, on both endpoints, over real sockets.

mod common;

use std::collections::HashMap;

use common::client;
use mock_provider::{MockConfig, MockServer, spawn};
use serde_json::{Value, json};

async fn server(scripts: &[(&str, &[u16])]) -> MockServer {
    let key_failures: HashMap<String, Vec<u16>> = scripts
        .iter()
        .map(|(k, s)| ((*k).to_owned(), s.to_vec()))
        .collect();
    spawn(MockConfig {
        key_failures,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

enum Key<'a> {
    Bearer(&'a str),
    AnthropicHeader(&'a str),
    Absent,
}

async fn send(mock: &MockServer, path: &str, key: Key<'_>, body: Value) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}{path}", mock.base_url()))
        .header("content-type", "application/json")
        .body(body.to_string());
    request = match key {
        Key::Bearer(k) => request.bearer_auth(k),
        Key::AnthropicHeader(k) => request.header("x-api-key", k),
        Key::Absent => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn chat_script_is_played_in_order_then_answers_normally() {
    let mock = server(&[("sk-a", &[429, 500, 200, 503])]).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = send(
            &mock,
            "/chat/completions",
            Key::Bearer("sk-a"),
            json!({"model": "m"}),
        )
        .await;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            retry_after.as_deref(),
            (status == 429).then_some("1"),
            "{status}"
        );
        let body: Value = resp.json().await.unwrap();
        if status == 200 {
            assert_eq!(body["object"], "chat.completion");
        } else {
            // The chat endpoint keeps OpenAI's error shape.
            assert_eq!(body["error"]["message"], "mock error");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [429, 500, 200, 503, 200, 200]);
    assert_eq!(mock.requests_for_key("sk-a"), 6);
    assert_eq!(mock.requests(), 6);
}

#[tokio::test]
async fn messages_script_with_overloaded() {
    let mock = server(&[("sk-ant", &[529, 429])]).await;
    let body = json!({"model": "claude", "stream": true});
    let resp = send(
        &mock,
        "/messages",
        Key::AnthropicHeader("sk-ant"),
        body.clone(),
    )
    .await;
    assert_eq!(resp.status(), 529);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock error"}})
    );
    let resp = send(&mock, "/messages", Key::Bearer("sk-ant"), body.clone()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
    let resp = send(&mock, "/messages", Key::AnthropicHeader("sk-ant"), body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("event: message_stop"));
    assert_eq!(mock.requests_for_key("sk-ant"), 3);
}

#[tokio::test]
async fn scripts_are_per_key_and_shared_across_endpoints() {
    let mock = server(&[("bad", &[500, 500]), ("flaky", &[429])]).await;
    // Unscripted and missing keys answer normally and are counted per key.
    for key in [
        Key::Bearer("good"),
        Key::Absent,
        Key::AnthropicHeader("good"),
    ] {
        let resp = send(&mock, "/chat/completions", key, json!({"model": "m"})).await;
        assert_eq!(resp.status(), 200);
    }
    // One script, consumed by whichever endpoint the key calls.
    assert_eq!(
        send(&mock, "/chat/completions", Key::Bearer("bad"), json!({}))
            .await
            .status(),
        500
    );
    assert_eq!(
        send(&mock, "/messages", Key::AnthropicHeader("bad"), json!({}))
            .await
            .status(),
        500
    );
    assert_eq!(
        send(&mock, "/messages", Key::AnthropicHeader("bad"), json!({}))
            .await
            .status(),
        200
    );
    // A per-request mock.status still wins, and the script moves on regardless.
    assert_eq!(
        send(
            &mock,
            "/chat/completions",
            Key::Bearer("flaky"),
            json!({"mock": {"status": 418}})
        )
        .await
        .status(),
        418
    );
    assert_eq!(
        send(&mock, "/chat/completions", Key::Bearer("flaky"), json!({}))
            .await
            .status(),
        200
    );

    assert_eq!(mock.requests_for_key("good"), 2);
    assert_eq!(mock.requests_for_key("bad"), 3);
    assert_eq!(mock.requests_for_key("flaky"), 2);
    assert_eq!(mock.requests_for_key("nobody"), 0);
    assert_eq!(mock.requests(), 8);
}

#[tokio::test]
async fn concurrent_requests_take_each_scripted_status_once() {
    let mock = server(&[("k", &[500, 500, 500, 429, 429])]).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mock = mock.clone();
        tasks.push(tokio::spawn(async move {
            send(
                &mock,
                "/chat/completions",
                Key::Bearer("k"),
                json!({"model": "m"}),
            )
            .await
            .status()
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert_eq!((count(200), count(429), count(500)), (15, 2, 3));
    assert_eq!(mock.requests_for_key("k"), 20);
}
