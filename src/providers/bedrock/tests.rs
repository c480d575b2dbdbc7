#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

#[test]
fn a_conversation_with_images_and_tool_results_becomes_converse_turns() {
    let body = json!({
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,AAAA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "a cat"},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "tool_choice": "none", "max_tokens": 10, "stop": ["END"]
    });
    let out: Value =
        serde_json::from_slice(&chat_to_converse(&serde_json::to_vec(&body).unwrap()).unwrap())
            .unwrap();
    assert_eq!(out["system"], json!([{"text": "Be brief."}]));
    let turns = out["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(
        turns[0]["content"][1],
        json!({"image": {"format": "jpeg", "source": {"bytes": "AAAA"}}})
    );
    assert_eq!(
        turns[1]["content"][0],
        json!({"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"q": "cat"}}})
    );
    assert_eq!(
        turns[2]["content"],
        json!([{"toolResult": {"toolUseId": "t1", "content": [{"text": "a cat"}]}}, {"text": "Thanks"}])
    );
    // `none` with tool calls in the conversation: the tools go (Converse needs them), no choice.
    assert_eq!(
        out["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]})
    );
    assert_eq!(
        out["inferenceConfig"],
        json!({"maxTokens": 10, "stopSequences": ["END"]})
    );
    assert_eq!(
        path("anthropic.claude-sonnet-4-5-20250929-v1:0", true),
        "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    );
}

#[test]
fn an_answer_with_a_tool_call_and_cache_reads_becomes_a_completion() {
    let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Let me look."},{"toolUse":{"toolUseId":"t2","name":"lookup","input":{"q":"dog"}}}]}},
        "stopReason":"tool_use","usage":{"inputTokens":10,"outputTokens":5,"cacheReadInputTokens":100,"cacheWriteInputTokens":20}}"#;
    let usage = usage_from_body(body).unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
            usage.output_tokens
        ),
        (130, 100, 20, 5)
    );
    let chat: Value = serde_json::from_slice(&converse_to_chat(body, "m").unwrap()).unwrap();
    let choice = &chat["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me look.");
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "t2");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"q\":\"dog\"}"
    );
    assert_eq!(chat["usage"]["prompt_tokens"], 130);
    let error: Value = serde_json::from_slice(
        &error_to_chat(
            br#"{"message":"Too many requests"}"#,
            Some("ThrottlingException:http://internal"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");
    assert_eq!(error["error"]["code"], "ThrottlingException");
}
