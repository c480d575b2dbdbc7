#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

fn translate(request: Value) -> Value {
    let body = chat_to_gemini(&serde_json::to_vec(&request).unwrap()).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn a_conversation_with_a_system_prompt_an_image_and_a_tool_call_is_translated() {
    let gemini = translate(json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"answer\":\"a cat\"}"},
            {"role": "user", "content": "Thanks"},
            {"role": "user", "content": "And the colour?"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Looks up", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "max_tokens": 64, "temperature": 0.2, "stop": "END",
        "response_format": {"type": "json_object"}
    }));
    assert_eq!(
        gemini["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    let contents = gemini["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{contents:?}");
    assert_eq!(contents[0]["role"], "user");
    assert_eq!(
        contents[0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "cat"}}}]})
    );
    // The tool result and the two user messages are one user turn.
    assert_eq!(
        contents[2]["parts"],
        json!([
            {"functionResponse": {"name": "lookup", "response": {"answer": "a cat"}}},
            {"text": "Thanks"}, {"text": "And the colour?"}
        ])
    );
    assert_eq!(
        gemini["tools"],
        json!([{"functionDeclarations": [{"name": "lookup", "description": "Looks up", "parameters": {"type": "object"}}]}])
    );
    assert_eq!(
        gemini["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}})
    );
    assert_eq!(
        gemini["generationConfig"],
        json!({"maxOutputTokens": 64, "temperature": 0.2, "stopSequences": ["END"], "responseMimeType": "application/json"})
    );
}

#[test]
fn what_cannot_be_sent_to_gemini_is_refused_by_name() {
    for (request, field, reason) in [
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]}),
            "messages[0].content[0].image_url.url",
            "must be a data: URL",
        ),
        (json!({"messages": [], "n": 2}), "n", "must be 1"),
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
            "messages[0].tool_call_id",
            "answers no tool call",
        ),
        (
            json!({"messages": [], "tools": [{"type": "retrieval"}]}),
            "tools[0].type",
            "only `function` tools",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "messages[0].content[0].type",
            "not supported for Gemini",
        ),
    ] {
        let error = chat_to_gemini(&serde_json::to_vec(&request).unwrap()).unwrap_err();
        assert_eq!(error.param(), Some(field), "{request}");
        assert!(error.to_string().contains(reason), "{error}");
    }
}

const ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"thinking...","thought":true},{"text":"po"},{"text":"ng"}]},"finishReason":"STOP","index":0}],
  "usageMetadata":{"promptTokenCount":1200,"cachedContentTokenCount":1000,"candidatesTokenCount":180,"thoughtsTokenCount":120,"totalTokenCount":1500},
  "modelVersion":"gemini-2.5-pro","responseId":"abc"}"#;

#[test]
fn an_answer_becomes_a_completion_and_thoughts_are_billed_as_reasoning_output() {
    let usage = usage_from_body(ANSWER.as_bytes()).unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens
        ),
        (1200, 1000, 300, 120)
    );
    let chat: Value =
        serde_json::from_slice(&gemini_to_chat(ANSWER.as_bytes(), "gemini-pro").unwrap()).unwrap();
    assert_eq!(chat["model"], "gemini-pro");
    assert_eq!(chat["choices"][0]["message"]["content"], "pong");
    assert_eq!(chat["choices"][0]["finish_reason"], "stop");
    assert_eq!(chat["usage"]["completion_tokens"], 300);
    assert_eq!(
        chat["usage"]["prompt_tokens_details"]["cached_tokens"],
        1000
    );
    assert_eq!(
        chat["usage"]["completion_tokens_details"]["reasoning_tokens"],
        120
    );
}

#[test]
fn function_calls_and_finish_reasons_are_mapped() {
    let body = br#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"lookup","args":{"q":"cat"}}}]},"finishReason":"STOP"}]}"#;
    let chat: Value = serde_json::from_slice(&gemini_to_chat(body, "g").unwrap()).unwrap();
    let message = &chat["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        "{\"q\":\"cat\"}"
    );
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    for (reason, expected) in [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("OTHER", "stop"),
    ] {
        let body = format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}},"finishReason":"{reason}"}}]}}"#
        );
        let chat: Value =
            serde_json::from_slice(&gemini_to_chat(body.as_bytes(), "g").unwrap()).unwrap();
        assert_eq!(chat["choices"][0]["finish_reason"], expected, "{reason}");
    }
    let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"}}"#;
    let chat: Value = serde_json::from_slice(&gemini_to_chat(blocked, "g").unwrap()).unwrap();
    assert_eq!(chat["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn errors_take_openais_shape() {
    let body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
    let error: Value = serde_json::from_slice(&error_to_chat(body).unwrap()).unwrap();
    assert_eq!(
        error,
        json!({"error": {"message": "Resource has been exhausted", "type": "rate_limit_error", "param": null, "code": "RESOURCE_EXHAUSTED"}})
    );
    assert_eq!(error_to_chat(b"<html>"), None);
}

fn data_of(event: &[u8]) -> Value {
    let text = std::str::from_utf8(event).unwrap();
    serde_json::from_str(text.trim().strip_prefix("data: ").unwrap()).unwrap()
}

#[test]
fn a_stream_becomes_chunks_ending_with_usage_and_done() {
    let mut chunks = GeminiChunks::new("gemini-pro", true);
    let first = chunks.push_data(br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"po"}]}}],"usageMetadata":{"promptTokenCount":10},"responseId":"r1"}"#);
    assert_eq!(first.len(), 2);
    assert_eq!(
        data_of(&first[0])["choices"][0]["delta"]["role"],
        "assistant"
    );
    assert_eq!(data_of(&first[1])["choices"][0]["delta"]["content"], "po");
    assert_eq!(data_of(&first[1])["id"], "chatcmpl-r1");
    assert!(!chunks.saw_stop());
    let last = chunks.push_data(br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"ng"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2,"thoughtsTokenCount":3}}"#);
    assert_eq!(last.len(), 4);
    assert_eq!(data_of(&last[1])["choices"][0]["finish_reason"], "stop");
    assert_eq!(data_of(&last[2])["usage"]["completion_tokens"], 5);
    assert_eq!(&last[3][..], b"data: [DONE]\n\n");
    assert!(chunks.saw_stop() && !chunks.failed());
    assert_eq!(chunks.usage().unwrap().output_tokens, 5);
    assert_eq!(chunks.content_events(), 2);

    // Without include_usage there is no usage chunk; a function call is a tool_calls delta.
    let mut chunks = GeminiChunks::new("g", false);
    let out = chunks.push_data(br#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP"}]}"#);
    assert_eq!(out.len(), 4);
    assert_eq!(
        data_of(&out[1])["choices"][0]["delta"]["tool_calls"][0]["index"],
        0
    );
    assert_eq!(
        data_of(&out[2])["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let mut chunks = GeminiChunks::new("g", false);
    let out =
        chunks.push_data(br#"{"error":{"code":500,"message":"internal","status":"INTERNAL"}}"#);
    assert_eq!(data_of(&out[0])["error"]["type"], "api_error");
    assert!(chunks.failed() && chunks.saw_stop());
}
