use serde_json::{Value, json};

use super::*;

fn translate(body: Value) -> (Value, RequestFacts) {
    let (bytes, facts) = chat_to_messages(body.to_string().as_bytes(), "claude-up", 1024).unwrap();
    (serde_json::from_slice(&bytes).unwrap(), facts)
}

fn refuse(body: Value) -> TranslateError {
    chat_to_messages(body.to_string().as_bytes(), "claude-up", 1024).unwrap_err()
}

#[test]
fn plain_text_with_system() {
    let (out, facts) = translate(json!({
        "model": "gpt-public",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"}
        ],
        "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": "END",
        "user": "u-42", "seed": 7, "frequency_penalty": 1, "response_format": {"type": "text"}
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-up",
            "max_tokens": 50,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
                {"role": "user", "content": [{"type": "text", "text": "Bye"}]}
            ],
            "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"],
            "metadata": {"user_id": "u-42"}
        })
    );
    assert_eq!(
        facts,
        RequestFacts {
            stream: false,
            client_wants_usage: false,
            max_tokens: 50
        }
    );
}

#[test]
fn several_system_messages_become_blocks() {
    let (out, _) = translate(json!({
        "messages": [
            {"role": "system", "content": "One."},
            {"role": "developer", "content": [{"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "Hi"}
        ]
    }));
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "One."},
               {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(out["max_tokens"], 1024);
}

#[test]
fn max_tokens_precedence_and_validation() {
    let (_, facts) =
        translate(json!({"messages": [], "max_tokens": 10, "max_completion_tokens": 20}));
    assert_eq!(facts.max_tokens, 20);
    let (out, facts) = translate(json!({"messages": [], "max_tokens": null}));
    assert_eq!((facts.max_tokens, &out["max_tokens"]), (1024, &json!(1024)));
    assert_eq!(
        refuse(json!({"messages": [], "max_tokens": 0})).param(),
        Some("max_tokens")
    );
    assert_eq!(
        refuse(json!({"messages": [], "max_completion_tokens": "5"})).param(),
        Some("max_completion_tokens")
    );
}

#[test]
fn images_from_data_and_http_urls() {
    let (out, _) = translate(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    ]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ])
    );
}

#[test]
fn bad_images_name_the_field() {
    for url in [
        "data:image/png,notbase64",
        "ftp://x/y.png",
        "data:;base64,AAAA",
        "data:image/png;base64",
    ] {
        let e = refuse(json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        ]}));
        assert_eq!(
            e.param(),
            Some("messages[1].content[0].image_url.url"),
            "{url}"
        );
    }
    let e = refuse(json!({"messages": [{"role": "assistant", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}));
    assert_eq!(e.param(), Some("messages[0].content[0].type"));
    let e = refuse(
        json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
    );
    assert_eq!(e.param(), Some("messages[0].content[0].type"));
    assert!(e.to_string().contains("input_audio"), "{e}");
}

#[test]
fn tool_calls_and_results_round_trip() {
    let (out, _) = translate(json!({
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks, which is warmer?"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Current weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                   "strict": true}}],
        "tool_choice": "required"
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                {"type": "text", "text": "Thanks, which is warmer?"}
            ]}
        ])
    );
    assert_eq!(
        out["tools"],
        json!([{"name": "weather", "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
    );
    assert_eq!(out["tool_choice"], json!({"type": "any"}));
}

#[test]
fn assistant_text_with_tool_call_and_empty_arguments() {
    let (out, _) = translate(json!({"messages": [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}]}
    ]}));
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "text", "text": "Let me check."},
               {"type": "tool_use", "id": "c", "name": "now", "input": {}}])
    );
}

#[test]
fn same_role_messages_merge_and_empty_text_is_dropped() {
    let (out, _) = translate(json!({"messages": [
        {"role": "user", "content": "a"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "no"}]}
        ])
    );
}

#[test]
fn tool_choice_forms() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let choice = |choice: Value, parallel: Value| {
        translate(json!({"messages": [], "tools": tools, "tool_choice": choice, "parallel_tool_calls": parallel}))
            .0
            .get("tool_choice")
            .cloned()
    };
    assert_eq!(
        choice(json!("auto"), Value::Null),
        Some(json!({"type": "auto"}))
    );
    assert_eq!(
        choice(json!("none"), json!(false)),
        Some(json!({"type": "none"}))
    );
    assert_eq!(
        choice(
            json!({"type": "function", "function": {"name": "f"}}),
            json!(false)
        ),
        Some(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}))
    );
    assert_eq!(
        choice(Value::Null, json!(false)),
        Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
    );
    assert_eq!(choice(Value::Null, json!(true)), None);
    let (out, _) = translate(json!({"messages": [], "tools": tools}));
    assert_eq!(
        out["tools"],
        json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
    );
    assert_eq!(
        refuse(json!({"messages": [], "tools": tools, "tool_choice": "sometimes"})).param(),
        Some("tool_choice")
    );
}

#[test]
fn stream_and_usage_facts() {
    let (out, facts) = translate(
        json!({"messages": [], "stream": true, "stream_options": {"include_usage": true},
        "stop": ["a", "b"]}),
    );
    assert_eq!(out["stream"], true);
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert!(out.get("stream_options").is_none());
    assert!(facts.stream && facts.client_wants_usage);
    let (out, facts) = translate(json!({"messages": [], "stream": false}));
    assert!(out.get("stream").is_none());
    assert!(!facts.stream && !facts.client_wants_usage);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (json!({"messages": "hi"}), "messages"),
        (json!({}), "messages"),
        (json!({"messages": [{"content": "x"}]}), "messages[0].role"),
        (
            json!({"messages": [{"role": "function", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]}),
            "messages[0].tool_calls[0].function.name",
        ),
        (json!({"messages": [], "n": 2}), "n"),
        (json!({"messages": [], "stop": [1]}), "stop"),
        (json!({"messages": [], "temperature": "hot"}), "temperature"),
        (json!({"messages": [], "stream": "yes"}), "stream"),
        (
            json!({"messages": [], "stream_options": {"include_usage": 1}}),
            "stream_options.include_usage",
        ),
        (
            json!({"messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
            "tools[0].type",
        ),
        (
            json!({"messages": [], "functions": [{"name": "f"}]}),
            "functions",
        ),
        (json!({"messages": [], "user": 5}), "user"),
    ];
    for (body, field) in cases {
        let e = refuse(body.clone());
        assert_eq!(e.param(), Some(field), "{body}: {e}");
        assert!(e.to_string().starts_with(&format!("`{field}`")), "{e}");
    }
    let e = chat_to_messages(b"[1,2]", "m", 1).unwrap_err();
    assert!(matches!(e, TranslateError::Json(_)) && e.param().is_none());
    assert!(chat_to_messages(b"{not json", "m", 1).is_err());
}
